"""A static embedder distilled from all-MiniLM-L6-v2 with model2vec: a token table instead of a transformer.

A query's vector is the mean of its tokens' rows, so embedding costs microseconds and no matrix products; it is
less accurate than MiniLM itself (dev accuracy of its head alone 0.89 against 0.94), so the cascade uses it as a
fast stage that answers only when confident and passes everything else on to MiniLM.

Serving reads the table shipped in the package (`classifier.serving.assets`: int8 rows, checked by sha256). The
distillation itself (model2vec and torch) runs only to rebuild that file: `classifier.building.static_distill`.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ModelFileError
from . import assets
from .encoder import EMBEDDER_DIM, ENCODERS, CachedEmbedder

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["STATIC_ID", "StaticMiniLMEmbedder", "available"]

STATIC_ID = ENCODERS["base"].static_id
MAX_TOKENS = 512  # model2vec's default; the mean of a long query's first 512 tokens


class StaticMiniLMEmbedder(CachedEmbedder):
    """Mean of distilled token vectors, L2-normalised; what model2vec's `StaticModel.encode` computes.

    Not `StaticModel.encode` itself, which gives other vectors here: it cuts a text at 512 × the vocabulary's
    median token length (7) characters before tokenizing, so a long query of long tokens loses tokens this
    keeps (measured: cosine 0.99976 on 600 long words), and it averages the float16 table in float16 unless
    given a float32 copy (+23 MB). With that copy, on 3,000 training queries, its vectors equal these.

    >>> StaticMiniLMEmbedder().encode(["integrate x^2"]).shape     # doctest: +SKIP
    (1, 384)

    `encoder` names the shipped table (`encoder.ENCODERS`: "base", or "tuned", distilled from the tuned encoder).
    """

    id = STATIC_ID
    dim = EMBEDDER_DIM
    backend = "static"
    _transient = ("_table", "_tokenizer", "_unk_id")

    def __init__(self, *, encoder: str = "base", batch_size: int = 1024, cache_size: int = 0) -> None:
        # No vector cache by default: looking a text up costs about what embedding it does.
        super().__init__(batch_size=batch_size, cache_size=cache_size)
        if encoder not in ENCODERS:
            raise ValueError(f"The 'encoder' parameter must be one of {sorted(ENCODERS)}. Got {encoder!r} instead.")
        self.encoder = encoder
        self.id = ENCODERS[encoder].static_id
        self._table: np.ndarray | None = None
        self._tokenizer: Tokenizer | None = None
        self._unk_id: int | None = None
        self._load_lock = threading.Lock()

    def load(self) -> StaticMiniLMEmbedder:
        """Verify the shipped table and read it; called by the first `encode` otherwise."""
        with self._load_lock:
            if self._table is None:
                name = ENCODERS[self.encoder].static_file
                table, tokenizer_json = assets.read_static_table(name=name)
                if table.ndim != 2 or table.shape[1] != self.dim:
                    where = str(assets.ASSETS_DIR / name)
                    raise ModelFileError(f"table shape {table.shape} is not (n, {self.dim})", path=where)
                self._use(table, tokenizer_json)
        return self

    @classmethod
    def from_table(cls, table: np.ndarray, tokenizer_json: str) -> StaticMiniLMEmbedder:
        """An embedder over a table not shipped in the package (a fold's, when training cross-fits)."""
        embedder = cls()
        embedder.id = f"{STATIC_ID}:unshipped"
        embedder._use(np.asarray(table, dtype=np.float16), tokenizer_json)
        return embedder

    def _use(self, table: np.ndarray, tokenizer_json: str) -> None:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_str(tokenizer_json)
        tokenizer.no_padding()
        tokenizer.no_truncation()
        unk = json.loads(tokenizer_json).get("model", {}).get("unk_token")
        self._unk_id = tokenizer.token_to_id(unk) if unk else None
        self._tokenizer, self._table = tokenizer, table

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        if self._table is None:
            self.load()
        table, tokenizer = self._table, self._tokenizer
        assert table is not None and tokenizer is not None, "load() sets both"
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        # encode_batch hands work to a thread pool: for a handful of texts that costs more than it saves.
        encodings = (
            tokenizer.encode_batch(texts, add_special_tokens=False)
            if len(texts) > 8
            else [tokenizer.encode(t, add_special_tokens=False) for t in texts]
        )
        for row, enc in enumerate(encodings):
            ids = [i for i in enc.ids if i != self._unk_id][:MAX_TOKENS]
            if ids:
                out[row] = table[ids].astype(np.float32).mean(axis=0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


def available(encoder: str = "base") -> bool:
    """The shipped table of `encoder` is there (whether it is intact is checked when it is read)."""
    return assets.installed(ENCODERS[encoder].static_file)
