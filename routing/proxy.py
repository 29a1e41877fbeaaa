"""taskrouter inside the LiteLLM Proxy: a request for model "auto" goes to the pool the cascade picks.

Register an instance as a proxy callback. A module next to the proxy's `config.yaml`, say `taskrouter_hook.py`,
holds `hook = TaskRouterHook()`, and the config names it: `litellm_settings: {callbacks: taskrouter_hook.hook}`.

For a chat request whose model is `auto`, the hook classifies the last user message (together with the earlier
user turns, exactly as `TaskRouter.decide` does), replaces the model with the label's pool, records the decision
in `data["metadata"]["taskrouter"]` (the dict `TaskRouter` sends, so every LiteLLM callback sees it) and returns
it to the client in `x-taskrouter-*` response headers; the pool that finally served is LiteLLM's own
`x-litellm-model-group` header. A request naming a pool is passed on untouched.

The label→pool map is the `taskrouter:` section of a routing config (`$TASKROUTER_CONFIG`, or the `config`
argument). Only its `model_list` and `taskrouter` sections are read, so it may be the proxy's own config.yaml.
The cascade is loaded on the first "auto" request, once per worker process, and always runs in a worker
thread so the proxy's event loop keeps serving other requests meanwhile.

This module imports LiteLLM's proxy types and needs the proxy's packages (`pip install 'taskrouter[proxy]'`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from classifier.cascade import Cascade
from classifier.errors import ConfigError, QueryError

from . import _litellm
from ._litellm import CustomLogger, remove_callback
from .config import Config, load_config, read_yaml
from .conversation import Conversation, read_history, read_messages
from .metrics import PrometheusMetrics, available, prometheus
from .router import TaskRouter

__all__ = ["DEFAULT_MODEL", "HEADER_PREFIX", "TaskRouterHook", "decision_headers", "load_routing_config"]

DEFAULT_MODEL = "auto"
HEADER_PREFIX = "x-taskrouter-"
_SECTIONS = ("model_list", "taskrouter")


def load_routing_config(source: str | Path | dict | Config | None = None) -> Config:
    """The routing config's `model_list` and `taskrouter` sections (other sections, e.g. the proxy's, are ignored).

    With no source, `$TASKROUTER_CONFIG` names the file.
    """
    if isinstance(source, Config):
        return source
    if source is None:
        source = os.environ.get("TASKROUTER_CONFIG") or None
        if source is None:
            raise ConfigError("no routing config: pass config=PATH to TaskRouterHook or set TASKROUTER_CONFIG")
    where = None
    if isinstance(source, (str, Path)):
        where, source = str(source), read_yaml(source)
    if not isinstance(source, dict):
        raise ConfigError("a config must be a mapping", path=where)
    try:
        config = load_config({key: source[key] for key in _SECTIONS if key in source})
    except ConfigError as exc:
        if where is None:
            raise
        raise ConfigError(str(exc), path=where) from None
    return config.model_copy(update={"source": where})  # a relative classifier.model is read from the file's folder


def decision_headers(record: Mapping[str, Any]) -> dict[str, str]:
    """The `x-taskrouter-*` response headers for a `metadata["taskrouter"]` record (absent fields give none)."""
    names = {"label": "label", "stage": "stage", "requested_pool": "pool"}
    headers = {HEADER_PREFIX + name: str(record[key]) for key, name in names.items() if record.get(key) is not None}
    if isinstance(record.get("escalated"), bool):
        headers[HEADER_PREFIX + "escalated"] = "true" if record["escalated"] else "false"
    if isinstance(record.get("confidence"), (int, float)):
        headers[HEADER_PREFIX + "confidence"] = f"{float(record['confidence']):.4f}"
    return headers


class TaskRouterHook(CustomLogger):
    """A LiteLLM Proxy callback that sends requests for `model` (default "auto") to the cascade's pool.

    LiteLLM calls `async_pre_call_hook` only when the registered class itself defines it: register this class's
    instances, or redefine the hooks in a subclass.
    """

    def __init__(
        self,
        config: str | Path | dict | Config | None = None,
        *,
        model: str = DEFAULT_MODEL,
        cascade: Cascade | None = None,
        prometheus: bool | None = None,
    ) -> None:
        """`prometheus`: count decisions on the proxy's `/metrics` (routing/metrics.py); None = when installed."""
        super().__init__()
        self.config = config
        self.model = model
        self.cascade = cascade
        self.prometheus = prometheus
        self._lock = threading.Lock()
        self._decider: TaskRouter | None = None
        self._metrics: PrometheusMetrics | None = None

    # -- LiteLLM Proxy hooks ----------------------------------------------------------------------------------
    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        """Rewrite `model` to the chosen pool and record the decision; other requests pass on as they came.

        `metadata["taskrouter"]` is reserved: a client's own value is dropped, so it never poses as a decision.
        """
        metadata = data.get("metadata")
        if data.get("model") != self.model:
            if isinstance(metadata, dict) and not isinstance(metadata.get("taskrouter"), _Record):
                metadata.pop("taskrouter", None)  # reserved for decisions made in this process (headers, telemetry)
            return data
        try:
            conversation = read_messages(data.get("messages"))
            pool, record = await asyncio.to_thread(self.decide_conversation, conversation)
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=f"model {self.model!r}: {exc}") from None
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        metadata["taskrouter"] = record
        data["model"] = pool
        return data

    async def async_post_call_response_headers_hook(
        self,
        data: dict,
        user_api_key_dict: Any,
        response: Any,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        """The decision as `x-taskrouter-*` headers (success and failure, streaming or not)."""
        record = (data.get("metadata") or {}).get("taskrouter") if isinstance(data, dict) else None
        return decision_headers(record) if isinstance(record, dict) else None

    # LiteLLM calls these by keyword: the parameter names matter.
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        if self._metrics is not None:
            self._metrics.record(kwargs, "success")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        if self._metrics is not None:
            self._metrics.record(kwargs, "failure")

    def close(self) -> None:
        """Close the router this hook loaded (its threads, callbacks and metrics series); a later request loads
        another."""
        with self._lock:
            decider, self._decider, self._metrics = self._decider, None, None
        if decider is not None:
            decider.close()

    # -- classification (runs in a worker thread) -------------------------------------------------------------
    def decide(self, query: str, history: list[dict] | None = None) -> tuple[str, dict]:
        """(pool, `metadata["taskrouter"]` record) for a query after `history`; loads the cascade on first use."""
        return self.decide_conversation(read_history(history, query))

    def decide_conversation(self, conversation: Conversation) -> tuple[str, dict]:
        """(pool, `metadata["taskrouter"]` record) for a conversation. Blocking: run it in a worker thread."""
        decider = self._load()
        pool, record = decider.plan(decider.decide_conversation(conversation), conversation.query)
        return pool, _Record(record)

    def _load(self) -> TaskRouter:
        with self._lock:
            if self._decider is None:
                # Inside the proxy, its own Router serves the request and stage 3: taskrouter only decides.
                # Outside it (tests, scripts) TaskRouter builds a Router from the config's model_list.
                self._decider = TaskRouter(
                    load_routing_config(self.config), cascade=self.cascade, router=_litellm.proxy_router()
                )
                decider = self._decider
                if decider.metrics is None and (self.prometheus or (self.prometheus is None and available())):
                    decider.metrics = prometheus(decider.id, decider.config.taskrouter.name)
                # This hook forwards LiteLLM's events to the decider's metrics itself (it is registered from the
                # proxy's start on), so they must not be a LiteLLM callback too. Only the decider's own object is
                # unregistered: other routers of the process keep theirs.
                if decider.metrics is not None:
                    remove_callback(decider.metrics)
                self._metrics = decider.metrics
            return self._decider


class _Record(dict):
    """A decision record made by a hook, told apart from a `metadata["taskrouter"]` a client sent (a plain dict)."""
