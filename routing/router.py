"""`TaskRouter`: the cascade in front of a LiteLLM Router, built once and reused."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
import warnings
import weakref
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from classifier.errors import ConfigError, InvalidParameterError
from classifier.results import Decision
from classifier.serving.budget import EscalationBudget
from classifier.serving.cascade import Cascade
from classifier.serving.llm import LLMClassifier

from . import _litellm
from .config import ClassifierSettings, Config, load_config, resolve_secrets
from .conversation import Conversation, classifier_text, earlier_text, read_history, refers_back
from .events import Attempt, DecisionRecord, EventSink, RequestEvent, RoutedRequest
from .results import RoutedCompletion, RoutedStream, raise_instead

if TYPE_CHECKING:
    from .metrics import PrometheusMetrics
    from .telemetry import TelemetryWriter

__all__ = ["TaskRouter"]

log = logging.getLogger("taskrouter.router")

_RESERVED = ("model", "messages")
_CONFIG_ONLY = frozenset(
    {"api_base", "base_url", "api_key", "api_version", "organization", "custom_llm_provider", "deployment_id",
     "specific_deployment", "model_list", "litellm_credential_name", "client", "headers", "extra_headers",
     "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks", "model_group_alias",
     "num_retries", "max_fallbacks", "litellm_logging_obj", "litellm_call_id", "proxy_server_request"}
)  # fmt: skip
"""Arguments that would choose where a request goes, with which credentials, or how it falls back: the config
decides those (a caller's `api_base` would otherwise receive the pool's API key)."""
_CONFIG_ONLY_PREFIXES = ("api_", "aws_", "vertex_", "azure_", "mock_")


class TaskRouter:
    """Classify a query, pick its pool, and complete it through the LiteLLM Router.

    >>> tr = TaskRouter("routing/configs/demo.yaml")       # doctest: +SKIP
    >>> tr.complete("integrate x^2 from 0 to 3").served_pool  # doctest: +SKIP
    'math'
    """

    def __init__(
        self,
        config: str | Path | Config | dict | None = None,
        *,
        cascade: Cascade | None = None,
        router: _litellm.Router | None = None,
        router_loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """`router`: an existing LiteLLM Router to use (e.g. the LiteLLM Proxy's); by default one is built.
        `router_loop`: the event loop, running in another thread, that serves `router` (the proxy's): stage 3 then
        asks through `router.acompletion` on it, the path every routing strategy answers on, from the thread that
        classifies."""
        self.id = uuid.uuid4().hex
        """Tells this router's requests apart in LiteLLM's process-wide callbacks (`metadata["taskrouter"]`)."""
        self.attempts = _litellm.FailedAttempts(self.id)
        """The failed deployment calls of this router's requests, until each request ends (a LiteLLM callback)."""
        self.config = load_config(config)
        settings = self.config.taskrouter
        if cascade is not None:
            check_settings_apply_to(settings.classifier)
        try:
            base = cascade or Cascade.load(
                self._model_path(),
                threshold=settings.classifier.threshold,
                static=settings.classifier.static,
                static_threshold=settings.classifier.static_threshold,
                fallback_label=settings.classifier.fallback_label,
            )
        except InvalidParameterError as exc:
            if exc.parameter != "fallback_label":
                raise
            raise ConfigError(str(exc), path="taskrouter.classifier.fallback_label") from None
        if settings.classifier.priors is not None:
            try:
                base = base.with_priors(settings.classifier.priors)
            except InvalidParameterError as exc:
                raise ConfigError(str(exc), path="taskrouter.classifier.priors") from None
        if settings.classifier.max_escalation is not None:
            share, window = settings.classifier.max_escalation, settings.classifier.escalation_window
            base = base.with_budget(EscalationBudget(share, window=window))
        self.cascade = base.with_llm(self.llm_stage(base.labels)) if settings.llm_classifier.alias else base
        self._check_labels()
        # What follows opens threads, connections and process-wide registrations: `close` releases them, and a
        # failure half-way releases those opened before it.
        self._owns_router = router is None
        self._router_loop = router_loop if router is not None else None
        self.router = router if router is not None else _litellm.build_router(self.config)
        self.closed = False
        self._close_lock = threading.Lock()
        self._in_flight, self._close_pending = 0, False
        self._loop: _LoopThread | None = None
        self.metrics: PrometheusMetrics | None = None
        self.telemetry: TelemetryWriter | None = None
        try:
            # LiteLLM 1.110 selects cost-based deployments only on its async path (the sync path answers "No
            # deployments available"), so when any pool uses it, sync calls run on a private event loop.
            if self.config.uses_strategy("cost-based-routing"):
                self._loop = _LoopThread()
            if settings.metrics == "prometheus":
                from .metrics import prometheus

                self.metrics = prometheus(self.id, settings.name)
            if settings.telemetry.url:
                from .telemetry import TelemetryStore, TelemetryWriter

                url = resolve_secrets(settings.telemetry.url, "taskrouter.telemetry.url")  # os.environ/NAME too
                store = TelemetryStore(url).open()  # a file that can never take an event fails the build
                self.telemetry = TelemetryWriter(store, store_text=settings.telemetry.store_text)
            if self.sinks:  # only the failed attempts need LiteLLM's callbacks: the rest is read from the response
                _litellm.add_callback(self.attempts)
        except BaseException:
            self.close()  # what was opened before the failure
            raise
        self._finalizer = weakref.finalize(self, _release_unclosed, *self._resources())
        """A router dropped without `close` releases what it opened when it is collected (at exit, `close_all` and
        the telemetry's exit flush do their part as before)."""
        self._finalizer.atexit = False  # type: ignore[misc]  # a documented attribute; typeshed's slots omit it

    def __enter__(self) -> TaskRouter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0) -> None:
        """Write the telemetry of finished requests (waiting up to `timeout` s), then release what this router
        opened: its LiteLLM callback, its metrics series (see routing/metrics.py), its threads, and the LiteLLM
        Router's process-wide registrations when it built that Router.

        Idempotent. Requests still in flight on other threads when it is called are not waited for.
        """
        with self._close_lock:  # two threads closing at once: one does the work
            if self.closed:
                return
            self.closed = True
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()  # released here, not again when collected
        _release(*self._resources(), timeout=timeout)

    def _resources(self) -> tuple[Any, ...]:
        """What `close` releases (the LiteLLM Router only when this router built it); never this TaskRouter itself,
        so that the finalizer holding them lets a router nobody closed be collected."""
        return self.attempts, self.telemetry, self.metrics, self._loop, self.router if self._owns_router else None

    def _check_labels(self) -> None:
        """Every label in `taskrouter.pools` must be one the loaded model can give (its fallback label too)."""
        fallback = self.cascade.fallback_label
        labels = set(self.cascade.labels) | ({fallback} if fallback is not None else set())
        for label in self.config.taskrouter.pools:
            if label not in labels:
                raise ConfigError(
                    f"{label!r} is not a label of the classifier model; its labels are {sorted(labels)}",
                    path=f"taskrouter.pools.{label}",
                )

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
        alias = settings.alias
        if alias is None:
            raise ConfigError("no LLM classifier pool configured", path="taskrouter.llm_classifier.alias")

        def complete(messages: list[Any], timeout_s: float) -> str:
            call: dict[str, Any] = dict(model=alias, messages=messages, timeout=timeout_s, num_retries=0, max_tokens=16,
                                        temperature=0, metadata={"taskrouter_call": "llm_classifier"})  # fmt: skip
            if self._router_loop is not None:  # the proxy's loop, which this thread must not be running
                r: Any = run_on(self._router_loop, self.router.acompletion(**call), timeout_s + RUN_ON_MARGIN_S)
            elif self._loop is not None:  # cost-based routing answers on LiteLLM's async path only (see __init__)
                r = self._loop.run(self.router.acompletion(**call))
            else:
                r = self.router.completion(**call)
            return r.choices[0].message.content or ""

        return LLMClassifier(complete, labels, timeout_s=settings.timeout_s)

    def decide(self, query: str, history: Sequence[dict] | None = None) -> Decision:
        """The cascade's decision for `query`; a follow-up is read together with the recent user turns."""
        return self.decide_conversation(read_history(history, query))

    def decide_conversation(self, conversation: Conversation) -> Decision:
        """The decision for a conversation's last user turn, keeping the conversation's label on a follow-up.

        The classifier reads a bounded window of the text (see `routing.conversation`), so any length routes.
        """
        conv = self.config.taskrouter.conversation
        alone_text, context_text = classifier_text(conversation, conv.context_turns)
        if context_text is None:
            return self.cascade.classify(alone_text)
        if refers_back(conversation.query):  # "make it shorter": the conversation's task goes on, label and all;
            # the query alone is not classified (it would often escalate to stage 3, a paid call, for nothing)
            return self.cascade.classify(earlier_text(conversation, conv.context_turns))
        alone = self.cascade.classify(alone_text)
        in_context = self.cascade.classify(context_text)
        if alone.label != in_context.label and _switches(alone, conv.switch_confidence):
            return alone
        return in_context

    def plan(self, decision: Decision, query: str | None = None) -> tuple[str, DecisionRecord]:
        """(pool, `metadata["taskrouter"]` record) for a decision: what LiteLLM's callbacks and the proxy's headers
        read. The record's `request` is the typed `RoutedRequest` it was made from."""
        pool = self.pool_for(decision.label)
        store_text = query is not None and self.config.taskrouter.telemetry.store_text
        request = RoutedRequest(decision, pool, self.id, query=query if store_text else None)
        if self.metrics is not None:
            self.metrics.decided(decision, pool)
        return pool, request.record()

    @property
    def sinks(self) -> list[EventSink]:
        """Where this router's request events go: its telemetry writer and metrics, those it has."""
        return [sink for sink in (self.telemetry, self.metrics) if sink is not None]

    def record(self, event: RequestEvent) -> None:
        """Hand a finished request's event to this router's sinks (`complete` does; so does the proxy hook for the
        requests LiteLLM served). A failing sink is logged, never raised."""
        for sink in self.sinks:
            try:
                sink.handle(event)
            except Exception as exc:
                log.warning("%s could not take a request event (%s)", type(sink).__name__, type(exc).__name__)

    def pool_for(self, label: str) -> str:
        return self.config.pool_for(label)

    # -- completion -------------------------------------------------------------------------------------------
    def complete(
        self, query: str, history: Sequence[dict] | None = None, **litellm_kwargs: Any
    ) -> RoutedCompletion | RoutedStream:
        """Classify and complete; with `stream=True` the chunks come as LiteLLM yields them."""
        self._check_open(litellm_kwargs)
        with self.busy():
            decision = self.decide(query, history)
            request, messages, kwargs = self._request(decision, query, history, litellm_kwargs)
            pool = request.requested_pool
            try:
                if self._loop is not None:
                    response = self._loop.run(self.router.acompletion(model=pool, messages=messages, **kwargs))
                    if kwargs.get("stream"):
                        response = self._loop.iterate(response)
                else:
                    response = self.router.completion(model=pool, messages=messages, **kwargs)
            except BaseException as exc:  # a cancellation or Ctrl-C is recorded too, then raised as it is
                self._raise_failed(request, exc)
            return self._finish(request, response, stream=bool(kwargs.get("stream")))

    async def acomplete(
        self, query: str, history: Sequence[dict] | None = None, **litellm_kwargs: Any
    ) -> RoutedCompletion | RoutedStream:
        """Async `complete`; classification runs in a worker thread so the event loop is not blocked."""
        self._check_open(litellm_kwargs)
        with self.busy():
            decision = await asyncio.to_thread(self.decide, query, history)
            request, messages, kwargs = self._request(decision, query, history, litellm_kwargs)
            try:
                response = await self.router.acompletion(model=request.requested_pool, messages=messages, **kwargs)
            except BaseException as exc:  # asyncio.CancelledError (a timeout, a client gone) is recorded too
                self._raise_failed(request, exc)
            return self._finish(request, response, stream=bool(kwargs.get("stream")))

    def close_when_idle(self) -> None:
        """`close` once no `complete` or `acomplete` call is in flight: now if none is, else on a background
        thread when the last one ends. A stream counts until it ends: read to its end, failed, closed, or collected
        unread (a stream the caller keeps unread keeps its router open)."""
        with self._close_lock:
            if self._in_flight:
                self._close_pending = True
                return
        self.close()

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Count a call in flight, so that `close_when_idle` waits for it."""
        self._enter()
        try:
            yield
        finally:
            self._leave()

    def _enter(self) -> None:
        with self._close_lock:
            self._in_flight += 1

    def _leave(self) -> None:
        with self._close_lock:
            self._in_flight -= 1
            close_now = self._close_pending and not self._in_flight
        if close_now:  # not on the caller's time: closing writes the telemetry
            threading.Thread(target=self.close, name="taskrouter-close", daemon=True).start()

    # -- helpers ----------------------------------------------------------------------------------------------
    def _check_open(self, kwargs: dict[str, Any]) -> None:
        """Refuse a request this router cannot send, before it is classified (stage 3 may be a paid call)."""
        for key in _RESERVED:
            if key in kwargs:
                raise TypeError(f"{key!r} is chosen by taskrouter; pass the query and history instead")
        for key in kwargs:
            if key in _CONFIG_ONLY or key.startswith(_CONFIG_ONLY_PREFIXES):
                raise TypeError(f"{key!r} is set in the routing config (deployments, fallbacks, retries), not per "
                                "request")  # fmt: skip
        if self.closed:
            raise RuntimeError("this TaskRouter is closed")
        if not isinstance(kwargs.get("metadata") or {}, Mapping):
            raise TypeError(f"metadata must be a mapping, got {type(kwargs['metadata']).__name__}")

    def _request(
        self, decision: Decision, query: str, history: Sequence[dict] | None, kwargs: dict[str, Any]
    ) -> tuple[RoutedRequest, list[Any], dict[str, Any]]:
        self._check_open(kwargs)  # again: the router may have been closed while the query was classified
        _, record = self.plan(decision, query)
        messages: list[Any] = [*(history or []), {"role": "user", "content": query}]
        metadata = dict(kwargs.pop("metadata", None) or {})
        metadata["taskrouter"] = record
        return record.request, messages, {**kwargs, "metadata": metadata}

    def _finish(self, request: RoutedRequest, response: Any, *, stream: bool) -> RoutedCompletion | RoutedStream:
        """The request's result; its event goes to the sinks now, or for a stream once it is read to the end."""
        if stream:  # in flight until it ends (`_StreamEnd`), not only until it is returned
            end = _StreamEnd(self, request)
            routed = RoutedStream(response, request.decision, request.requested_pool, on_end=end)
            end.watch(routed)
            return routed
        event = request.end(_litellm.answer_of(response), failed=self.attempts.take(request.request_id))
        self.record(event)
        return RoutedCompletion.of(response, event)

    def _raise_failed(self, request: RoutedRequest, exc: BaseException) -> NoReturn:
        """Record a failed request's event, then raise what `_error` makes of `exc`."""
        failed = self.attempts.take(request.request_id)
        self.record(request.fail(_recorded(exc), failed=failed))
        raise_instead(self._error(exc, request.requested_pool, failed), exc)

    def _error(self, exc: BaseException, pool: str, failed: Sequence[Attempt] = ()) -> BaseException:
        """What a failed call raises: a program error (or a cancellation) as it is, a provider's as this library's
        CompletionError naming a deployment that failed (`_litellm.map_exception`)."""
        cause = _recorded(exc)
        if cause is not exc or not isinstance(exc, Exception) or not _litellm.is_provider_error(exc):
            return cause  # not the provider's: as it is, or the caller's error LiteLLM wrapped
        rs = self.config.router_settings
        has_fallbacks = bool(rs.default_fallbacks) or any(pool in entry for entry in rs.fallbacks)
        deployment = next((a.deployment for a in reversed(failed) if a.deployment), None)
        return _litellm.map_exception(exc, pool=pool, fallbacks_configured=has_fallbacks, deployment=deployment)


def _recorded(exc: BaseException) -> BaseException:
    """The error a failed request's event names: the caller's or the program's that LiteLLM wrapped into a provider
    error (`_litellm.program_error`), so telemetry does not count it as an outage; else `exc` itself."""
    if isinstance(exc, Exception) and _litellm.is_provider_error(exc):
        return _litellm.program_error(exc) or exc
    return exc


RUN_ON_MARGIN_S = 5.0
"""How much longer than its own timeout a call sent to another thread's loop is waited for (it may queue there)."""


def run_on(loop: asyncio.AbstractEventLoop, coro: Any, timeout: float | None = None) -> Any:
    """Run `coro` on `loop`, which another thread runs, and wait for it; interrupted (Ctrl-C, a timeout), the call
    is cancelled too, so no provider call goes on unseen after its request was recorded as failed."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("run_on waits for the loop it would run on: call it from another thread")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except BaseException:
        future.cancel()
        raise


class _LoopThread:
    """An event loop in a daemon thread, for running LiteLLM's async-only paths from sync code."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="taskrouter-loop")
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Finish LiteLLM's logging on the loop, cancel what is left, then stop the loop and its threads."""
        with contextlib.suppress(Exception):  # the loop stops regardless
            self.run(self._shutdown(timeout), timeout=3 * timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=timeout)
        if not self._thread.is_alive():
            self.loop.close()

    async def _shutdown(self, timeout: float) -> None:
        await _litellm.finish_logging(timeout)
        current = asyncio.current_task()
        rest = [task for task in asyncio.all_tasks() if task is not current]
        for task in rest:
            task.cancel()
        if rest:
            await asyncio.wait(rest, timeout=timeout)
        with contextlib.suppress(Exception):  # the loop's own shutdown below runs regardless
            await _litellm.close_loop_clients()  # LiteLLM would keep them, and their connections, 10 minutes
        await self.loop.shutdown_asyncgens()
        await self.loop.shutdown_default_executor()  # joins its worker threads (`close` would not wait for them)

    def run(self, coro: Any, timeout: float | None = None) -> Any:
        """Run `coro` on the loop and wait for it (`run_on`)."""
        return run_on(self.loop, coro, timeout)

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


class _StreamEnd:
    """Ends a stream's request once: when it was read to its end, failed while being read, was left half-read
    (closed, cancelled) or was collected unread. It records the request's event, then stops counting the request
    in flight on its router, which it counted from its creation: a router evicted by `get_router` (`close_when_idle`)
    stays open, its loop and telemetry writer with it, until its streams have ended."""

    def __init__(self, router: TaskRouter, request: RoutedRequest) -> None:
        self.router, self.request, self.done = router, request, False
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize | None = None
        router._enter()

    def watch(self, stream: RoutedStream) -> None:
        """End the request when `stream` is collected without having ended (never read, or its reader dropped)."""
        self._finalizer = weakref.finalize(stream, self._collected)
        self._finalizer.atexit = False  # type: ignore[misc]  # at exit `close_all` closes the routers regardless

    def _collected(self) -> None:
        """Runs wherever the collection happens (a garbage collection may interrupt any code, holding any lock): the
        event is recorded and the router released on a thread of its own."""
        if not self.done:
            with contextlib.suppress(RuntimeError):  # no new thread at interpreter exit: `close_all` closes it
                threading.Thread(target=self, args=(None, None, GeneratorExit()), name="taskrouter-stream-end",
                                 daemon=True).start()  # fmt: skip

    def __call__(self, stream: Any, last_chunk: Any, error: BaseException | None) -> BaseException | None:
        """Record the event; for an error, return what to raise in its place (see `TaskRouter._error`)."""
        with self._lock:
            if self.done:
                return None
            self.done = True
        if self._finalizer is not None:
            self._finalizer.detach()
        try:
            failed = self.router.attempts.take(self.request.request_id)
            if error is not None:
                self.router.record(self.request.fail(_recorded(error), failed=failed))
                return self.router._error(error, self.request.requested_pool, failed)
            self.router.record(self.request.end(_litellm.answer_of_stream(stream, last_chunk), failed=failed))
            return None
        finally:
            self.router._leave()  # after the event was handed over: an evicted router closes now, writing it


def _release(attempts: Any, telemetry: Any, metrics: Any, loop: Any, router: Any, *, timeout: float) -> None:
    """Release a router's resources (see `TaskRouter.close`); each step runs even when one before it raised."""
    steps = [lambda: _litellm.remove_callback(attempts)]
    if telemetry is not None:
        steps.append(lambda: telemetry.close(timeout))
    if metrics is not None:
        steps.append(metrics.close)
    if loop is not None:
        steps.append(lambda: loop.close(timeout))
    if router is not None:
        steps.append(lambda: _litellm.retire_router(router))
    _release_all(steps)


def check_settings_apply_to(classifier: ClassifierSettings) -> None:
    """A cascade given to TaskRouter is used as it is: settings that only loading a model applies are refused, not
    silently dropped (priors and max_escalation still apply: they wrap any cascade)."""
    load_only = {
        "model": classifier.model is not None,
        "threshold": classifier.threshold is not None,
        "static": classifier.static is False,
        "static_threshold": classifier.static_threshold is not None,
        "fallback_label": classifier.fallback_label is not None,
    }
    for name, is_set in load_only.items():
        if is_set:
            raise ConfigError(
                "applies when taskrouter loads the model, but a cascade was given: set it on that cascade "
                "(Cascade.load(...)) or leave it out of the config",
                path=f"taskrouter.classifier.{name}",
            )


def _release_unclosed(*resources: Any) -> None:
    warnings.warn("a TaskRouter was collected without close(); closing it now", ResourceWarning, stacklevel=1)
    _release(*resources, timeout=5.0)


def _release_all(steps: Sequence) -> None:
    """Run every step, even after one raised; then raise the first error (a release left half-done leaks the rest)."""
    first: BaseException | None = None
    for step in steps:
        try:
            step()
        except BaseException as exc:  # noqa: BLE001 - raised below, after the other steps ran
            first = first or exc
    if first is not None:
        raise first


def _switches(alone: Decision, switch_confidence: float) -> bool:
    """Whether a follow-up classified alone is confident enough to leave the conversation's label."""
    return not (alone.escalated or alone.held_back) and (alone.confidence or 0.0) >= switch_confidence
