"""Thresholds of the cascade's stages: one sweep over thresholds, and the choice of one from held-out
(out-of-fold) confidences. Training and evaluation both use these."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["GRID", "choose_threshold", "sweep", "threshold_curve"]


GRID = np.round(np.arange(0.0, 1.0001, 0.01), 2)
"""Thresholds 0.00, 0.01, ..., 1.00."""


def sweep(
    confidence: np.ndarray,
    grid: Sequence[float] | np.ndarray = GRID,
    *,
    correct: np.ndarray | None = None,
    predict: Callable[[np.ndarray], Sequence[str]] | None = None,
    truth: Sequence[str] | None = None,
) -> list[dict]:
    """One row per threshold t of a stage that accepts a query when its confidence is at least t.

    Each row has `threshold`, `escalation_rate` (the share passed on, confidence < t) and `accepted_rate`; with
    `correct` (whether each query's label is right), `accepted_error` among the accepted; with `predict`
    (accepted mask -> every query's final label) and `truth`, the `accuracy` and `macro_f1` of those labels (over
    the labels in `truth` or predicted: one the data lacks and nothing predicts is not averaged in as a zero).
    Queries the stage never sees can be given confidence -inf (never accepted) or +inf (always kept).
    """
    conf = np.asarray(confidence, dtype=float)
    rows = []
    for t in grid:
        accepted = conf >= t
        n_acc = int(accepted.sum())
        row = {
            "threshold": float(t),
            "escalation_rate": (len(conf) - n_acc) / len(conf) if len(conf) else 0.0,
            "accepted_rate": n_acc / len(conf) if len(conf) else 0.0,
        }
        if correct is not None:
            row["accepted_error"] = float(1 - np.asarray(correct)[accepted].mean()) if n_acc else 0.0
        if predict is not None and truth is not None:
            from sklearn.metrics import accuracy_score, f1_score

            pred = list(predict(accepted))
            row["accuracy"] = float(accuracy_score(truth, pred))
            row["macro_f1"] = float(f1_score(truth, pred, average="macro", zero_division=0))
        rows.append(row)
    return rows


def threshold_curve(confidence: np.ndarray, correct: np.ndarray, grid: np.ndarray | None = None) -> list[dict]:
    """For each threshold t: share escalated (confidence < t) and error rate among the accepted rest."""
    rows = sweep(confidence, GRID if grid is None else grid, correct=correct)
    return [{k: r[k] for k in ("threshold", "escalation_rate", "accepted_error")} for r in rows]


def choose_threshold(
    confidence: np.ndarray, correct: np.ndarray, *, max_escalation: float | None = None, max_error: float | None = None
) -> float:
    """The threshold meeting one target: at most `max_escalation` escalated, or at most `max_error` accepted error.

    With `max_escalation`, the highest threshold that escalates no more than that share; with `max_error`, the
    lowest threshold whose accepted error is within it. Confidences must be numbers (a NaN would sort last and
    could become the threshold, which then accepts nothing), one per `correct` flag.
    """
    if (max_escalation is None) == (max_error is None):
        raise ValueError("give exactly one of max_escalation or max_error")
    conf = np.sort(np.asarray(confidence, dtype=float))
    if conf.ndim != 1 or np.isnan(conf).any():
        raise InvalidParameterError("confidence", confidence, "a 1-d array of numbers (no NaN)")
    if np.shape(correct) != conf.shape:
        raise InvalidParameterError("correct", np.shape(correct), f"one flag per confidence, shape {conf.shape}")
    if len(conf) == 0:  # nothing held out: escalate nothing, or (error target) accept nothing unproven
        return 0.0 if max_escalation is not None else 1.0 + 1e-9
    if max_escalation is not None:
        if not 0 <= max_escalation <= 1:
            raise ValueError(f"max_escalation must be in [0, 1], got {max_escalation}")
        k = int(np.floor(max_escalation * len(conf)))  # escalate at most k queries
        return float(conf[k]) if k < len(conf) else 1.0 + 1e-9
    assert max_error is not None  # exactly one target was given, and it is not max_escalation
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
