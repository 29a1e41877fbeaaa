"""Routing decisions as Prometheus metrics, on `prometheus_client`'s default registry.

The LiteLLM Proxy's `/metrics` serves that registry once its `prometheus` callback is on; an application with
its own `/metrics` serves it too. `TaskRouter` counts its decisions when the config says `taskrouter.metrics:
prometheus`, and `TaskRouterHook` whenever `prometheus_client` is installed. Responses are counted from LiteLLM's
callbacks, one per LiteLLM call record: a failed attempt before a fallback counts with `status="failure"`.

    taskrouter_decisions_total{label, stage, escalated, requested_pool}
    taskrouter_decision_seconds{stage}                                   (histogram: classification time)
    taskrouter_responses_total{requested_pool, served_pool, fallback, status}
    taskrouter_cost_usd_total{requested_pool, served_pool}
    taskrouter_response_seconds{served_pool}                             (histogram: LiteLLM call time)

Needs `pip install 'taskrouter[metrics]'`.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from classifier.errors import ConfigError
from classifier.results import Decision

from ._litellm import CustomLogger

__all__ = ["PrometheusMetrics", "available", "prometheus"]

log = logging.getLogger("taskrouter.metrics")

_DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_lock = threading.Lock()
_shared: PrometheusMetrics | None = None


def available() -> bool:
    """Whether `prometheus_client` is installed."""
    import importlib.util

    return importlib.util.find_spec("prometheus_client") is not None


def prometheus() -> PrometheusMetrics:
    """The process's metrics on the default registry (created once, then shared: names register only once)."""
    global _shared
    with _lock:
        if _shared is None:
            try:
                import prometheus_client  # noqa: F401
            except ImportError:
                raise ConfigError(
                    "needs prometheus_client: pip install 'taskrouter[metrics]'", path="taskrouter.metrics"
                ) from None
            _shared = PrometheusMetrics()
        return _shared


class PrometheusMetrics(CustomLogger):
    """Decision and response counters; use the shared instance from `prometheus()`."""

    def __init__(self, registry: Any = None) -> None:
        """`registry`: a `prometheus_client.CollectorRegistry` (default: the global one)."""
        from prometheus_client import REGISTRY, Counter, Histogram

        super().__init__()
        self.router_ids: set[str] = set()  # count only these TaskRouters' requests (LiteLLM's callbacks are global)
        reg = registry if registry is not None else REGISTRY
        decision, response = ["label", "stage", "escalated", "requested_pool"], ["requested_pool", "served_pool"]
        self.decisions = Counter("taskrouter_decisions", "Routing decisions of the cascade", decision, registry=reg)
        self.decision_seconds = Histogram(
            "taskrouter_decision_seconds",
            "Time the cascade took to decide",
            ["stage"],
            buckets=_DECISION_BUCKETS,
            registry=reg,
        )
        self.responses = Counter(
            "taskrouter_responses",
            "LiteLLM call records of routed requests",
            [*response, "fallback", "status"],
            registry=reg,
        )
        self.cost = Counter("taskrouter_cost_usd", "Cost of routed requests in USD", response, registry=reg)
        self.response_seconds = Histogram(
            "taskrouter_response_seconds", "Time of LiteLLM calls for routed requests", ["served_pool"], registry=reg
        )

    def decided(self, decision: Decision, pool: str) -> None:
        """Count one decision for the requested `pool`."""
        self.decisions.labels(decision.label, decision.stage, _flag(decision.escalated), pool).inc()
        self.decision_seconds.labels(decision.stage).observe(decision.latency_s)

    # LiteLLM calls these by keyword: the parameter names matter.
    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.record(kwargs, "success")

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self.record(kwargs, "success")

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.record(kwargs, "failure")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.record(kwargs, "failure")

    def record(self, kwargs: dict, status: str) -> None:
        """Count one LiteLLM call record (`kwargs` as LiteLLM passes it to callbacks) of a routed request."""
        try:
            md = (kwargs.get("litellm_params") or {}).get("metadata") or {}
            record = md.get("taskrouter")
            if not isinstance(record, dict) or record.get("router_id") not in self.router_ids:
                return  # not a request routed with metrics on (e.g. the LLM classifier's own call)
            slo = kwargs.get("standard_logging_object") or {}
            requested = str(record["requested_pool"])
            served = str(slo.get("model_group") or md.get("model_group") or requested)
            self.responses.labels(requested, served, _flag(served != requested), status).inc()
            cost = slo.get("response_cost") or 0.0
            if cost:
                self.cost.labels(requested, served).inc(float(cost))
            if isinstance(slo.get("response_time"), (int, float)):
                self.response_seconds.labels(served).observe(float(slo["response_time"]))
        except Exception as exc:  # a malformed callback payload must not reach the caller
            log.warning("metrics: could not record a response (%s)", type(exc).__name__)


def _flag(value: bool) -> str:
    return "true" if value else "false"
