"""Label priors that follow the traffic: the heads are trained on a balanced mix, real traffic is not.

A head's probabilities carry the training mix π_train. For traffic whose mix is π, Bayes' rule gives
p(y | x) ∝ p_train(y | x) · π(y) / π_train(y) (`adjust`). The mix of unlabeled traffic is estimated by EM over
the head's probabilities (Saerens, Latinne & Decaestecker 2002, `estimate_priors`), then held near the training
mix (`bounded`): shrunk toward it by a pseudo-count and kept within a ratio of it, so that a burst of one kind of
query cannot swing the routing far.

    >>> bounded(np.array([0.9, 0.05, 0.05]), np.array([1/3, 1/3, 1/3]), n=50)   # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["MAX_RATIO", "PSEUDO_COUNT", "adjust", "bounded", "check_priors", "estimate_priors", "weights_for"]

PSEUDO_COUNT = 500
"""`bounded` weighs the training mix as this many queries: 50 queries move an estimate a tenth of the way."""
MAX_RATIO = 3.0
"""`bounded` keeps each label's prior within this factor of its training share."""


def check_priors(priors: Mapping[str, float], labels: Sequence[str], *, field: str = "priors") -> dict[str, float]:
    """`priors` normalised to sum to 1: every label named once, each a positive finite number (an int, a float or
    another real number type, e.g. NumPy's, that converts to a finite float)."""
    if not isinstance(priors, Mapping):
        raise InvalidParameterError(field, priors, "a mapping of label to share")
    unknown = sorted(set(priors) - set(labels))
    missing = sorted(set(labels) - set(priors))
    if unknown or missing:
        raise InvalidParameterError(field, dict(priors), f"one share per label of {sorted(labels)} "
                                    f"(unknown: {unknown}, missing: {missing})")  # fmt: skip
    shares: dict[str, float] = {}
    for label, share in priors.items():
        value = _finite_float(share)
        if value is None or value <= 0:
            raise InvalidParameterError(f"{field}.{label}", share, "a positive finite number")
        shares[label] = value
    total = sum(shares.values())  # two shares near the largest float overflow to inf here
    if not math.isfinite(total):
        raise InvalidParameterError(field, dict(priors), "shares whose sum is a finite number")
    return {label: shares[label] / total for label in labels}


def _finite_float(value: object) -> float | None:
    """`value` as a finite float; None for a bool, a non-number, NaN, an infinity, or a number beyond every float
    (an int such as 10**400 overflows float(), which is not a TypeError for the caller to see)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, Real):
        return None
    try:
        x = float(value)
    except (OverflowError, TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


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
    kept within `max_ratio` of the training one (`train` normalised), summing to 1.

    Clipping a share and then normalising again would push clipped shares back out of the bound, so the shares are
    clip(c · shrunk, train / max_ratio, train · max_ratio) for the one scale c that makes them sum to 1: what
    clipping and then renormalising the unclipped shares, repeated until none moves, ends at (the training mix is
    within the bound, so there is such a c). A mix already within the bound is only normalised. Shares of 0 (with
    no pseudo-count) that must rise above their floor for the sum to reach 1 rise in training proportions."""
    for name, value, low in (("n", n, 0), ("pseudo_count", pseudo_count, 0), ("max_ratio", max_ratio, 1)):
        if not (np.isfinite(value) and value >= low):  # NaN and inf fail too
            raise InvalidParameterError(name, value, f"a finite number >= {low}")
    train = np.asarray(train, dtype=np.float64)
    if train.ndim != 1 or len(train) == 0 or not np.all(np.isfinite(train)) or np.any(train <= 0):
        raise InvalidParameterError("train", train, "a 1-d array of positive finite shares")
    estimate = np.asarray(estimate, dtype=np.float64)
    if estimate.shape != train.shape or not np.all(np.isfinite(estimate)) or np.any(estimate < 0):
        raise InvalidParameterError("estimate", estimate, f"{len(train)} finite shares >= 0, as `train` has")
    train = train / train.sum()
    mixed = (n * estimate + pseudo_count * train) / max(n + pseudo_count, 1e-12)
    if not mixed.sum() > 0:  # no queries and no pseudo-count, or an all-zero estimate: nothing moves the mix
        return train
    floor, ceiling = train / max_ratio, train * max_ratio
    shares = mixed / mixed.sum()
    if np.all((shares >= floor) & (shares <= ceiling)):
        return shares
    mixed = mixed / mixed.max()  # one scale for all: a tiny estimate's c must not overflow
    some = _moving(mixed, ceiling)
    if ceiling[some].sum() + floor[~some].sum() >= 1.0:
        return _scaled_within(mixed, floor, ceiling)
    # Shares of 0 (an estimate's, with no pseudo-count) would stay at their floor, and the rest cannot fill up to 1
    # even at their ceilings: those stay there, and the shares of 0 take what is left in training proportions (the
    # limit of a vanishing pseudo-count).
    shares = ceiling.copy()
    shares[~some] = _scaled_within(train[~some], floor[~some], ceiling[~some], total=1.0 - ceiling[some].sum())
    return shares


def _scaled_within(weights: np.ndarray, low: np.ndarray, high: np.ndarray, *, total: float = 1.0) -> np.ndarray:
    """clip(c · weights, low, high) for the c >= 0 that makes it sum to `total` (there is one where sum(low) <= total
    <= sum(high), and sum(high[weights > 0]) + sum(low[weights == 0]) >= total).

    The sum is continuous and non-decreasing in c, and linear between the knots where a share meets a bound: the
    first knot at which it reaches `total` closes the segment that holds c, and on that segment the shares at a bound
    stay there, so c fills what they leave."""
    moving = _moving(weights, high)

    def at(c: float) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):  # c may be inf at the last knot; a zero weight stays low
            return np.where(moving, np.clip(c * weights, low, high), low)

    starts, ends = low[moving] / weights[moving], high[moving] / weights[moving]  # where each share moves
    knots = np.unique(np.concatenate([[0.0], starts, ends]))
    sums = np.array([at(c).sum() for c in knots])
    j = int(np.searchsorted(sums, total))  # the first knot whose sum is `total` or more
    if j == 0:  # reached at c = 0: every share at its lower bound (max_ratio 1)
        return at(0.0)
    if j == len(knots):  # every share at a bound and still short of `total`: rounding only
        return at(float(knots[-1]))
    a, b = knots[j - 1], knots[j]
    free = np.zeros(len(weights), dtype=bool)
    free[moving] = (starts <= a) & (ends >= b)  # strictly between its bounds for c in (a, b)
    fixed = at(float(a))[~free].sum()  # the rest sit at the bound they have on the whole segment
    c = (total - fixed) / weights[free].sum() if free.any() else float(b)
    return at(float(min(max(c, a), b)))


def _moving(weights: np.ndarray, high: np.ndarray) -> np.ndarray:
    """The shares a finite scale c moves off their floor: a weight above 0, and not so small that high / weight
    overflows (such a share sits at its floor for every float c)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return (weights > 0) & np.isfinite(high / weights)
