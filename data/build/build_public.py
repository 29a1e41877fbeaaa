"""Build data/public/corpus.jsonl from public datasets in fetched GitHub repositories.

Each source is read at a pinned commit from a bare git directory (`<mirrors>/<owner>+<name>/repo`), labeled
by its own categories or a written rule, and checked: a source whose name or any repository it reads matches a
line of the reserved-sources file is refused; rows equal to a dev-set item, or sharing an 8-word run with one, are
dropped; duplicates within the corpus are dropped. Every row keeps its file, item id, category and rule in
`src_id`. Usage (from the repository root):

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
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

LABELS = ("math", "code", "creative", "default")
MIN_CHARS, MAX_CHARS = 8, 4000
NGRAM = 8
SEED = 20250124
REPO_ROOT = Path(__file__).resolve().parents[2]

Row = tuple[str, str | None, str]
"""(text, label, src_id) as a loader yields it; label None marks a row a rule dropped, and src_id then says why."""


class ReservedSourceError(ValueError):
    """A source matches a line of the reserved-sources file."""


_PIN = re.compile(r"^(?:(?P<repo>[\w.-]+/[\w.-]+)@)?(?:(?P<commit>[0-9a-f]{40}):)?(?P<path>.*)$")
"""A source path is `path`, `<commit>:path` (another commit of the source's repository) or `owner/name@<commit>:path`
(a file of another repository, read at its own pinned commit)."""


@dataclass(frozen=True)
class Source:
    """One public dataset: where it is, its license, how it is labeled, how many rows per label at most.

    `cap` is one number for every label or a mapping label -> number (labels not named are uncapped).
    """

    name: str
    repo: str
    commit: str
    paths: tuple[str, ...]
    license: str
    loader: Callable[[Source, GitReader], Iterator[Row]]
    cap: int | dict[str, int]

    def cap_for(self, label: str) -> int | None:
        return self.cap if isinstance(self.cap, int) else self.cap.get(label)

    def repos(self) -> tuple[str, ...]:
        """Every repository the source reads: its own and those its paths pin."""
        others = [m["repo"] for m in map(_PIN.match, self.paths) if m and m["repo"]]
        return (self.repo, *dict.fromkeys(others))


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
    """Raise ReservedSourceError when a repository the source reads, or its name, matches a reserved line."""
    for repo in source.repos():
        if repo.lower() in repos:
            raise ReservedSourceError(f"source {source.name!r}: repository {repo} is reserved")
    own = _norm_name(source.name)
    for name in names:
        if len(name) >= 4 and (name in own or own in name):
            raise ReservedSourceError(f"source {source.name!r}: name matches reserved dataset {name!r}")


def dedupe_key(text: str) -> str:
    """Lower case, punctuation removed: two rows with the same key are duplicates."""
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def word_ngrams(text: str, n: int = NGRAM) -> set[tuple[str, ...]]:
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class MirrorError(RuntimeError):
    """A pinned file cannot be read from its mirror (no mirror, no such commit or path)."""


class DevIndex:
    """Texts (up to case and punctuation) and 8-word runs of the dev set, to drop training rows that repeat them."""

    def __init__(self, texts: list[str]):
        self.exact = {dedupe_key(t) for t in texts}  # case and punctuation aside: short questions have no 8-word run
        self.ngrams: set[tuple[str, ...]] = set()
        for t in texts:
            self.ngrams |= word_ngrams(t)

    @classmethod
    def from_jsonl(cls, path: str | Path) -> DevIndex:
        with open(path, encoding="utf-8") as f:
            return cls([json.loads(line)["text"] for line in f if line.strip()])

    def is_exact(self, text: str) -> bool:
        return dedupe_key(text) in self.exact

    def shares_run(self, text: str) -> bool:
        return not self.ngrams.isdisjoint(word_ngrams(text))


# --------------------------------------------------------------------------- reading pinned files


def git_dir(mirrors: Path, repo: str) -> Path:
    base = mirrors / repo.replace("/", "+") / "repo"
    return base / ".git" if (base / ".git").is_dir() else base


class GitReader:
    """Reads a source's files at pinned commits from the fetched git dirs. `reader(path)` returns one file's text
    (a path takes the forms `_PIN` describes); `reader.tree(folder)` lists a folder; `reader.many(folder, names)`
    reads many files of a folder with one git call."""

    def __init__(self, mirrors: Path, repo: str, commit: str):
        self.mirrors, self.repo, self.commit = mirrors, repo, commit

    def _locate(self, path: str) -> tuple[Path, str]:
        """(git dir, `<commit>:<path>`) for a source path."""
        m = _PIN.match(path)
        if m["repo"] and not m["commit"]:
            raise ValueError(f"path {path!r} names another repository but no commit")
        commit = m["commit"] or self.commit
        return git_dir(self.mirrors, m["repo"] or self.repo), f"{commit}:{m['path']}"

    @staticmethod
    def _git(gdir: Path, *args: str, stdin: bytes | None = None) -> bytes:
        done = subprocess.run(["git", f"--git-dir={gdir}", *args], input=stdin, capture_output=True)
        if done.returncode != 0:  # git's own words say what is missing: a mirror, a commit, a path
            said = done.stderr.decode("utf-8", "replace").strip()
            raise MirrorError(f"git {' '.join(args)} in {gdir} failed: {said} (fetch the mirror again?)")
        return done.stdout

    def __call__(self, path: str) -> str:
        gdir, spec = self._locate(path)
        return self._git(gdir, "show", spec).decode("utf-8")

    def tree(self, folder: str) -> list[str]:
        """Names of the files in a folder, sorted."""
        gdir, spec = self._locate(folder)
        return sorted(self._git(gdir, "ls-tree", "--name-only", spec).decode("utf-8").split())

    def many(self, folder: str, names: list[str]) -> Iterator[str]:
        """The text of each file `folder/name`, in order, read with one `git cat-file --batch`."""
        gdir, spec = self._locate(folder)
        prefix = spec.rstrip("/") + "/"
        out = self._git(gdir, "cat-file", "--batch", stdin="".join(f"{prefix}{n}\n" for n in names).encode())
        pos = 0
        for name in names:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()  # "<sha> blob <size>", or "<spec> missing"
            if len(header) != 3:
                raise FileNotFoundError(f"{prefix}{name}: {out[pos:end].decode(errors='replace')}")
            size = int(header[2])
            yield out[end + 1 : end + 1 + size].decode("utf-8")
            pos = end + 1 + size + 1


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


_CRE_REQUEST = re.compile(
    r"(?i)\b(write|writing|make|compose|create|rewrite|rephrase|continue|improvise|turn|generate|tell|conceive)\b"
    r"(?:\s+(?:me|us|it|this|that))?\s+(?:(?:a|an|the|some|one|another|my|our|this|into|in|as)\s+)?"
    r"(?:[\w'’-]+\s+){0,5}?(poem|poetry|story|stories|song|lyrics|rap|haiku|limerick|sonnet|ballad|screenplay|"
    r"script for (?:a|an|the) (?:scene|movie|film|play|show|sitcom|episode|comedy|drama)|scene|fable|fairy ?tale|"
    r"fiction|plot|novel|chapter|joke|jokes|tweets?|tweet thread|monologue|dialogue|verse|fan ?fiction|fanfic|"
    r"essay|blog ?post|blog|article|speech|toast|eulogy|slogan|tagline|caption|product description|ad copy|"
    r"advertisement|ad|(?:social media|facebook|linkedin|instagram|twitter) post|love letter|wedding vows?)s?\b"
)
_CRE_REQUEST_VETO = re.compile(
    r"(?i)\b(code|program\w*|function|python|javascript|sql|api|bot|app|html|css|excel|software|saas|arduino|"
    r"summar\w*|outline|titles?|headlines?|user stor(?:y|ies)|strategy|plan|notes?|assessment|analy[sz]\w*|review|"
    r"feedback|grade|score|critique|explain|theme statement|game|rpg|adventure|d&d|dungeons|act as|act like|"
    r"story of|business|how (?:to|do|can|should)|shall i|i will tell|life story|journalist|coach|masterclass|"
    r"reply|comment)\b|"
    r"\[insert|script (?:that|to|which)|^web search results"
)


def sharegpt_asks_creative(text: str) -> bool:
    """Second creative rule, for requests that do not open with the writing verb ("I would like your help in writing
    a story...", "Make me a song called..."): a writing verb and a creative form within the first 300 characters,
    with wider vetoes (analysis, feedback, games and role-play set-ups, how-to questions)."""
    return bool(_CRE_REQUEST.search(text[:300])) and not _CRE_REQUEST_VETO.search(text[:600])


# ShareGPT code rule: a programming language, framework or tool named in the request, code syntax pasted into it,
# or a request to write, fix or explain code. Names that are also common words are matched in their usual case.
_SG_TOOLS = (
    r"python|javascript|typescript|java|c\+\+|c#|golang|sql|mysql|postgres\w*|mongo ?db|react ?js|react native|"
    r"node\.?js|express\.js|next\.?js|django|flask|fastapi|html|css|scss|tailwind|regex|bash|powershell|shell script|"
    r"docker\w*|kubernetes|k8s|php|laravel|vue\.?js|angularjs|kotlin|swiftui|pandas|numpy|selenium|pytorch|"
    r"tensorflow|keras|scikit-learn|sklearn|apis?|json|yaml|git|github|npm|webpack|jquery|vba|apps script|"
    r"excel formula|pyspark|terraform|graphql|rest ?api|android studio|xcode|arduino|verilog|matlab|solidity|"
    r"smart contract|dockerfile|redis|elasticsearch|nginx|jest|pytest|junit|spring boot|asp\.net|opencv|langchain|"
    r"chrome extension|wordpress plugin|shortcode|sqlite3?|c code|r code|latex code|react hooks?|flutter|base64"
)
_SG_TOOLS_CASED = r"React|Angular|Swift|Rust|Spark|Unity|Dart|Vue|Express|Ruby|Rails|Perl|Scala|Haskell|Lua|Golang"
_SG_SYNTAX = (
    r"\bdef \w+\(|\bfunction \w*\s*\(|\bclass \w+\s*[:{(]|(?m:^\s*(?:import|from) [\w.]+)|#include|console\.log|"
    r"\bSELECT\b[\s\S]{1,200}?\bFROM\b|=>\s*\{|\w+\(\);"
)
_SG_ASKS_CODE = (
    r"(?i:\b(?:write|create|generate|give me|show me|fix|debug|explain|refactor|optimi[sz]e|review|convert|implement|"
    r"rewrite|translate)\b(?:\s+[\w-]+){0,4}?\s+(?:code|program|function|class|method|query|regex|snippet|algorithm|"
    r"unit tests?)\b|\b(?:this|my|the following|below|above) (?:code|function|script|query|snippet|class|program)\b|"
    r"\b(?:compile|runtime|syntax|type) error\b|\bstack ?trace\b|\btraceback\b)"
)
_SG_CODE = re.compile(
    r"(?<![\w+#])(?i:" + _SG_TOOLS + r")(?![\w+#])|\b(?:" + _SG_TOOLS_CASED + r")\b|" + _SG_SYNTAX + "|" + _SG_ASKS_CODE
)
_SG_CODE_VETO = re.compile(
    r"(?i)\b(story|stories|poem|song|lyrics|screenplay|video script|script for (?:a|an|the|my)|promo code|dress code|"
    r"zip code|code of conduct|morse code|copywrit\w*|digital marketing)\b|^web search results"
)
_URL = re.compile(r"https?://\S+|\bwww\.\S+")


def sharegpt_is_code(text: str) -> bool:
    """Rule: the request names a programming tool, carries code syntax or asks for code; no creative form or link-only
    match (addresses are cut before matching, since `.html` in a link says nothing)."""
    head = _URL.sub(" ", text[:2000])
    return bool(_SG_CODE.search(head)) and not _SG_CODE_VETO.search(head[:600])


# ShareGPT default rule: a question or a request for an explanation, advice or a list, in plain words. Anything that
# names technology, numbers to work with, a writing task or a role-play is left out (a first version with fewer
# vetoes put programming and arithmetic questions in `default`).
_SG_ASKS = re.compile(
    r"(?i)^\W*(what|why|how|who|whom|whose|when|where|which|is|are|was|were|do|does|did|can|could|should|would|will|"
    r"explain|describe|tell me about|give me (?:some )?(?:tips|advice|ideas|examples|suggestions)|suggest|recommend|"
    r"compare|summari[sz]e|define|what's|whats|i need (?:advice|help)|"
    r"help me (?:understand|decide|plan|choose))\b"
)
_SG_DEFAULT_VETO = re.compile(
    r"(?i)(?<![\w+#])(code|coding|program\w*|script|function|software|apps?|website|database|query|algorithm|"
    r"data ?set|model|machine learning|ai|chatgpt|gpt|prompt|excel|spreadsheet|formula|server|cloud|aws|azure|linux|"
    r"windows|computer|developer|api|bot|c\+\+|c#|\.net|js|ts|ios|android|unix|command|cli|terminal|kubectl|pods?|"
    r"ports?|pipelines?|lists?|arrays?|class(?:es)?|objects?|plugins?|rabbitmq|devops|wordpress|autoencoder|"
    r"transformer|neural|network|deep learning|llm|nlp|tensor|vector|embedding|regression|classifier|clustering|ml|"
    r"data|sql|sheets?|cells?|files?|folders?|directory|install\w*|config\w*|deploy\w*|docker|gcp|github|git|repo|"
    r"sdk|framework|library|package|module|extension|browser|chrome|html|css|xml|json|yaml|url|http\w*|web ?app|"
    r"frontend|backend|ui|ux|ide|vim|emacs|vscode|screen|shell|bash|zsh|powershell|cmd|error|bug|crash|exception|"
    r"debug|compile|runtime|variable|loop|recursion|integer|string|boolean|null|minecraft|roblox|unity|unreal|"
    r"blockchain|crypto\w*|nft|smart contract|simulation|spectre|verilog|fpga|arduino|raspberry|microcontroller|"
    r"sensor|circuit|voltage|torque|distance|speed|velocity|angle|degrees?|react|flutter|base64|hooks?|methods?|"
    r"requests?|logging|logs?|lua|luau|ffmpeg|jmeter|router|protocol|encryption|password|login|backup|firmware|"
    r"driver|os|macos|ubuntu|debian|centos|vm|virtual machine|kernel|cpu|gpu|ram|chip|binary|hex|bits?|bytes?|"
    r"calculat\w*|compute|solve|equation|integral|derivative|probability|theorem|proofs?|prove|matrix|statistic\w*|"
    r"percent\w*|how many|how much|mean|median|algebra|geometry|calculus|arithmetic|sum|average|graph|"
    r"write|rewrite|compose|draft|create|generate|story|poem|song|lyrics|essay|blog|article|speech|joke|tweet|"
    r"post|caption|slogan|tagline|copy|e-?mail|letter|title|headline|name ideas|act as|pretend|role ?play|imagine|"
    r"you are|i want you to|game|character)(?![\w+#])"
    r"|\d\s*[-+*/^=x]\s*\d|\$\d|\d+\.\d+|\d{5,}|(?-i:\b[a-z]+[A-Z][A-Za-z]+\b)|@\w|\b\w+\.\w*[A-Za-z]\w*\("
)


def sharegpt_is_default(text: str) -> bool:
    """Rule: a plain question or request for explanation/advice (at most 1,500 characters) with none of the vetoes."""
    return len(text) <= 1500 and bool(_SG_ASKS.search(text)) and not _SG_DEFAULT_VETO.search(text)


def load_sharegpt(src: Source, show: Callable[[str], str]) -> Iterator[Row]:
    """First user turns of shared ChatGPT conversations (English): the two creative rules, then the code rule, then
    the default rule; a turn that none of them takes is dropped."""
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
            src_id = f"{path.split(':', 1)[-1]}#id={item['id']}"
            if sharegpt_is_creative(text):
                yield text, "creative", src_id
            elif sharegpt_asks_creative(text):
                yield text, "creative", f"{src_id};rule=creative-request"
            elif sharegpt_is_code(text):
                yield text, "code", f"{src_id};rule=code"
            elif sharegpt_is_default(text):
                yield text, "default", f"{src_id};rule=default"
            else:
                yield text, None, "no rule"


# --------------------------------------------------------------------------- rules for question-style sources
# Dolly and ExpertQA are questions and instructions filed under task categories or fields that say nothing about
# programming or math, so two keyword rules take those out first.

_PROG_Q = re.compile(
    r"(?<!indian )(?<!burmese )(?<!ball )(?<!a )\b(?i:python)\b|\bReact\b|(?<![\w+#])(?i:javascript|typescript|"
    r"java(?! sparrow)|c\+\+|c#|golang|scala|sql|nosql|mysql|postgres\w*|node\.?js|django|flask|html|css|jquery|"
    r"regex|regular expressions?|bash|powershell|shell script|git|github actions|docker|kubernetes|terraform|apis?|"
    r"api gateway|json|yaml|xml|pyspark|spark|delta lake|delta live tables?|databricks|mlflow|kafka(?! on)|hadoop|"
    r"mapreduce|dataframes?|pandas|numpy|dplyr|(?:jupyter|synapse|databricks) notebooks?|compiler|recursi\w+|"
    r"object[- ]oriented|functional programming|abstract class|programming languages?|programming|programmer|"
    r"coding|code|source code|software (?:engineering|development|developer)s?|data structures?|"
    r"(?:sorting|searching|search|greedy|recursive) algorithms?|linked lists?|hash ?(?:maps?|tables?)|big o|"
    r"microservices?|debug\w*|unit tests?|ci/?cd|"
    r"devops|version control|ide|visual studio code|vs ?code|jvm|java virtual machine|sbt|sas code|firebase|"
    r"front ?end|back ?end|time complexity)(?![\w+#])"
)
_PROG_Q_VETO = re.compile(
    r"(?i)\b(dress code|zip code|tax code|country code|civil code|penal code|morse|code of|codes? of conduct|"
    r"area code|franz kafka|genetic code|bar ?code|da vinci code|linear programming|television program\w*|"
    r"who (?:created|invented|developed|designed|wrote|founded|is the creator)|when was|history|invent\w*|creator|"
    r"first [\w-]* ?(?:programming|computer)|career|jobs?|hire|hiring|universit\w*|college|school|curriculum|"
    r"qualities|bias|ethic\w*|logo|salary|teams?|strategy|promot\w*|malware|letter|e-?mail|error coding|"
    r"ai systems?)\b"
)
"""Mentions of programming that do not ask a programming question: trivia about its history, careers, schools."""

_MATH_TASK = re.compile(
    r"(?i)\b(solve (?:for|the following|this|x\b|\d)|calculate|compute|prove|proof|equations?|math problem|"
    r"prime numbers?|composite numbers?|"
    r"irrational|square root|polynomial|theorem|probability|fibonacci|factorial|algebra|calculus|arithmetic|"
    r"pythagoras|pythagorean|how many (?:cents|quarters|dimes|nickels)|twice as (?:old|many)|"
    r"angles? (?:of|in) (?:a|the) (?:triangle|square)|sum of (?:the )?(?:angles|\d))\b"
    r"|x\s*\^\s*\d|\b\d+\s*[+*×÷^=]\s*\d+|\b\d{1,3} [-/] \d{1,3}\b"
)
_MATH_VETO = re.compile(
    r"(?i)\b(who (?:invented|developed|discovered|created|was|is)|invent\w*|history|in finance|compute services?|"
    r"rubik\w*|bermuda|sonnet|poem|story|courses?|as fast as)\b"
)


def asks_programming(text: str) -> bool:
    """A question about programming or programming tools (`code` under the label policy)."""
    return bool(_PROG_Q.search(text)) and not _PROG_Q_VETO.search(text)


def asks_math(text: str) -> bool:
    """A calculation, equation, proof or a question about a named piece of mathematics (`math`)."""
    return bool(_MATH_TASK.search(text)) and not _MATH_VETO.search(text)


def mostly_ascii(text: str, share: float = 0.95) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return bool(letters) and sum(ch.isascii() for ch in letters) / len(letters) >= share


# --------------------------------------------------------------------------- databricks-dolly-15k

DOLLY_JA_OFFSETS = ((1, 0), (1156, 1), (7707, 2), (8280, 3), (9329, 4))
"""(first English index, offset): the Japanese copy's index is the English index plus the offset. The Japanese copy
was made from the older 15,015-row release; its rows 1156, 7708, 8282 and 9332 are not in the 15,011-row release
that the English copy follows. Found by aligning context flags, numbers and Latin words of the pairs, and checked by
reading every break region by hand; `load_dolly` checks the alignment again on every build."""
DOLLY_MAX_DISAGREE = 0.10
"""A 200-row window whose pairs disagree on the context flag more often than this means the offsets are wrong."""

_DOLLY_ARTIFACT = re.compile(
    r"(?i)\b(write|compose|create|generate|make up|make|tell|draft|pen|craft|come up with|give me|describe)\b\s+"
    r"(?:me\s+|us\s+)?(?:a|an|the|some|one|two|three|four|five|\d+)?\s*(?:[\w',()-]+\s+){0,5}?"
    r"(poem|poetry|story|stories|song|lyrics|rap|haiku|limerick|sonnet|ballad|screenplay|script|scene|fairy ?tale|"
    r"fable|joke|essay|blog(?: post)?|speech|toast|eulogy|tribute|slogan|tagline|tweet|advert\w*|ad|dialogue|"
    r"conversation|monologue|verse|ode|parody|fan ?fiction|synopsis|narrative|paragraph|passage|article|riddle|"
    r"jingle|rhyme|acrostic|prose|tale|novel|chapter|diary entry|journal entry|horoscope|obituary|pitch|rant|"
    r"preface|prologue|manifesto|(?:social media|facebook|linkedin|instagram) post)s?\b|"
    r"^\W*write (?:about|something)\b|^\W*conceive a plot\b|"
    r"^\W*(?:write|make|propose) (?:a|an) (?:\w+ )?argument\b|^\W*argue that\b"
)
_DOLLY_FUNCTIONAL = re.compile(
    r"(?i)\b(e-?mails?|letters?|notes?|text messages?|messages?|memo|reviews?|recipes?|resume|cv|cover letter|"
    r"invitations?|summary|summari[sz]e|plans?|itinerary|agenda|job (?:description|posting)|lists?|bullet\w*|"
    r"instructions|steps|press release|proposal|complaint|tips|ideas|pros and cons|report|guide|response|"
    r"self[- ]\w+|notice)\b"
)
_DOLLY_OPINION = re.compile(
    r"(?i)\b(argu\w*|convinc\w*|persuad\w*|why|refute|in favou?r|against|describ\w*|experienc\w*|witty|funny|"
    r"humou?r\w*|sarcastic|you|your|my|i|we|vacation\w*|visit\w*|appeal|benefits|best)\b"
)
_DOLLY_NAMED_FORM = re.compile(r"(?i)\b(story|stories|blog|poem|essay|speech|post|tale|fable|song)\b")
"""A paragraph or passage that argues, describes an experience, speaks in a voice or belongs to a story or blog post is
creative; one on a topic alone is an explanation."""
_DOLLY_VOICE = re.compile(
    r"(?i)\b(from the (?:perspective|point of view) of|in the voice of|from my (?:cat|dog)|"
    r"(?:e-?mail|letter|note|message) to (?:your|my|a) (?:dog|cat)|sarcastic)\b"
)
"""Letters and e-mails in a character's voice, or written for tone, are `creative` under the label policy."""
_DOLLY_IMAGINE = re.compile(
    r"(?i)\b(imagine|pretend|fictional|fantasy|perspective|from the point of view of|in the voice of|"
    r"in the style of|as if you were|feels? like|dream|"
    r"describe a (?:\w+ )?(?:scene|moment|day|world|place|creature|character|feeling))\b"
)
_DOLLY_IMAGINE_TASK = re.compile(r"(?i)\b(write|describe|diary|feel|feelings)\b")
_QUESTION = re.compile(
    r"(?i)^\W*(what|why|how|who|whom|whose|when|where|which|is|are|was|were|do|does|did|can|could|should|would|will|"
    r"have|has)\b|\?\s*$"
)
_DOLLY_EXPLAIN = re.compile(r"(?i)^\W*(explain|describe|suggest|recommend|tell me|give me|share|list|discuss)\b")
_DOLLY_ANY_ARTIFACT = re.compile(
    r"(?i)^\W*(?:(?:please|can you|could you|would you)\s+)*(?:(?:write|compose)\s+(?:me\s+)?(?:a|an|one|another|"
    r"some)?\s*(?:[\w'-]+\s+){0,3}?(?:poem|story|short story|haiku|limerick|sonnet|joke|tweet|song|rap|lyrics)s?\b|"
    r"tell\s+(?:me\s+|us\s+)?(?:a|another)\s+(?:[\w'-]+\s+){0,2}?(?:joke|story))|"
    r"^\W*(?:what (?:is|are) (?:a |some )?good|think of|come up with|brainstorm|complete)\b[^?]{0,60}?"
    r"\b(?:slogans?|taglines?|lyrics|jokes?)\b"
)
"""Outside creative_writing: a request for a poem, story, joke, tweet, slogan or lyrics in the opening words."""


def dolly_creative_writing(instruction: str) -> tuple[str | None, str]:
    """Label of an item filed under creative_writing: (label or None, rule). Employees filed advice, travel plans and
    e-mails there too, so only requests for a creative artifact are `creative`."""
    m = _DOLLY_ARTIFACT.search(instruction[:200])
    if m and not _DOLLY_FUNCTIONAL.search(instruction[: m.end()]):
        essay_like = _DOLLY_OPINION.search(instruction) or _DOLLY_NAMED_FORM.search(instruction)
        if (m.group(2) or "").lower() in {"paragraph", "passage", "article"} and not essay_like:
            return "default", "factual-paragraph"  # "Write a paragraph on the evolution of the pyramids"
        return "creative", "artifact"
    if _DOLLY_FUNCTIONAL.search(instruction):
        if _DOLLY_VOICE.search(instruction):
            return "creative", "voice"
        return None, "creative_writing: functional writing (e-mail, letter, plan, list...)"
    if _DOLLY_IMAGINE.search(instruction) and _DOLLY_IMAGINE_TASK.search(instruction) and "?" not in instruction:
        return "creative", "imagine"
    if _QUESTION.search(instruction.strip()):
        return "default", "question"
    if _DOLLY_EXPLAIN.search(instruction):
        return "default", "explain"
    return None, "creative_writing: no rule"


def _numbers(text: str) -> set[str]:
    """Numbers in a text, as digit strings without trailing zeros (so 5 million and 500万 agree)."""
    digits = re.findall(r"\d+", unicodedata.normalize("NFKC", text).replace(",", ""))
    return {d.rstrip("0") or "0" for d in digits}


def _dolly_ja_index(index: int) -> int:
    return index + next(off for start, off in reversed(DOLLY_JA_OFFSETS) if index >= start)


def dolly_label(category: str, instruction: str, context: str) -> tuple[str | None, str]:
    """(label or None, rule) of one Dolly item."""
    if context:
        return "default", f"{category}+passage"  # a task on a pasted passage: QA, extraction, summary
    ask = instruction[:200]  # the keyword rules read the request, not a passage or story pasted after it
    if asks_programming(ask) and category != "classification":
        return "code", "programming-question"
    if category == "classification" and asks_programming(ask):
        return None, "classification naming programming terms"
    if asks_math(ask):
        return "math", "math-task"
    if category == "creative_writing":
        label, rule = dolly_creative_writing(instruction)
        return label, rule if label is None else f"creative_writing+{rule}"
    if _DOLLY_ANY_ARTIFACT.search(instruction):
        return "creative", f"{category}+artifact"
    return "default", category


def load_dolly(src: Source, read: GitReader) -> Iterator[Row]:
    """databricks-dolly-15k: English instruction and context from one copy, the category from the Japanese copy,
    joined on the row index. The text is the instruction, followed by the pasted passage where there is one."""
    csv.field_size_limit(1 << 30)
    english: dict[int, tuple[str, dict]] = {}
    for path in (p for p in src.paths if "@" not in p):
        for item in csv.DictReader(io.StringIO(read(path))):
            english[int(item["index"])] = (path, item)
    ja_folder = next(p for p in src.paths if "@" in p)
    japanese = {int(item["index"]): item for item in map(json.loads, read.many(ja_folder, read.tree(ja_folder)))}

    pairs = [(i, *english[i], japanese.get(_dolly_ja_index(i))) for i in sorted(english)]
    flags = [bool(item["context"].strip()) != bool(ja and ja["input"].strip()) for _, _, item, ja in pairs]
    for start in range(0, len(flags), 200):
        window = flags[start : start + 200]
        if sum(window) > DOLLY_MAX_DISAGREE * len(window):
            raise ValueError(f"source {src.name!r}: the join is misaligned near English index {pairs[start][0]}")

    for (index, path, item, ja), flag_differs in zip(pairs, flags, strict=True):
        if ja is None:
            yield "", None, "join: no Japanese row"
            continue
        instruction, context = item["instruction"].strip(), item["context"].strip()
        if flag_differs:
            yield instruction, None, "join: context flag differs"
            continue
        en_num, ja_num = _numbers(instruction), _numbers(ja["instruction"])
        if en_num and ja_num and not en_num & ja_num:
            yield instruction, None, "join: numbers differ"
            continue
        if not mostly_ascii(instruction + context):
            yield instruction, None, "not English"
            continue
        label, rule = dolly_label(ja["category"], instruction, context)
        if label is None:
            yield instruction, None, rule
            continue
        text = f"{instruction}\n\n{context}" if context else instruction
        ja_file = f"{ja_folder.split(':', 1)[1].rstrip('/')}/{ja['index']:0>5}.jsonl"
        yield text, label, f"{path}#index={index};ja={ja_file};category={ja['category']};rule={rule}"


# --------------------------------------------------------------------------- ExpertQA


def load_expertqa(src: Source, read: GitReader) -> Iterator[Row]:
    """ExpertQA questions written by experts in their own field: Mathematics -> math, programming questions -> code,
    other questions that ask for a calculation are dropped, the rest -> default."""
    for n, line in enumerate(read(src.paths[0]).splitlines()):
        if not line.strip():
            continue
        item = json.loads(line)
        question, field = item["question"].strip(), item["metadata"]["field"]
        src_id = f"{src.paths[0]}#L{n + 1};field={field}"
        if field == "Mathematics":
            yield question, "math", f"{src_id};rule=field"
        elif asks_programming(question):
            yield question, "code", f"{src_id};rule=programming-question"
        elif asks_math(question):
            yield question, None, "math task outside the Mathematics field"
        else:
            yield question, "default", f"{src_id};rule=field"


# --------------------------------------------------------------------------- CLINC150

CLINC_LABELS = {"calculator": "math", "tell_joke": "creative"}
CLINC_DEFAULT = frozenset(
    {
        "definition", "fun_fact", "meaning_of_life", "translate", "spelling", "recipe", "meal_suggestion",
        "ingredient_substitution", "ingredients_list", "calories", "nutrition_info", "cook_time", "food_last",
        "travel_suggestion", "plug_type", "international_visa", "vaccines", "timezone", "improve_credit_score",
        "oil_change_how", "tire_change", "jump_start", "gas_type", "carry_on", "what_can_i_ask_you",
    }
)  # fmt: skip
"""Intents a chat model answers from knowledge (questions, advice, definitions, translation). Device and account
commands (alarms, transfers, bookings), `measurement_conversion` (arguably math) and out-of-scope sets are dropped."""
CLINC_PER_DEFAULT_INTENT = 40
"""Paraphrases within an intent are templated; at most this many per `default` intent (random, seeded)."""


def load_clinc(src: Source, read: GitReader) -> Iterator[Row]:
    """CLINC150 requests to an assistant: calculator -> math, tell_joke -> creative, knowledge intents -> default."""
    data = json.loads(read(src.paths[0]))
    by_intent: dict[str, list[tuple[str, str]]] = {}
    for split in ("train", "val", "test"):
        for i, (text, intent) in enumerate(data[split]):
            by_intent.setdefault(intent, []).append((text, f"{src.paths[0]}#{split}[{i}];intent={intent}"))
    rng = random.Random(SEED)
    for intent in sorted(by_intent):
        items = by_intent[intent]
        if intent in CLINC_LABELS:
            yield from ((text, CLINC_LABELS[intent], src_id) for text, src_id in items)
        elif intent in CLINC_DEFAULT:
            yield from ((text, "default", src_id) for text, src_id in rng.sample(items, CLINC_PER_DEFAULT_INTENT))
        else:
            yield from ((text, None, "intent not kept") for text, _ in items)


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
        cap=320,  # math from the other sources is ~220 rows: no source above 60 % of a label
    ),
    Source(
        "stackoverflow-titles",
        "jacoxu/StackOverflow",
        "7c207f51e649fff9e4736610b9d44431bb7ccf00",
        ("rawText/title_StackOverflow.txt", "rawText/label_StackOverflow.txt"),
        "CC BY-SA (Stack Overflow content, released via Kaggle); no license file in the repository",
        load_stackoverflow,
        cap=1300,  # no source above 60 % of `code`
    ),
    Source(
        "trec-qc",
        "tmadhuri/TREC-HindiData",
        "15f8c5be9fa04434238bd3c08fb08685b210a7b2",
        ("train_5500.label", "TREC_10.en.label"),
        "research use (Li & Roth TREC QC data, no explicit license); no license file in the repository",
        load_trec,
        cap=1000,  # `default` has plainer chat requests from four other sources
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
    Source(
        "dolly-15k",
        "russellemergentai/DatabricksDolly15k_transform_finetune",
        "e830408074b73128c5a048e62fd0fed5d80c7522",
        (
            "output1to1000.csv",
            "output1001to2000.csv",
            "output2001to3000.csv",
            "output3001to5000.csv",
            "output5001to10000.csv",
            "output10001to15000.csv",
            "kunishou/databricks-dolly-15k-ja@cd6c43db223ad274fd39737ea1b0b3add0956dba:data/",
        ),
        "CC BY-SA 3.0 (databricks-dolly-15k; the Japanese copy's LICENSE.txt); the English copy states no license "
        "of its own",
        load_dolly,
        cap={"default": 3000},
    ),
    Source(
        "expertqa",
        "chaitanyamalaviya/ExpertQA",
        "1aa7ba81bd4c083c12ef1aa2fee338f6cb60fa87",
        ("data/r1_data_anon.jsonl",),
        "MIT",
        load_expertqa,
        cap={},  # all rows
    ),
    Source(
        "clinc150",
        "clinc/oos-eval",
        "828f8093932c8fe6ca7936c3d2e52903b1c523de",
        ("data/data_full.json",),
        "CC BY 3.0",
        load_clinc,
        cap={},  # the loader caps `default` intents (CLINC_PER_DEFAULT_INTENT)
    ),
)


# --------------------------------------------------------------------------- build


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
        reader = GitReader(mirrors, src.repo, src.commit)
        per_label: dict[str, list[dict]] = {lab: [] for lab in LABELS}
        local: set[str] = set()  # this source's texts; `seen` holds only rows kept from earlier sources
        for text, label, src_id in src.loader(src, reader):
            stats[f"{src.name}:read"] += 1
            if label is None:
                stats[f"{src.name}:dropped: {src_id}"] += 1
                continue
            if label not in LABELS:
                raise ValueError(f"source {src.name!r}: unknown label {label!r}")
            if not MIN_CHARS <= len(text) <= MAX_CHARS:
                stats[f"{src.name}:length"] += 1
                continue
            key = dedupe_key(text)
            if key in seen or key in local:
                stats["dup_within_corpus"] += 1
                continue
            if dev_index is not None and dev_index.is_exact(text):
                stats["dev_exact"] += 1
                stats[f"{src.name}:dev exact"] += 1
                continue
            if dev_index is not None and dev_index.shares_run(text):
                stats["dev_8gram"] += 1
                stats[f"{src.name}:dev 8-word run"] += 1
                continue
            local.add(key)
            per_label[label].append(
                {"text": text, "label": label, "source": src.name, "license": src.license, "src_id": src_id}
            )
        for label, items in per_label.items():
            cap = src.cap_for(label)
            if cap is not None and len(items) > cap:
                stats[f"{src.name}:capped:{label}"] += len(items) - cap
                items = rng.sample(items, cap)
            seen |= {dedupe_key(r["text"]) for r in items}
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
    try:
        res = build(args.mirrors, args.reserved, dev, args.out)
    except MirrorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"reserved-source check: {len(SOURCES)} sources checked, {res['refused_sources']} refused")
    d = res["dropped"]
    if dev is None:
        print(f"dev overlap check: SKIPPED (no dev file at {args.dev}): rows shared with the dev set are kept")
    else:
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
