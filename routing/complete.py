"""`route_and_complete`: one call that classifies, picks the pool and completes."""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from .config import Config, config_from_env, load_config, resolve_secrets
from .results import RoutedCompletion, RoutedStream
from .router import TaskRouter

__all__ = ["MAX_CONFIG_ROUTERS", "aroute_and_complete", "close_all", "get_router", "route_and_complete"]

MAX_CONFIG_ROUTERS = 16
"""How many routers built from dicts and Config objects `get_router` keeps open; the least recently used goes."""

_lock = threading.Lock()
_by_path: dict[str, TaskRouter] = {}
_by_content: OrderedDict[str, TaskRouter] = OrderedDict()


def get_router(config: str | Path | Config | dict | TaskRouter | None = None) -> TaskRouter:
    """The TaskRouter for `config`, built on first use and reused after.

    - A path (or `$TASKROUTER_CONFIG` when `config` is None) gives one router per resolved file, kept until
      `close_all` (at exit); a file changed afterwards is not read again.
    - A dict or a `Config` gives one router per content: equal configs share a router, however many fresh
      dicts a caller builds. A dict is validated at each call (`load_config`), and a relative
      `classifier.model` is read from the current directory. The `MAX_CONFIG_ROUTERS` most recently used are
      kept; the one before them is closed once its requests in flight have returned (telemetry written, threads
      stopped), so keep a router that you hold across many other configs yourself: build a `TaskRouter` and close
      it.
    - A `TaskRouter` is returned as it is.
    """
    return _router(config, None)


def _router(config: str | Path | Config | dict | TaskRouter | None, hold: contextlib.ExitStack | None) -> TaskRouter:
    """`get_router`; with `hold`, the router is counted in flight from the moment it is picked until `hold` closes,
    so that another thread evicting it meanwhile closes it only after this call (`close_when_idle`)."""
    if isinstance(config, TaskRouter):
        return config
    if config is None:
        config = config_from_env()
    if config is None or isinstance(config, (str, Path)):
        return _router_for_path(config)
    return _router_for_content(load_config(config), hold)


def _router_for_path(path: str | Path | None) -> TaskRouter:
    if path is None:
        return TaskRouter(None)  # raises the ConfigError that names TASKROUTER_CONFIG
    key = str(Path(path).resolve())
    with _lock:
        router = _by_path.get(key)
        if router is None or router.closed:
            router = _by_path[key] = TaskRouter(path)
        return router


def _content_key(config: Config) -> str:
    """A digest of the config as a router would run it: `os.environ/NAME` values as they are now (a rotated key
    gets a new router, not the one holding the old key) and a relative `classifier.model` read from the current
    directory. Only the digest is kept: a config can hold API keys."""
    model = config.taskrouter.classifier.model
    here = str(Path.cwd()) if model is not None and not Path(model).is_absolute() and not config.source else None
    canonical = json.dumps([config.source, resolve_secrets(config.model_dump(mode="json")), here], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _router_for_content(config: Config, hold: contextlib.ExitStack | None = None) -> TaskRouter:
    key = _content_key(config)
    evicted: list[TaskRouter] = []
    with _lock:
        router = _by_content.get(key)
        if router is None or router.closed:
            router = _by_content[key] = TaskRouter(config)
        if hold is not None:  # under the lock: no eviction can come between picking it and counting the call
            hold.enter_context(router.busy())
        _by_content.move_to_end(key)
        while len(_by_content) > MAX_CONFIG_ROUTERS:
            evicted.append(_by_content.popitem(last=False)[1])
    for old in evicted:
        old.close_when_idle()  # a request still running on it finishes, and its telemetry is written
    return router


@atexit.register
def close_all() -> None:
    """Close every router `get_router` built (telemetry written, threads stopped) and forget them."""
    with _lock:
        routers = [*_by_path.values(), *_by_content.values()]
        _by_path.clear()
        _by_content.clear()
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
    with contextlib.ExitStack() as hold:
        return _router(config, hold).complete(query, history, **litellm_kwargs)


async def aroute_and_complete(
    query: str,
    history: list[dict] | None = None,
    *,
    config: str | Path | Config | dict | TaskRouter | None = None,
    **litellm_kwargs: Any,
) -> RoutedCompletion | RoutedStream:
    """Async `route_and_complete`."""
    with contextlib.ExitStack() as hold:
        return await _router(config, hold).acomplete(query, history, **litellm_kwargs)
