"""The one module that imports LiteLLM: build the Router, read who served and what failed, map its exceptions.

LiteLLM keeps its settings, loggers, callback lists and response cache process-wide. This module changes them
in three places only: `configure_litellm` (loggers, called when a Router is built), `add_callback` /
`remove_callback` (a callback's owner removes it from every list LiteLLM copied it into), and `build_router` /
`retire_router` (the response cache a router with `cache_responses` installs is removed when it is retired; while
it is installed, the other routers `build_router` built keep out of it).
Importing it changes nothing: LiteLLM is imported with its bundled price map (see `_import_litellm`) and the
environment is left as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import inspect
import json
import logging
import os
import sys
import threading
import typing
import weakref
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
import pydantic  # noqa: E402
import pydantic_core  # noqa: E402
from litellm import Router  # noqa: E402
from litellm.integrations.custom_logger import CustomLogger  # noqa: E402
from litellm.types.router import LiteLLM_Params, RoutingGroup, validate_litellm_params_strictly  # noqa: E402

from classifier.errors import InvalidParameterError  # noqa: E402

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
    "response_cache_owner",
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


_NO_RESPONSE_CACHE = {"no-cache": True, "no-store": True}
"""The `cache` argument a call gets from a router of ours without `cache_responses` while another router of ours
has its response cache installed as the process-wide `litellm.cache` (`_keep_out_of_others_cache`): LiteLLM writes
every answer into that cache, even on a call that does not read it, so the caching router would serve this
router's answers (another provider's, another key's) as its own."""


def _router_defaults(settings: LiteLLMSettings, router_settings: dict[str, Any]) -> dict[str, Any]:
    """`litellm_settings` as this Router's own: `drop_params` for each of its calls, `request_timeout` as its
    default timeout (unless `router_settings.timeout` names one)."""
    extra: dict[str, Any] = {}
    if settings.drop_params is not None:
        extra["default_litellm_params"] = {"drop_params": settings.drop_params}
    if settings.request_timeout is not None and "timeout" not in router_settings:
        extra["timeout"] = settings.request_timeout
    return extra


def _keep_out_of_others_cache(router: Router) -> None:
    """Wrap `router.completion` and `router.acompletion` (LiteLLM keeps an instance's replacement of an endpoint, and
    a Router cannot be subclassed) so that each call decides, when it is made, whether it keeps out of
    `litellm.cache` (`_call_kwargs`)."""
    ref = weakref.ref(router)  # the wrappers live on the Router: no strong reference back to it
    completion, acompletion = router.completion, router.acompletion

    def isolated_completion(*args: Any, **kwargs: Any) -> Any:
        return completion(*args, **_call_kwargs(ref(), kwargs))

    async def isolated_acompletion(*args: Any, **kwargs: Any) -> Any:
        return await acompletion(*args, **_call_kwargs(ref(), kwargs))

    setattr(router, "completion", isolated_completion)  # noqa: B010 - mypy refuses assigning to a method
    setattr(router, "acompletion", isolated_acompletion)  # noqa: B010


