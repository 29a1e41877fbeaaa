"""Immutable results: one stage's answer, and the cascade's decision with its trail."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["EMBEDDING", "HEURISTIC", "LLM", "SCOPE", "STAGES", "STATIC", "Decision", "StageResult"]

HEURISTIC, SCOPE, STATIC, EMBEDDING, LLM = STAGES = ("heuristic", "scope", "static", "embedding", "llm")
"""The built-in stages' names, cheapest first: the one place they are spelled. A model's manifest lists the stages
it has, in order (`cascade.stages`); a stage added by a module of its own has a name of its own."""


@dataclass(frozen=True)
class StageResult:
    """What one stage said: `label=None` means it abstained; `note` says why (rule name, error, ...)."""

    stage: str
    label: str | None
    confidence: float | None
    latency_s: float
    note: str = ""


BUDGET_SPENT = "below threshold; escalation budget spent"
"""The note on the MiniLM head's result when the escalation budget kept its guess (`classifier.serving.budget`)."""


@dataclass(frozen=True)
class Decision:
    """The cascade's answer for one query."""

    label: str
    stage: str
    confidence: float | None
    escalated: bool
    trail: tuple[StageResult, ...] = field(default_factory=tuple)
    priors: tuple[tuple[str, float], ...] | None = None
    """The label mix the heads' probabilities were re-weighted to (`Cascade.with_priors`); None: as trained."""

    @property
    def latency_s(self) -> float:
        """Total time spent in all stages."""
        return sum(s.latency_s for s in self.trail)

    @property
    def held_back(self) -> bool:
        """Below the threshold, but the escalation budget was spent: the head's guess stands, not escalated."""
        return bool(self.trail) and self.trail[-1].note == BUDGET_SPENT

    def stage_result(self, stage: str) -> StageResult | None:
        """The trail entry of `stage`, if the query reached it."""
        return next((s for s in self.trail if s.stage == stage), None)

    def to_dict(self) -> dict:
        """A JSON-ready form (for logs, telemetry and headers)."""
        return {
            "label": self.label,
            "stage": self.stage,
            "confidence": self.confidence,
            "escalated": self.escalated,
            "held_back": self.held_back,
            "trail": [s.__dict__ for s in self.trail],
            "priors": dict(self.priors) if self.priors is not None else None,
        }
