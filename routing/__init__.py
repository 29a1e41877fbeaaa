"""taskrouter's routing: classify a query, pick its LiteLLM pool, complete.

>>> from routing import route_and_complete
"""

from classifier.errors import ConfigError, TaskRouterError

from .complete import aroute_and_complete, get_router, route_and_complete
from .config import Config, load_config
from .errors import (AuthenticationFailed, BadRequest, CompletionError, CompletionTimeout, ContextWindowExceeded,
                     PoolsExhausted, ProviderUnavailable, RateLimited)
from .results import RoutedCompletion, RoutedStream
from .router import TaskRouter

__all__ = ["AuthenticationFailed", "BadRequest", "CompletionError", "CompletionTimeout", "Config", "ConfigError",
           "ContextWindowExceeded", "PoolsExhausted", "ProviderUnavailable", "RateLimited", "RoutedCompletion",
           "RoutedStream", "TaskRouter", "TaskRouterError", "aroute_and_complete", "get_router", "load_config",
           "route_and_complete"]
