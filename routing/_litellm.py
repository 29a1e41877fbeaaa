"""The one module that imports LiteLLM: build the Router, read who served and what failed, map its exceptions.

LiteLLM keeps its settings, loggers and callback lists process-wide. This module changes them in two places
only: `configure_litellm` (loggers, called when a Router is built) and `add_callback` /
`remove_callback` (a callback's owner removes it from every list LiteLLM copied it into). Importing it changes
nothing: LiteLLM is imported with its bundled price map (see `_import_litellm`) and the environment is left as
it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import sys
import threading
from collections import OrderedDict
from datetime import datetime
from types import ModuleType
from typing import Any

PRICE_MAP_VARIABLE = "LITELLM_LOCAL_MODEL_COST_MAP"


def _import_litellm() -> ModuleType:
    """LiteLLM, imported with `LITELLM_LOCAL_MODEL_COST_MAP=True` unless the caller set it.

    LiteLLM reads the variable only while it is imported: unset, it downloads its price map from GitHub's main
    branch (or waits for the download to fail, offline). The default holds for the import alone; afterwards the
    variable is as the caller left it, for this process and the processes it starts.
    """
    if "litellm" in sys.modules:
        return sys.modules["litellm"]
    unset = PRICE_MAP_VARIABLE not in os.environ
    if unset:
        os.environ[PRICE_MAP_VARIABLE] = "True"  # "1" is ignored
    try:
        return importlib.import_module("litellm")
    finally:
        if unset:
            os.environ.pop(PRICE_MAP_VARIABLE, None)


litellm = _import_litellm()

import httpx  # noqa: E402  (after LiteLLM's import, which the function above prepares)
import openai  # noqa: E402
from litellm import Router  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.types.router import RoutingGroup  # noqa: E402

from . import errors  # noqa: E402
from .config import Config, LiteLLMSettings, resolve_secrets  # noqa: E402
from .events import Answer, Attempt  # noqa: E402

__all__ = [
    "PRICE_MAP_VARIABLE",
    "CustomLogger",
    "FailedAttempts",
    "Router",
    "add_callback",
    "answer_of",
    "answer_of_log",
    "answer_of_stream",
    "build_router",
    "close_loop_clients",
    "configure_litellm",
    "error_type",
    "finish_logging",
    "is_provider_error",
    "litellm",
    "map_exception",
    "program_error",
    "proxy_router",
    "remove_callback",
    "retire_router",
    "routed_record",
]

_QUIET_LOGGERS = ("LiteLLM Router", "LiteLLM")


def configure_litellm() -> None:
    """Set LiteLLM's process-wide state that taskrouter needs; the only function that does: LiteLLM's loggers are
    silenced below CRITICAL (they log every failed attempt at ERROR together with the request's kwargs, messages
    and API keys; our own errors carry what callers need).

    The config's `litellm_settings` are not module attributes: `build_router` gives them to its own Router, so
    routers in one process keep their own. A Router given to `TaskRouter(router=...)` (the LiteLLM Proxy's) is
    left as its owner configured it.
    """
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _router_defaults(settings: LiteLLMSettings, router_settings: dict[str, Any]) -> dict[str, Any]:
    """`litellm_settings` as this Router's own: `drop_params` for each of its calls, `request_timeout` as its
    default timeout (unless `router_settings.timeout` names one)."""
    extra: dict[str, Any] = {}
    if settings.drop_params is not None:
        extra["default_litellm_params"] = {"drop_params": settings.drop_params}
    if settings.request_timeout is not None and "timeout" not in router_settings:
        extra["timeout"] = settings.request_timeout
    return extra


def build_router(config: Config) -> Router:
    """A LiteLLM Router for the config, secrets resolved only here."""
    model_list = [resolve_secrets(d.model_dump(), f"model_list[{i}]") for i, d in enumerate(config.model_list)]
    settings = resolve_secrets(config.router_settings.model_dump(exclude_none=True), "router_settings")
    groups = settings.pop("routing_groups", None)
    if groups:  # pools no group claims keep the top-level routing_strategy
        settings["routing_groups"] = [RoutingGroup(**g) for g in groups]
    configure_litellm()
    for i, deployment in enumerate(model_list):
        _check_provider(deployment["litellm_params"], f"model_list[{i}].litellm_params.model")
    return Router(model_list=model_list, **settings, **_router_defaults(config.litellm_settings, settings))


def _check_provider(params: dict[str, Any], where: str) -> None:
    """A ConfigError naming the field when LiteLLM can tell no provider from a deployment's model (a typo such as
    `gpt4o-mini`), instead of LiteLLM's own error when the Router is built."""
    try:
        litellm.get_llm_provider(
            params["model"], custom_llm_provider=params.get("custom_llm_provider"), api_base=params.get("api_base")
        )
    except Exception as exc:  # noqa: BLE001 - LiteLLM raises BadRequestError, ValueError, ...: the type is named
        raise errors.ConfigError(
            f"LiteLLM knows no provider for model {params['model']!r} ({type(exc).__name__}); write it as "
            "provider/model, e.g. openai/gpt-4o-mini, or set custom_llm_provider",
            path=where,
        ) from None


