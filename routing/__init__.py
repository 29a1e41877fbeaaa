"""taskrouter's routing: classify a query, pick its LiteLLM pool, complete.

>>> from routing import route_and_complete
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

from classifier.errors import ConfigError, TaskRouterError

from .errors import (
    AuthenticationFailed,
    BadRequest,
    CompletionError,
    CompletionTimeout,
    ContextWindowExceeded,
    PoolsExhausted,
    ProviderUnavailable,
    RateLimited,
)

_LAZY = {  # imported on first use: LiteLLM takes seconds to import
    "route_and_complete": "complete",
    "aroute_and_complete": "complete",
    "get_router": "complete",
    "Config": "config",
    "load_config": "config",
    "RoutedCompletion": "results",
    "RoutedStream": "results",
    "TaskRouter": "router",
}

__all__ = [
    "AuthenticationFailed",
    "BadRequest",
    "CompletionError",
    "CompletionTimeout",
    "Config",
    "ConfigError",
    "ContextWindowExceeded",
    "PoolsExhausted",
    "ProviderUnavailable",
    "RateLimited",
    "RoutedCompletion",
    "RoutedStream",
    "TaskRouter",
    "TaskRouterError",
    "aroute_and_complete",
    "get_router",
    "load_config",
    "route_and_complete",
]

# boilerplate: the public names, imported lazily (PEP 562); type checkers read them here.
if TYPE_CHECKING:
    from .complete import aroute_and_complete, get_router, route_and_complete
    from .config import Config, load_config
    from .results import RoutedCompletion, RoutedStream
    from .router import TaskRouter


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
