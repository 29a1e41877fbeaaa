"""The one module that imports LiteLLM: build the Router, read who served, map LiteLLM's exceptions.

LiteLLM keeps its settings, loggers and callback lists process-wide. This module changes them in two places
only: `configure_litellm` (settings and loggers, called when a Router is built) and `add_callback` /
`remove_callback` (a callback's owner removes it from every list LiteLLM copied it into). Importing it changes
nothing: LiteLLM is imported with its bundled price map (see `_import_litellm`) and the environment is left as
it was.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import sys
from types import ModuleType

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

__all__ = [
    "PRICE_MAP_VARIABLE",
    "CustomLogger",
    "Router",
    "add_callback",
    "build_router",
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
    "served_by",
]

_QUIET_LOGGERS = ("LiteLLM Router", "LiteLLM")


def configure_litellm(settings: LiteLLMSettings) -> None:
    """Set LiteLLM's process-wide state that taskrouter needs; the only function that does.

    - LiteLLM's loggers are silenced below CRITICAL: they log every failed attempt at ERROR together with the
      request's kwargs (messages, API keys); our own errors carry what callers need.
    - The config's `litellm_settings` (`drop_params`, `request_timeout`) become attributes of the `litellm`
      module. They are process-wide in LiteLLM: with several routers in one process, the last one built sets
      them.

    `build_router` calls it; a Router given to `TaskRouter(router=...)` (the LiteLLM Proxy's) is left as its
    owner configured it.
    """
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    for key, value in settings.model_dump(exclude_none=True).items():
        setattr(litellm, key, value)


def build_router(config: Config) -> Router:
    """A LiteLLM Router for the config, secrets resolved only here."""
    model_list = [resolve_secrets(d.model_dump(), f"model_list[{i}]") for i, d in enumerate(config.model_list)]
    settings = resolve_secrets(config.router_settings.model_dump(exclude_none=True), "router_settings")
    groups = settings.pop("routing_groups", None)
    if groups:  # pools no group claims keep the top-level routing_strategy
        settings["routing_groups"] = [RoutingGroup(**g) for g in groups]
    configure_litellm(config.litellm_settings)
    return Router(model_list=model_list, **settings)


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


def served_by(response: object) -> tuple[str | None, str | None, float]:
    """(pool alias, deployment id, cost in USD) of the deployment that answered."""
    hidden = getattr(response, "_hidden_params", None) or {}
    headers = hidden.get("additional_headers") or {}
    cost = hidden.get("response_cost")
    return headers.get("x-litellm-model-group"), hidden.get("model_id"), float(cost or 0.0)


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


def map_exception(exc: BaseException, *, pool: str, fallbacks_configured: bool) -> errors.CompletionError:
    """This library's error for a LiteLLM exception; PoolsExhausted when the pool had fallbacks and all failed."""
    target = error_type(exc) or errors.ProviderUnavailable
    deployment = getattr(exc, "model_id", None)
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
