"""Model choice that predicts new traffic: hold out groups of public sources, score every label on them.

Single-label leave-one-source-out takes a label's whole style away with its source. Here each fold holds out a
group of sources that together carry every label from at least two sources (the folds `taskrouter train` scores
and chooses C by: `classifier.training.source_folds.group_sources`), and the cascade is trained as `taskrouter
train` trains it, in one of three settings:

    own              our own rows (`data/queries.jsonl`); thresholds also read on the sources the fold keeps
                     (`--calibration-data`, as the shipped model is trained)
    own+corpus       our own rows plus the public sources the fold keeps; thresholds out-of-fold
    own+corpus≤N     the same with at most N rows of each source and label (`--cap`, default 250), so that no
                     single source's style outweighs our rows for a label

Reported per fold and setting: macro-F1 with stage 3 off and with the oracle, the share escalated and escalation
recall, the static stage's coverage and accuracy, and each label's recall; then each setting's mean. The dev set is
not read. Several minutes on 2 cores (a cascade trained and scored per fold and setting).

    python benchmarks/source_folds.py [--corpus data/public/corpus.jsonl] [--encoder tuned] [--c 1] [--cap 250]
                                      [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DATA, GET_CORPUS, join, measure_cascade, require_file, subset, write_means  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.training.source_folds import group_sources  # noqa: E402

SETTINGS = ("own", "own+corpus", "own+corpus≤N")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data/public/corpus.jsonl")
    parser.add_argument("--encoder", default="tuned")
    parser.add_argument("--cv-vectors", type=Path, default=ROOT / "data/queries.crossfit.npz")
    parser.add_argument("--settings", nargs="+", choices=SETTINGS, default=list(SETTINGS))
    parser.add_argument("--c", type=float, default=1.0, help="the heads' C (the shipped model's, chosen by the folds)")
    parser.add_argument("--cap", type=int, default=250, help="rows per source and label in own+corpus≤N")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/source_folds.json")
    args = parser.parse_args(argv)
    require_file(args.corpus, GET_CORPUS)
    from classifier.training.tune import CrossFit

    own, corpus = load_dataset(DATA), load_dataset(args.corpus)
    cv = CrossFit.load(args.cv_vectors) if args.encoder == "tuned" and args.cv_vectors.is_file() else None
    result: dict = {"corpus": str(args.corpus), "corpus_sha256": corpus.sha256(), "encoder": args.encoder,
                    "cross_fit": cv is not None, "C": args.c, "cap": args.cap, "folds": {}}  # fmt: skip
    assert corpus.sources is not None
    folds = group_sources(corpus.sources, corpus.labels)
    with tempfile.TemporaryDirectory() as tmp:
        for i, held_sources in enumerate(folds):
            name = chr(ord("A") + i)
            held = subset(corpus, lambda s, h=held_sources: s in h)
            per_label: dict[str, set[str]] = {}
            for s, label in zip(held.sources or (), held.labels, strict=True):
                per_label.setdefault(label, set()).add(s)
            thin = {label: sorted(s) for label, s in per_label.items() if len(s) < 2}
            fold = result["folds"][name] = {"held_out": list(held_sources), "n": len(held),
                                            "labels_with_one_source": thin}  # fmt: skip
            kept = subset(corpus, lambda s, h=held_sources: s not in h)
            for setting in args.settings:
                if setting == "own":
                    train, calibration = own, kept
                else:
                    cap = args.cap if setting == "own+corpus≤N" else None
                    train, calibration = join(own, subset(kept, lambda s: True, cap)), None
                scores = measure_cascade(train, held, args.encoder, Path(tmp) / "m", cv_vectors=cv,
                                         calibration=calibration, C=args.c)  # fmt: skip
                fold[setting] = {"train_rows": len(train), **scores}
                print(name, setting, json.dumps(fold[setting]), flush=True)
    write_means(result, args.settings, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
