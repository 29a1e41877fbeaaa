"""Fit the scope check (`classifier.serving.scope.Scope`) from the training rows alone:
- `k`, out of `KS`, by how well it separates held-out in-scope rows (each scored against the rows of the other
  cross-validation folds) from pseudo out-of-scope rows (each label's rows scored against the other labels'
  rows only: leave one label out). The measure is the area under the ROC curve.
- the threshold, so that at most `max_fallback` of the held-out in-scope rows fall below it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import InvalidParameterError
from ..serving.scope import Scope, top_k_similarity

__all__ = ["DEFAULT_MAX_FALLBACK", "KS", "fit_scope"]

KS = (1, 3, 5, 10)
"""The neighbour counts `fit_scope` chooses among."""
DEFAULT_MAX_FALLBACK = 0.02
"""The share of held-out in-scope training rows the threshold may send to the fallback label."""


def fit_scope(
    vectors: np.ndarray,
    labels: Sequence[str],
    *,
    max_fallback: float = DEFAULT_MAX_FALLBACK,
    cv: int = 5,
    random_state: int = 0,
) -> Scope | None:
    """The scope check for training rows (`vectors`: MiniLM's, one unit vector per row), chosen out-of-fold.

    None when a label has fewer than two rows (nothing can be held out) or there is a single label."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    from .threshold import choose_threshold

    if isinstance(max_fallback, bool) or not isinstance(max_fallback, (int, float)) or not 0 < max_fallback < 1:
        raise InvalidParameterError("max_fallback", max_fallback, "a float in (0, 1)")
    vecs = np.asarray(vectors, dtype=np.float32)
    y = np.asarray(labels)
    if len(vecs) != len(y):
        raise ValueError(f"vectors and labels have different lengths: {len(vecs)} != {len(y)}")
    names, counts = np.unique(y, return_counts=True)
    folds = min(cv, int(counts.min()))
    if folds < 2 or len(names) < 2:
        return None
    inside = {k: np.empty(len(y), dtype=np.float32) for k in KS}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    for train, test in splitter.split(vecs, y):
        for k, sims in top_k_similarity(vecs[test], vecs[train], KS).items():
            inside[k][test] = sims
    outside = {k: np.empty(len(y), dtype=np.float32) for k in KS}
    for name in names:
        mine = y == name
        for k, sims in top_k_similarity(vecs[mine], vecs[~mine], KS).items():
            outside[k][mine] = sims
    truth = np.r_[np.ones(len(y)), np.zeros(len(y))]
    auc = {str(k): float(roc_auc_score(truth, np.r_[inside[k], outside[k]])) for k in KS}
    k = max(KS, key=lambda k: (auc[str(k)], -k))
    threshold = choose_threshold(inside[k], np.ones(len(y), dtype=bool), max_escalation=max_fallback)
    return Scope(
        k=k,
        threshold=float(threshold),
        target=float(max_fallback),
        auc=auc,
        pseudo_out_of_scope_caught=float((outside[k] < threshold).mean()),
    )
