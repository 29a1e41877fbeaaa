"""`LinearHead`: a fitted linear head served with NumPy alone, and the `BatchContext` its stages share.

`Cascade.load()` builds heads with `LinearHead.from_arrays()` from what `TaskClassifier.export()` wrote, so
deciding a query never imports scikit-learn or SciPy (about a second of cold start).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..data import MAX_QUERY_CHARS, check_query
from .embedding import Embedder, default_embedder
from .features import LexicalFeatures, SparseRows, linear_scores

__all__ = ["BatchContext", "Examples", "HeadExport", "LinearHead", "as_list", "softmax"]


class BatchContext:
    """What the stages of one batch share, made on first request and then kept: the n-gram rows and the
    vectors of each embedder. `take(rows)` hands the kept arrays on to the queries a stage passes on."""

    def __init__(self, texts: Sequence[str], *, progress: bool | None = None) -> None:
        self.texts = list(texts)
        self.progress = progress
        self._kept: dict[tuple, np.ndarray | SparseRows] = {}

    def lexical(self, features: LexicalFeatures) -> SparseRows:
        """`features.transform_rows(texts)`, made once for features with the same IDF weights."""
        return self._get(("lexical", features.key), lambda: features.transform_rows(self.texts))

    def vectors(self, embedder: Embedder, *, progress: bool | None = None) -> np.ndarray:
        """`embedder.encode(texts)`, made once per embedder id and backend."""
        key = ("vectors", embedder.id, getattr(embedder, "backend", ""))
        return self._get(
            key, lambda: embedder.encode(self.texts, progress=self.progress if progress is None else progress)
        )

    def take(self, rows: Sequence[int]) -> BatchContext:
        """The context of `texts[rows]`, keeping what was made so far."""
        sub = BatchContext([self.texts[i] for i in rows], progress=self.progress)
        rows = list(rows)
        sub._kept = {k: v.take(rows) if isinstance(v, SparseRows) else v[rows] for k, v in self._kept.items()}
        return sub

    def _get(self, key: tuple, make: Callable[[], np.ndarray | SparseRows]):
        if key not in self._kept:
            self._kept[key] = make()
        return self._kept[key]


@dataclass(frozen=True)
class Examples:
    """Labeled training queries and their MiniLM vectors (float16), for few-shot retrieval by stage 3."""

    texts: list[str]
    labels: list[str]
    embeddings: np.ndarray

    def nearest(self, embedding: np.ndarray, k: int = 8) -> list[tuple[str, str]]:
        """The `k` (text, label) pairs closest to one query vector (only its first block, MiniLM's, is read)."""
        base = embedding[: self.embeddings.shape[1]].astype(np.float32)
        sims = self.embeddings.astype(np.float32) @ base
        top = np.argsort(-sims, kind="stable")[:k]
        return [(self.texts[i], self.labels[i]) for i in top]


@dataclass(frozen=True, eq=False)
class HeadExport:
    """Everything a served head is made of: what `TaskClassifier.export()` gives and a model file stores."""

    classes: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray
    temperature: float
    lexical_weight: float
    idf: np.ndarray
    ngram_range: tuple[int, int]
    embedder_ids: tuple[str, ...]
    """The embedders whose vectors the head reads, joined in this order (then the n-grams)."""
    examples: Examples | None = None
    """The training examples, kept by the head whose stage retrieves them (MiniLM's)."""


class LinearHead:
    """Embeddings (one block per embedder) ‖ hashed char n-grams → linear scores → temperature-scaled softmax.

    `embedders` are the objects behind `HeadExport.embedder_ids`, in order; a None entry is the process's
    serving MiniLM embedder (`default_embedder()`, chosen at first use).
    """

    def __init__(
        self, export: HeadExport, embedders: Sequence[Embedder | None], *, progress: bool | None = None
    ) -> None:
        if len(embedders) != len(export.embedder_ids):
            raise ValueError(f"{len(export.embedder_ids)} embedders expected, got {len(embedders)}")
        self.export = export
        self.classes_ = np.array(export.classes)
        self.coef_, self.intercept_, self.temperature_ = export.coef, export.intercept, export.temperature
        self.lexical_weight = export.lexical_weight
        self.lexical_ = LexicalFeatures(n_features=len(export.idf), ngram_range=export.ngram_range)
        self.lexical_.idf_ = export.idf
        self.embedder = embedders[0]
        self._more = [e for e in embedders[1:] if e is not None]
        if len(self._more) != len(embedders) - 1:
            raise ValueError("embedders: only the first (MiniLM) may be None, for the serving default")
        self.examples = export.examples
        self.progress = progress

    @classmethod
    def from_arrays(
        cls, export: HeadExport, embedders: Sequence[Embedder | None], *, progress: bool | None = None
    ) -> LinearHead:
        """The served head of an explicit export (see `TaskClassifier.export` and `model_files.load_model`)."""
        return cls(export, embedders, progress=progress)

    @property
    def embedders(self) -> list[Embedder]:
        return [self.embedder if self.embedder is not None else default_embedder(), *self._more]

    @property
    def static_features(self) -> bool:
        """Whether the head reads a second embedder's vectors after MiniLM's (the static table's)."""
        return bool(self._more)

    @property
    def static_embedder_(self) -> Embedder | None:
        return self._more[0] if self._more else None

    @property
    def example_texts_(self) -> list[str]:
        return self._examples().texts

    @property
    def example_labels_(self) -> list[str]:
        return self._examples().labels

    @property
    def example_embeddings_(self) -> np.ndarray:
        return self._examples().embeddings

    def _examples(self) -> Examples:
        if self.examples is None:
            raise RuntimeError("this head was exported without its training examples")
        return self.examples

    def features(self, ctx: BatchContext) -> np.ndarray:
        """The vectors this head reads for the context's texts, joined (each block made once per batch)."""
        blocks = [ctx.vectors(e, progress=self.progress) for e in self.embedders]
        return blocks[0] if len(blocks) == 1 else np.hstack(blocks).astype(np.float32, copy=False)

    def proba(self, ctx: BatchContext) -> np.ndarray:
        """Class probabilities for the context's (already checked) texts."""
        return self._proba(self.features(ctx), ctx.lexical(self.lexical_))

    def embed(self, X: Sequence[str]) -> np.ndarray:
        """The vectors this head reads for `X`."""
        return self.features(BatchContext(_checked(X), progress=self.progress))

    @property
    def embedding_columns(self) -> int:
        """How many of `coef_`'s columns read the embedders' vectors: all but the n-gram ones, which a head with
        n-gram weight 0 does not have (it was fitted on the embeddings alone, `features.combine`)."""
        return self.coef_.shape[1] - (self.lexical_.n_features if self.lexical_weight else 0)

    def predict_proba(
        self, X: Sequence[str], *, embeddings: np.ndarray | None = None, lexical: SparseRows | None = None
    ) -> np.ndarray:
        """Calibrated class probabilities, columns in `classes_` order.

        `embeddings` and `lexical` (this head's `lexical_.transform_rows(X)`) may be passed when already made.
        """
        texts = _checked(X)
        ctx = BatchContext(texts, progress=self.progress)
        if embeddings is None:
            embeddings = self.features(ctx)
        elif embeddings.shape != (len(texts), self.embedding_columns):
            raise ValueError(
                f"embeddings of shape {embeddings.shape} do not fit {len(texts)} texts and this head's "
                f"{self.embedding_columns} embedding columns"
            )
        if lexical is None:
            lexical = ctx.lexical(self.lexical_)
        elif lexical.n_columns != self.lexical_.n_features or len(lexical.indptr) - 1 != len(texts):
            raise ValueError(
                f"lexical rows of shape ({len(lexical.indptr) - 1}, {lexical.n_columns}) do not fit "
                f"{len(texts)} texts and {self.lexical_.n_features} hashed features"
            )
        return self._proba(embeddings, lexical)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """The most probable label of each query."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def nearest_examples(self, embedding: np.ndarray, k: int = 8) -> list[tuple[str, str]]:
        """The `k` training (text, label) pairs closest to one query embedding (as `embed` gives it)."""
        return self._examples().nearest(embedding, k)

    def _proba(self, embeddings: np.ndarray, lexical: SparseRows) -> np.ndarray:
        scores = linear_scores(embeddings, lexical, self.lexical_weight, self.coef_, self.intercept_)
        return softmax(binary_to_two(scores) / self.temperature_)


def _checked(X: Sequence[str]) -> list[str]:
    """Checked texts; a head reads them whole, so the training-data length limit applies (a Cascade windows)."""
    return [check_query(t, field=f"X[{i}]", max_chars=MAX_QUERY_CHARS) for i, t in enumerate(as_list(X, "X"))]


def as_list(values: Sequence[object], name: str) -> list:
    """`values` as a list; a lone string or a non-sequence is a `TypeError` naming `name`."""
    if isinstance(values, str) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a sequence of strings, got {type(values).__name__}")
    return list(values)


def binary_to_two(scores: np.ndarray) -> np.ndarray:
    """Binary logistic regression gives one score per row; make it two logits (0, score)."""
    if scores.shape[1] == 1:
        return np.hstack([np.zeros_like(scores), scores])
    return scores


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
