"""What the benchmark scripts share: their data files and the checks that stop a run early when one is missing,
corpus subsets, CLINC150's files, encoders tuned once and kept, and the package's serving files set aside while a
benchmark installs its own tuned encoder.

Scripts import it as `benchmarks._common` (with the repository root on `sys.path`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from classifier.data import Dataset, read_jsonl
from classifier.serving import assets
from classifier.serving.embedding import forget_serving_embedders

if TYPE_CHECKING:
    from classifier.training.tune import CrossFit, TuneRecipe

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data/queries.jsonl"
DEV = ROOT.parent / "shared/data/dev/dev.jsonl"
CORPUS = (ROOT / "data/public/corpus.jsonl", ROOT.parent / "shared/data/public/corpus.jsonl")
"""Where the public corpus is looked for, in order: built here, else the copy in ../shared."""
CLINC_FILES = ("data/data_full.json", "data/domains.json")
FOLDS_CACHE = ROOT / ".cache/encoder-folds"
"""The encoders `encoder_folds.py` tunes, one per fold, objective and epochs (`folds_cache`)."""

GET_DEV = "the dev set is ../shared/data/dev/dev.jsonl, beside this checkout; pass its path"
GET_CORPUS = "build it: `python data/build/build_public.py --mirrors DIR`, or use ../shared/data/public/corpus.jsonl"
GET_CLINC = "pass a checkout or a bare git directory of github.com/clinc/oos-eval with --clinc"


# -- stopping early, with how to get what is missing -------------------------------------------------------------
def stop(message: str) -> NoReturn:
    """End the run with `message` (one line, on stderr) and exit status 2."""
    print(message, file=sys.stderr)
    raise SystemExit(2)


def require_file(path: Path, how_to_get_it: str) -> Path:
    """`path`, when it is a file; else stop, naming it and how to get it."""
    if not path.is_file():
        stop(f"{path}: no such file; {how_to_get_it}")
    return path


def find_corpus(given: Path | None) -> Path | None:
    """`given` (stops when it is missing), else the first built corpus of CORPUS, else None."""
    if given is not None:
        return require_file(given, GET_CORPUS)
    return next((p for p in CORPUS if p.is_file()), None)


def require_corpus(given: Path | None) -> Path:
    """`find_corpus`, stopping with how to get a corpus when there is none."""
    return find_corpus(given) or require_file(CORPUS[0], GET_CORPUS)


def require_clinc(where: Path) -> Path:
    """`where`, when it holds CLINC150's files (a checkout, or a bare git directory at HEAD); else stop."""
    for name in CLINC_FILES:
        if not (where / name).is_file() and not _in_git(where, name):
            stop(f"{where / name}: no such file (nor {name} at HEAD of a git directory {where}); {GET_CLINC}")
    return where


def _in_git(git_dir: Path, name: str) -> bool:
    try:
        found = subprocess.run(["git", f"--git-dir={git_dir}", "cat-file", "-e", f"HEAD:{name}"], capture_output=True)
    except OSError:
        return False
    return found.returncode == 0


# -- reading data ------------------------------------------------------------------------------------------------
def rows_of(path: Path) -> tuple[list[str], list[str]]:
    """The texts and labels of a .jsonl file, as written (labels not stripped)."""
    rows = [row for _, row in read_jsonl(path)]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def read_clinc(where: Path, name: str) -> str:
    """A file of the CLINC repository: from a checkout, or from a bare git directory at HEAD."""
    if (where / name).is_file():
        return (where / name).read_text(encoding="utf-8")
    return subprocess.run(
        ["git", f"--git-dir={where}", "show", f"HEAD:{name}"], capture_output=True, text=True, check=True
    ).stdout


