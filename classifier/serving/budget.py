"""An escalation budget held at run time: at most a share of recent queries passed on to stage 3.

The escalation threshold is read on the training sources; on new traffic more queries can fall below it (a
`default`-heavy mix escalates more than the mix it was read on). The budget caps that: a query below the threshold
escalates only when fewer than `share` of the last `window` queries were less confident than it (so the least
confident still escalate first) and fewer than `share` of them escalated (so the cap holds in every window).

Every query the cascade computes counts (a query answered before the MiniLM head counts as fully confident);
cache hits do not, since they cost nothing. The window is this process's own: each worker behind a load
balancer sees a sample of the same traffic, so each holds the share, and so does their sum.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["EscalationBudget"]


class EscalationBudget:
    """Escalate a query below the threshold only while it ranks among the least confident `share` of the last
    `window` queries and fewer than `share` of them escalated.

    Until `warmup` queries have been seen, the threshold alone decides (the window is too short to rank in).

    >>> budget = EscalationBudget(0.1, window=100, warmup=10)
    >>> budget.admit([1.0] * 9 + [0.3])   # warming up: below the threshold is enough
    [False, False, False, False, False, False, False, False, False, True]
    >>> budget.admit([0.5, 0.2])          # 0.5: one of ten recent queries (0.3) was less sure, so not
    [False, True]
    """

    def __init__(self, share: float, *, window: int = 1000, warmup: int = 100) -> None:
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 < share <= 1.0:
            raise InvalidParameterError("share", share, "a number in (0, 1]", caller="EscalationBudget")
        for name, value in (("window", window), ("warmup", warmup)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(name, value, "an int >= 1", caller="EscalationBudget")
        if warmup > window:
            raise InvalidParameterError("warmup", warmup, f"at most window ({window})", caller="EscalationBudget")
        self.share = float(share)
        self.window = window
        self.warmup = warmup
        self._recent: deque[tuple[float, bool]] = deque()
        self._escalated = 0
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
                escalates = wants and self._allows(confidence)
                out.append(escalates)
                self._remember(float(confidence), escalates)
        return out

    def _allows(self, confidence: float) -> bool:
        seen = len(self._recent)
        if seen < self.warmup:
            return True
        allowed = self.share * seen
        if self._escalated >= allowed:
            return False
        less_sure = np.fromiter((c for c, _ in self._recent), float, seen) < confidence
        return int(np.count_nonzero(less_sure)) < allowed

    def _remember(self, confidence: float, escalated: bool) -> None:
        if len(self._recent) == self.window:
            self._escalated -= self._recent.popleft()[1]
        self._recent.append((confidence, escalated))
        self._escalated += escalated

    @property
    def escalated_share(self) -> float:
        """The share of the queries in the window that escalated (0.0 before any)."""
        with self._lock:
            return self._escalated / len(self._recent) if self._recent else 0.0

    def __repr__(self) -> str:
        return f"EscalationBudget(share={self.share}, window={self.window}, warmup={self.warmup})"
