"""taskrouter inside the LiteLLM Proxy: a request for model "auto" goes to the pool the cascade picks.

Register an instance as a proxy callback. A module next to the proxy's `config.yaml`, say `taskrouter_hook.py`,
holds `hook = TaskRouterHook()`, and the config names it: `litellm_settings: {callbacks: taskrouter_hook.hook}`.

For a chat request whose model is `auto`, the hook classifies the last user message (together with the earlier
user turns, exactly as `TaskRouter.decide` does), replaces the model with the label's pool, records the decision
in `data["metadata"]["taskrouter"]` (the dict `TaskRouter` sends, so every LiteLLM callback sees it) and returns
it to the client in `x-taskrouter-*` response headers; the pool that finally served is LiteLLM's own
`x-litellm-model-group` header. A request naming a pool is passed on untouched.

When the router has telemetry or metrics, the hook hands each "auto" request's `RequestEvent` to it when the
request ends: before the response is sent (LiteLLM's post-call success and failure hooks), or for a stream when
LiteLLM logs its success after the last chunk. Failed attempts before a fallback come from LiteLLM's failure
callback, which the hook forwards to the router's `FailedAttempts`.

The label→pool map is the `taskrouter:` section of a routing config (`$TASKROUTER_CONFIG`, or the `config`
argument). Only its `model_list` and `taskrouter` sections are read, so it may be the proxy's own config.yaml.
The cascade is loaded on the first "auto" request, once per worker process, and always runs in a worker
thread so the proxy's event loop keeps serving other requests meanwhile.

This module imports LiteLLM's proxy types and needs the proxy's packages (`pip install 'taskrouter[proxy]'`).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import HTTPException

from classifier.errors import ConfigError, QueryError
from classifier.serving.cascade import Cascade

from . import _litellm, metrics
from ._litellm import CustomLogger, remove_callback
from .config import CONFIG_ENV, Config, config_from_env, load_config, load_routing_sections
from .conversation import Conversation, read_history, read_messages
from .events import Answer, DecisionRecord, RoutedRequest
from .router import TaskRouter, check_settings_apply_to

__all__ = ["DEFAULT_MODEL", "HEADER_PREFIX", "TaskRouterHook", "decision_headers", "load_routing_config"]

DEFAULT_MODEL = "auto"
HEADER_PREFIX = "x-taskrouter-"
_MAX_OPEN = 10_000
"""Requests whose end the hook waits for, at most (one the proxy never ends, e.g. a client gone, is forgotten)."""


def load_routing_config(source: str | Path | dict | Config | None = None) -> Config:
    """The routing config's `model_list` and `taskrouter` sections (other sections, e.g. the proxy's, are ignored).

    With no source, `$TASKROUTER_CONFIG` names the file.
    """
    if isinstance(source, Config):
        return load_config(source)  # checked as a file would be
    if source is None:
        source = config_from_env()
        if source is None:
            raise ConfigError(f"no routing config: pass config=PATH to TaskRouterHook or set {CONFIG_ENV}")
    return load_routing_sections(source)


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
        """`prometheus`: count decisions on the proxy's `/metrics` (routing/metrics.py); None = when installed.
        True without prometheus_client installed is a ConfigError here, at the proxy's start."""
        super().__init__()
        self.config = load_routing_config(config)  # at the door: a bad config fails the proxy's start, not a request
        if prometheus and not metrics.available():  # else each request would fail building the router
            raise ConfigError(
                "needs prometheus_client: pip install 'taskrouter[metrics]' (or prometheus=None: when installed)",
                path="TaskRouterHook(prometheus=True)",
            )
        if cascade is not None:
            check_settings_apply_to(self.config.taskrouter.classifier)
        self.model = model
        self.cascade = cascade
        self.prometheus = prometheus
        self._lock = threading.Lock()
        self._decider: TaskRouter | None = None
        self._proxy_loop: asyncio.AbstractEventLoop | None = None
        """The proxy's event loop, seen by the first `auto` request: stage 3 asks the proxy's router on it."""
        self._pool = ThreadPoolExecutor(thread_name_prefix="taskrouter-decide")
        """The threads decisions run on. Not the loop's default pool: stage 3 waits there for the proxy's router,
        whose `acompletion` itself needs a thread of that pool, so enough waiting decisions would starve it."""
        self._open: OrderedDict[str, RoutedRequest] = OrderedDict()  # request id -> request, until it ends
        self._open_lock = threading.Lock()  # not `_lock`, which a first request holds while the cascade loads

    # -- LiteLLM Proxy hooks ----------------------------------------------------------------------------------
    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> dict:
        """Rewrite `model` to the chosen pool and record the decision; other requests pass on as they came.

        `metadata["taskrouter"]` is reserved: a client's own value is dropped, so it never poses as a decision.
        """
        metadata = data.get("metadata")
        if data.get("model") != self.model:
            if isinstance(metadata, dict) and not isinstance(metadata.get("taskrouter"), DecisionRecord):
                metadata.pop("taskrouter", None)  # reserved for decisions made in this process (headers, telemetry)
            return data
        loop = asyncio.get_running_loop()
        self._proxy_loop = self._proxy_loop or loop  # the proxy runs one loop for its lifetime
        try:  # on the hook's own threads: stage 3's `acompletion` needs the loop's default pool free (see __init__)
            pool, record = await loop.run_in_executor(self._pool, self._decide_messages, data.get("messages"))
        except QueryError as exc:
            raise HTTPException(status_code=400, detail=f"model {self.model!r}: {exc}") from None
        if not isinstance(metadata, dict):
            metadata = data["metadata"] = {}
        metadata["taskrouter"] = record
        data["model"] = pool
        if self._decider is not None and self._decider.sinks:
            with self._open_lock:
                self._open[record.request.request_id] = record.request
                while len(self._open) > _MAX_OPEN:
                    self._open.popitem(last=False)
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

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> None:
        """A request that LiteLLM answered (not a stream): its event, before the response goes to the client."""
        request = self._ended(data)
        if request is not None and self._decider is not None:
            self._end(self._decider, request, _litellm.answer_of(response))

    async def async_post_call_failure_hook(
        self, request_data: dict, original_exception: Exception, user_api_key_dict: Any, traceback_str: Any = None
    ) -> None:
        """A request that failed (all fallbacks included): its event."""
        request = self._ended(request_data)
        decider = self._decider
        if request is not None and decider is not None:
            decider.record(request.fail(original_exception, failed=decider.attempts.take(request.request_id)))

    # LiteLLM calls these by keyword: the parameter names matter.
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        if kwargs.get("stream") is True:  # a stream ends here, after its last chunk went out
            request = self._ended({"metadata": {"taskrouter": _litellm.routed_record(kwargs)}})
            if request is not None and self._decider is not None:
                self._end(self._decider, request, _litellm.answer_of_log(kwargs))

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        if self._decider is not None:
            self._decider.attempts.add(kwargs, start_time, end_time)

    def _ended(self, data: Any) -> RoutedRequest | None:
        """The open request that `data` (a request's data, with its metadata) belongs to, no longer open."""
        metadata = (data.get("metadata") if isinstance(data, dict) else None) or {}
        record = metadata.get("taskrouter") if isinstance(metadata, dict) else None
        if not isinstance(record, dict):
            return None
        with self._open_lock:
            return self._open.pop(str(record.get("request_id")), None)

    @staticmethod
    def _end(decider: TaskRouter, request: RoutedRequest, answer: Answer) -> None:
        decider.record(request.end(answer, failed=decider.attempts.take(request.request_id)))

    def close(self) -> None:
        """Close the router this hook loaded (its threads, callbacks and metrics series) and the threads decisions
        run on; a later request loads another router, on new threads."""
        with self._lock, self._open_lock:
            decider, self._decider = self._decider, None
            self._open.clear()
            pool, self._pool = self._pool, ThreadPoolExecutor(thread_name_prefix="taskrouter-decide")
        pool.shutdown(wait=False)  # its threads end once the decisions already running on them return
        if decider is not None:
            decider.close()

    # -- classification (runs in a worker thread) -------------------------------------------------------------
    def decide(self, query: str, history: list[dict] | None = None) -> tuple[str, DecisionRecord]:
        """(pool, `metadata["taskrouter"]` record) for a query after `history`; loads the cascade on first use."""
        return self.decide_conversation(read_history(history, query))

    def _decide_messages(self, messages: object) -> tuple[str, DecisionRecord]:
        """`decide_conversation` for a request's messages (read here, off the loop: they may be long)."""
        return self.decide_conversation(read_messages(messages))

    def decide_conversation(self, conversation: Conversation) -> tuple[str, DecisionRecord]:
        """(pool, `metadata["taskrouter"]` record) for a conversation. Blocking: run it in a worker thread."""
        decider = self._load()
        return decider.plan(decider.decide_conversation(conversation), conversation.query)

    def _load(self) -> TaskRouter:
        with self._lock:
            if self._decider is None:
                # Inside the proxy, its own Router serves the request and stage 3: taskrouter only decides.
                # Outside it (tests, scripts) TaskRouter builds a Router from the config's model_list.
                router = _litellm.proxy_router()
                loop = self._proxy_loop if router is not None else None
                decider = TaskRouter(self.config, cascade=self.cascade, router=router, router_loop=loop)
                try:  # built whole before any request sees it; a failure part-way closes what was opened
                    wanted = self.prometheus or (self.prometheus is None and metrics.available())
                    if decider.metrics is None and wanted:
                        decider.metrics = metrics.prometheus(decider.id, decider.config.taskrouter.name)
                    # This hook forwards LiteLLM's failed attempts to the decider itself (it is registered from
                    # the proxy's start on), so the decider's own callback must not get them too. Only the
                    # decider's callback is unregistered: other routers of the process keep theirs.
                    remove_callback(decider.attempts)
                except BaseException:
                    decider.close()
                    raise
                self._decider = decider
            return self._decider
