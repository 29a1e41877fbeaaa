"""Base MiniLM vs MiniLM tuned on the training rows, on out-of-source folds: which tuning objective to ship.

Each fold tunes the encoder on its training sources only and tests on sources it never saw:

    own→public   tune and train on data/queries.jsonl, test on the public corpus (other writers, other styles)
    public→own   tune and train on the public corpus, test on data/queries.jsonl

For each encoder (base, tuned per objective) it reports the macro-F1 of a logistic regression over the vectors
alone (C=4) and of the stage-2 classifier (`TaskClassifier`: vectors ‖ char n-grams). The dev set is not read.
Tuned encoders are kept under `.cache/encoder-folds/` so a rerun only re-measures; one whose taskrouter-tune.json
names other rows or another recipe is tuned again. Each fold records its training rows and their sha256 (as
`tune_encoder` hashes them). Needs `taskrouter[train]`. About 35 min on 2 cores with both objectives and nothing
kept (each tuned encoder's `minutes` in encoder_folds.json, tuning and scoring, add up to 35.4; the base
encoder's scoring comes on top).

    python benchmarks/encoder_folds.py [--objective softmax contrastive] [--epochs 2] [--corpus PATH] [--json PATH]
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

from benchmarks._common import DATA, folds_cache, require_corpus, rows_of, rows_sha256, tuned_encoder  # noqa: E402
from classifier.serving.encoder import model_dir  # noqa: E402
from classifier.training.estimator import TaskClassifier  # noqa: E402
from classifier.training.tune import TorchEncoder, TuneRecipe  # noqa: E402


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
    corpus = require_corpus(args.corpus)
    own, public = rows_of(DATA), rows_of(corpus)
    folds = {"own→public": (own, public), "public→own": (public, own)}
    base = TorchEncoder(model_dir())
    result: dict = {"corpus": str(corpus), "epochs": args.epochs, "folds": {}}
    for name, (train, test) in folds.items():
        fold = result["folds"][name] = {"train_rows": len(train[0]), "train_sha256": rows_sha256(*train),
                                        "test_rows": len(test[0])}  # fmt: skip
        fold["base"] = scores(base, train, test)
        print(name, "base", fold["base"], flush=True)
        for objective in args.objective:
            where = folds_cache(name, objective, args.epochs)
            started = time.perf_counter()
            tuned = TorchEncoder(tuned_encoder(where, *train, TuneRecipe(objective=objective, epochs=args.epochs)))
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