def retire_router(router: Router) -> None:
    """Release what a Router registered process-wide (LiteLLM's `Router.retire`); it could still serve calls."""
    router.retire()


def proxy_router() -> Router | None:
    """The running LiteLLM Proxy's Router, or None outside the proxy."""
    from litellm.proxy import proxy_server

    return proxy_server.llm_router


def add_callback(callback: CustomLogger) -> None:
    """Register a callback (LiteLLM's callback list is process-wide, so never twice)."""
    if callback not in litellm.callbacks:
        litellm.callbacks.append(callback)


def remove_callback(callback: CustomLogger) -> None:
    """Unregister a callback from `litellm.callbacks` and every list LiteLLM copied it into on first use."""
    litellm.logging_callback_manager.remove_callback_from_all_lists(callback)


async def finish_logging(timeout: float) -> None:
    """Let LiteLLM's logging worker finish on the running loop (up to `timeout` s), then stop it there.

    Run on a private event loop before it closes: LiteLLM binds its logging worker to the loop of the last async
    call, and a loop closed under it leaves callbacks that never ran ("Task was destroyed but it is pending").
    The worker starts again on the next loop that logs.
    """
    from litellm.litellm_core_utils.logging_worker import GLOBAL_LOGGING_WORKER

    if getattr(GLOBAL_LOGGING_WORKER, "_bound_loop", None) is not asyncio.get_running_loop():
        return
    try:
        await asyncio.wait_for(GLOBAL_LOGGING_WORKER.flush(), timeout)
    except TimeoutError:
        pass
    await GLOBAL_LOGGING_WORKER.stop(discard_pending=True, timeout=timeout)


async def close_loop_clients() -> int:
    """Close the async HTTP clients LiteLLM built and cached for the running event loop, and forget them; the
    number closed.

    Run on a private event loop before it closes. LiteLLM caches an async client per loop for 10 minutes (the
    key ends in the loop's token), so each closed router would leave one client, its keep-alive connections and
    a cache entry (of 200) behind. Clients LiteLLM did not build (a session the caller set) stay open.
    """
    from litellm.caching.evicted_client_closer import running_loop_token

    token = running_loop_token()
    cache = litellm.in_memory_llm_clients_cache
    if token is None:
        return 0
    closed = 0
    for key in [k for k in list(cache.cache_dict) if isinstance(k, str) and k.endswith(f"-{token}")]:
        client = cache.cache_dict.get(key)
        owned = cache.evicted_client_closer._is_owned(client)  # noqa: SLF001 - LiteLLM's record of what it built
        cache.delete_cache(key)
        close = getattr(client, "aclose", None) or getattr(client, "close", None)
        if owned and close is not None and asyncio.iscoroutinefunction(close):
            with contextlib.suppress(Exception):  # a client that fails to close is forgotten all the same
                await close()
                closed += 1
    return closed


def answer_of(response: object) -> Answer:
    """Who answered a (non-streaming) LiteLLM Router response, its tokens and cost (LiteLLM's `_hidden_params`)."""
    hidden = getattr(response, "_hidden_params", None) or {}
    return _answer(hidden, getattr(response, "usage", None), hidden.get("response_cost"))


