"""The one module that imports LiteLLM: build the Router, read who served, map LiteLLM's exceptions."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import ("1" is ignored)

import logging

import httpx
import litellm
import openai
from litellm import Router
from litellm.integrations.custom_logger import CustomLogger
from litellm.types.router import RoutingGroup

from . import errors
from .config import Config, resolve_secrets

__all__ = [
    "CustomLogger",
    "Router",
    "add_callback",
    "build_router",
    "error_type",
    "is_provider_error",
    "litellm",
    "map_exception",
    "program_error",
    "proxy_router",
    "remove_callback",
    "served_by",
]

# LiteLLM logs every failed attempt at ERROR with the request kwargs; our own errors carry what callers need.
logging.getLogger("LiteLLM Router").setLevel(logging.CRITICAL)
logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)


def build_router(config: Config) -> Router:
    """A LiteLLM Router for the config, secrets resolved only here."""
    model_list = [resolve_secrets(d.model_dump(), f"model_list[{i}]") for i, d in enumerate(config.model_list)]
    settings = resolve_secrets(config.router_settings.model_dump(exclude_none=True), "router_settings")
    groups = settings.pop("routing_groups", None)
    if groups:  # pools no group claims keep the top-level routing_strategy
        settings["routing_groups"] = [RoutingGroup(**g) for g in groups]
    for key, value in config.litellm_settings.model_dump(exclude_none=True).items():
        setattr(litellm, key, value)
    return Router(model_list=model_list, **settings)


def proxy_router() -> Router | None:
    """The running LiteLLM Proxy's Router, or None outside the proxy."""
    from litellm.proxy import proxy_server

    return proxy_server.llm_router


def add_callback(callback: CustomLogger) -> None:
    """Register a callback (LiteLLM's callback list is process-wide, so never twice)."""
    if callback not in litellm.callbacks:
        litellm.callbacks.append(callback)


def remove_callback(callback: CustomLogger) -> None:
    if callback in litellm.callbacks:
        litellm.callbacks.remove(callback)


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
