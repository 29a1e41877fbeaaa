"""An escalation budget held at run time: at most a share of recent queries passed on to stage 3.

The escalation threshold is read on the training sources; on new traffic more queries can fall below it (a
`default`-heavy mix escalates more than the mix it was read on). The budget caps that: after a warm-up, a query
below the threshold escalates only when fewer than `share` of the last `window` queries were less confident than
it (so the least confident still escalate first) and fewer than `share` of them escalated (so no window of that
many queries holds more).

What counts is a cascade run on a query the cascade computes (a query answered before the MiniLM head counts as
fully confident); cache hits do not, since they cost nothing and call no LLM. During the warm-up (the first
`warmup` runs of a process) the threshold alone decides. The window is this process's own: each worker behind a
load balancer sees a sample of the same traffic, so each holds the share, and so does their sum.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["EscalationBudget"]


class EscalationBudget:
    """Escalate a query below the threshold only while it ranks among the least confident `share` of the last
    `window` queries and fewer than `share` of them escalated.

    Until `warmup` queries have been seen (default: a tenth of the window), the threshold alone decides: the window
    is too short to rank in. Thread-safe; one budget may serve several cascades (they then share its window).

    >>> budget = EscalationBudget(0.1, window=100, warmup=10)
    >>> budget.admit([1.0] * 9 + [0.3])   # warming up: below the threshold is enough
    [False, False, False, False, False, False, False, False, False, True]
    >>> budget.admit([0.5, 0.2])          # 0.5: one of ten already escalated, the tenth's allowance; 0.2: of eleven
    [False, True]
    """

    def __init__(self, share: float, *, window: int = 1000, warmup: int | None = None) -> None:
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 < share <= 1.0:
            raise InvalidParameterError("share", share, "a number in (0, 1]", caller="EscalationBudget")
        warmup = max(1, window // 10) if warmup is None and isinstance(window, int) else warmup
        for name, value in (("window", window), ("warmup", warmup)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(name, value, "an int >= 1", caller="EscalationBudget")
        assert isinstance(warmup, int)
        if warmup > window:
            raise InvalidParameterError("warmup", warmup, f"at most window ({window})", caller="EscalationBudget")
        self.share = float(share)
        self.window = window
        self.warmup = warmup
        self._confidence = np.ones(window)  # a ring: slot `_seen % window` is the next to be replaced
        self._escalated = np.zeros(window, dtype=bool)
        self._seen = 0
        self._lock = threading.Lock()

    def admit(self, confidences: Sequence[float], below: Sequence[bool] | None = None) -> list[bool]:
        """For each query in order, whether it escalates; `confidences` are the MiniLM head's (1.0 for a query
        answered before it), `below` whether each is below the threshold (default: confidence < 1)."""
        below = [c < 1.0 for c in confidences] if below is None else list(below)
        if len(below) != len(confidences):
            raise ValueError(f"{len(confidences)} confidences but {len(below)} below-threshold flags")
        out: list[bool] = []
        with self._lock:
            for confidence, wants in zip(confidences, below, strict=True):
                escalates = bool(wants) and self._allows(float(confidence))
                out.append(escalates)
                slot = self._seen % self.window
                self._confidence[slot], self._escalated[slot] = confidence, escalates
                self._seen += 1
        return out

    def _allows(self, confidence: float) -> bool:
        if self._seen < self.warmup:
            return True
        n = min(self._seen, self.window)
        allowed = self.share * n
        if np.count_nonzero(self._escalated[:n]) >= allowed:
            return False
        return int(np.count_nonzero(self._confidence[:n] < confidence)) < allowed

    @property
    def escalated_share(self) -> float:
        """The share of the queries in the window that escalated (0.0 before any)."""
        with self._lock:
            n = min(self._seen, self.window)
            return float(np.count_nonzero(self._escalated[:n]) / n) if n else 0.0

    @property
    def seen(self) -> int:
        """How many queries this budget has ranked."""
        return self._seen

    def __repr__(self) -> str:
        return f"EscalationBudget(share={self.share}, window={self.window}, warmup={self.warmup})"
