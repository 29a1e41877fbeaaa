"""The int8 variant of a shipped MiniLM graph: dynamic quantisation (per-channel weights: faster, cosine ≈ 0.99),
made from the shipped graph on first use with the `onnx` package and no torch, and cached:

    $TASKROUTER_CACHE/onnx-int8/<key>/model.int8.onnx       (default: $XDG_CACHE_HOME/taskrouter or ~/.cache/taskrouter)
    $TASKROUTER_CACHE/onnx-int8/<key>/model.int8.onnx.json  its sha256 and size, and what it was made from

`<key>` hashes the shipped graph's sha256 and `QUANTIZE_RECIPE`. A cached file is used only as bytes whose sha256
matches its record; a mismatch rebuilds it, or with `allow_build=False` raises ModelFileError. Build it ahead of
time (e.g. in an image) with `taskrouter assets int8`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from . import assets
from .encoder import EMBEDDER_DIM, ENCODERS
from .filecache import cache_root, get_or_build, package_versions

__all__ = ["QUANTIZE_RECIPE", "build", "cache_dir", "cached_model_path"]

QUANTIZE_RECIPE = 1
"""Bump when the int8 quantisation changes: its cache key includes it."""
KIND = "ONNX"
FILE = "model.int8.onnx"


def cache_dir(encoder: str = "base") -> Path:
    """The cache directory of the int8 graph quantised from the shipped graph of `encoder`."""
    shipped = assets.recorded_sha256(ENCODERS[encoder].onnx_file)
    key = hashlib.sha256(json.dumps({"from": shipped, "quantize": QUANTIZE_RECIPE}).encode()).hexdigest()[:16]
    return cache_root() / "onnx-int8" / key


def cached_model_path(encoder: str = "base") -> Path:
    """Where the cached int8 graph of `encoder` lives (it may not exist yet)."""
    return cache_dir(encoder) / FILE


def build(*, allow_build: bool = True, encoder: str = "base") -> bytes:
    """The verified bytes of the cached int8 graph of `encoder`, quantised from its shipped graph first when
    needed (no torch)."""
    graph = ENCODERS[encoder].onnx_file

    def produce(dest: Path) -> None:  # only when the cached file is missing or bad: the shipped graph is read then
        _quantize(assets.read(graph), dest)

    def record() -> dict:
        return {"variant": "int8", "embedder": ENCODERS[encoder].embedder_id, "dim": EMBEDDER_DIM,
                "quantize_recipe": QUANTIZE_RECIPE, "from_sha256": assets.recorded_sha256(graph),
                "versions": package_versions("onnx", "onnxruntime")}  # fmt: skip

    return get_or_build(
        cached_model_path(encoder), KIND, produce, record, allow_build=allow_build, hint="taskrouter assets int8"
    )


def _float32_weights(model):
    """Undo `store_fp16` in place: each cast float16 weight becomes a float32 initializer again (the quantizer
    quantises initializers only)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    for node in list(model.graph.node):
        if node.op_type == "Cast" and node.input[0] in inits and node.input[0].endswith(".fp16"):
            half = inits.pop(node.input[0])
            model.graph.initializer.remove(half)
            full = numpy_helper.from_array(numpy_helper.to_array(half).astype(np.float32), node.output[0])
            model.graph.initializer.append(full)
            model.graph.node.remove(node)
    return model


def _quantize(source: bytes, dest: Path) -> None:
    """Dynamic int8 quantisation of the shipped graph; per-channel weights keep cosine ≈ 0.99 (per-tensor: ≈ 0.96)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    def not_from_quantizer(record: logging.LogRecord) -> bool:  # it logs advice on the root logger
        return "quantization" not in record.pathname

    root = logging.getLogger()
    root.addFilter(not_from_quantizer)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Fused (com.microsoft) nodes have no ONNX shape inference: their outputs are float, say so.
            quantize_dynamic(
                _float32_weights(onnx.load_from_string(source)),
                dest,
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        root.removeFilter(not_from_quantizer)
