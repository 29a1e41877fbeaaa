"""Build data/public/corpus.jsonl from public datasets in fetched GitHub repositories.

Each source is read at a pinned commit from a bare git directory (`<mirrors>/<owner>+<name>/repo`), labeled
by its own categories or a written rule, and checked: a source whose name or repository matches a line of the
reserved-sources file is refused; rows equal to a dev-set item, or sharing an 8-word run with one, are dropped;
duplicates within the corpus are dropped. Usage (from the repository root):

    python data/build/build_public.py --mirrors /work/.mirror
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LABELS = ("math", "code", "creative", "default")
MIN_CHARS, MAX_CHARS = 8, 4000
NGRAM = 8
SEED = 20250124
REPO_ROOT = Path(__file__).resolve().parents[2]

Row = tuple[str, str, str]
"""(text, label, src_id) as a loader yields it."""


class ReservedSourceError(ValueError):
    """A source matches a line of the reserved-sources file."""


@dataclass(frozen=True)
class Source:
    """One public dataset: where it is, its license, how it is labeled, how many rows per label at most."""

    name: str
    repo: str
    commit: str
    paths: tuple[str, ...]
    license: str
    loader: Callable[[Source, Callable[[str], str]], Iterator[Row]]
    cap: int


# --------------------------------------------------------------------------- reserved sources and dev overlap


def _norm_name(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", "", s.lower())


_REPO = re.compile(r"^[\w.-]+/[\w.-]+(:\S*)?$")


def load_reserved(path: str | Path) -> tuple[set[str], set[str]]:
    """Read the reserved file: (dataset names normalised, repositories `owner/name` lower-cased)."""
    names: set[str] = set()
    repos: set[str] = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = line.split()
        first_repo = next((i for i, t in enumerate(tokens) if _REPO.match(t)), len(tokens))
        name = " ".join(tokens[:first_repo])
        aliases = [a for a in re.findall(r"\((\S+)\)", name)]
        aliases += re.split(r"\s*/\s*", re.sub(r"\(.*?\)", "", name).strip())
        names |= {_norm_name(a) for a in aliases if _norm_name(a)}
        repos |= {t.split(":")[0].lower() for t in tokens[first_repo:] if _REPO.match(t)}
    return names, repos


def check_not_reserved(source: Source, names: set[str], repos: set[str]) -> None:
    """Raise ReservedSourceError when the source's repository or name matches a reserved line."""
    if source.repo.lower() in repos:
        raise ReservedSourceError(f"source {source.name!r}: repository {source.repo} is reserved")
    own = _norm_name(source.name)
    for name in names:
        if len(name) >= 4 and (name in own or own in name):
            raise ReservedSourceError(f"source {source.name!r}: name matches reserved dataset {name!r}")


def norm_text(text: str) -> str:
    """Lower case, whitespace collapsed."""
    return " ".join(text.lower().split())


def word_ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class DevIndex:
    """Exact texts and 8-word runs of the dev set, to drop training rows that repeat them."""

    def __init__(self, texts: list[str]):
        self.exact = {norm_text(t) for t in texts}
        self.ngrams: set[tuple[str, ...]] = set()
        for t in texts:
            self.ngrams |= word_ngrams(t)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> DevIndex:
        with open(path, encoding="utf-8") as f:
            return cls([json.loads(line)["text"] for line in f if line.strip()])

    def is_exact(self, text: str) -> bool:
        return norm_text(text) in self.exact

    def shares_run(self, text: str) -> bool:
        return not self.ngrams.isdisjoint(word_ngrams(text))


# --------------------------------------------------------------------------- loaders

_OPT = re.compile(r"\s+")


def load_tal_scq5k(src: Source, show: Callable[[str], str]) -> Iterator[Row]:
    """TAL-SCQ5K-EN: competition math, single choice. Problem + lettered options -> math."""
    for path in src.paths:
        for line in show(path).splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            problem = item["problem"].strip()
            if "<img" in problem or "http" in problem:
                continue  # refers to a picture the query would not carry
            opts = []
            for group in item.get("answer_option_list", []):
                for opt in group:
                    opts.append(f"{opt['aoVal']}. {_OPT.sub(' ', opt['content']).strip()}")
            text = problem + ("\n" + "\n".join(opts) if opts else "")
            yield text, "math", f"{path}#{item['queId']}"


# jacoxu/StackOverflow tag ids (1-based, README order). Kept: programming languages, frameworks, SQL databases,
# version control and IDE questions (`code` under the label policy). Dropped as often not programming: wordpress,
# apache, excel, osx, sharepoint, drupal, magento.
SO_TAGS = {
    2: "oracle",
    3: "svn",
    6: "matlab",
    7: "visual-studio",
    8: "cocoa",
    10: "bash",
    11: "spring",
    12: "hibernate",
    13: "scala",
    15: "ajax",
    16: "qt",
    18: "linq",
    19: "haskell",
}


