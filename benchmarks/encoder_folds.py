"""Base MiniLM vs MiniLM tuned on the training rows, on out-of-source folds: which tuning objective to ship.

Each fold tunes the encoder on its training sources only and tests on sources it never saw:

    own→public   tune and train on data/queries.jsonl, test on the public corpus (other writers, other styles)
    public→own   tune and train on the public corpus, test on data/queries.jsonl

For each encoder (base, tuned per objective) it reports the macro-F1 of a logistic regression over the vectors
alone (C=4) and of the stage-2 classifier (`TaskClassifier`: vectors ‖ char n-grams). The dev set is not read.
Tuned encoders are kept under `.cache/encoder-folds/` so a rerun only re-measures. Needs `taskrouter[train]`.

    python benchmarks/encoder_folds.py [--objective softmax contrastive] [--epochs 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from classifier.data import read_jsonl  # noqa: E402
from classifier.serving.encoder import model_dir  # noqa: E402
from classifier.training.estimator import TaskClassifier  # noqa: E402
from classifier.training.tune import TorchEncoder, TuneRecipe, tune_encoder  # noqa: E402

CORPUS = (ROOT / "data/public/corpus.jsonl", ROOT.parent / "shared/data/public/corpus.jsonl")


def find_corpus(given: Path | None) -> Path | None:
    """`given`, else the first built corpus of CORPUS; None (and a line saying how to build one) when there is none."""
    corpus = given or next((p for p in CORPUS if p.is_file()), None)
    if corpus is None:
        print("no public corpus (data/public/ or ../shared/data/public/): build it with data/build/build_public.py")
    return corpus


def rows_of(path: Path) -> tuple[list[str], list[str]]:
    rows = [row for _, row in read_jsonl(path)]
    return [r["text"] for r in rows], [r["label"] for r in rows]


def scores(encoder, train: tuple[list[str], list[str]], test: tuple[list[str], list[str]]) -> dict[str, float]:
    xtr, xte = encoder.encode(train[0], progress=False), encoder.encode(test[0], progress=False)
    lr = LogisticRegression(C=4.0, max_iter=3000).fit(xtr, train[1])
    clf = TaskClassifier(embedder=encoder, cv=0, progress=False).fit(*train)
    return {
        "vectors_lr": round(float(f1_score(test[1], lr.predict(xte), average="macro")), 4),
        "classifier": round(float(f1_score(test[1], clf.predict(test[0]), average="macro")), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", nargs="+", default=["softmax", "contrastive"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/encoder_folds.json")
    parser.add_argument("--corpus", type=Path, help="the public corpus (default: data/public/, else ../shared)")
    args = parser.parse_args(argv)
    corpus = find_corpus(args.corpus)
    if corpus is None:
        return 2
    own, public = rows_of(ROOT / "data/queries.jsonl"), rows_of(corpus)
    folds = {"own→public": (own, public), "public→own": (public, own)}
    base = TorchEncoder(model_dir())
    result: dict = {"corpus": str(corpus), "epochs": args.epochs, "folds": {}}
    for name, (train, test) in folds.items():
        fold = result["folds"][name] = {"train_rows": len(train[0]), "test_rows": len(test[0])}
        fold["base"] = scores(base, train, test)
        print(name, "base", fold["base"], flush=True)
        for objective in args.objective:
            where = ROOT / ".cache/encoder-folds" / f"{name.replace('→', '-to-')}-{objective}-{args.epochs}ep"
            started = time.perf_counter()
            if not (where / "model.safetensors").is_file():
                tune_encoder(*train, where, TuneRecipe(objective=objective, epochs=args.epochs))
            tuned = TorchEncoder(where)
            fold[objective] = {**scores(tuned, train, test), "minutes": round((time.perf_counter() - started) / 60, 1)}
            print(name, objective, fold[objective], flush=True)
    for enc in ["base", *args.objective]:
        mean = {k: round(float(np.mean([f[enc][k] for f in result["folds"].values()])), 4)
                for k in ("vectors_lr", "classifier")}  # fmt: skip
        result.setdefault("mean", {})[enc] = mean
        print("mean", enc, mean)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
