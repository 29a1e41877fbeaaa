"""Choose the stage-2 escalation threshold from held-out (out-of-fold) confidences."""

from __future__ import annotations

import numpy as np

__all__ = ["choose_threshold", "threshold_curve"]


def threshold_curve(confidence: np.ndarray, correct: np.ndarray, grid: np.ndarray | None = None) -> list[dict]:
    """For each threshold t: share escalated (confidence < t) and error rate among the accepted rest."""
    grid = np.round(np.arange(0.0, 1.0001, 0.01), 2) if grid is None else grid
    rows = []
    for t in grid:
        accepted = confidence >= t
        n_acc = int(accepted.sum())
        rows.append({"threshold": float(t), "escalation_rate": float(1 - accepted.mean()) if len(accepted) else 0.0,
                     "accepted_error": float(1 - correct[accepted].mean()) if n_acc else 0.0})
    return rows


def choose_threshold(confidence: np.ndarray, correct: np.ndarray, *, max_escalation: float | None = None,
                     max_error: float | None = None) -> float:
    """The threshold meeting one target: at most `max_escalation` escalated, or at most `max_error` accepted error.

    With `max_escalation`, the highest threshold that escalates no more than that share; with `max_error`, the
    lowest threshold whose accepted error is within it.
    """
    if (max_escalation is None) == (max_error is None):
        raise ValueError("give exactly one of max_escalation or max_error")
    conf = np.sort(np.asarray(confidence, dtype=float))
    if len(conf) == 0:  # nothing held out: escalate nothing, or (error target) accept nothing unproven
        return 0.0 if max_escalation is not None else 1.0 + 1e-9
    if max_escalation is not None:
        if not 0 <= max_escalation <= 1:
            raise ValueError(f"max_escalation must be in [0, 1], got {max_escalation}")
        k = int(np.floor(max_escalation * len(conf)))  # escalate at most k queries
        return float(conf[k]) if k < len(conf) else 1.0 + 1e-9
    if not 0 <= max_error <= 1:
        raise ValueError(f"max_error must be in [0, 1], got {max_error}")
    order = np.argsort(confidence, kind="stable")
    c, ok = np.asarray(confidence, dtype=float)[order], np.asarray(correct, dtype=bool)[order]
    # error among items i..n-1 for each start i
    wrong_suffix = np.cumsum((~ok)[::-1])[::-1]
    counts = np.arange(len(c), 0, -1)
    for i in range(len(c)):
        if wrong_suffix[i] / counts[i] <= max_error and (i == 0 or c[i] > c[i - 1]):
            return float(c[i])
    return 1.0 + 1e-9