def load_stackoverflow(src: Source, show: Callable[[str], str]) -> Iterator[Row]:
    """Stack Overflow question titles with one tag each; programming tags -> code."""
    titles = show(src.paths[0]).splitlines()
    tags = show(src.paths[1]).splitlines()
    if len(titles) != len(tags):
        raise ValueError(f"source {src.name!r}: {len(titles)} titles but {len(tags)} labels")
    for i, (title, tag) in enumerate(zip(titles, tags, strict=True)):
        if int(tag) in SO_TAGS:
            yield title.strip(), "code", f"{src.paths[0]}#L{i + 1}:{SO_TAGS[int(tag)]}"


_CODE_WORDS = re.compile(
    r"(?i)\b(program(ming)?|code|software|computer|java(script)?|python|html|sql|unix|linux|windows|internet|"
    r"web ?sites?|web ?pages?|url|e-?mail|algorithm|compiler|database)\b",
)
_MATH_WORDS = re.compile(
    r"(?i)\b(calculate|compute|equation|formula|square root|percent(age)?|average|sum of|"
    r"how much is|plus|minus|times|divided|multipl\w*)\b|\d\s*[-+*/^=]\s*\d",
)


def detok_trec(text: str) -> str:
    text = re.sub(r"\s+([?.,!;:')])", r"\1", text)
    text = re.sub(r"([(])\s+", r"\1", text)
    text = text.replace("`` ", '"').replace(" ''", '"').replace("``", '"').replace("''", '"')
    return re.sub(r"\s+'s\b", "'s", text).strip()


def load_trec(src: Source, show: Callable[[str], str]) -> Iterator[Row]:
    """TREC question classification questions -> default, unless they name computing or arithmetic (dropped)."""
    for path in src.paths:
        for i, line in enumerate(show(path).splitlines()):
            if not line.strip():
                continue
            coarse_fine, question = line.split(" ", 1)
            question = detok_trec(question)
            if _CODE_WORDS.search(question) or _MATH_WORDS.search(question):
                continue
            yield question, "default", f"{path}#L{i + 1}:{coarse_fine}"


_WP_TAG = re.compile(r"^\s*\[\s*([A-Za-z]{2})\s*\]\s*")
WP_KEEP = {"WP", "CW", "EU", "TT", "SP", "FF"}
"""r/WritingPrompts post tags kept: writing prompt, constrained writing, established universe, theme thursday,
simple prompt, flash fiction. Dropped: IP (image), MP (music), PI (a story, not a prompt), OT/Meta."""
WP_MIN_WORDS = 8


def detok_wp(text: str) -> str:
    text = text.replace("<newline>", "\n")
    text = re.sub(r" (n't|'s|'re|'ve|'ll|'d|'m)\b", r"\1", text)
    text = re.sub(r"\s+([?.,!;:)])", r"\1", text)
    text = re.sub(r"([(])\s+", r"\1", text)
    text = re.sub(r"``\s*", '"', text)
    text = re.sub(r"\s*''", '"', text)
    return re.sub(r"[ \t]+", " ", text).strip()


def load_writingprompts(src: Source, show: Callable[[str], str]) -> Iterator[Row]:
    """r/WritingPrompts post titles (the prompts people post asking for a story) -> creative; the tag is cut."""
    csv.field_size_limit(1 << 30)
    seen: set[str] = set()
    for path in src.paths:
        for item in csv.DictReader(io.StringIO(show(path))):
            rid = item["row_id"]
            tags = [t.upper() for t in re.findall(r"\[\s*([A-Za-z]{2})\s*\]", item["prompt"])]
            if rid in seen or not _WP_TAG.match(item["prompt"]) or not set(tags) <= WP_KEEP:
                continue
            seen.add(rid)
            text = item["prompt"]
            while _WP_TAG.match(text):  # one or more leading tags such as "[ WP ] [ CW ]"
                text = _WP_TAG.sub("", text, count=1)
            text = detok_wp(text)
            if "[" in text or len(text.split()) < WP_MIN_WORDS:
                continue  # cross-post notes, and titles too short to read as a request on their own
            yield text, "creative", f"{path}#row_id={rid}"