def _call_kwargs(router: Router | None, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments, with `cache=_NO_RESPONSE_CACHE` while `litellm.cache` is the response cache another
    router of ours installed. The caller's own `cache=...` or `caching=True` is left as it is (they asked for the
    cache that is there), and so is every call while `litellm.cache` is the application's own cache or none:
    only another taskrouter router's cache is kept out of. `caching=False` keeps out of it too: LiteLLM would still
    store the answer there."""
    if "cache" in kwargs or kwargs.get("caching") is True:
        return kwargs
    with _cache_lock:
        owner = _live_cache_owner()
    if owner is None or owner is router:
        return kwargs
    return {**kwargs, "cache": dict(_NO_RESPONSE_CACHE)}


_cache_lock = threading.RLock()  # reentrant: a TaskRouter collected unclosed retires its router wherever GC runs
_installed_caches: dict[int, tuple[weakref.ref[Router], Any]] = {}
"""The response caches our routers installed as `litellm.cache`, by `id(router)`: (the router, its cache)."""


def _live_cache_owner() -> Router | None:
    """The router of ours whose response cache is `litellm.cache`, if it is still alive; call with `_cache_lock`.
    The cache of a router collected without being retired is removed here."""
    for key, (ref, cache) in list(_installed_caches.items()):
        owner = ref()
        if owner is None:
            del _installed_caches[key]
            if litellm.cache is cache:
                _remove_response_cache()
        elif litellm.cache is cache:
            return owner
    return None


def response_cache_owner() -> Router | None:
    """The LiteLLM Router built by `build_router` whose response cache is `litellm.cache` now; None when there is
    none (no cache, or the application's own)."""
    with _cache_lock:
        return _live_cache_owner()


def _remove_response_cache() -> None:
    litellm.cache = None  # type: ignore[attr-defined]  # LiteLLM's module attribute, which mypy does not see


def build_router(config: Config) -> Router:
    """A LiteLLM Router for the config, secrets resolved only here.

    With `router_settings.cache_responses`, LiteLLM installs the router's response cache as the process-wide
    `litellm.cache` (unless one is set already, e.g. the LiteLLM Proxy's): `retire_router` removes it again. While
    it is installed, a second router with `cache_responses` is refused (it would share the first one's cache, its
    answers and its Redis), and the calls of the routers built here without it neither read nor write it, unless a
    call passes `caching=True` or `cache=...` (`_call_kwargs`). A `litellm.cache` the application set itself is
    used as LiteLLM uses it.
    """
    model_list = [resolve_secrets(d.model_dump(), f"model_list[{i}]") for i, d in enumerate(config.model_list)]
    settings = resolve_secrets(config.router_settings.model_dump(exclude_none=True), "router_settings")
    groups = settings.pop("routing_groups", None)
    if groups:  # pools no group claims keep the top-level routing_strategy
        settings["routing_groups"] = [RoutingGroup(**g) for g in groups]
    configure_litellm()
    for i, deployment in enumerate(model_list):
        _check_provider(deployment["litellm_params"], f"model_list[{i}].litellm_params.model")
    with _cache_lock:
        if settings.get("cache_responses") and _live_cache_owner() is not None:
            raise errors.ConfigError(
                "LiteLLM's response cache is process-wide (litellm.cache), and another router of this process "
                "has installed its own: this router would serve that router's cached answers and store its own "
                "there. Close the other router first, run this one in another process, or turn cache_responses off",
                path="router_settings.cache_responses",
            )
        before = litellm.cache
        try:
            router = Router(model_list=model_list, **settings, **_router_defaults(config.litellm_settings, settings))
        except BaseException as exc:
            if before is None:
                _remove_response_cache()  # a cache installed by the build that failed
            if isinstance(exc, pydantic.ValidationError):
                raise _config_error(exc, model_list, settings) from None  # its message echoes the values
            raise
        if before is None and litellm.cache is not None:
            _installed_caches[id(router)] = (weakref.ref(router), litellm.cache)
    _keep_out_of_others_cache(router)
    return router


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


_ROUTING_ARGS_MODULES = {
    "usage-based-routing": "litellm.router_strategy.lowest_tpm_rpm",
    "usage-based-routing-v2": "litellm.router_strategy.lowest_tpm_rpm_v2",
    "latency-based-routing": "litellm.router_strategy.lowest_latency",
}
"""Where LiteLLM's `RoutingArgs` model of each strategy that reads `routing_strategy_args` is defined."""


def _config_error(
    exc: pydantic.ValidationError, model_list: list[dict], settings: dict[str, Any]
) -> errors.ConfigError:
    """LiteLLM's ValidationError from building the Router as a ConfigError naming the config field.

    The Router validates the deployments in order and reports no index, so the first deployment (or routing
    strategy's arguments) that fails the same validation is the one named. Only the field and pydantic's messages
    travel on, never the value: it may be a secret (`os.environ/NAME` is resolved by then).
    """
    where, found = "", exc
    if exc.title == "LiteLLM_Params":
        where = "model_list[?].litellm_params"
        for i, deployment in enumerate(model_list):
            try:
                validate_litellm_params_strictly(LiteLLM_Params, deployment["litellm_params"])
            except pydantic.ValidationError as again:
                where, found = f"model_list[{i}].litellm_params", again
                break
    elif exc.title == "RoutingArgs":
        where = "router_settings.routing_strategy_args"
        candidates = [(where, settings.get("routing_strategy"), settings.get("routing_strategy_args"))]
        candidates += [
            (f"router_settings.routing_groups[{i}].routing_strategy_args", g.routing_strategy, g.routing_strategy_args)
            for i, g in enumerate(settings.get("routing_groups") or [])
        ]
        for field_path, strategy, args in candidates:
            module = _ROUTING_ARGS_MODULES.get(str(strategy))
            if module is None or not args:
                continue
            try:
                importlib.import_module(module).RoutingArgs(**args)
            except pydantic.ValidationError as again:
                where, found = field_path, again
                break
    problems = found.errors(include_url=False, include_context=False)
    by_field: dict[str, list[str]] = {}
    for problem in problems:  # a union field (e.g. api_key) fails once per member: one field, several messages
        field = str(problem["loc"][0]) if problem["loc"] else ""
        by_field.setdefault(field, [])
        message = _safe_message(problem)
        if message not in by_field[field]:
            by_field[field].append(message)
    field, messages = next(iter(by_field.items()))
    path = ".".join(p for p in (where, field) if p) or None
    return errors.ConfigError(
        f"{'; or '.join(messages)} (LiteLLM's {found.title}; {len(by_field)} field(s) refused in all)", path=path
    )


_OWN_MESSAGES = ("value_error", "assertion_error")
"""Pydantic error types whose message a validator wrote (pydantic's own never quote the value)."""


def _safe_message(problem: Any) -> str:
    """Pydantic's message for one problem; a validator's own message that quotes the value is left out."""
    kind, message = str(problem.get("type")), str(problem.get("msg") or "")
    if kind not in _OWN_MESSAGES and kind in _PYDANTIC_ERROR_TYPES:
        return message
    value = problem.get("input")
    leaves = list(value.values()) if isinstance(value, dict) else [value]
    if any(str(leaf) in message for leaf in leaves if leaf is not None and str(leaf)):
        return f"invalid value ({kind})"
    return message


_PYDANTIC_ERROR_TYPES = frozenset(typing.get_args(pydantic_core.core_schema.ErrorType))


def retire_router(router: Router) -> None:
    """Release what a Router registered process-wide (LiteLLM's `Router.retire`, and the response cache it
    installed, if it is still `litellm.cache`); it could still serve calls."""
    try:
        router.retire()
    finally:
        with _cache_lock:
            ref, cache = _installed_caches.pop(id(router), (None, None))
            if ref is not None and ref() is router and litellm.cache is cache:
                _remove_response_cache()


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
    """The caller's or the program's error that LiteLLM wrapped into a provider error, if any.

    LiteLLM turns an exception raised while it prepares a call (e.g. a bad argument) into APIConnectionError;
    such a fault is the caller's, not the provider's, and must not pass for an outage. A TypeError,
    AttributeError or NameError anywhere in the cause chain is returned as it is. A ValueError LiteLLM wrapped
    directly into APIConnectionError (e.g. `timeout="abc"`: no request was sent, no response read) comes back as
    InvalidParameterError naming the argument where the traceback tells it; a ValueError from reading a provider's
    response (malformed JSON, a response that fails validation) stays the provider's.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    wrapper: BaseException | None = None
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (TypeError, AttributeError, NameError)) and not isinstance(current, _PROVIDER_ERRORS):
            return current
        if isinstance(wrapper, litellm.APIConnectionError) and _is_argument_error(current):
            return _invalid_argument(current)
        wrapper, current = current, current.__cause__ or current.__context__
    return None


def _is_argument_error(exc: BaseException) -> bool:
    """A ValueError of the program's or the caller's, not one from reading a provider's response."""
    response_errors = (json.JSONDecodeError, UnicodeError, pydantic.ValidationError, *_PROVIDER_ERRORS)
    return isinstance(exc, ValueError) and not isinstance(exc, response_errors)


class _Shown:
    """What InvalidParameterError shows as the value: a description, never the value (it may come from a
    deployment's `litellm_params`, a resolved secret)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _invalid_argument(exc: BaseException) -> InvalidParameterError:
    """InvalidParameterError for a ValueError LiteLLM raised on an argument of its call, naming it when a frame of
    the traceback, innermost first, has exactly one argument named like a `litellm.completion` parameter (e.g.
    `as_limit(timeout)`); else `litellm_kwargs`. Neither the value nor LiteLLM's message (which quotes it) is used."""
    name, shown = "litellm_kwargs", _Shown("a value LiteLLM could not use")
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        code = frame.f_code
        arguments = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        named = [a for a in arguments if a in _completion_parameters()]
        if len(named) == 1:
            name, shown = named[0], _Shown(f"a {type(frame.f_locals.get(named[0])).__name__}")
            break
        if named:  # several: which one is at fault cannot be told
            break
    return InvalidParameterError(
        name,
        shown,
        f"a value LiteLLM accepts (it raised {type(exc).__name__} before sending the request; the argument comes "
        "from the call, or from the deployment's litellm_params)",
    )


@functools.cache
def _completion_parameters() -> frozenset[str]:
    """The named parameters of `litellm.completion` that a caller sets (not the model, messages or `**kwargs`)."""
    parameters = inspect.signature(litellm.completion).parameters
    return frozenset(parameters) - {"model", "messages", "kwargs"}


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
