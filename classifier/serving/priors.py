"""Label priors that follow the traffic: the heads are trained on a balanced mix, real traffic is not.

A head's probabilities carry the training mix π_train. For traffic whose mix is π, Bayes' rule gives
p(y | x) ∝ p_train(y | x) · π(y) / π_train(y) (`adjust`). The mix of unlabeled traffic is estimated by EM over
the head's probabilities (Saerens, Latinne & Decaestecker 2002, `estimate_priors`), then held near the training
mix (`bounded`): shrunk toward it by a pseudo-count and kept within a ratio of it, so that a burst of one kind of
query cannot swing the routing far.

    >>> bounded(np.array([0.9, 0.05, 0.05]), np.array([1/3, 1/3, 1/3]), n=50)   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["MAX_RATIO", "PSEUDO_COUNT", "adjust", "bounded", "check_priors", "estimate_priors", "weights_for"]

PSEUDO_COUNT = 500
"""`bounded` weighs the training mix as this many queries: 50 queries move an estimate a tenth of the way."""
MAX_RATIO = 3.0
"""`bounded` keeps each label's prior within this factor of its training share."""


def check_priors(priors: Mapping[str, float], labels: Sequence[str], *, field: str = "priors") -> dict[str, float]:
    """`priors` normalised to sum to 1: every label named once, each a positive finite number."""
    if not isinstance(priors, Mapping):
        raise InvalidParameterError(field, priors, "a mapping of label to share")
    unknown = sorted(set(priors) - set(labels))
    missing = sorted(set(labels) - set(priors))
    if unknown or missing:
        raise InvalidParameterError(field, dict(priors), f"one share per label of {sorted(labels)} "
                                    f"(unknown: {unknown}, missing: {missing})")  # fmt: skip
    for label, share in priors.items():
        if isinstance(share, bool) or not isinstance(share, int | float) or not np.isfinite(share) or share <= 0:
            raise InvalidParameterError(f"{field}.{label}", share, "a positive number")
    total = float(sum(priors.values()))
    if not np.isfinite(total):
        raise InvalidParameterError(field, dict(priors), "shares whose sum is a finite number")
    return {label: float(priors[label]) / total for label in labels}


def weights_for(priors: Mapping[str, float], train: Mapping[str, float], labels: Sequence[str]) -> np.ndarray:
    """π(y) / π_train(y) per label, in `labels` order."""
    return np.array([priors[lab] / train[lab] for lab in labels], dtype=np.float64)


def adjust(proba: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rows of `proba` re-weighted by `weights` (π / π_train per column) and normalised again."""
    out = np.asarray(proba, dtype=np.float64) * weights
    return out / out.sum(axis=1, keepdims=True)


def estimate_priors(
    proba: np.ndarray,
    train: np.ndarray,
    *,
    sample_weight: np.ndarray | None = None,
    max_iter: int = 1000,
    tol: float = 1e-8,
) -> np.ndarray:
    """The label mix of the queries behind `proba` (rows: a head's probabilities under the training mix `train`),
    by EM: adjust to the current estimate, take the mean of the adjusted rows, repeat."""
    proba = np.asarray(proba, dtype=np.float64)
    train = np.asarray(train, dtype=np.float64)
    if train.ndim != 1 or len(train) == 0 or not np.all(np.isfinite(train)) or np.any(train <= 0):
        raise InvalidParameterError("train", train, "a 1-d array of positive finite shares")
    if proba.ndim != 2 or proba.shape[0] == 0 or proba.shape[1] != len(train):
        raise InvalidParameterError("proba", proba.shape, f"a non-empty (n, {len(train)}) array")
    if not np.all(np.isfinite(proba)) or np.any(proba < 0) or np.any(proba.sum(axis=1) <= 0):
        raise InvalidParameterError("proba", proba, "finite, non-negative rows with a positive sum")
    w = np.ones(len(proba)) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (len(proba),) or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise InvalidParameterError("sample_weight", w, f"{len(proba)} finite weights >= 0, not all 0")
    prior = train.copy()
    for _ in range(max_iter):
        post = adjust(proba, prior / train)
        new = (post * w[:, None]).sum(axis=0) / w.sum()
        if np.abs(new - prior).max() < tol:
            return new
        prior = new
    return prior


def bounded(
    estimate: np.ndarray,
    train: np.ndarray,
    *,
    n: float,
    pseudo_count: float = PSEUDO_COUNT,
    max_ratio: float = MAX_RATIO,
) -> np.ndarray:
    """`estimate` (from `n` queries) shrunk toward `train` as if it had `pseudo_count` queries, then each share
    kept within `max_ratio` of the training one, and normalised."""
    for name, value, low in (("n", n, 0), ("pseudo_count", pseudo_count, 0), ("max_ratio", max_ratio, 1)):
        if not (np.isfinite(value) and value >= low):  # NaN and inf fail too
            raise InvalidParameterError(name, value, f"a finite number >= {low}")
    train = np.asarray(train, dtype=np.float64)
    mixed = (n * np.asarray(estimate, dtype=np.float64) + pseudo_count * train) / max(n + pseudo_count, 1e-12)
    clipped = np.clip(mixed, train / max_ratio, train * max_ratio)
    return clipped / clipped.sum()
