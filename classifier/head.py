"""`LinearHead`: the fitted part of `TaskClassifier` that serving needs, with NumPy alone.

`Cascade.load()` builds one of these, so deciding a query never imports scikit-learn or SciPy (about a second
of cold start). `TaskClassifier` subclasses it and adds training and the scikit-learn estimator API.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .data import check_query
from .embedding import Embedder, default_embedder
from .features import SparseRows, linear_scores

__all__ = ["LinearHead", "as_list", "softmax"]


class LinearHead:
    """Embeddings ‖ hashed char n-grams → linear scores → temperature-scaled softmax.

    Fitted attributes: `classes_`, `coef_`, `intercept_`, `lexical_`, `temperature_`, and the training examples
    (`example_texts_`, `example_labels_`, `example_embeddings_`) for few-shot retrieval. With `static_features`
    the head reads the static embedder's vectors after MiniLM's (`static_embedder_`, one table per head).
    """

    def __init__(self, *, lexical_weight: float = 1.0, static_features: bool = False,
                 embedder: Embedder | None = None, progress: bool | None = None) -> None:
        self.lexical_weight = lexical_weight
        self.static_features = static_features
        self.embedder = embedder
        self.progress = progress

    def embed(self, X: Sequence[str], *, static: np.ndarray | None = None) -> np.ndarray:
        """The vectors this head reads for `X` (reusable by later stages).

        With `static_features` they are MiniLM's joined with the static embedder's; `static` gives the latter
        when already made (the cascade's static stage made them), and is ignored by a head that does not read them.
        """
        from .static_embedding import JoinedEmbedder

        texts = [check_query(t, field=f"X[{i}]") for i, t in enumerate(as_list(X, "X"))]
        embedder = self._embedder()
        if static is not None and isinstance(embedder, JoinedEmbedder):
            return embedder.encode(texts, progress=self.progress, static=static)
        return embedder.encode(texts, progress=self.progress)

    def predict_proba(self, X: Sequence[str], *, embeddings: np.ndarray | None = None,
                      lexical: SparseRows | None = None) -> np.ndarray:
        """Calibrated class probabilities, columns in `classes_` order.

        `embeddings` and `lexical` (this head's `lexical_.transform_rows(X)`) may be passed when already made.
        """
        self._check_fitted()
        texts = [check_query(t, field=f"X[{i}]") for i, t in enumerate(as_list(X, "X"))]
        if embeddings is None:
            embeddings = self._embedder().encode(texts, progress=self.progress)
        elif embeddings.shape != (len(texts), self.coef_.shape[1] - self.lexical_.n_features):
            raise ValueError(f"embeddings of shape {embeddings.shape} do not fit {len(texts)} texts and this head's "
                             f"{self.coef_.shape[1] - self.lexical_.n_features} embedding columns")
        if lexical is None:
            lexical = self.lexical_.transform_rows(texts)
        elif lexical.n_columns != self.lexical_.n_features or len(lexical.indptr) - 1 != len(texts):
            raise ValueError(f"lexical rows of shape ({len(lexical.indptr) - 1}, {lexical.n_columns}) do not fit "
                             f"{len(texts)} texts and {self.lexical_.n_features} hashed features")
        scores = linear_scores(embeddings, lexical, self.lexical_weight, self.coef_, self.intercept_)
        return softmax(binary_to_two(scores) / self.temperature_)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """The most probable label of each query."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def nearest_examples(self, embedding: np.ndarray, k: int = 8) -> list[tuple[str, str]]:
        """The `k` training (text, label) pairs closest to one query embedding (as `embed` gives it: the examples
        keep the base embedder's block, which comes first)."""
        self._check_fitted()
        base = embedding[: self.example_embeddings_.shape[1]].astype(np.float32)
        sims = self.example_embeddings_.astype(np.float32) @ base
        top = np.argsort(-sims, kind="stable")[:k]
        return [(self.example_texts_[i], self.example_labels_[i]) for i in top]

    def _embedder(self, *, training: bool = False) -> Embedder:
        if self.embedder is not None:
            base = self.embedder
        elif training:
            from .embedding import reference_embedder

            base = reference_embedder()
        else:
            base = default_embedder()
        if not self.static_features:
            return base
        from .static_embedding import JoinedEmbedder, StaticMiniLMEmbedder

        # Fitted and loaded heads hold their (verified) table; an unfitted one makes a throwaway embedder.
        static = getattr(self, "static_embedder_", None)
        return JoinedEmbedder(base, static if static is not None else StaticMiniLMEmbedder())

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise RuntimeError(f"this {type(self).__name__} has no fitted weights")


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
