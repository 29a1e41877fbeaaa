"""Routing decisions as Prometheus metrics, on `prometheus_client`'s default registry.

The LiteLLM Proxy's `/metrics` serves that registry once its `prometheus` callback is on; an application with
its own `/metrics` serves it too. `TaskRouter` counts its decisions when the config says `taskrouter.metrics:
prometheus`, and `TaskRouterHook` whenever `prometheus_client` is installed. Responses are counted from the
router's `RequestEvent`s (routing/events.py), one per deployment call: a failed attempt before a retry or
fallback counts with `status="failure"`.

    taskrouter_decisions_total{router, label, stage, escalated, requested_pool}
    taskrouter_held_back_total{router, label, requested_pool}            (kept from stage 3 by `max_escalation`)
    taskrouter_decision_seconds{router, stage}                           (histogram: classification time)
    taskrouter_responses_total{router, requested_pool, served_pool, fallback, status}
    taskrouter_cost_usd_total{router, requested_pool, served_pool}
    taskrouter_response_seconds{router, served_pool}                     (histogram: LiteLLM call time)

Each router has its own `PrometheusMetrics`, which its router hands its decisions and events to, counted under
the `router` label (`taskrouter.name`). The metric families are created once per registry and
shared; routers with the same name share their series, which go when the last of them closes.

Needs `pip install 'taskrouter[metrics]'`.
"""

from __future__ import annotations

import threading
from collections import Counter as Tally
from typing import Any

from classifier.errors import ConfigError
from classifier.results import Decision

from .events import RequestEvent

__all__ = ["PrometheusMetrics", "available", "prometheus"]

_DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_lock = threading.Lock()
_families: dict[int, _Families] = {}  # id(registry) -> its taskrouter_* families (names register once per registry)


def available() -> bool:
    """Whether `prometheus_client` is installed."""
    import importlib.util

    return importlib.util.find_spec("prometheus_client") is not None


def prometheus(router_id: str, name: str = "default", registry: Any = None) -> PrometheusMetrics:
    """Metrics for one router; a ConfigError naming the extra when `prometheus_client` is missing."""
    if not available():
        raise ConfigError("needs prometheus_client: pip install 'taskrouter[metrics]'", path="taskrouter.metrics")
    return PrometheusMetrics(router_id, name, registry=registry)


class _Families:
    """The taskrouter_* metric families of one registry, and how many open routers use each `router` label."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.registry = registry
        self.users: Tally[str] = Tally()
        decision, response = ["router", "label", "stage", "escalated", "requested_pool"], ["router", "requested_pool"]
        reg = registry
        self.decisions = Counter("taskrouter_decisions", "Routing decisions of the cascade", decision, registry=reg)
        self.held_back = Counter(
            "taskrouter_held_back",
            "Decisions below the threshold kept from stage 3 by the escalation budget",
            ["router", "label", "requested_pool"],
            registry=reg,
        )
        self.decision_seconds = Histogram(
            "taskrouter_decision_seconds",
            "Time the cascade took to decide",
            ["router", "stage"],
            buckets=_DECISION_BUCKETS,
            registry=reg,
        )
        self.responses = Counter(
            "taskrouter_responses",
            "LiteLLM call records of routed requests",
            [*response, "served_pool", "fallback", "status"],
            registry=reg,
        )
        self.cost = Counter(
            "taskrouter_cost_usd", "Cost of routed requests in USD", [*response, "served_pool"], registry=reg
        )
        self.response_seconds = Histogram(
            "taskrouter_response_seconds",
            "Time of LiteLLM calls for routed requests",
            ["router", "served_pool"],
            registry=reg,
        )

    @classmethod
    def acquire(cls, registry: Any, name: str) -> _Families:
        with _lock:
            families = _families.get(id(registry))
            if families is None:
                families = _families[id(registry)] = cls(registry)
            families.users[name] += 1
            return families

    def release(self, name: str) -> None:
        """One router named `name` closed; its series go with the last one."""
        with _lock:
            self.users[name] -= 1
            if self.users[name] > 0:
                return
            del self.users[name]
            families = (
                self.decisions,
                self.held_back,
                self.decision_seconds,
                self.responses,
                self.cost,
                self.response_seconds,
            )
            for family in families:
                family.remove_by_labels({"router": name})


class PrometheusMetrics:
    """One router's decision and response counters (an `EventSink`)."""

    def __init__(self, router_id: str, name: str = "default", *, registry: Any = None) -> None:
        """`router_id`: the router's id; `name`: the `router` label; `registry`: a
        `prometheus_client.CollectorRegistry` (default: the global one)."""
        from prometheus_client import REGISTRY

        self.router_id = router_id
        self.name = name
        self.families = _Families.acquire(registry if registry is not None else REGISTRY, name)
        self.closed = False
        self._close_lock = threading.Lock()

    def close(self) -> None:
        """Stop counting; the `router` label's series are removed when no other open router uses it. Idempotent."""
        with self._close_lock:  # two threads closing at once must not release the name twice
            if self.closed:
                return
            self.closed = True
        self.families.release(self.name)

    def decided(self, decision: Decision, pool: str) -> None:
        """Count one decision for the requested `pool`."""
        if self.closed:
            return
        f = self.families
        f.decisions.labels(self.name, decision.label, decision.stage, _flag(decision.escalated), pool).inc()
        if decision.held_back:
            f.held_back.labels(self.name, decision.label, pool).inc()
        f.decision_seconds.labels(self.name, decision.stage).observe(decision.latency_s)

    def handle(self, event: RequestEvent) -> None:
        """Count a finished request: one response per deployment call, and the cost of the one that answered."""
        if self.closed:
            return
        f = self.families
        requested = event.requested_pool
        for attempt in event.attempts or (None,):  # a request that failed before any call counts once
            pool = attempt.pool if attempt is not None and attempt.pool else requested
            failed = attempt is None or attempt.error is not None
            status = "failure" if failed else "success"
            f.responses.labels(self.name, requested, pool, _flag(pool != requested), status).inc()
            if attempt is not None and attempt.latency_s is not None:
                f.response_seconds.labels(self.name, pool).observe(attempt.latency_s)
        if event.served_pool is not None and event.cost_usd:
            f.cost.labels(self.name, requested, event.served_pool).inc(event.cost_usd)


def _flag(value: bool) -> str:
    return "true" if value else "false"
