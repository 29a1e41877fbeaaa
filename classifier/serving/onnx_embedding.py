"""all-MiniLM-L6-v2 served by onnxruntime + tokenizers: no torch.

Serving reads the graph shipped in the package (`classifier.serving.assets`): transformer → mean pooling over the
attention mask → L2 normalisation, as sentence-transformers computes it, with each layer's attention, LayerNorms
and GELU fused by ONNX Runtime's transformer optimizer (measured on 2 cores against the unfused graph: single-query
p50 -11 %), its weights stored in float16 and computed in float32 (cosine ≥ 0.99999 to the float32 export).

`quantize=True` serves the int8 variant instead, quantised from the shipped graph once and cached
(`classifier.serving.onnx_int8`). How the shipped graph is made: `classifier.building.onnx_export`.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

import numpy as np

from . import assets, onnx_int8
from .encoder import ENCODERS, CachedEmbedder

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["MAX_TOKENS", "OnnxMiniLMEmbedder"]

MAX_TOKENS = 96
"""MiniLM reads at most this many tokens of a query: its first 72 and last 24. The largest window (of 256, 192,
128, 96) whose single-query p95 met 12 ms on benchmarks/long_tail.py (2 cores): 256 gave 15.0 ms, 128 13.5 ms,
96 11.7 ms. Attention's cost grows with the square of the length."""


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
                    onnx_int8.build(allow_build=self.allow_export, encoder=self.encoder)
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


def _default_threads() -> int:
    """One intra-op thread per available core, at most 4 (MiniLM on short queries gains little beyond)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))
