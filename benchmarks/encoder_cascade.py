"""The whole cascade with the base encoder vs the tuned one, on the out-of-source folds of `encoder_folds.py`.

For each fold the encoder tuned on the fold's training rows (`.cache/encoder-folds/`, made by encoder_folds.py;
refused when its taskrouter-tune.json names other rows or another recipe) is installed as the package's `tuned`
encoder for the fold's run, and the package's own serving files are put back afterwards. Each cascade is trained
with `train_cascade` exactly as `taskrouter train` trains it, and evaluated on the held-out sources with stage 3
off and with the oracle. The dev set is not read. Several minutes on 2 cores (per fold: the tuned encoder's
serving files are built, and two cascades trained and scored); the encoders must be tuned first.

    python benchmarks/encoder_cascade.py [--objective softmax] [--epochs 2] [--corpus PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    DATA,
    assets_restored,
    folds_cache,
    measure_cascade,
    require_corpus,
    require_tuned,
    rows_of,
    rows_sha256,
)
from classifier.building import make_assets  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.training.tune import TuneRecipe  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="softmax")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/encoder_cascade.json")
    parser.add_argument("--corpus", type=Path, help="the public corpus (default: data/public/, else ../shared)")
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    recipe = TuneRecipe(objective=args.objective, epochs=args.epochs)
    how = f"run benchmarks/encoder_folds.py --objective {args.objective} --epochs {args.epochs} first"
    tuned_on = {"own→public": rows_of(DATA), "public→own": rows_of(corpus)}
    sources = {name: require_tuned(folds_cache(name, args.objective, args.epochs), *rows, recipe, how)
               for name, rows in tuned_on.items()}  # fmt: skip
    own, public = load_dataset(DATA), load_dataset(corpus)
    folds = {"own→public": (own, public), "public→own": (public, own)}
    result: dict = {"corpus": str(corpus), "objective": args.objective, "epochs": args.epochs, "folds": {}}
    with tempfile.TemporaryDirectory() as tmp, assets_restored():
        for name, (train, test) in folds.items():
            make_assets.build(encoder="tuned", source=sources[name])
            texts, labels = tuned_on[name]
            fold = result["folds"][name] = {"train_rows": len(texts), "train_sha256": rows_sha256(texts, labels)}
            for encoder in ("base", "tuned"):
                fold[encoder] = measure_cascade(train, test, encoder, Path(tmp) / f"model-{encoder}")
                print(name, encoder, fold[encoder], flush=True)
    for encoder in ("base", "tuned"):
        result.setdefault("mean", {})[encoder] = {
            k: round(sum(f[encoder][k] for f in result["folds"].values()) / len(folds), 4)
            for k in ("off_macro_f1", "oracle_macro_f1", "escalated")
        }
        print("mean", encoder, result["mean"][encoder])
    args.json.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