def sample(rows: list[tuple[str, str]], k: int, seed: int) -> list[tuple[str, str]]:
    """At most `k` rows of each label (the second field), drawn with `seed`."""
    rng = np.random.default_rng(seed)
    by: dict[str, list[tuple[str, str]]] = {}
    for r in rows:
        by.setdefault(r[1], []).append(r)
    return [
        by[lab][i] for lab in sorted(by) for i in rng.choice(len(by[lab]), size=min(k, len(by[lab])), replace=False)
    ]


def subset(data: Dataset, keep: Callable[..., bool], cap: int | None = None) -> Dataset:
    """The rows whose source `keep` accepts; with `cap`, the first `cap` rows of each source and label (the
    corpus is shuffled once when built, so the first rows are a random sample)."""
    assert data.sources is not None
    taken: dict[tuple[str, str], int] = {}
    rows = []
    for i, (s, label) in enumerate(zip(data.sources, data.labels, strict=True)):
        if keep(s) and (cap is None or taken.get((s, label), 0) < cap):
            taken[(s, label)] = taken.get((s, label), 0) + 1
            rows.append(i)
    return Dataset(tuple(data.texts[i] for i in rows), tuple(data.labels[i] for i in rows), data.path,
                   tuple(data.sources[i] for i in rows))  # fmt: skip


