"""`TaskClassifier`: MiniLM embeddings (‖ static embeddings) ‖ char n-grams → logistic regression,
temperature-calibrated."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from .data import check_labels, check_query
from .embedding import Embedder
from .features import LexicalFeatures, combine
from .head import LinearHead, as_list, binary_to_two, softmax

__all__ = ["TaskClassifier"]


class TaskClassifier(LinearHead, ClassifierMixin, BaseEstimator):
    """Classify a query into one of the labels it was trained on.

    >>> clf = TaskClassifier.load()                  # the model shipped with the package
    >>> clf.predict(["integrate x^2 from 0 to 1"])   # doctest: +SKIP
    array(['math'], dtype='<U8')

    With `static_features=True` the head also reads each query's static-embedder vector (see `static_embedding`),
    which the cascade's static stage has made already: a second view of the query at no extra cost.
    """

    def __init__(self, *, C: float = 4.0, lexical_weight: float = 1.0, n_features: int = 2**15,
                 cv: int = 5, random_state: int = 0, max_iter: int = 3000, static_features: bool = False,
                 embedder: Embedder | None = None, progress: bool | None = None) -> None:
        self.C = C
        self.lexical_weight = lexical_weight
        self.static_features = static_features
        self.n_features = n_features
        self.cv = cv
        self.random_state = random_state
        self.max_iter = max_iter
        self.embedder = embedder
        self.progress = progress

    # -- training ---------------------------------------------------------------------------------------------
    def fit(self, X: Sequence[str], y: Sequence[str]) -> TaskClassifier:
        """Learn the head, then a temperature from out-of-fold logits (kept in `cv_proba_`)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        self._check_params()
        texts = [check_query(t, field=f"X[{i}]") for i, t in enumerate(as_list(X, "X"))]
        labels = check_labels(as_list(y, "y"))
        if len(texts) != len(labels):
            raise ValueError(f"X and y have different lengths: {len(texts)} != {len(labels)}")
        self.classes_ = np.array(sorted(set(labels)))
        y_idx = np.searchsorted(self.classes_, labels)
        if self.static_features:
            from .static_embedding import StaticMiniLMEmbedder

            self.static_embedder_ = StaticMiniLMEmbedder()

        # Training embeds with sentence-transformers (the reference), so a retrain reproduces a saved model.
        embeddings = self._embedder(training=True).encode(texts, progress=self.progress)
        self.lexical_ = LexicalFeatures(n_features=self.n_features).fit(texts)
        design = combine(embeddings, self.lexical_.transform(texts), self.lexical_weight)

        def new_lr() -> LogisticRegression:
            return LogisticRegression(C=self.C, max_iter=self.max_iter)

        folds = min(self.cv, int(np.bincount(y_idx).min()))
        oof_logits = np.zeros((len(texts), len(self.classes_)))
        if folds >= 2:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
            for train, test in splitter.split(design, y_idx):
                fold_lex = LexicalFeatures(n_features=self.n_features).fit([texts[i] for i in train])
                fold_design = combine(embeddings, fold_lex.transform(texts), self.lexical_weight)
                lr = new_lr().fit(fold_design[train], y_idx[train])
                oof_logits[test] = binary_to_two(np.asarray(fold_design[test] @ lr.coef_.T) + lr.intercept_)
            self.temperature_ = _fit_temperature(oof_logits, y_idx)
        else:
            self.temperature_ = 1.0
        self.cv_proba_ = softmax(oof_logits / self.temperature_) if folds >= 2 else None
        self.cv_labels_ = np.array(labels)

        lr = new_lr().fit(design, y_idx)
        self.coef_, self.intercept_ = lr.coef_, lr.intercept_
        self.n_features_in_ = design.shape[1]
        # Kept for few-shot retrieval by the LLM stage.
        self.example_texts_ = list(texts)
        self.example_labels_ = list(labels)
        static_dim = self.static_embedder_.dim if self.static_features else 0
        self.example_embeddings_ = embeddings[:, :embeddings.shape[1] - static_dim].astype(np.float16)
        return self

    # -- persistence ------------------------------------------------------------------------------------------
    def save(self, directory: str | Path, *, static: TaskClassifier | None = None, **manifest_extra: object) -> Path:
        """Write the model directory (manifest + arrays, no pickle), with an optional static-embedding head."""
        from .persistence import save_model

        return save_model(self, directory, static=static, **manifest_extra)

    @classmethod
    def load(cls, directory: str | Path | None = None) -> TaskClassifier:
        """Load a saved model after checking its format and hashes; the shipped model when no path."""
        from .persistence import load_model

        return load_model(directory)[0]

    # -- helpers ----------------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        check_is_fitted(self, "coef_")

    def _check_params(self) -> None:
        checks = {"C": self.C > 0, "lexical_weight": self.lexical_weight >= 0, "n_features": self.n_features > 0,
                  "cv": self.cv >= 0, "max_iter": self.max_iter > 0,
                  "static_features": isinstance(self.static_features, bool)}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"The {name!r} parameter of TaskClassifier is out of range. "
                                 f"Got {getattr(self, name)!r} instead.")


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of held-out logits."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))