def answer_of_stream(stream: object, last_chunk: object) -> Answer:
    """Who answered a stream read to its end; LiteLLM puts the usage (and its cost) on the last chunk."""
    hidden = getattr(stream, "_hidden_params", None) or {}
    chunk_hidden = getattr(last_chunk, "_hidden_params", None) or {}
    usage = getattr(last_chunk, "usage", None) or chunk_hidden.get("usage")
    cost = getattr(usage, "cost", None)
    return _answer(hidden, usage, cost if isinstance(cost, (int, float)) else hidden.get("response_cost"))


def _answer(hidden: dict, usage: object, cost: object) -> Answer:
    ms = hidden.get("_response_ms")
    attempt = Attempt(
        pool=(hidden.get("additional_headers") or {}).get("x-litellm-model-group"),
        deployment=hidden.get("model_id"),
        latency_s=float(ms) / 1000 if isinstance(ms, (int, float)) else None,
    )
    prompt, completion = getattr(usage, "prompt_tokens", 0), getattr(usage, "completion_tokens", 0)
    cost_usd = float(cost) if isinstance(cost, (int, float)) else 0.0
    return Answer(attempt, int(prompt or 0), int(completion or 0), cost_usd)


def answer_of_log(kwargs: dict) -> Answer:
    """The same from LiteLLM's success-callback payload (the LiteLLM Proxy's streams end there)."""
    slo = kwargs.get("standard_logging_object") or {}
    time_s = slo.get("response_time")
    attempt = Attempt(
        pool=slo.get("model_group"),
        deployment=slo.get("model_id"),
        latency_s=float(time_s) if isinstance(time_s, (int, float)) else None,
    )
    cost = slo.get("response_cost") or kwargs.get("response_cost")
    return Answer(attempt, int(slo.get("prompt_tokens") or 0), int(slo.get("completion_tokens") or 0), float(cost or 0))


def routed_record(kwargs: dict) -> dict | None:
    """The `metadata["taskrouter"]` record of a LiteLLM callback payload; None for calls taskrouter did not route."""
    metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
    record = metadata.get("taskrouter")
    return record if isinstance(record, dict) else None


class FailedAttempts(CustomLogger):
    """A LiteLLM callback keeping the failed deployment calls of one router's requests, by request id.

    LiteLLM logs a failed call in the calling thread or task, before its Router retries or falls back (sync and
    async paths alike), so when a Router call returns or raises, the failed attempts of that request are here:
    `take` them then. At most `max_requests` requests are kept (a stream dropped half-way is never taken).
    """

    def __init__(self, router_id: str, *, max_requests: int = 10_000) -> None:
        super().__init__()
        self.router_id = router_id
        self.max_requests = max_requests
        self._by_request: OrderedDict[str, list[Attempt]] = OrderedDict()
        self._lock = threading.Lock()

    # LiteLLM calls these by keyword: the parameter names matter.
    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.add(kwargs, start_time, end_time)

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self.add(kwargs, start_time, end_time)

    def add(self, kwargs: dict, start_time: object, end_time: object) -> None:
        """Keep one failed call (LiteLLM's failure-callback arguments) of this router's request."""
        record = routed_record(kwargs)
        if record is None or record.get("router_id") != self.router_id:
            return  # another router's request, or not a routed one (e.g. the LLM classifier's own call)
        slo = kwargs.get("standard_logging_object") or {}
        metadata = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        error = (slo.get("error_information") or {}).get("error_class")
        if not error and kwargs.get("exception") is not None:
            error = type(kwargs["exception"]).__name__
        latency = None
        if isinstance(start_time, datetime) and isinstance(end_time, datetime):
            latency = (end_time - start_time).total_seconds()
        attempt = Attempt(
            pool=slo.get("model_group") or metadata.get("model_group"),
            deployment=slo.get("model_id") or (metadata.get("model_info") or {}).get("id"),
            latency_s=latency,
            error=str(error or "Exception"),
        )
        with self._lock:
            self._by_request.setdefault(str(record.get("request_id")), []).append(attempt)
            while len(self._by_request) > self.max_requests:
                self._by_request.popitem(last=False)

    def take(self, request_id: str) -> tuple[Attempt, ...]:
        """The failed calls of a request, in order, forgotten here."""
        with self._lock:
            return tuple(self._by_request.pop(request_id, ()))