def join(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(a.texts + b.texts, a.labels + b.labels, None)


# -- scoring a trained cascade -----------------------------------------------------------------------------------
def measure_cascade(
    train: Dataset,
    test: Dataset,
    encoder: str,
    out: Path,
    cv_vectors: CrossFit | None = None,
    calibration: Dataset | None = None,
    **params: Any,
) -> dict:
    """Train the cascade on `train` as `taskrouter train` does (into `out`) and score it on `test`: stage 3 off
    and with the oracle."""
    from classifier.serving.cascade import Cascade
    from classifier.serving.llm import LookupClassifier
    from classifier.training.evaluate import evaluate
    from classifier.training.train import train_cascade

    cascade, report = train_cascade(
        train, out=out, encoder=encoder, progress=False, cv_vectors=cv_vectors, calibration=calibration, **params
    )
    off, _, _ = evaluate(cascade, test)
    oracle_cascade = Cascade.load(out).with_llm(
        LookupClassifier(dict(zip(test.texts, test.labels, strict=True)), cascade.labels, name="oracle")
    )
    oracle, _, _ = evaluate(oracle_cascade, test, llm_mode="oracle")
    recall = off["per_label"] if "per_label" in off else {}
    return {
        "off_macro_f1": round(off["macro_f1"], 4),
        "oracle_macro_f1": round(oracle["macro_f1"], 4),
        "escalated": round(off["escalation_rate"], 4),
        "escalation_recall": round(off["escalation_recall"] or 0.0, 4),
        "static_coverage": round(off["stages"]["static"]["coverage"], 4),
        "static_accuracy": round(off["stages"]["static"]["accuracy"] or 0.0, 4),
        "cv_macro_f1": round(report.cv_macro_f1, 4),
        "recall": {k: round(v["recall"], 4) for k, v in recall.items()} if recall else None,
    }


def write_means(result: dict, settings: Sequence[str], path: Path) -> None:
    """Add each setting's mean over `result`'s folds, print it, and write `result` to `path` as JSON."""
    folds = result["folds"].values()
    for setting in settings:
        result.setdefault("mean", {})[setting] = {
            k: round(sum(f[setting][k] for f in folds) / len(folds), 4)
            for k in ("off_macro_f1", "oracle_macro_f1", "escalated", "escalation_recall")
        }
        print("mean", setting, result["mean"][setting], flush=True)
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# -- tuned encoders kept between runs ----------------------------------------------------------------------------
def rows_sha256(texts: Sequence[str], labels: Sequence[str]) -> str:
    """The sha256 of tuning rows, as `tune_encoder` records it (`data_sha256` in taskrouter-tune.json)."""
    h = hashlib.sha256()
    for t, label in zip(texts, labels, strict=True):
        h.update(f"{label}\t{t}\n".encode())
    return h.hexdigest()


def stale(where: Path, texts: Sequence[str], labels: Sequence[str], recipe: TuneRecipe) -> str | None:
    """Why `where` does not hold MiniLM tuned by `recipe` on these rows; None when it does."""
    from classifier.training.tune import RECORD

    if not where.is_dir():
        return "not tuned yet"
    try:
        record = json.loads((where / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"no readable {RECORD}"
    if not (where / "model.safetensors").is_file():
        return "no model.safetensors"
    kept = record.get("recipe") if isinstance(record.get("recipe"), dict) else {}
    changed = {k: f"{kept.get(k)!r} -> {v!r}" for k, v in asdict(recipe).items() if kept.get(k) != v}
    if changed:
        return f"tuned with another recipe ({', '.join(f'{k} {d}' for k, d in changed.items())})"
    sha = rows_sha256(texts, labels)
    if record.get("rows") != len(texts) or record.get("data_sha256") != sha:
        return (f"tuned on other rows ({record.get('rows')} rows, sha256 {str(record.get('data_sha256'))[:12]}; "
                f"the data now: {len(texts)} rows, sha256 {sha[:12]})")  # fmt: skip
    return None


def folds_cache(fold: str, objective: str, epochs: int) -> Path:
    """Where `encoder_folds.py` keeps the encoder it tuned for `fold` ("own→public" or "public→own")."""
    return FOLDS_CACHE / f"{fold.replace('→', '-to-')}-{objective}-{epochs}ep"


def tuned_encoder(where: Path, texts: Sequence[str], labels: Sequence[str], recipe: TuneRecipe) -> Path:
    """`where`, holding MiniLM tuned by `recipe` on (`texts`, `labels`): kept from an earlier run when its
    taskrouter-tune.json records that recipe and these rows, else tuned now (a stale one is replaced)."""
    from classifier.training.tune import tune_encoder

    why = stale(where, texts, labels, recipe)
    if why is None:
        return where
    if where.exists():
        print(f"{where}: {why}; tuning it again", flush=True)
        shutil.rmtree(where)
    return tune_encoder(list(texts), list(labels), where, recipe)


def require_tuned(
    where: Path, texts: Sequence[str], labels: Sequence[str], recipe: TuneRecipe, how_to_get_it: str
) -> Path:
    """`where`, when it holds MiniLM tuned by `recipe` on these rows; else stop, saying why and how to get it."""
    why = stale(where, texts, labels, recipe)
    if why is not None:
        stop(f"{where}: {why}; {how_to_get_it}")
    return where


# -- the package's serving files, set aside while a benchmark installs its own -----------------------------------
@contextmanager
def assets_restored() -> Iterator[Callable[[], None]]:
    """Keep a copy of every shipped serving file (`assets.FILES`) and `assets.json`; on leaving, also on an
    exception, Ctrl-C or SIGTERM, put them back as they were, remove those that were not there, and drop the serving
    embedders that read them. Yields the restoring function, to put the package's own files back mid-run."""
    names = (*assets.FILES, assets.RECORD)
    with tempfile.TemporaryDirectory(prefix="taskrouter-assets-") as tmp:
        backup = Path(tmp)
        for name in names:
            if (assets.ASSETS_DIR / name).is_file():
                shutil.copyfile(assets.ASSETS_DIR / name, backup / name)

        def restore() -> None:
            for name in names:
                if (backup / name).is_file():
                    shutil.copyfile(backup / name, assets.ASSETS_DIR / name)
                else:
                    (assets.ASSETS_DIR / name).unlink(missing_ok=True)
            assets.clear_record_cache()
            forget_serving_embedders()

        def stop_on_sigterm(signum: int, frame: object) -> None:
            raise SystemExit(128 + signum)  # a `timeout` or a CI kill unwinds through the restore below

        before = signal.signal(signal.SIGTERM, stop_on_sigterm)
        try:
            yield restore
        finally:
            signal.signal(signal.SIGTERM, before)
            restore()
