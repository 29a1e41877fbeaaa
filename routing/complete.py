"""`route_and_complete`: one call that classifies, picks the pool and completes."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import hashlib
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, MutableMapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from .config import Config, config_from_env, load_config, resolve_secrets
from .results import RoutedCompletion, RoutedStream
from .router import TaskRouter

__all__ = ["MAX_CONFIG_ROUTERS", "aroute_and_complete", "close_all", "get_router", "route_and_complete"]

MAX_CONFIG_ROUTERS = 16
"""How many routers built from dicts and Config objects `get_router` keeps open; the least recently used goes."""

log = logging.getLogger("taskrouter.complete")

_lock = threading.Lock()
"""Guards the tables below; never held while a router is built (that takes seconds: the model, the database)."""
_by_path: dict[str, TaskRouter] = {}
_by_content: OrderedDict[str, TaskRouter] = OrderedDict()
_building: dict[tuple[str, str], Future[TaskRouter | None]] = {}
"""The routers being built, by (table, key): a second call for the same config waits for that build."""


def get_router(config: str | Path | Config | dict | TaskRouter | None = None) -> TaskRouter:
    """The TaskRouter for `config`, built on first use and reused after.

    - A path (or `$TASKROUTER_CONFIG` when `config` is None) gives one router per resolved file, kept until
      `close_all` (at exit); a file changed afterwards is not read again.
    - A dict or a `Config` gives one router per content: equal configs share a router, however many fresh
      dicts a caller builds. A dict is validated at each call (`load_config`), and a relative
      `classifier.model` is read from the current directory. The `MAX_CONFIG_ROUTERS` most recently used are
      kept; the one before them is closed once its requests in flight have ended, a stream once it was read to its
      end, closed or collected (telemetry written, threads stopped), so keep a router that you hold across many
      other configs yourself: build a `TaskRouter` and close it.
    - A `TaskRouter` is returned as it is.

    A router is built without holding up the calls that want other configs' routers; calls for the config being
    built wait for that one build.
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
    return _cached(_by_path, "path", str(Path(path).resolve()), lambda: TaskRouter(path), None)


def _content_key(config: Config) -> str:
    """A digest of the config as a router would run it: `os.environ/NAME` values as they are now (a rotated key
    gets a new router, not the one holding the old key) and a relative `classifier.model` read from the current
    directory. Only the digest is kept: a config can hold API keys."""
    model = config.taskrouter.classifier.model
    here = str(Path.cwd()) if model is not None and not Path(model).is_absolute() and not config.source else None
    canonical = json.dumps([config.source, resolve_secrets(config.model_dump(mode="json")), here], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _router_for_content(config: Config, hold: contextlib.ExitStack | None = None) -> TaskRouter:
    return _cached(_by_content, "content", _content_key(config), lambda: TaskRouter(config), hold)


def _cached(
    table: MutableMapping[str, TaskRouter],
    kind: str,
    key: str,
    build: Callable[[], TaskRouter],
    hold: contextlib.ExitStack | None,
) -> TaskRouter:
    """The open router `table` keeps for `key`, built by `build` if there is none: one build per key at a time, with
    `_lock` released while it runs. `_by_content` keeps the `MAX_CONFIG_ROUTERS` most recently used."""
    while True:
        with _lock:
            router = table.get(key)
            if router is not None and not router.closed:
                evicted = _pick(table, key, router, hold)
                break
            pending = _building.get((kind, key))
            builder = pending is None
            if pending is None:
                pending = _building[kind, key] = Future()
        if not builder:
            pending.result()  # a build's error is raised here too; a built router is picked on the next turn
            continue
        try:
            log.debug("building a router for a %s config", kind)
            router = build()
        except BaseException as exc:
            with _lock:
                del _building[kind, key]
            if isinstance(exc, Exception):
                pending.set_exception(exc)  # the config's error, for the calls waiting on it too
            else:
                pending.set_result(None)  # interrupted: a call waiting on it builds the router itself
            raise
        log.debug("built a router for a %s config", kind)
        with _lock:
            del _building[kind, key]
            table[key] = router
            evicted = _pick(table, key, router, hold)
        pending.set_result(router)
        break
    for old in evicted:
        old.close_when_idle()  # a request still running on it (a stream still read) ends first; telemetry written
    return router


def _pick(
    table: MutableMapping[str, TaskRouter], key: str, router: TaskRouter, hold: contextlib.ExitStack | None
) -> list[TaskRouter]:
    """Under `_lock`: count the call in flight on `router` (no eviction can come between picking it and counting the
    call) and mark it most recently used; return the least recently used routers beyond the limit, taken out."""
    if hold is not None:
        hold.enter_context(router.busy())
    evicted: list[TaskRouter] = []
    if isinstance(table, OrderedDict):
        table.move_to_end(key)
        while len(table) > MAX_CONFIG_ROUTERS:
            evicted.append(table.popitem(last=False)[1])
    return evicted


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
    """Async `route_and_complete`. The router is picked, and built on first use, in a worker thread: building one
    loads the model and opens the telemetry database, which would stall the event loop."""
    if isinstance(config, TaskRouter):
        return await config.acomplete(query, history, **litellm_kwargs)
    handoff = _Handoff()
    try:
        router = await asyncio.to_thread(handoff.pick, config)
    except BaseException:
        handoff.abandon()  # cancelled while the thread picks: the router it picks is not held for good
        raise
    with handoff.hold:
        return await router.acomplete(query, history, **litellm_kwargs)


class _Handoff:
    """A router picked (and counted in flight) on a worker thread for a coroutine that may be cancelled meanwhile:
    whichever of the two comes second, the pick or the abandonment, releases the hold."""

    def __init__(self) -> None:
        self.hold = contextlib.ExitStack()
        self._lock = threading.Lock()
        self._picked = self._abandoned = False

    def pick(self, config: str | Path | Config | dict | None) -> TaskRouter:
        try:
            return _router(config, self.hold)
        finally:
            with self._lock:
                self._picked = True
                abandoned = self._abandoned
            if abandoned:
                self.hold.close()

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            picked = self._picked
        if picked:
            self.hold.close()
