"""Leave-one-source-out validation of the stage-2 classifier: queries.jsonl alone vs queries.jsonl + public corpus.

Each training source is held out in turn: `taskrouter-written` (data/queries.jsonl) and every `source` of
data/public/corpus.jsonl. The held-out source is predicted by a `TaskClassifier` trained on the others: once on
`taskrouter-written` alone, once on `taskrouter-written` + the other public sources. MiniLM vectors are cached on
disk by text hash (`.cache/loso/`), so reruns skip the slow part. Usage (from the repository root):

    PYTHONPATH=$PWD python data/build/loso.py [--queries data/queries.jsonl] [--corpus data/public/corpus.jsonl]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

REPO_ROOT = Path(__file__).resolve().parents[2]
OWN = "taskrouter-written"


class DiskCachedEmbedder:
    """Wraps an embedder; vectors are kept in `directory`/vectors.npz, keyed by the sha256 of each text."""

    def __init__(self, base, directory: Path) -> None:
        self.base = base
        self.path = directory / "vectors.npz"
        self.vectors: dict[str, np.ndarray] = {}
        if self.path.is_file():
            with np.load(self.path) as z:
                self.vectors = {k: z[k] for k in z.files}
        self.seconds = 0.0
        self.computed = 0

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        missing = sorted({t for t in texts if self.key(t) not in self.vectors})
        if missing:
            start = time.perf_counter()
            vecs = self.base.encode(missing, progress=progress)
            self.seconds += time.perf_counter() - start
            self.computed += len(missing)
            for t, v in zip(missing, vecs, strict=True):
                self.vectors[self.key(t)] = np.asarray(v, dtype=np.float32)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(self.path, **self.vectors)
        return np.stack([self.vectors[self.key(t)] for t in texts])


def read_jsonl(path: Path, source: str | None = None) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for r in rows:
        if source is not None:
            r["source"] = source
        if not isinstance(r.get("text"), str) or not isinstance(r.get("label"), str) or "source" not in r:
            raise ValueError(f"{path}: every row needs string 'text', 'label' and a 'source'")
    return rows


def fit_predict(train: list[dict], test: list[dict], embedder, **params) -> np.ndarray:
    from classifier.training.estimator import TaskClassifier

    # cv=0: no out-of-fold temperature fit, which does not change the argmax measured here.
    clf = TaskClassifier(embedder=embedder, cv=0, **params)
    clf.fit([r["text"] for r in train], [r["label"] for r in train])
    return clf.predict([r["text"] for r in test])


def scores(y_true: list[str], y_pred: np.ndarray) -> tuple[float, float]:
    """Accuracy, and macro-F1 over the labels present in the held-out source."""
    labels = sorted(set(y_true))
    return (
        float(accuracy_score(y_true, y_pred)),
        float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=Path, default=REPO_ROOT / "data/queries.jsonl")
    ap.add_argument("--corpus", type=Path, default=REPO_ROOT / "data/public/corpus.jsonl")
    ap.add_argument("--cache", type=Path, default=REPO_ROOT / ".cache/loso")
    ap.add_argument("--C", type=float, default=4.0, help="TaskClassifier C (its default)")
    args = ap.parse_args(argv)
    for name in ("queries", "corpus"):
        if not getattr(args, name).is_file():
            ap.error(f"--{name}: no file at {getattr(args, name)}")

    from classifier.serving.embedding import reference_embedder

    own = read_jsonl(args.queries, source=OWN)
    public = read_jsonl(args.corpus)
    rows = own + public
    sources = [OWN] + sorted({r["source"] for r in public})
    embedder = DiskCachedEmbedder(reference_embedder(), args.cache)
    start = time.perf_counter()
    embedder.encode([r["text"] for r in rows], progress=False)
    print(
        f"embeddings: {len(rows)} texts, {embedder.computed} computed in {embedder.seconds:.0f} s "
        f"({len(rows) - embedder.computed} from the cache at {embedder.path})",
        flush=True,
    )

    print("\n| held-out source | n | labels | queries.jsonl only: acc / macro-F1 | + public corpus: acc / macro-F1 |")
    print("|---|---|---|---|---|")
    pooled = {"own": ([], []), "both": ([], []), "both_public": ([], [])}
    for held in sources:
        test = [r for r in rows if r["source"] == held]
        y = [r["label"] for r in test]
        cells = []
        for arm, train in (
            ("own", [r for r in own if held != OWN]),
            ("both", [r for r in rows if r["source"] != held]),
        ):
            if not train:
                cells.append("— (nothing left to train on)")
                continue
            pred = fit_predict(train, test, embedder, C=args.C)
            acc, f1 = scores(y, pred)
            for key in (arm, "both_public") if arm == "both" and held != OWN else (arm,):
                pooled[key][0].extend(y)
                pooled[key][1].extend(pred.tolist())
            cells.append(f"{acc:.3f} / {f1:.3f}")
        labels = ", ".join(f"{k} {y.count(k)}" for k in sorted(set(y)))
        print(f"| {held} | {len(test)} | {labels} | {cells[0]} | {cells[1]} |", flush=True)

    for arm, name in (
        ("own", "trained on queries.jsonl only, public sources"),
        ("both_public", "trained on queries.jsonl + other public sources, public sources"),
        ("both", "trained on all other sources, every source incl. taskrouter-written"),
    ):
        yt, yp = pooled[arm]
        print(
            f"pooled over held-out sources, {name}: n={len(yt)} accuracy "
            f"{accuracy_score(yt, yp):.3f}, macro-F1 {f1_score(yt, yp, average='macro'):.3f}"
        )
    print(f"total time {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
