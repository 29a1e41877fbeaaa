"""Tune the encoder on our rows plus public sources: does it carry to sources it never saw?

The shipped encoder is tuned on `data/queries.jsonl` alone. Here, for each out-of-source fold of the public corpus
(`classifier.training.source_folds.group_sources`, the folds `taskrouter train` scores on), an encoder is tuned
(the shipped recipe) on our rows plus at most `--cap` rows of each kept source and label, installed as the
package's `tuned` encoder for the fold's run (the package's own files are put back afterwards), and the cascade
is trained as `benchmarks/source_folds.py` trains it:

    shipped encoder, own   the baseline: the shipped encoder (tuned on our rows alone), the shipped recipe, with its
                 cross-fitted vectors, and once without them (in-sample cross-validated thresholds, as below)
    own          heads on our rows; thresholds also read on the kept sources (the shipped recipe; no cross-fitted
                 vectors exist for these encoders, so the cross-validated thresholds are in-sample)
    own+corpus   heads on our rows plus the capped kept sources; thresholds out-of-fold

and scored on the held-out sources. Compare with `benchmarks/source_folds.json` (the shipped encoder, same folds).
The dev set is not read. Tuned encoders are kept under `.cache/encoder-source-folds/`, so a rerun only re-measures;
one whose taskrouter-tune.json names other rows or another recipe is tuned again. Each fold records the rows its
encoder was tuned on and their sha256 (as `tune_encoder` hashes them). Tuning takes about 15 min a fold on 2 cores
(`tune_minutes` in encoder_source_folds.json: 14.9 and 12.5); each fold then builds the tuned serving files and
trains four cascades, several minutes more.

    python benchmarks/encoder_source_folds.py [--corpus data/public/corpus.jsonl] [--cap 500] [--c 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    DATA,
    GET_CORPUS,
    assets_restored,
    join,
    measure_cascade,
    require_file,
    rows_sha256,
    subset,
    tuned_encoder,
    write_means,
)
from classifier.building import make_assets  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.training.source_folds import group_sources  # noqa: E402
from classifier.training.tune import CrossFit, TuneRecipe  # noqa: E402

SETTINGS = ("shipped encoder, own", "shipped encoder, own, no cross-fit", "own", "own+corpus")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data/public/corpus.jsonl")
    parser.add_argument("--cap", type=int, default=500, help="rows per kept source and label the encoder is tuned on")
    parser.add_argument("--c", type=float, default=1.0, help="the heads' C (the shipped model's)")
    parser.add_argument("--lexical-weight", type=float, default=2.0, help="the shipped model's n-gram weight")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/encoder_source_folds.json")
    args = parser.parse_args(argv)
    require_file(args.corpus, GET_CORPUS)
    own, corpus = load_dataset(DATA), load_dataset(args.corpus)
    assert corpus.sources is not None
    recipe = TuneRecipe()
    cross_fit = CrossFit.load(ROOT / "data/queries.crossfit.npz")
    result: dict = {"corpus": str(args.corpus), "corpus_sha256": corpus.sha256(), "cap": args.cap, "C": args.c,
                    "lexical_weight": args.lexical_weight, "recipe": recipe.__dict__, "folds": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp, assets_restored() as restore:
        for i, held_sources in enumerate(group_sources(corpus.sources, corpus.labels)):
            name = chr(ord("A") + i)
            held = subset(corpus, lambda s, h=held_sources: s in h)
            kept = subset(corpus, lambda s, h=held_sources: s not in h)
            capped = subset(kept, lambda s: True, args.cap)
            tune_on = join(own, capped)
            started = time.perf_counter()
            where = tuned_encoder(ROOT / ".cache/encoder-source-folds" / f"{name}-cap{args.cap}",
                                  tune_on.texts, tune_on.labels, recipe)  # fmt: skip
            minutes = round((time.perf_counter() - started) / 60, 1)
            fold = result["folds"][name] = {"held_out": list(held_sources), "n": len(held),
                                            "tuned_on_rows": len(tune_on), "tune_minutes": minutes,
                                            "tuned_on_sha256": rows_sha256(tune_on.texts, tune_on.labels)}  # fmt: skip
            restore()  # the shipped encoder first: the baseline, on the same folds
            for setting, cv in zip(SETTINGS[:2], (cross_fit, None), strict=True):
                scores = measure_cascade(own, held, "tuned", Path(tmp) / "m", cv_vectors=cv, calibration=kept,
                                         C=args.c, lexical_weight=args.lexical_weight)  # fmt: skip
                fold[setting] = {"train_rows": len(own), **scores}
                print(name, setting, json.dumps(fold[setting]), flush=True)
            make_assets.build(encoder="tuned", source=where)
            for setting, train, calibration in (("own", own, kept), ("own+corpus", join(own, capped), None)):
                scores = measure_cascade(train, held, "tuned", Path(tmp) / "m", calibration=calibration, C=args.c,
                                         lexical_weight=args.lexical_weight)  # fmt: skip
                fold[setting] = {"train_rows": len(train), **scores}
                print(name, setting, json.dumps(fold[setting]), flush=True)
    write_means(result, SETTINGS, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
