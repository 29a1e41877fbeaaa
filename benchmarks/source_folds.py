"""Model choice that predicts new traffic: hold out groups of public sources, score every label on them.

Single-label leave-one-source-out takes a label's whole style away with its source. Here each fold holds out a
group of sources that together carry every label from at least two sources, and the cascade is trained as
`taskrouter train` trains it on our own rows (`data/queries.jsonl`) plus, for the `+corpus` setting, the public
sources the fold keeps. Reported per fold and setting: macro-F1 with stage 3 off and with the oracle, the share
escalated and escalation recall, the static stage's coverage and accuracy, and each label's recall. The dev set
is not read.

    python benchmarks/source_folds.py [--corpus data/public/corpus.jsonl] [--encoder tuned] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.encoder_cascade import measure  # noqa: E402
from classifier.data import Dataset, load_dataset  # noqa: E402

FOLDS = {
    "A": ("dolly-15k", "stackoverflow-titles", "writingprompts", "tal-scq5k-en", "trec-qc"),
    "B": ("sharegpt-first-turns", "clinc150", "expertqa"),
}
"""Each group holds every label from at least two of its sources (checked when the script runs)."""


def subset(data: Dataset, keep) -> Dataset:
    assert data.sources is not None
    rows = [i for i, s in enumerate(data.sources) if keep(s)]
    return Dataset(tuple(data.texts[i] for i in rows), tuple(data.labels[i] for i in rows), data.path,
                   tuple(data.sources[i] for i in rows))  # fmt: skip


def join(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(a.texts + b.texts, a.labels + b.labels, None)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data/public/corpus.jsonl")
    parser.add_argument("--encoder", default="tuned")
    parser.add_argument("--cv-vectors", type=Path, default=ROOT / "data/queries.crossfit.npz")
    parser.add_argument("--settings", nargs="+", default=["own", "own+corpus"])
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/source_folds.json")
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        print(f"no public corpus at {args.corpus}: build it with data/build/build_public.py")
        return 2
    from classifier.training.tune import CrossFit

    own, corpus = load_dataset(ROOT / "data/queries.jsonl"), load_dataset(args.corpus)
    cv = CrossFit.load(args.cv_vectors) if args.encoder == "tuned" and args.cv_vectors.is_file() else None
    result: dict = {"corpus": str(args.corpus), "encoder": args.encoder, "cross_fit": cv is not None, "folds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, held_sources in FOLDS.items():
            held = subset(corpus, lambda s, h=held_sources: s in h)
            per_label: dict[str, set[str]] = {}
            for s, label in zip(held.sources or (), held.labels, strict=True):
                per_label.setdefault(label, set()).add(s)
            thin = {label: sorted(s) for label, s in per_label.items() if len(s) < 2}
            fold = result["folds"][name] = {"held_out": list(held_sources), "n": len(held),
                                            "labels_with_one_source": thin}  # fmt: skip
            for setting in args.settings:
                train = own if setting == "own" else join(own, subset(corpus, lambda s, h=held_sources: s not in h))
                fold[setting] = {"train_rows": len(train), **measure(train, held, args.encoder, Path(tmp) / "m",
                                                                     cv_vectors=cv)}  # fmt: skip
                print(name, setting, json.dumps(fold[setting]), flush=True)
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
