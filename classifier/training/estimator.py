"""`TaskClassifier`: MiniLM embeddings (‖ static embeddings) ‖ char n-grams → logistic regression,
temperature-calibrated."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from ..data import MAX_QUERY_CHARS, check_labels, check_query
from ..errors import InvalidParameterError
from ..params import COUNT, SEED, Constraint, Interval, Options, validate_params
from ..results import EMBEDDING, STATIC
from ..serving.embedding import Embedder
from ..serving.encoder import ENCODERS
from ..serving.features import LexicalFeatures, SparseRows, combine
from ..serving.head import Examples, HeadExport, LinearHead, as_list, binary_to_two, softmax

if TYPE_CHECKING:
    from ..serving.stages import StageManifest

__all__ = ["ClassifierParams", "TaskClassifier", "check_classifier_params"]

TEMPERATURE_PRIOR_ERRORS = 10
"""`fit` shrinks the fitted log-temperature toward 0 by errors / (errors + this): 300 held-out errors keep 97 %."""

_PARAMS = ("C", "lexical_weight", "n_features", "cv", "random_state", "max_iter", "static_features", "encoder")
_CONSTRAINTS: dict[str, list[Constraint]] = {
    "C": [Interval(Real, 0, None, closed="neither")],
    "lexical_weight": [Interval(Real, 0, None, closed="left")],
    "n_features": [Interval(Integral, 1, None, closed="left")],
    "cv": [COUNT],  # 0 or 1: no cross-validation (the temperature stays 1)
    "random_state": [None, SEED],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "static_features": [bool],
    "encoder": [Options(tuple(ENCODERS))],
}
"""What `fit` accepts for each parameter (checked there, scikit-learn style, not in `__init__`)."""


class ClassifierParams(TypedDict, total=False):
    """The `TaskClassifier` parameters that `train_cascade` passes on to its heads as given."""

    C: float
    lexical_weight: float
    n_features: int
    cv: int
    max_iter: int
    encoder: str


def check_classifier_params(params: Mapping[str, object], *, caller: str) -> None:
    """Raise InvalidParameterError for a key of `params` that is not one of `ClassifierParams`, or a value out of
    its range: before any work, where `TaskClassifier.fit` would find it only after the rules and embeddings."""
    allowed = ClassifierParams.__annotations__
    for key, value in params.items():
        if key not in allowed:
            expected = (
                f"left out: {caller} passes on only TaskClassifier's {', '.join(allowed)} (it sets embedder, "
                "random_state, progress and static_features itself)"
            )
            raise InvalidParameterError(key, value, expected, caller=caller)
    validate_params({k: _CONSTRAINTS[k] for k in params}, params, caller=caller)


class TaskClassifier(ClassifierMixin, BaseEstimator):
    """Classify a query into one of the labels it was trained on.

    >>> clf = TaskClassifier.load()                  # the model shipped with the package
    >>> clf.predict(["integrate x^2 from 0 to 1"])   # doctest: +SKIP
    array(['math'], dtype='<U8')

    With `static_features=True` the head also reads each query's static-embedder vector (see `static_embedding`),
    which the cascade's static stage has made already: a second view of the query at no extra cost.
    `encoder` names the shipped encoder whose vectors (and static table) the head reads: "base" (MiniLM as it
    came) or "tuned" (`classifier.training.tune`); an explicit `embedder` replaces its MiniLM half.
    Training lives here; `export()` gives the arrays a `LinearHead` serves with (`head_` is one).
    """

    def __init__(
        self,
        *,
        C: float = 4.0,
        lexical_weight: float = 1.0,
        n_features: int = 2**15,
        cv: int = 5,
        random_state: int = 0,
        max_iter: int = 3000,
        static_features: bool = False,
        encoder: str = "base",
        embedder: Embedder | None = None,
        progress: bool | None = None,
    ) -> None:
        self.encoder = encoder
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
    def fit(self, X: Sequence[str], y: Sequence[str], *, cv_embeddings: np.ndarray | None = None) -> TaskClassifier:
        """Learn the head, then a temperature from out-of-fold logits (kept in `cv_proba_`).

        `cv_embeddings` (the shape of the vectors the head reads) replace them in cross-validation: vectors of
        rows an encoder was tuned on, from encoders tuned without them (`tune.CrossFit`)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold

        self._check_params()
        texts = [check_query(t, field=f"X[{i}]", max_chars=MAX_QUERY_CHARS) for i, t in enumerate(as_list(X, "X"))]
        labels = check_labels(as_list(y, "y"))
        if len(texts) != len(labels):
            raise InvalidParameterError("y", f"{len(labels)} labels", f"one label per text of X ({len(texts)})")
        classes = np.array(sorted(set(labels)))
        y_idx = np.searchsorted(classes, labels)
        static_embedder = None
        if self.static_features:
            from ..serving.static_embedding import StaticMiniLMEmbedder

            static_embedder = StaticMiniLMEmbedder(encoder=self.encoder)

        # Training embeds with the serving default (the shipped graph), so heads read the vectors they serve.
        if self.embedder is not None:
            base = self.embedder
        else:
            from ..serving.embedding import serving_embedder

            base = serving_embedder(self.encoder)
        embeddings = base.encode(texts, progress=self.progress)
        if static_embedder is not None:  # both halves are unit vectors, so they weigh alike in a linear head
            embeddings = np.hstack([embeddings, static_embedder.encode(texts, progress=False)]).astype(
                np.float32, copy=False
            )
        if cv_embeddings is not None and np.shape(cv_embeddings) != embeddings.shape:
            raise InvalidParameterError(
                "cv_embeddings", np.shape(cv_embeddings), f"an array of shape {embeddings.shape}"
            )
        cv_vectors = embeddings if cv_embeddings is None else np.asarray(cv_embeddings, dtype=np.float32)
        lexical = LexicalFeatures(n_features=self.n_features).fit(texts)
        design = combine(embeddings, lexical.transform(texts), self.lexical_weight)

        def new_lr() -> LogisticRegression:
            return LogisticRegression(C=self.C, max_iter=self.max_iter)

        folds = min(self.cv, int(np.bincount(y_idx).min()))
        oof_logits = np.zeros((len(texts), len(classes)))
        if folds >= 2:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state)
            for train, test in splitter.split(design, y_idx):
                fold_lex = LexicalFeatures(n_features=self.n_features).fit([texts[i] for i in train])
                fold_design = combine(cv_vectors, fold_lex.transform(texts), self.lexical_weight)
                lr = new_lr().fit(fold_design[train], y_idx[train])
                oof_logits[test] = binary_to_two(np.asarray(fold_design[test] @ lr.coef_.T) + lr.intercept_)
            temperature = _fit_temperature(oof_logits, y_idx)
            # Few held-out errors say little about how sure the head should be: the fitted temperature is pulled
            # toward 1 (no change), by as many pseudo-errors as TEMPERATURE_PRIOR_ERRORS.
            errors = int((oof_logits.argmax(axis=1) != y_idx).sum())
            temperature = float(np.exp(np.log(temperature) * errors / (errors + TEMPERATURE_PRIOR_ERRORS)))
        else:
            temperature = 1.0
        self.cv_proba_ = softmax(oof_logits / temperature) if folds >= 2 else None
        self.cv_labels_ = np.array(labels)

        lr = new_lr().fit(design, y_idx)
        base_dim = embeddings.shape[1] - (static_embedder.dim if static_embedder is not None else 0)
        examples = Examples(list(texts), list(labels), embeddings[:, :base_dim].astype(np.float16))
        ids = (base.id, *([static_embedder.id] if static_embedder is not None else []))
        assert lexical.idf_ is not None, "fit() sets idf_"
        export = HeadExport(
            tuple(classes.tolist()),
            lr.coef_,
            lr.intercept_,
            temperature,
            self.lexical_weight,
            lexical.idf_,
            lexical.ngram_range,
            ids,
            examples,
        )
        served = self.embedder if self.embedder is not None or self.encoder == "base" else base
        self._set_fitted(export, [served, *([static_embedder] if static_embedder is not None else [])])
        return self

    def _set_fitted(self, export: HeadExport, embedders: Sequence[Embedder | None]) -> None:
        """Hold `export` and the served head made from it, with the fitted attributes scikit-learn shows."""
        self.head_ = LinearHead.from_arrays(export, embedders, progress=self.progress)
        self.classes_ = self.head_.classes_
        self.coef_, self.intercept_, self.temperature_ = export.coef, export.intercept, export.temperature
        self.lexical_ = self.head_.lexical_
        self.n_features_in_ = export.coef.shape[1]
        if export.examples is not None:
            ex = export.examples
            self.example_texts_, self.example_labels_, self.example_embeddings_ = ex.texts, ex.labels, ex.embeddings
        if self.static_features:
            self.static_embedder_ = self.head_.static_embedder_

    def export(self) -> HeadExport:
        """The fitted arrays, for `LinearHead.from_arrays` and `model_files.save_model`."""
        check_is_fitted(self, "head_")
        return self.head_.export

    # -- serving (the fitted `head_`) ------------------------------------------------------------------------------
    def predict_proba(
        self, X: Sequence[str], *, embeddings: np.ndarray | None = None, lexical: SparseRows | None = None
    ) -> np.ndarray:
        """Calibrated class probabilities, columns in `classes_` order (`embeddings` and `lexical`: as
        `LinearHead.predict_proba` takes them, when already made)."""
        check_is_fitted(self, "head_")
        return self.head_.predict_proba(X, embeddings=embeddings, lexical=lexical)

    def predict(self, X: Sequence[str]) -> np.ndarray:
        """The most probable label of each query."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def embed(self, X: Sequence[str]) -> np.ndarray:
        """The vectors the head reads for `X`."""
        check_is_fitted(self, "head_")
        return self.head_.embed(X)

    def nearest_examples(self, embedding: np.ndarray, k: int = 8) -> list[tuple[str, str]]:
        """The `k` training (text, label) pairs closest to one query embedding."""
        check_is_fitted(self, "head_")
        return self.head_.nearest_examples(embedding, k)

    # -- persistence ------------------------------------------------------------------------------------------
    def save(
        self,
        directory: str | Path,
        *,
        static: TaskClassifier | None = None,
        heads: dict[str, dict] | None = None,
        stages: Sequence[StageManifest] | None = None,
        **sections: dict | None,
    ) -> Path:
        """Write the model directory (manifest + arrays, no pickle), with an optional static-embedding head.

        `heads` gives each stage's manifest extras (threshold, target, curve); `stages` the cascade's stages in
        order (`model_files.save_model`); `sections` the manifest's `cascade`, `training` and `metrics`.
        """
        from ..model_files.manifest import Calibration, HeadSpec
        from ..model_files.save import save_model

        check_is_fitted(self, "head_")
        extras = heads or {}

        def spec(clf: TaskClassifier, stage: str, file: str, default_threshold: float) -> HeadSpec:
            return HeadSpec(
                stage=stage,
                file=file,
                embedders=list(clf.export().embedder_ids),
                lexical_weight=clf.lexical_weight,
                calibration=Calibration(temperature=clf.temperature_),
                **{"threshold": default_threshold, **extras.get(stage, {})},
            )

        pairs = []
        if static is not None:
            check_is_fitted(static, "head_")
            static_id = ENCODERS[self.encoder].static_id
            if static.export().embedder_ids != (static_id,):
                raise ValueError(f"the static head must embed with {static_id}, not {static.export().embedder_ids}")
            pairs.append((spec(static, STATIC, "static.npz", 1.0), static.export()))
        elif self.static_features:
            raise ValueError(
                "a head with static_features is saved with its static head, whose probes check the "
                "table: clf.save(directory, static=static_head)"
            )
        pairs.append((spec(self, EMBEDDING, "weights.npz", 0.0), self.export()))
        main_id = ENCODERS[self.encoder].embedder_id
        if pairs[-1][1].embedder_ids[0] != main_id:
            raise ValueError(f"the main head must embed with {main_id}, not {pairs[-1][1].embedder_ids[0]}")
        examples = self.export().examples
        if examples is None:
            raise ValueError("this head was exported without its training examples, which a model file keeps")
        params = {k: getattr(self, k) for k in _PARAMS}
        return save_model(directory, pairs, examples, params=params, stages=stages, **sections)

    @classmethod
    def load(cls, directory: str | Path | None = None) -> TaskClassifier:
        """Load a saved model after checking its format and hashes; the shipped model when no path."""
        from ..model_files.load import load_model

        model = load_model(directory)
        params = model.manifest.params
        clf = cls(**{k: params[k] for k in _PARAMS if k in params})
        head = model.heads[EMBEDDING]
        clf._set_fitted(
            model.exports[EMBEDDING], [head.embedder, *([head.static_embedder_] if head.static_features else [])]
        )
        return clf

    # -- helpers ----------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        validate_params(_CONSTRAINTS, {k: getattr(self, k) for k in _PARAMS}, caller="TaskClassifier")


def _fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of held-out logits."""
    from scipy.optimize import minimize_scalar

    def nll(log_t: float) -> float:
        p = softmax(logits / np.exp(log_t))
        return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))
