"""The whole cascade with the base encoder vs the tuned one, on the out-of-source folds of `encoder_folds.py`.

For each fold the encoder tuned on the fold's training rows (`.cache/encoder-folds/`, made by encoder_folds.py)
is installed as the package's `tuned` encoder for the fold's run, and the package's own tuned files are put
back afterwards. Each cascade is trained with `train_cascade` exactly as `taskrouter train` trains it, and
evaluated on the held-out sources with stage 3 off and with the oracle. The dev set is not read.

    python benchmarks/encoder_cascade.py [--objective softmax] [--epochs 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.encoder_folds import find_corpus  # noqa: E402
from classifier.building import make_assets  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.serving import assets  # noqa: E402
from classifier.serving.cascade import Cascade  # noqa: E402
from classifier.serving.embedding import forget_serving_embedders  # noqa: E402
from classifier.serving.encoder import ENCODERS  # noqa: E402
from classifier.serving.llm import LookupClassifier  # noqa: E402
from classifier.training.evaluate import evaluate  # noqa: E402
from classifier.training.train import train_cascade  # noqa: E402


def measure(train, test, encoder: str, out: Path, cv_vectors=None, calibration=None, **params) -> dict:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objective", default="softmax")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/encoder_cascade.json")
    parser.add_argument("--corpus", type=Path, help="the public corpus (default: data/public/, else ../shared)")
    args = parser.parse_args(argv)
    corpus = find_corpus(args.corpus)
    if corpus is None:
        return 2
    own, public = load_dataset(ROOT / "data/queries.jsonl"), load_dataset(corpus)
    folds = {"own→public": (own, public), "public→own": (public, own)}
    tuned = ENCODERS["tuned"]
    kept = [assets.RECORD, tuned.onnx_file, tuned.static_file]
    result: dict = {"corpus": str(corpus), "objective": args.objective, "epochs": args.epochs, "folds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        backup = Path(tmp) / "assets"
        backup.mkdir()
        for name in kept:
            if (assets.ASSETS_DIR / name).is_file():
                shutil.copyfile(assets.ASSETS_DIR / name, backup / name)
        try:
            for name, (train, test) in folds.items():
                source = ROOT / ".cache/encoder-folds" / f"{name.replace('→', '-to-')}-{args.objective}-{args.epochs}ep"
                if not (source / "model.safetensors").is_file():
                    print(f"{source} is missing: run benchmarks/encoder_folds.py first")
                    return 2
                make_assets.build(encoder="tuned", source=source)
                fold = result["folds"][name] = {}
                for encoder in ("base", "tuned"):
                    fold[encoder] = measure(train, test, encoder, Path(tmp) / f"model-{encoder}")
                    print(name, encoder, fold[encoder], flush=True)
        finally:
            for name in kept:
                if (backup / name).is_file():
                    shutil.copyfile(backup / name, assets.ASSETS_DIR / name)
                else:
                    (assets.ASSETS_DIR / name).unlink(missing_ok=True)
            assets.clear_record_cache()
            forget_serving_embedders()
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
