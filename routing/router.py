"""`TaskRouter`: the cascade in front of a LiteLLM Router, built once and reused."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

from classifier.cascade import Cascade
from classifier.data import check_query
from classifier.errors import ConfigError, QueryError, TaskRouterError
from classifier.llm import LLMClassifier
from classifier.results import Decision

from . import _litellm
from .config import Config, load_config
from .results import RoutedCompletion, RoutedStream

__all__ = ["TaskRouter"]

_RESERVED = ("model", "messages")


class TaskRouter:
    """Classify a query, pick its pool, and complete it through the LiteLLM Router.

    >>> tr = TaskRouter("routing/configs/demo.yaml")       # doctest: +SKIP
    >>> tr.complete("integrate x^2 from 0 to 3").served_pool  # doctest: +SKIP
    'math'
    """

    def __init__(self, config: str | Config | dict | None = None, *, cascade: Cascade | None = None,
                 router: _litellm.Router | None = None) -> None:
        """`router`: an existing LiteLLM Router to use (e.g. the LiteLLM Proxy's); by default one is built."""
        self.config = load_config(config)
        self.router = router if router is not None else _litellm.build_router(self.config)
        settings = self.config.taskrouter
        base = cascade or Cascade.load(self._model_path(), threshold=settings.classifier.threshold,
                                        static=settings.classifier.static,
                                        static_threshold=settings.classifier.static_threshold)
        self.cascade = base.with_llm(self.llm_stage(base.labels)) if settings.llm_classifier.alias else base
        # LiteLLM 1.110 selects cost-based deployments only on its async path (the sync path answers "No
        # deployments available"), so when any pool uses it, sync calls run on a private event loop.
        self._loop = _LoopThread() if self.config.uses_strategy("cost-based-routing") else None
        self.metrics = None
        if settings.metrics == "prometheus":
            from .metrics import prometheus

            self.metrics = prometheus()
            self.metrics.router_ids.add(hex(id(self)))
            _litellm.add_callback(self.metrics)  # shared by every TaskRouter: registered once
        self.telemetry = None
        if settings.telemetry.url:
            from .telemetry import TelemetryCallback, TelemetryStore

            self.telemetry = TelemetryCallback(TelemetryStore(settings.telemetry.url),
                                               store_text=settings.telemetry.store_text, router_id=hex(id(self)))
            _litellm.add_callback(self.telemetry)

    def close(self) -> None:
        """Flush telemetry and unregister this router's callback."""
        if self.telemetry is not None:
            self.telemetry.flush()
            _litellm.remove_callback(self.telemetry)

    def _model_path(self) -> Path | None:
        """The classifier model directory; a relative path is read from the config file's folder."""
        model = self.config.taskrouter.classifier.model
        if model is None:
            return None
        path = Path(model)
        if not path.is_absolute() and self.config.source:
            path = Path(self.config.source).parent / path
        return path

    # -- classification ---------------------------------------------------------------------------------------
    def llm_stage(self, labels: Sequence[str]) -> LLMClassifier:
        """Stage 3 answering through this router's `taskrouter.llm_classifier.alias` pool."""
        settings = self.config.taskrouter.llm_classifier
        if settings.alias is None:
            raise ConfigError("no LLM classifier pool configured", path="taskrouter.llm_classifier.alias")

        def complete(messages: list[dict], timeout_s: float) -> str:
            r = self.router.completion(model=settings.alias, messages=messages, timeout=timeout_s, num_retries=0,
                                       max_tokens=16, temperature=0, metadata={"taskrouter_call": "llm_classifier"})
            return r.choices[0].message.content or ""

        return LLMClassifier(complete, labels, timeout_s=settings.timeout_s)

    def decide(self, query: str, history: Sequence[dict] | None = None) -> Decision:
        """The cascade's decision for `query`; a follow-up is read together with the recent user turns."""
        check_query(query)
        earlier = _user_turns(history)
        alone = self.cascade.classify(query)
        conv = self.config.taskrouter.conversation
        if not earlier or conv.context_turns == 0:
            return alone
        context = "\n".join([*earlier[-conv.context_turns:], query])
        in_context = self.cascade.classify(context)
        confidently_new = (alone.stage == "heuristic" or
                           (not alone.escalated and (alone.confidence or 0) >= conv.switch_confidence))
        if alone.label != in_context.label and confidently_new:
            return alone
        return in_context

    def pool_for(self, label: str) -> str:
        return self.config.pool_for(label)

    # -- completion -------------------------------------------------------------------------------------------
    def complete(self, query: str, history: Sequence[dict] | None = None, **litellm_kwargs: Any
                 ) -> RoutedCompletion | RoutedStream:
        """Classify and complete; with `stream=True` the chunks come as LiteLLM yields them."""
        decision = self.decide(query, history)
        pool, messages, kwargs = self._request(decision, query, history, litellm_kwargs)
        start = time.perf_counter()
        try:
            if self._loop is not None:
                response = self._loop.run(self.router.acompletion(model=pool, messages=messages, **kwargs))
                if kwargs.get("stream"):
                    response = self._loop.iterate(response)
            else:
                response = self.router.completion(model=pool, messages=messages, **kwargs)
        except TaskRouterError:
            raise
        except Exception as exc:
            raise self._error(exc, pool) from None
        return self._finish(response, decision, pool, start, kwargs)

    async def acomplete(self, query: str, history: Sequence[dict] | None = None, **litellm_kwargs: Any
                        ) -> RoutedCompletion | RoutedStream:
        """Async `complete`; classification runs in a worker thread so the event loop is not blocked."""
        decision = await asyncio.to_thread(self.decide, query, history)
        pool, messages, kwargs = self._request(decision, query, history, litellm_kwargs)
        start = time.perf_counter()
        try:
            response = await self.router.acompletion(model=pool, messages=messages, **kwargs)
        except TaskRouterError:
            raise
        except Exception as exc:
            raise self._error(exc, pool) from None
        return self._finish(response, decision, pool, start, kwargs)

    # -- helpers ----------------------------------------------------------------------------------------------
    def _request(self, decision: Decision, query: str, history: Sequence[dict] | None,
                 kwargs: dict[str, Any]) -> tuple[str, list[dict], dict[str, Any]]:
        for key in _RESERVED:
            if key in kwargs:
                raise TypeError(f"{key!r} is chosen by taskrouter; pass the query and history instead")
        pool = self.pool_for(decision.label)
        messages = [*(history or []), {"role": "user", "content": query}]
        metadata = dict(kwargs.pop("metadata", None) or {})
        metadata["taskrouter"] = {"label": decision.label, "stage": decision.stage,
                                  "confidence": decision.confidence, "escalated": decision.escalated,
                                  "requested_pool": pool, "router_id": hex(id(self))}
        if self.config.taskrouter.telemetry.store_text:
            metadata["taskrouter"]["query"] = query
        if self.metrics is not None:
            self.metrics.decided(decision, pool)
        return pool, messages, {**kwargs, "metadata": metadata}

    def _finish(self, response: Any, decision: Decision, pool: str, start: float,
                kwargs: dict[str, Any]) -> RoutedCompletion | RoutedStream:
        if kwargs.get("stream"):
            return RoutedStream(response, decision, pool)
        return self._result(response, decision, pool, time.perf_counter() - start)

    def _result(self, response: Any, decision: Decision, pool: str, latency_s: float) -> RoutedCompletion:
        served, deployment, cost = _litellm.served_by(response)
        usage = getattr(response, "usage", None)
        return RoutedCompletion(response=response, decision=decision, requested_pool=pool,
                                served_pool=served or pool, deployment=deployment,
                                fallback=bool(served) and served != pool,
                                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
                                cost_usd=cost, latency_s=latency_s)

    def _error(self, exc: BaseException, pool: str) -> TaskRouterError:
        rs = self.config.router_settings
        has_fallbacks = bool(rs.default_fallbacks) or any(pool in entry for entry in rs.fallbacks)
        return _litellm.map_exception(exc, pool=pool, fallbacks_configured=has_fallbacks)


class _LoopThread:
    """An event loop in a daemon thread, for running LiteLLM's async-only paths from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="taskrouter-loop").start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def iterate(self, stream: Any) -> _SyncStream:
        return _SyncStream(stream, self)


class _SyncStream:
    """A sync iterator over an async LiteLLM stream; `_hidden_params` stays readable."""

    def __init__(self, stream: Any, loop: _LoopThread) -> None:
        self._stream, self._loop = stream, loop
        self._hidden_params = getattr(stream, "_hidden_params", {})

    def __iter__(self) -> Iterator[Any]:
        it: AsyncIterator[Any] = self._stream.__aiter__()
        while True:
            try:
                yield self._loop.run(it.__anext__())
            except StopAsyncIteration:
                return


def _user_turns(history: Sequence[dict] | None) -> list[str]:
    if history is None:
        return []
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise QueryError(f"must be a list of chat messages, got {type(history).__name__}", field="history")
    turns = []
    for i, m in enumerate(history):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise QueryError("each message needs string 'role' and 'content'", field=f"history[{i}]")
        if m["role"] == "user" and m["content"].strip():
            turns.append(m["content"])
    return turns
