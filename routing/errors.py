"""Completion errors. Every LiteLLM exception maps to one of these in `routing._litellm.map_exception`.

TaskRouterError                       (classifier.errors)
├── ConfigError (ValueError)          (classifier.errors) malformed config; `.path` names the field
└── CompletionError                   a routed completion failed: `.pool`, `.deployment`
    ├── RateLimited                   429 from the provider or no deployment left in the pool
    ├── CompletionTimeout (TimeoutError)
    ├── ContextWindowExceeded         the prompt is too long for every pool tried
    ├── ProviderUnavailable           5xx, connection errors
    ├── AuthenticationFailed          401/403
    ├── BadRequest (ValueError)       the provider rejected the request itself
    └── PoolsExhausted                the pool and all its fallbacks failed; `.cause` is the last error type
"""

from __future__ import annotations

from classifier.errors import ConfigError, TaskRouterError

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "CompletionError",
    "CompletionTimeout",
    "ConfigError",
    "ContextWindowExceeded",
    "PoolsExhausted",
    "ProviderUnavailable",
    "RateLimited",
    "TaskRouterError",
]


class CompletionError(TaskRouterError):
    """A routed completion failed; `pool` is the pool asked for, `deployment` one that failed (if known; after
    fallbacks LiteLLM names the first)."""

    def __init__(
        self, message: str, *, pool: str | None = None, deployment: str | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.pool, self.deployment, self.status_code = pool, deployment, status_code


class RateLimited(CompletionError):
    """The provider (or every deployment of the pool) is rate limited."""


class CompletionTimeout(CompletionError, TimeoutError):
    """The provider did not answer within the timeout."""


class ContextWindowExceeded(CompletionError):
    """The prompt is longer than the context window of every pool tried."""


class ProviderUnavailable(CompletionError):
    """Server errors or connection failures."""


class AuthenticationFailed(CompletionError):
    """The provider refused the credentials."""


class BadRequest(CompletionError, ValueError):
    """The provider rejected the request as invalid."""


class PoolsExhausted(CompletionError):
    """The pool and all its fallbacks failed."""

    def __init__(self, message: str, *, cause: str, **kw) -> None:
        super().__init__(message, **kw)
        self.cause = cause
