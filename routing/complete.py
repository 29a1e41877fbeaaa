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
from typing import Any, NamedTuple

from classifier.errors import ConfigError

from . import _litellm
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
"""The routers being built, by (table, key): a second call for the same config waits for that build. `close_all`
empties it: a build no longer listed here when it ends was abandoned, and closes its router instead of keeping it.
The future's result is None once the router is in its table (or the build was interrupted: look again), or the
abandoned build's router, closed."""


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
    built wait for that one build (`aroute_and_complete`'s without taking a thread).

    LiteLLM has one response cache per process (`litellm.cache`), so one router at a time can have
    `router_settings.cache_responses`. Before a router with it is built, the router kept here whose cache is
    installed (the same config before a secret it reads changed, the same file given as a path and as a dict,
    or another caching config) is closed, once its calls in flight have ended; while one still runs, the build is
    refused with a ConfigError. A caching router you built yourself (`TaskRouter(...)`) is never closed here: the
    build is refused with a ConfigError at `router_settings.cache_responses` until you close it.
    """
    return _router(config, None)


def _router(config: str | Path | Config | dict | TaskRouter | None, hold: contextlib.ExitStack | None) -> TaskRouter:
    """`get_router`; with `hold`, the router is counted in flight from the moment it is picked until `hold` closes,
    so that another thread evicting it meanwhile closes it only after this call (`close_when_idle`)."""
    if isinstance(config, TaskRouter):
        return config
    slot = _slot(config)
    while True:
        router, evicted, pending, builder = _look_up(slot, hold)
        for old in evicted:
            old.close_when_idle()  # a request still running on it (a stream still read) ends first
        if router is not None:
            return router
        assert pending is not None
        if builder:
            _build(slot, pending)  # an error of the build is raised by `result()` below, as for the calls waiting
        abandoned = pending.result()
        if abandoned is not None:
            return abandoned  # built while `close_all` ran: closed, as every router handed out before it
        # else the router is in its table (picked on the next turn), or the build was interrupted: one more turn


async def _arouter(config: str | Path | Config | dict | None, hold: contextlib.ExitStack) -> TaskRouter:
    """`_router` for a coroutine: a router already built is picked on the event loop, without a thread; only the
    call that builds one hands the build to a worker thread (the loop's default executor), and calls for a config
    being built await that build without holding a thread. Nothing is counted on `hold` before the router is
    picked, so a call cancelled while it waits holds nothing."""
    slot = _slot(config)
    loop = asyncio.get_running_loop()
    while True:
        router, evicted, pending, builder = _look_up(slot, hold)
        for old in evicted:  # closing writes the telemetry: not on the loop
            loop.run_in_executor(None, _logged, old.close_when_idle)
        if router is not None:
            return router
        assert pending is not None
        if builder:
            try:
                loop.run_in_executor(None, _logged, _build, slot, pending)
            except BaseException:  # the executor is shut down: the calls waiting must not wait for good
                _end_build(slot, pending, None)
                raise
        abandoned = await asyncio.wrap_future(pending)  # cancelled, the wait ends; the build goes on
        if abandoned is not None:
            return abandoned


class _Slot(NamedTuple):
    """Where `get_router` keeps the router for one config, and how to build it."""

    table: MutableMapping[str, TaskRouter]
    kind: str
    key: str
    build: Callable[[], TaskRouter]


def _slot(config: str | Path | Config | dict | None) -> _Slot:
    if config is None:
        config = config_from_env() or load_config(None)  # load_config: the ConfigError naming TASKROUTER_CONFIG
    if isinstance(config, (str, Path)):
        path = config
        return _Slot(_by_path, "path", str(Path(path).resolve()), lambda: _new_router(path))
    loaded = load_config(config)
    return _Slot(_by_content, "content", _content_key(loaded), lambda: _new_router(loaded))


def _content_key(config: Config) -> str:
    """A digest of the config as a router would run it: `os.environ/NAME` values as they are now (a rotated key
    gets a new router, not the one holding the old key) and a relative `classifier.model` read from the current
    directory. Only the digest is kept: a config can hold API keys."""
    model = config.taskrouter.classifier.model
    here = str(Path.cwd()) if model is not None and not Path(model).is_absolute() and not config.source else None
    canonical = json.dumps([config.source, resolve_secrets(config.model_dump(mode="json")), here], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _look_up(
    slot: _Slot, hold: contextlib.ExitStack | None
) -> tuple[TaskRouter | None, list[TaskRouter], Future[TaskRouter | None] | None, bool]:
    """(the open router kept for `slot`, picked, or None; the routers evicted for it, to close once idle; the build to
    wait for when there is no router; whether this call registered that build and must run it)."""
    with _lock:
        router = slot.table.get(slot.key)
        if router is not None and not router.closed:
            return router, _pick(slot.table, slot.key, router, hold), None, False
        pending = _building.get((slot.kind, slot.key))
        if pending is not None:
            return None, [], pending, False
        pending = _building[slot.kind, slot.key] = Future()
        pending.set_running_or_notify_cancel()  # a waiter's cancellation (`wrap_future`) cannot cancel the build
    return None, [], pending, True


def _logged(function: Callable[..., object], *args: object) -> None:
    """`function(*args)` on an executor's thread, whose future nobody reads: an error is logged, not lost."""
    try:
        function(*args)
    except Exception:
        log.warning("%s failed", getattr(function, "__qualname__", function), exc_info=True)


def _build(slot: _Slot, pending: Future[TaskRouter | None]) -> None:
    """Run the build `pending` stands for and hand over what it gives: the router to its table (evicting the least
    recently used), or its error to the calls waiting on `pending`. An exception is not raised here: the calls
    read it from `pending`; an interruption (KeyboardInterrupt) is, after the waiting calls were told to look again.
    A build that `close_all` abandoned closes its router instead of keeping it."""
    try:
        log.debug("building a router for a %s config", slot.kind)
        router = slot.build()
    except Exception as exc:
        _end_build(slot, pending, exc)
        return
    except BaseException:
        _end_build(slot, pending, None)  # a call waiting on it builds the router itself
        raise
    log.debug("built a router for a %s config", slot.kind)
    evicted: list[TaskRouter] = []
    with _lock:
        kept = _building.get((slot.kind, slot.key)) is pending
        if kept:
            del _building[slot.kind, slot.key]
            slot.table[slot.key] = router
            evicted = _pick(slot.table, slot.key, router, None)
    try:
        if not kept:
            log.debug("closing a router built while close_all ran")
            router.close()
    finally:
        pending.set_result(None if kept else router)
    for old in evicted:
        old.close_when_idle()


def _end_build(slot: _Slot, pending: Future[TaskRouter | None], error: Exception | None) -> None:
    """A build that gave no router: forgotten, and its error (or None: look again) handed to the calls waiting."""
    with _lock:
        if _building.get((slot.kind, slot.key)) is pending:
            del _building[slot.kind, slot.key]
    if error is not None:
        pending.set_exception(error)
    else:
        pending.set_result(None)


def _new_router(config: str | Path | Config) -> TaskRouter:
    """`TaskRouter(config)`; for a config with `router_settings.cache_responses`, the router kept here whose response
    cache is LiteLLM's process-wide one is closed first (see `get_router`)."""
    released = _release_response_cache() if _caches_responses(config) else None
    try:
        return TaskRouter(config)
    except ConfigError as exc:
        if released is None or released.closed or exc.path != "router_settings.cache_responses":
            raise
        raise ConfigError(
            "LiteLLM's response cache is process-wide (litellm.cache), and it is still the one of the router "
            "get_router kept for another config (e.g. this one before a secret it reads changed) while a call in "
            "flight still runs on that router; it closes when its calls have ended: call again then",
            path=exc.path,
        ) from None


def _caches_responses(config: str | Path | Config) -> bool:
    """Whether the config sets `router_settings.cache_responses`; False for a config that cannot be loaded (building
    the router raises its error)."""
    try:
        loaded = config if isinstance(config, Config) else load_config(config)
    except ConfigError:
        return False
    return bool(loaded.router_settings.cache_responses)


def _release_response_cache() -> TaskRouter | None:
    """Take the router kept here whose LiteLLM Router installed `litellm.cache` out of its table, and close it once
    its calls in flight have ended (at once when there are none): the router taken, or None (no cache installed,
    or not by a router kept here)."""
    owner = _litellm.response_cache_owner()
    if owner is None:
        return None
    with _lock:
        found = next(((t, k, r) for t in (_by_path, _by_content) for k, r in t.items() if r.router is owner), None)
        if found is None:
            return None
        table, key, router = found
        del table[key]
    log.info("closing the router kept for another config with cache_responses: one router at a time holds the cache")
    router.close_when_idle()
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
    """Close every router `get_router` built (telemetry written, threads stopped) and forget them. A router still
    being built is closed when its build ends, not kept (a call waiting for it gets it closed); calls made after
    `close_all` build new ones."""
    with _lock:
        routers = [*_by_path.values(), *_by_content.values()]
        _by_path.clear()
        _by_content.clear()
        _building.clear()  # the builds in flight see that they were abandoned
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
    """Async `route_and_complete`. A router already built is picked on the event loop; the first call for a config
    builds its router in a worker thread (building one loads the model and opens the telemetry database, which
    would stall the event loop), and the calls for that config meanwhile await it without taking a thread."""
    if isinstance(config, TaskRouter):
        return await config.acomplete(query, history, **litellm_kwargs)
    with contextlib.ExitStack() as hold:
        router = await _arouter(config, hold)
        return await router.acomplete(query, history, **litellm_kwargs)
