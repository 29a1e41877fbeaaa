"""What one routed request was, as typed values: `RoutedRequest` when it starts, `RequestEvent` when it ends.

`TaskRouter` builds a request's `RequestEvent` itself when the request ends (the call returned or raised, or a
stream was read to its end) and hands it to its sinks, `EventSink`s: the telemetry writer (routing/telemetry.py)
and the Prometheus metrics (routing/metrics.py). Nothing is re-read from LiteLLM's callback payloads except the
failed attempts before the end (`routing._litellm.FailedAttempts`, kept by request id).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from classifier.results import Decision

__all__ = ["Answer", "Attempt", "DecisionRecord", "EventSink", "RequestEvent", "RoutedRequest"]


@dataclass(frozen=True)
class Attempt:
    """One LiteLLM deployment call of a request; `error` (the exception's class name) is None for the call that
    answered."""

    pool: str | None
    deployment: str | None
    latency_s: float | None
    error: str | None = None


class Answer(NamedTuple):
    """The deployment call that answered a request, with the tokens it used and its cost."""

    attempt: Attempt
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0


@dataclass(frozen=True)
class RequestEvent:
    """One routed request, from its decision to its end: the one value telemetry and metrics read."""

    request_id: str
    started: datetime
    decision: Decision
    requested_pool: str
    served_pool: str | None
    """The pool whose deployment answered; None when the request failed."""
    deployment: str | None
    """The deployment that answered; None when the request failed."""
    attempts: tuple[Attempt, ...]
    """Every deployment call in order: retries and fallbacks that failed, then the one that answered (if any)."""
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    """From the decision to the end of the request, all attempts included."""
    error: str | None = None
    """The class name of the exception that ended a failed request."""
    query: str | None = None
    """The query text, only when the router's telemetry stores text (not yet redacted)."""

    @property
    def status(self) -> str:
        return "failure" if self.error is not None else "success"

    @property
    def fallback(self) -> bool:
        """Whether a pool other than the requested one answered."""
        return self.served_pool is not None and self.served_pool != self.requested_pool

    @property
    def failed_attempts(self) -> tuple[Attempt, ...]:
        return tuple(a for a in self.attempts if a.error is not None)


@dataclass(frozen=True)
class RoutedRequest:
    """A request once its pool is chosen; `end` and `fail` make its `RequestEvent`."""

    decision: Decision
    requested_pool: str
    router_id: str
    query: str | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    clock: float = field(default_factory=time.perf_counter, repr=False)

    def record(self) -> DecisionRecord:
        """The `metadata["taskrouter"]` dict that LiteLLM's callbacks, the proxy's headers and other loggers read."""
        d = self.decision
        record = DecisionRecord(
            label=d.label,
            stage=d.stage,
            confidence=d.confidence,
            escalated=d.escalated,
            requested_pool=self.requested_pool,
            router_id=self.router_id,
            request_id=self.request_id,
        )
        record.request = self
        return record

    def end(self, answer: Answer, *, failed: tuple[Attempt, ...] = ()) -> RequestEvent:
        """The event of a request that `answer` ended (the deployment call that succeeded) after the `failed` ones."""
        return self._event(
            served_pool=answer.attempt.pool or self.requested_pool,
            deployment=answer.attempt.deployment,
            attempts=(*failed, answer.attempt),
            prompt_tokens=answer.prompt_tokens,
            completion_tokens=answer.completion_tokens,
            cost_usd=answer.cost_usd,
        )

    def fail(self, error: BaseException | str, *, failed: tuple[Attempt, ...] = ()) -> RequestEvent:
        """The event of a request that ended with `error` after the `failed` deployment calls."""
        error_name = error if isinstance(error, str) else type(error).__name__
        return self._event(
            served_pool=None, deployment=None, attempts=failed, prompt_tokens=0, completion_tokens=0, cost_usd=0.0,
            error=error_name,
        )  # fmt: skip

    def _event(self, **outcome: Any) -> RequestEvent:
        """This request's event, ended now with `outcome` (what was served, or the error)."""
        return RequestEvent(
            request_id=self.request_id,
            started=self.started,
            decision=self.decision,
            requested_pool=self.requested_pool,
            latency_s=time.perf_counter() - self.clock,
            query=self.query,
            **outcome,
        )


class DecisionRecord(dict[str, Any]):
    """`metadata["taskrouter"]` as made by a router in this process; `request` is the typed request behind it.

    A client can send a plain dict under the same key: the type tells the two apart."""

    request: RoutedRequest


class EventSink(Protocol):
    """Receives each finished request's event; it must not raise, nor block the request for long."""

    def handle(self, event: RequestEvent) -> None: ...
