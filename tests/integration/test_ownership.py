"""What a router opens, it owns: closing routers leaves no thread, LiteLLM callback or memory behind.

The routers answer with the demo config's mock replies; each opens everything a router can: a private event
loop thread (cost-based routing), a telemetry writer thread and database engine, and Prometheus metrics.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys
import threading
import time

import pytest
import yaml

from routing import ConfigError, TaskRouter, get_router
from routing._litellm import litellm
from routing.complete import MAX_CONFIG_ROUTERS, close_all
from routing.config import DEMO_CONFIG
from routing.telemetry import TelemetryStore

pytest.importorskip("prometheus_client")
psutil = pytest.importorskip("psutil")

MATH = "Solve for x: 3x + 7 = 22, and show each step."
ROUTERS = 200
WARM_UP = 50
COLLECT_EVERY = 25
"""A closed router is freed by the cyclic garbage collector (LiteLLM's Router holds reference cycles). Collecting
every 25 routers measures the memory routers keep, not garbage waiting for a collection: left to pile up, it
fragments the heap and RSS stays up after it is freed."""
RSS_TOLERANCE = 8 * 2**20
"""After the warm-up, 200 routers that release everything move RSS by under 1 MB here (allocator and cache noise);
a router kept alive, even closed, holds about 240 kB (mostly its LiteLLM Router): 48 MB for 200."""
CALLBACK_LISTS = ("callbacks", "success_callback", "failure_callback", "_async_success_callback")
CALLBACK_LISTS += ("_async_failure_callback", "input_callback", "service_callback")


def demo(tmp_path, **taskrouter) -> dict:
    """A fresh dict of the demo config, with a loop thread, telemetry and metrics."""
    config = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    config["router_settings"]["routing_strategy"] = "cost-based-routing"
    config["taskrouter"]["telemetry"] = {"url": f"sqlite:///{tmp_path / 'events.db'}"}
    config["taskrouter"].update(metrics="prometheus", **taskrouter)
    return config


def registered_callbacks() -> int:
    """How many entries LiteLLM's process-wide callback lists hold."""
    return sum(len(getattr(litellm, name)) for name in CALLBACK_LISTS)


def rss() -> int:
    """Resident memory in use: after a garbage collection, with glibc's free heap pages given back to the system
    (otherwise RSS also counts fragmentation, which grows with the number of allocations, not with leaks)."""
    gc.collect()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    return psutil.Process().memory_info().rss


def test_routers_built_and_closed_from_fresh_dicts_leave_nothing_behind(tmp_path, shipped_cascade):
    def build_complete_close() -> None:
        with TaskRouter(demo(tmp_path), cascade=shipped_cascade) as tr:
            assert tr.complete(MATH).served_pool == "math"

    def build_complete_close_many(n: int) -> None:
        for i in range(1, n + 1):
            build_complete_close()
            if i % COLLECT_EVERY == 0:
                gc.collect()

    build_complete_close_many(WARM_UP)  # LiteLLM's and SQLAlchemy's lazily built clients, pools and caches
    threads, callbacks, memory = set(threading.enumerate()), registered_callbacks(), rss()
    build_complete_close_many(ROUTERS)
    assert set(threading.enumerate()) <= threads
    assert registered_callbacks() == callbacks
    assert rss() - memory < RSS_TOLERANCE
    assert len(TelemetryStore(f"sqlite:///{tmp_path / 'events.db'}").events()) == WARM_UP + ROUTERS


@pytest.fixture
def router_cache():
    """`get_router`'s cache starts empty and is emptied (its routers closed) at teardown, pass or fail."""
    close_all()
    yield
    close_all()


def test_get_router_keys_dicts_by_content_and_closes_the_routers_it_evicts(tmp_path, router_cache):
    threads, callbacks = set(threading.enumerate()), registered_callbacks()
    first = get_router(demo(tmp_path))
    assert all(get_router(demo(tmp_path)) is first for _ in range(ROUTERS))  # equal fresh dicts: one router
    others = [get_router(demo(tmp_path, name=f"r{i}")) for i in range(MAX_CONFIG_ROUTERS)]
    assert first.closed and not any(r.closed for r in others)  # the least recently used went, closed
    assert get_router(demo(tmp_path, name="r0")) is others[0]
    close_all()
    assert all(r.closed for r in others)
    assert set(threading.enumerate()) <= threads
    assert registered_callbacks() == callbacks


def test_a_router_picked_for_a_call_is_not_closed_by_an_eviction_before_the_call_runs(tmp_path, router_cache):
    """`route_and_complete` picks its router and then calls it; another thread's eviction in between closed it, and
    the call failed with "this TaskRouter is closed". The pick now counts the call in flight at once."""
    from routing.complete import _router

    with contextlib.ExitStack() as hold:
        picked = _router(demo(tmp_path), hold)
        others = [get_router(demo(tmp_path, name=f"r{i}")) for i in range(MAX_CONFIG_ROUTERS)]  # evicts `picked`
        assert not picked.closed
        assert picked.complete(MATH).served_pool == "math"
    deadline = time.monotonic() + 10
    while not picked.closed and time.monotonic() < deadline:  # closed on a background thread once idle
        time.sleep(0.05)
    assert picked.closed and not any(r.closed for r in others)


def test_get_router_builds_a_new_router_when_a_secret_it_reads_changes(tmp_path, monkeypatch, router_cache):
    """The key hashed the literal `os.environ/NAME`: after a key rotation the router holding the old key served on."""
    config = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    config["model_list"][0]["litellm_params"]["api_key"] = "os.environ/TR_ROTATED_KEY"
    monkeypatch.setenv("TR_ROTATED_KEY", "old-key")
    before = get_router(config)
    assert get_router(config) is before
    monkeypatch.setenv("TR_ROTATED_KEY", "new-key")
    after = get_router(config)
    assert after is not before
    assert after.router.model_list[0]["litellm_params"]["api_key"] == "new-key"


def test_a_routers_litellm_settings_stay_its_own(provider, shipped_cascade):
    """Before: `litellm_settings` became LiteLLM module attributes, so a router built (or closed) earlier set
    `drop_params` and the request timeout of every router built after it."""
    from routing import CompletionTimeout
    from tests.integration.conftest import make_config

    before = (litellm.drop_params, litellm.request_timeout)
    strict = make_config(provider)
    del strict["router_settings"]["timeout"]  # router_settings.timeout would take precedence
    strict["litellm_settings"] = {"drop_params": True, "request_timeout": 0.5}
    provider.set(**{"math-a": {"mode": "slow", "delay": 1.5}})
    with TaskRouter(strict, cascade=shipped_cascade) as a, pytest.raises(CompletionTimeout):
        a.complete(MATH)  # its own timeout holds for it
    assert (litellm.drop_params, litellm.request_timeout) == before
    with TaskRouter(make_config(provider), cascade=shipped_cascade) as b:
        assert b.complete(MATH).served_pool == "math"  # the other router's 0.5 s is not this one's


def test_a_router_evicted_while_it_serves_a_request_closes_after_it(provider, tmp_path, router_cache, monkeypatch):
    """Before: `get_router` closed the least recently used router at once, though a request was still running on
    it: the answer came back (paid), but its telemetry row was dropped."""
    import time

    from routing import complete, route_and_complete
    from tests.integration.conftest import make_config

    monkeypatch.setattr(complete, "MAX_CONFIG_ROUTERS", 1)
    busy = make_config(provider, telemetry={"url": f"sqlite:///{tmp_path / 'busy.db'}"})
    provider.set(**{"math-a": {"mode": "slow", "delay": 2}})
    router = get_router(busy)
    answers: list = []
    worker = threading.Thread(target=lambda: answers.append(route_and_complete(MATH, config=busy)))
    worker.start()
    deadline = time.monotonic() + 30
    while provider.hits("math-a") == 0 and time.monotonic() < deadline:  # the request is with the provider
        time.sleep(0.01)
    get_router(make_config(provider, name="other"))  # evicts `busy`
    assert not router.closed  # still serving
    worker.join()
    deadline = time.monotonic() + 10
    while not router.closed and time.monotonic() < deadline:  # closed on a thread of its own ...
        time.sleep(0.05)
    for t in threading.enumerate():  # ... which writes the telemetry
        if t.name == "taskrouter-close":
            t.join(10)
    assert answers[0].served_pool == "math" and router.closed
    assert (router.telemetry.written, router.telemetry.dropped) == (1, 0)


def test_a_router_dropped_without_close_releases_what_it_opened(tmp_path, shipped_cascade):
    """Before: a router nobody closed kept its LiteLLM callback and its threads for good, though it was collected."""
    threads, callbacks = set(threading.enumerate()), registered_callbacks()

    def build_and_drop() -> None:
        tr = TaskRouter(demo(tmp_path), cascade=shipped_cascade)  # telemetry, metrics and a loop thread: all opened
        assert tr.complete(MATH).served_pool == "math"

    with pytest.warns(ResourceWarning, match="without close"):
        for _ in range(3):
            build_and_drop()
            gc.collect()
    assert {t for t in threading.enumerate() if t.name.startswith("taskrouter")} <= threads
    assert registered_callbacks() == callbacks
    assert len(TelemetryStore(f"sqlite:///{tmp_path / 'events.db'}").events()) == 3  # each written on release


def _closed_and_written(router: TaskRouter, within_s: float = 10.0) -> bool:
    """Whether `router` got closed within `within_s` (on a thread of its own, which writes its telemetry)."""
    deadline = time.monotonic() + within_s
    while not router.closed and time.monotonic() < deadline:
        time.sleep(0.05)
    for t in threading.enumerate():
        if t.name in ("taskrouter-close", "taskrouter-stream-end"):
            t.join(10)
    return router.closed


def test_a_stream_outlives_the_eviction_of_its_router(provider, tmp_path, router_cache, monkeypatch):
    """Before: a stream counted in flight only until it was returned, so other configs evicting its router closed
    the router under it: reading it raised "Event loop is closed" (cost-based routing runs on the router's loop),
    and its telemetry event was dropped. The router now closes once the stream was read to its end."""
    from routing import complete, route_and_complete
    from tests.integration.conftest import make_config

    monkeypatch.setattr(complete, "MAX_CONFIG_ROUTERS", 1)
    config = make_config(provider, router_settings={"routing_strategy": "cost-based-routing"},
                         telemetry={"url": f"sqlite:///{tmp_path / 'streams.db'}"})  # fmt: skip
    provider.set(**{"math-a": {"mode": "ok", "reply": "x equals five"}})
    stream = route_and_complete(MATH, config=config, stream=True)
    router = get_router(config)
    other = get_router(make_config(provider, name="other"))  # evicts the stream's router
    assert router is not other
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "x equals five" and _closed_and_written(router)
    assert (router.telemetry.written, router.telemetry.dropped) == (1, 0)
    (row,) = TelemetryStore(f"sqlite:///{tmp_path / 'streams.db'}").events()
    assert (row["status"], row["served_pool"]) == ("success", "math")


def test_a_stream_dropped_unread_releases_its_evicted_router(provider, tmp_path, router_cache, monkeypatch):
    """A stream counts its router in flight until it ends; one the caller drops without reading ends when it is
    collected, so the evicted router still closes (its event recorded as left unread), not held open for good."""
    from routing import complete, route_and_complete
    from tests.integration.conftest import make_config

    monkeypatch.setattr(complete, "MAX_CONFIG_ROUTERS", 1)
    config = make_config(provider, telemetry={"url": f"sqlite:///{tmp_path / 'streams.db'}"})
    stream = route_and_complete(MATH, config=config, stream=True)
    router = get_router(config)
    get_router(make_config(provider, name="other"))  # evicts the stream's router
    assert not router.closed
    del stream
    gc.collect()
    assert _closed_and_written(router)
    assert (router.telemetry.written, router.telemetry.dropped) == (1, 0)
    (row,) = TelemetryStore(f"sqlite:///{tmp_path / 'streams.db'}").events()
    assert (row["status"], row["error_class"], row["requested_pool"]) == ("failure", "GeneratorExit", "math")


def test_a_call_cancelled_while_its_router_is_built_does_not_hold_the_router(provider, router_cache, monkeypatch):
    """`aroute_and_complete` picks (and builds) its router on a worker thread, counting the call in flight; a call
    cancelled meanwhile (a caller's timeout) stops counting once the pick is done, so the router can still close."""
    import asyncio

    from routing import aroute_and_complete, complete
    from tests.integration.conftest import make_config

    monkeypatch.setattr(complete, "MAX_CONFIG_ROUTERS", 1)
    config = make_config(provider)

    async def impatient() -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(aroute_and_complete(MATH, config=config), timeout=0.01)

    asyncio.run(impatient())  # returns once the loop's worker threads, the build's among them, have finished
    router = get_router(config)
    get_router(make_config(provider, name="other"))  # evicts it: nothing in flight, so it closes at once
    assert router.closed and provider.requests == []


def _caching_config(provider) -> dict:
    """Pool `math`'s key read from `$TR_CACHE_ROTATED_KEY`, LiteLLM's response cache on."""
    from tests.integration.conftest import make_config

    config = make_config(provider, router_settings={"cache_responses": True})
    config["model_list"][2]["litellm_params"]["api_key"] = "os.environ/TR_CACHE_ROTATED_KEY"  # math-a
    return config


def test_a_rotated_secret_replaces_the_router_holding_the_response_cache(provider, monkeypatch, router_cache):
    """Before: with cache_responses, the first call after a key rotation failed with a ConfigError at
    router_settings.cache_responses: the router `get_router` kept for the config before the rotation still held
    LiteLLM's process-wide response cache, a second caching router is refused, and the old one went only once 16
    other configs had evicted it. `get_router` now closes its router holding the cache before it builds one with
    cache_responses: the new key serves, and the old key's cached answers go with the old router."""
    from routing import route_and_complete
    from routing._litellm import response_cache_owner

    config = _caching_config(provider)
    monkeypatch.setenv("TR_CACHE_ROTATED_KEY", "old-key")
    assert route_and_complete(MATH, config=config).served_pool == "math"
    before = get_router(config)
    assert route_and_complete(MATH, config=config).served_pool == "math"
    assert provider.hits("math-a") == 1  # the second answered from the cache
    monkeypatch.setenv("TR_CACHE_ROTATED_KEY", "new-key")
    assert route_and_complete(MATH, config=config).served_pool == "math"
    after = get_router(config)
    assert after is not before and before.closed
    assert after.router.model_list[2]["litellm_params"]["api_key"] == "new-key"
    assert response_cache_owner() is after.router
    assert provider.hits("math-a") == 2  # asked with the new key, not answered from the old router's cache


def test_a_rotation_while_the_old_router_serves_is_refused_until_it_has_ended(provider, monkeypatch, router_cache):
    """The router holding the cache is closed once its calls in flight end (here a stream not read yet): the
    build meanwhile is refused, saying why, and the first call after the stream ended builds the new router."""
    from routing import route_and_complete

    config = _caching_config(provider)
    monkeypatch.setenv("TR_CACHE_ROTATED_KEY", "old-key")
    provider.set(**{"math-a": {"mode": "ok", "reply": "x equals five"}})
    stream = route_and_complete(MATH, config=config, stream=True)
    before = get_router(config)
    monkeypatch.setenv("TR_CACHE_ROTATED_KEY", "new-key")
    with pytest.raises(ConfigError, match="call again") as info:
        route_and_complete(MATH, config=config)
    assert info.value.path == "router_settings.cache_responses"
    assert not before.closed  # its stream is still read
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "x equals five"
    assert _closed_and_written(before)
    assert route_and_complete(MATH, config=config).served_pool == "math"
    assert get_router(config).router.model_list[2]["litellm_params"]["api_key"] == "new-key"


def test_a_caching_router_the_caller_built_is_not_closed_by_get_router(provider, monkeypatch, router_cache):
    """A router built with `TaskRouter(...)` is the caller's to close: `get_router` refuses to build a second caching
    router beside it, naming the setting, and leaves it serving."""
    from routing import route_and_complete

    monkeypatch.setenv("TR_CACHE_ROTATED_KEY", "key")
    with TaskRouter(_caching_config(provider)) as own:
        with pytest.raises(ConfigError, match="process-wide") as info:
            route_and_complete(MATH, config=_caching_config(provider))
        assert info.value.path == "router_settings.cache_responses"
        assert not own.closed and own.complete(MATH).served_pool == "math"
    assert litellm.cache is None


def test_a_router_whose_build_ends_after_close_all_is_closed_not_kept(provider, tmp_path, router_cache):
    """Before: `close_all` closed the routers already built only: one still being built was put in the cache after
    it, open (its threads and telemetry never closed at exit). It is now closed when its build ends, and handed
    closed to the call that waited for it; the next call builds a new router.

    The build is held up by its telemetry database, locked by another connection until `close_all` has run."""
    import logging
    import sqlite3

    from tests.integration.conftest import make_config

    db = tmp_path / "locked.db"
    config = make_config(provider, telemetry={"url": f"sqlite:///{db}?timeout=600"})
    building = threading.Event()

    class OnBuild(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith("building a router"):
                building.set()

    handler = OnBuild(logging.DEBUG)
    logger = logging.getLogger("taskrouter.complete")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    got: list[TaskRouter] = []
    caller = threading.Thread(target=lambda: got.append(get_router(config)))
    try:
        caller.start()
        assert building.wait(60)
        close_all()  # while the router is being built
    finally:
        lock.execute("COMMIT")
        lock.close()
        caller.join(120)
        logger.removeHandler(handler)
        logger.setLevel(level)
    (router,) = got
    assert router.closed
    fresh = get_router(config)
    assert fresh is not router and not fresh.closed
