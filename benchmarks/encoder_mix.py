"""Mix the tuned encoder's weights back with MiniLM's own (WiSE-FT): does it carry better to sources it never saw?

Weight-space ensembling (Wortsman et al. 2022, "Robust fine-tuning of zero-shot models") keeps a share s of the
tuned weights and 1 - s of the model as it came; on image benchmarks it buys accuracy on shifted data at little cost
on the tuning data. Here: the encoder is tuned by the shipped recipe on `data/queries.jsonl`, and so are the two
cross-fitting halves (`tune.cross_fit`'s splits); for each share s, all three are mixed with the bundled MiniLM,
the full one is installed as the package's `tuned` encoder for the run (the package's own files are put back
afterwards), the halves give the cross-fitted vectors, and `taskrouter train` trains the model exactly as the
shipped one was trained, scoring the out-of-source folds of the public corpus it calibrates on. s = 1 is the
shipped recipe. The dev set is not read. Tuned encoders are kept under `.cache/encoder-mix/`, so a rerun only
re-measures (7 to 16 min per share on 2 cores; the tuning first, about 18 min); one whose taskrouter-tune.json
names other rows or another recipe is tuned again. The result records the rows tuned on and their sha256.

    python benchmarks/encoder_mix.py [--corpus data/public/corpus.jsonl] [--shares 1 0.75 0.5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._common import DATA, GET_CORPUS, assets_restored, require_file, rows_sha256, tuned_encoder  # noqa: E402
from classifier.building import make_assets  # noqa: E402
from classifier.data import load_dataset  # noqa: E402
from classifier.serving.encoder import EMBEDDER_DIM, ENCODERS, model_dir  # noqa: E402
from classifier.training.tune import (  # noqa: E402
    CrossFit,
    TuneRecipe,
    crossfit_splits,
    held_out_vectors,
)

CACHE = ROOT / ".cache/encoder-mix"
TRAIN = ["--c", "1"] + [a for w in ("1", "2", "4") for a in ("--select-lexical-weight", w)]  # as shipped


def tuned(texts: list[str], labels: list[str], recipe: TuneRecipe) -> dict[str, Path]:
    """The full encoder and the cross-fitting halves, tuned once and kept (tuned again when stale)."""
    dirs = {"full": tuned_encoder(CACHE / "full", texts, labels, recipe)}
    for k, (train, _) in enumerate(crossfit_splits(labels, recipe.seed)):
        half = [texts[i] for i in train], [labels[i] for i in train]
        dirs[f"fold{k}"] = tuned_encoder(CACHE / f"fold{k}", *half, recipe)
    return dirs


def mixed(source: Path, share: float, out: Path) -> Path:
    """`source`'s weights times `share`, plus MiniLM's own times 1 - `share`, saved to `out` with its tokenizer."""
    import torch
    from transformers import AutoModel

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(source, out)
    model = AutoModel.from_pretrained(str(source))
    base = AutoModel.from_pretrained(str(model_dir())).state_dict()
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(share * tensor.float() + (1 - share) * base[name].float())
    model.save_pretrained(str(out))
    return out


def measure(share: float, dirs: dict[str, Path], texts: list[str], labels: list[str], corpus: Path, tmp: Path) -> dict:
    import numpy as np

    recipe = TuneRecipe()
    full = mixed(dirs["full"], share, tmp / "full")
    record = make_assets.build(encoder="tuned", source=full)
    sha = record["files"][ENCODERS["tuned"].onnx_file]["sha256"]
    minilm = np.zeros((len(texts), EMBEDDER_DIM), dtype=np.float32)
    static = np.zeros((len(texts), EMBEDDER_DIM), dtype=np.float32)
    for k, (_, held) in enumerate(crossfit_splits(labels, recipe.seed)):
        half = mixed(dirs[f"fold{k}"], share, tmp / f"fold{k}")
        minilm[held], static[held] = held_out_vectors(half, [texts[i] for i in held], recipe.max_tokens)
    vectors = CrossFit(np.array([CrossFit.key(t) for t in texts]), minilm, static, sha).save(tmp / "crossfit.npz")
    out = tmp / "model"
    cmd = [sys.executable, "-m", "routing.cli", "train", "--data", str(DATA), "--out", str(out), "--encoder", "tuned",
           "--cv-vectors", str(vectors), "--calibration-data", str(corpus), *TRAIN]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    training = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["training"]
    folds = training["calibration"]["folds"]
    chosen = next(s for s in training["selection"] if s["chosen"])
    return {
        "encoder_sha256": sha,
        "selection": {str(s["params"]["lexical_weight"]): round(s["folds_macro_f1"], 4) for s in training["selection"]},
        "kept_lexical_weight": chosen["params"]["lexical_weight"],
        "folds_macro_f1": round(chosen["folds_macro_f1"], 4),
        "folds": {
            f["fold"]: {
                "macro_f1": round(f["macro_f1"], 4),
                "escalated": round(f["escalated"], 4),
                "static_coverage": round(f["static_coverage"], 4),
                "static_accuracy": round(f["static_accuracy"], 4),
                "accuracy_by_source": {s: round(a, 3) for s, a in f["accuracy_by_source"].items()},
            }
            for f in folds
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=ROOT / "data/public/corpus.jsonl")
    parser.add_argument("--shares", type=float, nargs="+", default=[1.0, 0.75, 0.5])
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks/encoder_mix.json")
    args = parser.parse_args(argv)
    require_file(args.corpus, GET_CORPUS)
    dataset = load_dataset(DATA)
    texts, labels = list(dataset.texts), list(dataset.labels)
    dirs = tuned(texts, labels, TuneRecipe())
    result: dict = {
        "data": str(DATA.relative_to(ROOT)),
        "rows": len(texts),
        "data_sha256": rows_sha256(texts, labels),
        "corpus_rows": sum(1 for _ in args.corpus.open()),
        "shares": {},
    }
    with tempfile.TemporaryDirectory() as tmp, assets_restored():
        for share in args.shares:
            work = Path(tmp) / f"share-{share}"
            work.mkdir()
            result["shares"][str(share)] = r = measure(share, dirs, texts, labels, args.corpus, work)
            print(f"tuned share {share}: folds mean {r['folds_macro_f1']} {r['folds']}", flush=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