# Order matters: subclasses before their bases.
_MAPPING: list[tuple[type[BaseException], type[errors.CompletionError]]] = [
    (litellm.ContextWindowExceededError, errors.ContextWindowExceeded),
    (litellm.Timeout, errors.CompletionTimeout),
    (litellm.RouterRateLimitError, errors.RateLimited),
    (litellm.RateLimitError, errors.RateLimited),
    (litellm.AuthenticationError, errors.AuthenticationFailed),
    (litellm.PermissionDeniedError, errors.AuthenticationFailed),
    (litellm.APIConnectionError, errors.ProviderUnavailable),
    (litellm.InternalServerError, errors.ProviderUnavailable),
    (litellm.ServiceUnavailableError, errors.ProviderUnavailable),
    (litellm.BadGatewayError, errors.ProviderUnavailable),
    (litellm.UnsupportedParamsError, errors.BadRequest),
    (litellm.BadRequestError, errors.BadRequest),
    (litellm.NotFoundError, errors.BadRequest),
    (litellm.UnprocessableEntityError, errors.BadRequest),
    (litellm.exceptions.InvalidRequestError, errors.BadRequest),
    # Guardrails and routing rules that refuse a request for its content: the request's fault, not an outage.
    (litellm.exceptions.BlockedPiiEntityError, errors.BadRequest),
    (litellm.exceptions.GuardrailRaisedException, errors.BadRequest),
    (litellm.exceptions.ModifyResponseException, errors.BadRequest),
    (litellm.exceptions.SensitiveDataRouteException, errors.BadRequest),
    (litellm.exceptions.ModelNotMappedError, errors.BadRequest),  # a deployment LiteLLM has no entry for
    (litellm.APIResponseValidationError, errors.ProviderUnavailable),
    (litellm.exceptions.MockException, errors.ProviderUnavailable),  # a deployment's `mock_response` error
    (litellm.APIError, errors.ProviderUnavailable),
    (litellm.BudgetExceededError, errors.RateLimited),
    (litellm.exceptions.OpenAIError, errors.ProviderUnavailable),  # the base of LiteLLM's provider errors
]
_PROVIDER_ERRORS = (*(theirs for theirs, _ in _MAPPING), openai.OpenAIError, httpx.HTTPError)


def is_provider_error(exc: BaseException) -> bool:
    """Whether `exc` is LiteLLM's or a provider's error (anything else is a program error, left as it is)."""
    return isinstance(exc, _PROVIDER_ERRORS)


def program_error(exc: BaseException) -> BaseException | None:
    """The TypeError, AttributeError or NameError that LiteLLM wrapped into a provider error, if any.

    LiteLLM turns an exception raised while it prepares a call (e.g. a bad argument) into APIConnectionError;
    such a fault is the caller's, not the provider's, and must not pass for an outage.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (TypeError, AttributeError, NameError)) and not isinstance(current, _PROVIDER_ERRORS):
            return current
        current = current.__cause__ or current.__context__
    return None


def error_type(exc: BaseException) -> type[errors.CompletionError] | None:
    """This library's error type for a LiteLLM exception by the mapping's first matching entry; None: no entry."""
    return next((ours for theirs, ours in _MAPPING if isinstance(exc, theirs)), None)


def map_exception(
    exc: BaseException, *, pool: str, fallbacks_configured: bool, deployment: str | None = None
) -> errors.CompletionError:
    """This library's error for a LiteLLM exception; PoolsExhausted when the pool had fallbacks and all failed.
    An exception the mapping does not know is a plain CompletionError: nothing says the provider is down.
    The deployment named is the one LiteLLM's exception says failed (after fallbacks: the first one tried), else
    `deployment` (from the failed attempts recorded)."""
    target = error_type(exc) or errors.CompletionError
    deployment = getattr(exc, "failed_deployment_id", None) or deployment
    status = getattr(exc, "status_code", None)
    # Only the exception type and status travel on: provider messages can echo request data.
    summary = f"{type(exc).__name__}" + (f" (HTTP {status})" if status else "")
    if fallbacks_configured and target is not errors.BadRequest and target is not errors.ContextWindowExceeded:
        return errors.PoolsExhausted(
            f"pool {pool!r} and its fallbacks all failed: {summary}",
            cause=target.__name__,
            pool=pool,
            deployment=deployment,
            status_code=status,
        )
    return target(f"pool {pool!r} failed: {summary}", pool=pool, deployment=deployment, status_code=status)