_CRE_TASK = re.compile(
    r"(?i)^\W*(?:(?:please|hey|hi|hello)\W+)?(?:(?:can|could|would|will) you\s+(?:please\s+)?|"
    r"i (?:want|need|would like) you to\s+|help me\s+|let'?s\s+)?"
    r"(?:write|compose|create|generate|make up|tell|draft|pen)"
    r"\s+(?:me\s+|us\s+)?(?:a|an|the|some|one|two|three|four|five|ten|\d+)?\s*(?:[\w'-]+\s+){0,6}?"
    r"(poem|poetry|story|stories|song|lyrics|rap|haiku|limerick|sonnet|ballad|screenplay|sitcom|scene|"
    r"fairy ?tale|fable|"
    r"joke|jokes|essay|blog post|speech|toast|eulogy|slogan|tagline|tweet|advert\w*|ad copy|product description|"
    r"dialogue|monologue|verse|ode|parody|fan ?fiction|fanfic)s?\b",
)
_CRE_VETO = re.compile(
    r"(?i)\b(code|program\w*|function|python|javascript|sql|api|bot|app|html|css|excel|act as|pretend|summar\w*|"
    r"outline|"
    r"titles?|headlines?|story of|history of|user stor(?:y|ies)|strategy|plan)\b|\[insert|script (?:that|to|which)",
)


def sharegpt_is_creative(text: str) -> bool:
    """Rule: the request opens with a writing verb whose object is a creative form, and names no code or plan."""
    return bool(_CRE_TASK.search(text[:300])) and not _CRE_VETO.search(text[:600])


def load_sharegpt(src: Source, show: Callable[[str], str]) -> Iterator[Row]:
    """First user turns of shared ChatGPT conversations; English requests matching the creative rule -> creative."""
    seen: set[str] = set()
    for path in src.paths:
        for item in json.loads(show(path)):
            first_turn = "_" not in item["id"] or item["id"].endswith("_0")
            turns = item.get("conversations") or []
            if not first_turn or not turns or turns[0]["from"] != "human":
                continue
            text = turns[0]["value"].strip()
            letters = [ch for ch in text if ch.isalpha()]
            if not letters or sum(ch.isascii() for ch in letters) / len(letters) < 0.95 or text.lower() in seen:
                continue
            seen.add(text.lower())
            if sharegpt_is_creative(text):
                yield text, "creative", f"{path.split(':', 1)[-1]}#id={item['id']}"


SOURCES: tuple[Source, ...] = (
    Source(
        "tal-scq5k-en",
        "math-eval/TAL-SCQ5K",
        "8a66d6e14c65ba002beda39747e6b7c43bd2d472",
        (
            "en_single_choice_constructed_5K/en_single_choice_train_3K.jsonl",
            "en_single_choice_constructed_5K/en_single_choice_test_2K.jsonl",
        ),
        "MIT",
        load_tal_scq5k,
        cap=1500,
    ),
    Source(
        "stackoverflow-titles",
        "jacoxu/StackOverflow",
        "7c207f51e649fff9e4736610b9d44431bb7ccf00",
        ("rawText/title_StackOverflow.txt", "rawText/label_StackOverflow.txt"),
        "CC BY-SA (Stack Overflow content, released via Kaggle); no license file in the repository",
        load_stackoverflow,
        cap=1500,
    ),
    Source(
        "trec-qc",
        "tmadhuri/TREC-HindiData",
        "15f8c5be9fa04434238bd3c08fb08685b210a7b2",
        ("train_5500.label", "TREC_10.en.label"),
        "research use (Li & Roth TREC QC data, no explicit license); no license file in the repository",
        load_trec,
        cap=1500,
    ),
    Source(
        "writingprompts",
        "AlvinJ404/writingprompts_creativity",
        "fa5d27d9ea98c9f9d1715a11e6362e6be220f24c",
        (
            "dataset/gpt-4/train/orig/train.csv",
            "dataset/gpt-4/train/orig/train_bakup.csv",
            "dataset/gpt-4/test/test.csv",
        ),
        "Reddit r/WritingPrompts via Fan et al. 2018 (research use, no explicit license); no license file in "
        "the repository",
        load_writingprompts,
        cap=1500,
    ),
    Source(
        "sharegpt-first-turns",
        "ml-energy/leaderboard-v2",
        "c3af7f31e231a2a7021c5f8e2a54dd712d02e6e2",
        (
            "b12acfc7cc412442400995854b9c870e7eac3fc1:sharegpt/sg_90k_part1_html_cleaned_lang_first_sampled_sorted.json",
            "30c001fb0faba5bd7970b44f92336778bd3280be:sharegpt/ShareGPT_V3_filtered_1000.json",
            "6244952578285bd9a5dbc837e5a3978c6ca3329e:sharegpt/ShareGPT_V3_filtered_500.json",
            "benchmark/llm_text_generation/chat/sharegpt/ShareGPT_V3_filtered_500.json",
        ),
        "user-shared ChatGPT conversations (ShareGPT), no explicit license; repository Apache-2.0",
        load_sharegpt,
        cap=1500,
    ),
)


