"""The static stage's out-of-source error target, chosen on the out-of-source folds with thresholds that never saw
the fold they are scored on.

`taskrouter train --calibration-data` raises the static threshold until the static stage errs on at most
`--static-max-error-out-of-source` (default 2 %) of the calibration rows it accepts. A stricter target sends more
queries on to MiniLM, which is slower and, on its own, more accurate. For each target, each fold of
`classifier.training.source_folds.group_sources` is held out in turn: the cascade is trained as the shipped one (our
own rows, the tuned encoder and its cross-fitted vectors, C 1, n-gram weight 2), its thresholds read on the
sources the fold keeps, and scored on the held-out ones. The dev set is not read. About 10 min on 2 cores for the
three default targets (the README's run of 2026-12-07).

    python benchmarks/static_target.py [--targets 0.02 0.01 0.005] [--corpus data/public/corpus.jsonl]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DATA, GET_CORPUS, measure_cascade, require_file, subset  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.training.source_folds import group_sources  # noqa: E402
from classifier.training.tune import CrossFit  # noqa: E402

SHIPPED = {"C": 1.0, "lexical_weight": 2.0}
"""The shipped model's C and n-gram weight (chosen on the same folds)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data/public/corpus.jsonl")
    parser.add_argument("--targets", type=float, nargs="+", default=[0.02, 0.01, 0.005])
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/static_target.json")
    args = parser.parse_args(argv)
    require_file(args.corpus, GET_CORPUS)
    own, corpus = load_dataset(DATA), load_dataset(args.corpus)
    cv = CrossFit.load(ROOT / "data/queries.crossfit.npz")
    assert corpus.sources is not None
    folds = group_sources(corpus.sources, corpus.labels)
    result: dict = {"corpus": str(args.corpus), "corpus_sha256": corpus.sha256(), **SHIPPED, "targets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for target in args.targets:
            row = result["targets"][str(target)] = {}
            for i, held_sources in enumerate(folds):
                name = chr(ord("A") + i)
                held = subset(corpus, lambda s, h=held_sources: s in h)
                kept = subset(corpus, lambda s, h=held_sources: s not in h)
                row[name] = measure_cascade(own, held, "tuned", Path(tmp) / "m", cv_vectors=cv, calibration=kept,
                                            static_max_error_out_of_source=target, **SHIPPED)  # fmt: skip
                print(target, name, json.dumps(row[name]), flush=True)
            row["mean_off_macro_f1"] = round(sum(f["off_macro_f1"] for f in row.values()) / len(folds), 5)
            print(target, "mean", row["mean_off_macro_f1"], flush=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
