"""`route_and_complete`: one call that classifies, picks the pool and completes."""

from __future__ import annotations

import atexit
import os
import threading
from pathlib import Path
from typing import Any

from .config import Config
from .results import RoutedCompletion, RoutedStream
from .router import TaskRouter

__all__ = ["aroute_and_complete", "close_all", "get_router", "route_and_complete"]

_lock = threading.Lock()
_routers: dict[object, tuple[object, TaskRouter]] = {}


def get_router(config: str | Path | Config | dict | TaskRouter | None = None) -> TaskRouter:
    """The TaskRouter for `config`, built on first use and reused after (per file path or config object)."""
    if isinstance(config, TaskRouter):
        return config
    if config is None:
        config = os.environ.get("TASKROUTER_CONFIG") or None
    key: object = str(Path(config).resolve()) if isinstance(config, (str, Path)) else id(config)
    with _lock:
        hit = _routers.get(key)
        if hit is None or hit[1].closed or (not isinstance(config, (str, Path)) and hit[0] is not config):
            hit = (config, TaskRouter(config))
            _routers[key] = hit
        return hit[1]


@atexit.register
def close_all() -> None:
    """Close every router `get_router` built (telemetry written, threads stopped) and forget them."""
    with _lock:
        routers = [router for _, router in _routers.values()]
        _routers.clear()
    for router in routers:
        router.close()


def route_and_complete(
    query: str,
    history: list[dict] | None = None,
    *,
    config: str | Path | Config | dict | TaskRouter | None = None,
    **litellm_kwargs: Any,
) -> RoutedCompletion | RoutedStream:
    """Classify `query`, send it (after `history`) to its pool, and return the routed result.

    >>> r = route_and_complete("solve x^2 = 9", config="routing/configs/demo.yaml")  # doctest: +SKIP
    >>> r.decision.label, r.served_pool                                              # doctest: +SKIP
    ('math', 'math')
    """
    return get_router(config).complete(query, history, **litellm_kwargs)


async def aroute_and_complete(
    query: str,
    history: list[dict] | None = None,
    *,
    config: str | Path | Config | dict | TaskRouter | None = None,
    **litellm_kwargs: Any,
) -> RoutedCompletion | RoutedStream:
    """Async `route_and_complete`."""
    return await get_router(config).acomplete(query, history, **litellm_kwargs)