# --------------------------------------------------------------------------- build


def git_dir(mirrors: Path, repo: str) -> Path:
    base = mirrors / repo.replace("/", "+") / "repo"
    return base / ".git" if (base / ".git").is_dir() else base


def make_show(gdir: Path, commit: str) -> Callable[[str], str]:
    def show(path: str) -> str:
        spec = path if re.match(r"^[0-9a-f]{40}:", path) else f"{commit}:{path}"  # a path may pin its own commit
        out = subprocess.run(["git", f"--git-dir={gdir}", "show", spec], capture_output=True, check=True)
        return out.stdout.decode("utf-8")

    return show


def build(mirrors: Path, reserved: Path, dev: Path | None, out: Path, sources=SOURCES) -> dict:
    """Build the corpus; return the counts of every check."""
    names, repos = load_reserved(reserved)
    refused = []
    for src in sources:
        try:
            check_not_reserved(src, names, repos)
        except ReservedSourceError as exc:
            refused.append(str(exc))
    if refused:
        raise ReservedSourceError("; ".join(refused))
    dev_index = DevIndex.from_jsonl(dev) if dev else None

    rng = random.Random(SEED)
    seen: set[str] = set()
    stats: Counter = Counter()
    rows: list[dict] = []
    for src in sources:
        show = make_show(git_dir(mirrors, src.repo), src.commit)
        per_label: dict[str, list[dict]] = {lab: [] for lab in LABELS}
        for text, label, src_id in src.loader(src, show):
            if label not in LABELS:
                raise ValueError(f"source {src.name!r}: unknown label {label!r}")
            stats[f"{src.name}:read"] += 1
            if not MIN_CHARS <= len(text) <= MAX_CHARS:
                stats[f"{src.name}:length"] += 1
                continue
            key = re.sub(r"[^\w]+", " ", text.lower()).strip()
            if key in seen:
                stats["dup_within_corpus"] += 1
                continue
            if dev_index is not None and dev_index.is_exact(text):
                stats["dev_exact"] += 1
                continue
            if dev_index is not None and dev_index.shares_run(text):
                stats["dev_8gram"] += 1
                continue
            seen.add(key)
            per_label[label].append(
                {"text": text, "label": label, "source": src.name, "license": src.license, "src_id": src_id}
            )
        for items in per_label.values():
            if len(items) > src.cap:
                items = rng.sample(items, src.cap)
            rows.extend(items)
    rng.shuffle(rows)

    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")

    # The final file must show zero overlap on both checks and no reserved source.
    final = {"rows": len(rows), "refused_sources": len(refused), "final_dev_exact": 0, "final_dev_8gram": 0}
    if dev_index is not None:
        final["final_dev_exact"] = sum(dev_index.is_exact(r["text"]) for r in rows)
        final["final_dev_8gram"] = sum(dev_index.shares_run(r["text"]) for r in rows)
    final["per_label_source"] = Counter(f"{r['label']}|{r['source']}" for r in rows)
    final["dropped"] = stats
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--mirrors",
        type=Path,
        default=Path("/work/.mirror"),
        help="folder holding the fetched git dirs as <owner>+<name>/repo",
    )
    ap.add_argument("--reserved", type=Path, default=REPO_ROOT.parent / "shared/data/reserved-sources.txt")
    ap.add_argument(
        "--dev",
        type=Path,
        default=REPO_ROOT.parent / "shared/data/dev/dev.jsonl",
        help="dev set for the overlap check (skipped with a warning when the file is absent)",
    )
    ap.add_argument("--out", type=Path, default=REPO_ROOT / "data/public/corpus.jsonl")
    args = ap.parse_args(argv)
    if not args.reserved.is_file():
        ap.error(f"--reserved: no file at {args.reserved}")
    dev = args.dev if args.dev.is_file() else None
    if dev is None:
        print(f"warning: no dev file at {args.dev}; the dev overlap check is skipped", file=sys.stderr)
    res = build(args.mirrors, args.reserved, dev, args.out)
    print(f"reserved-source check: {len(SOURCES)} sources checked, {res['refused_sources']} refused")
    d = res["dropped"]
    print(
        f"dev overlap check: dropped {d['dev_exact']} exact duplicates and {d['dev_8gram']} rows sharing an "
        f"{NGRAM}-word run; in the final file: {res['final_dev_exact']} exact, {res['final_dev_8gram']} 8-word"
    )
    print(f"within-corpus duplicates dropped: {d['dup_within_corpus']}")
    for k in sorted(d):
        if ":" in k:
            print(f"  {k}: {d[k]}")
    print(f"wrote {res['rows']} rows to {args.out}")
    for k, v in sorted(res["per_label_source"].items()):
        print(f"  {k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
