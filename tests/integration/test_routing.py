"""route_and_complete against the fake provider: real HTTP requests through the LiteLLM Router."""

import asyncio
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from routing import (
    CompletionError,
    ContextWindowExceeded,
    PoolsExhausted,
    RoutedStream,
    TaskRouter,
    aroute_and_complete,
    route_and_complete,
)
from tests.fake_provider import FakeProvider
from tests.integration.conftest import deployment, make_config

MATH = "Solve for x: 3x + 7 = 22, and show each step."
POEM = "Write a short poem about the sea at night."


@pytest.fixture
def build(provider, shipped_cascade):
    """Builds routers on the fake provider; each is closed at teardown, whether the test passed or not."""
    built: list[TaskRouter] = []

    def _build(**kw):
        built.append(TaskRouter(make_config(provider, **kw), cascade=shipped_cascade))
        return built[-1]

    yield _build
    for tr in built:
        tr.close()


def test_label_picks_the_pool_and_the_result_says_who_served(build, provider):
    tr = build()
    r = route_and_complete(MATH, config=tr)
    assert (r.decision.label, r.requested_pool, r.served_pool, r.fallback) == ("math", "math", "math", False)
    assert r.deployment == "math-a-id" and r.text == "[math-a] ok"
    assert r.prompt_tokens > 0 and r.completion_tokens == 2 and r.latency_s > 0
    assert provider.hits("math-a") == 1
    unmapped = tr.complete("What's the capital of Canada?")
    assert (unmapped.decision.label, unmapped.served_pool) == ("default", "fast")


def test_failing_pool_falls_back(build, provider):
    provider.set(**{"math-a": {"mode": "500"}})
    r = build(router_settings={"fallbacks": [{"math": ["capable"]}]}).complete(MATH)
    assert (r.requested_pool, r.served_pool, r.fallback, r.deployment) == ("math", "capable", True, "capable-a-id")
    assert provider.hits("math-a") == 1 and provider.hits("capable-a") == 1


def test_429_with_retry_after_falls_back(build, provider):
    provider.set(**{"math-a": {"mode": "429", "retry_after": 0}})
    r = build(router_settings={"fallbacks": [{"math": ["capable"]}]}).complete(MATH)
    assert (r.served_pool, r.fallback) == ("capable", True)


def test_slow_deployment_times_out_and_falls_back(build, provider):
    provider.set(**{"math-a": {"mode": "slow", "delay": 4}})  # it would answer, after 4 s: only a timeout falls back
    r = build(router_settings={"timeout": 1, "fallbacks": [{"math": ["capable"]}]}).complete(MATH)
    assert (r.served_pool, r.fallback, r.deployment) == ("capable", True, "capable-a-id")
    assert provider.hits("math-a") == 1 and provider.hits("capable-a") == 1  # timed out once, not retried


def test_cooldown_after_allowed_fails(build, provider):
    deployments = [
        deployment(provider, "fast", "fast-bad"),
        deployment(provider, "fast", "fast-good"),
        deployment(provider, "capable", "capable-a"),
    ]
    provider.set(**{"fast-bad": {"mode": "500"}})
    tr = build(
        deployments=deployments,
        router_settings={"allowed_fails": 1, "cooldown_time": 60, "fallbacks": [{"fast": ["capable"]}]},
    )
    results = [
        tr.complete(f"Recommend a good book about {topic}")
        for topic in [
            "birds",
            "rivers",
            "chess",
            "baking",
            "Rome",
            "jazz",
            "sleep",
            "volcanoes",
            "tea",
            "trains",
            "whales",
            "maps",
            "glass",
            "salt",
            "kites",
            "bees",
            "owls",
            "ice",
            "silk",
            "clocks",
        ]
    ]
    assert all(r.served_pool in {"fast", "capable"} for r in results)  # nothing lost
    assert provider.hits("fast-bad") == 2  # cooled down once fails exceeded allowed_fails=1
    assert all(r.deployment == "fast-good-id" for r in results[-8:])


def test_context_window_fallback_to_a_larger_pool(build, provider):
    provider.set(**{"code-a": {"mode": "ctx", "max_tokens": 40}})
    tr = build(router_settings={"context_window_fallbacks": [{"code": ["big"]}]})
    long_query = "Refactor this Python function to be faster:\n" + "def f(xs):\n    return [x * 2 for x in xs]\n" * 12
    r = tr.complete(long_query)
    assert (r.requested_pool, r.served_pool, r.fallback, r.deployment) == ("code", "big", True, "big-a-id")
    short = tr.complete("Fix this Python: print('a' + 1)")
    assert (short.served_pool, short.fallback) == ("code", False)


def test_context_window_without_fallback_is_a_typed_error(build, provider):
    provider.set(**{"code-a": {"mode": "ctx", "max_tokens": 5}})
    with pytest.raises(ContextWindowExceeded) as info:
        build().complete("Fix this Python function, it returns None: def f(x): x * 2")
    assert info.value.pool == "code"


def test_cost_based_routing_picks_the_cheaper_deployment(build, provider):
    deployments = [
        deployment(provider, "fast", "fast-pricey", input_cost_per_token=1e-5, output_cost_per_token=1e-5),
        deployment(provider, "fast", "fast-cheap", input_cost_per_token=1e-7, output_cost_per_token=2e-7),
    ]
    tr = build(deployments=deployments, router_settings={"routing_strategy": "cost-based-routing"})
    results = [tr.complete(f"Any tips for visiting {city}?") for city in ["Oslo", "Lima", "Cairo", "Hanoi", "Quito"]]
    results.append(asyncio.run(tr.acomplete("Any tips for visiting Perth?")))
    streamed = tr.complete("Any tips for visiting Accra?", stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == "[fast-cheap] ok"
    assert {r.deployment for r in results} == {"fast-cheap-id"} and streamed.deployment == "fast-cheap-id"
    assert provider.hits("fast-pricey") == 0
    assert all(r.cost_usd == pytest.approx(r.prompt_tokens * 1e-7 + r.completion_tokens * 2e-7) for r in results)


def test_every_pool_down_is_one_typed_error_and_no_hang(build, provider):
    provider.set(**{name: {"mode": "500"} for name in ("math-a", "capable-a", "fast-a")})
    tr = build(router_settings={"fallbacks": [{"math": ["capable"]}, {"capable": ["fast"]}]})
    with pytest.raises(PoolsExhausted) as info:
        tr.complete(MATH)
    # no hang: each pool of the fallback chain was tried once, then the error came
    assert [provider.hits(name) for name in ("math-a", "capable-a", "fast-a")] == [1, 1, 1]
    assert info.value.pool == "math" and info.value.cause == "ProviderUnavailable"
    assert info.value.deployment in {"math-a-id", "capable-a-id", "fast-a-id"}  # one that failed (LiteLLM: the first)
    assert "sk-fake" not in str(info.value)


def test_no_request_lost_under_concurrency_with_a_flaky_deployment(build, provider):
    deployments = [deployment(provider, "fast", "fast-flaky"), deployment(provider, "capable", "capable-a")]
    provider.set(**{"fast-flaky": {"mode": "flaky", "fail_every": 2}})
    tr = build(
        deployments=deployments,
        router_settings={"fallbacks": [{"fast": ["capable"]}], "disable_cooldowns": True, "timeout": 600},
    )  # 200 at once on 2 shared cores: slow is not lost (on a loaded machine some wait over a minute for a
    # connection; with a short timeout they would fall back to `capable` before ever trying `fast`)
    queries = [
        f"Give me one tip about {w} number {i}" for i in range(50) for w in ("gardening", "sleep", "travel", "tea")
    ]

    async def fire():
        return await asyncio.gather(*(aroute_and_complete(q, config=tr) for q in queries), return_exceptions=True)

    results = asyncio.run(fire())
    assert len(results) == 200
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    served = [r.served_pool for r in results]
    assert set(served) <= {"fast", "capable"} and served.count("capable") >= 50  # about half fell back
    assert provider.hits("fast-flaky") == 200


def test_streaming_returns_the_decision_at_once(build, provider):
    provider.set(**{"creative-a": {"mode": "ok", "reply": "waves fold into dark glass"}})
    s = build().complete(POEM, stream=True)
    assert isinstance(s, RoutedStream) and s.decision.label == "creative" and s.requested_pool == "creative"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in s if chunk.choices)
    assert text == "waves fold into dark glass" and s.served_pool == "creative"


def test_async_streaming(build, provider):
    async def run():
        s = await build().acomplete(POEM, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in s if c.choices])

    assert asyncio.run(run()) == "[creative-a] ok"


def test_follow_ups_stay_or_switch(build):
    tr = build()
    history = [
        {"role": "user", "content": "Write a Python function that parses ISO dates from log lines."},
        {"role": "assistant", "content": "def parse(line): ..."},
    ]
    stay = tr.complete("now make it faster", history)
    assert (stay.decision.label, stay.served_pool) == ("code", "code")
    switch = tr.complete("Different topic: write a haiku about autumn leaves falling on a pond.", history)
    assert (switch.decision.label, switch.served_pool) == ("creative", "creative")


def test_reserved_arguments_are_refused(build):
    with pytest.raises(TypeError, match="'model' is chosen by taskrouter"):
        build().complete(MATH, model="gpt-4o")


@pytest.mark.parametrize(
    "kwargs",
    [{"api_base": None}, {"base_url": None}, {"api_key": "sk-mine"}, {"fallbacks": ["capable"]},
     {"mock_response": "pwned"}, {"extra_headers": {"Authorization": "Bearer x"}}, {"num_retries": 9}],
)  # fmt: skip
def test_arguments_the_config_decides_are_refused_before_anything_is_sent(build, provider, kwargs):
    """Before: a caller's api_base received the request with the pool's API key; mock_response and fallbacks
    replaced the answer and the pool."""
    evil = FakeProvider()
    try:
        kwargs = {k: (evil.url if v is None else v) for k, v in kwargs.items()}
        tr = build()
        (name,) = kwargs
        with pytest.raises(TypeError, match=repr(name)):
            tr.complete(MATH, **kwargs)
        with pytest.raises(TypeError, match=repr(name)):
            asyncio.run(tr.acomplete(MATH, **kwargs))
        assert evil.requests == [] and provider.requests == []
        assert tr.complete(MATH, temperature=0.2, max_tokens=5).served_pool == "math"  # request parameters pass
    finally:
        evil.close()


def test_route_and_complete_builds_the_router_once_per_config(tmp_path, provider):
    import yaml

    from routing import get_router

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(make_config(provider)))
    first = route_and_complete(MATH, config=str(path))
    assert get_router(path) is get_router(str(path)) and first.served_pool == "math"


def test_classifier_model_path_is_read_relative_to_the_config(tmp_path, provider, small_model_dir):
    import shutil

    import yaml

    shutil.copytree(small_model_dir, tmp_path / "models" / "mine")
    cfg = make_config(provider, classifier={"model": "models/mine", "threshold": 0.5})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    with TaskRouter(str(tmp_path / "c.yaml")) as tr:
        assert tr.cascade.threshold == 0.5 and len(tr.cascade.classifier.example_texts_) == 240


def test_a_provider_error_names_the_deployment_that_failed(build, provider):
    """LiteLLM's exceptions do not say which deployment failed; the recorded failed attempts do."""
    provider.set(**{"math-a": {"mode": "500"}})
    with pytest.raises(CompletionError) as info:
        build().complete(MATH)
    assert info.value.pool == "math" and info.value.deployment == "math-a-id"


def test_metadata_that_is_not_a_mapping_is_refused_before_classifying(build, provider):
    with pytest.raises(TypeError, match="metadata must be a mapping, got str"):
        build().complete(MATH, metadata="xy")
    assert provider.requests == []


def test_the_decision_record_callbacks_read_holds_no_query_text(build):
    """LiteLLM hands metadata to every callback (Langfuse, spend logs): the unredacted query must not ride in it."""
    tr = build(telemetry={"store_text": True})
    _, record = tr.plan(tr.decide(MATH), 'my key is api_key="sk-proj-abcdefghijklmnop1234"')
    assert "query" not in record and "sk-proj" not in repr(dict(record))


def test_a_cancelled_request_is_recorded(provider, shipped_cascade, tmp_path):
    """A caller's timeout cancels the request: it still leaves its telemetry row (and the cancellation goes on)."""
    from routing.telemetry import TelemetryStore

    url = f"sqlite:///{tmp_path / 'e.db'}"
    provider.set(**{"math-a": {"mode": "slow", "delay": 3}})
    tr = TaskRouter(make_config(provider, telemetry={"url": url}), cascade=shipped_cascade)

    async def impatient():
        return await asyncio.wait_for(tr.acomplete(MATH), timeout=1.0)

    with pytest.raises(TimeoutError):
        asyncio.run(impatient())
    tr.close()
    (row,) = TelemetryStore(url).events()
    assert (row["status"], row["requested_pool"], row["error_class"]) == ("failure", "math", "CancelledError")


def test_an_interrupted_call_on_the_routers_loop_is_cancelled(provider, shipped_cascade):
    """Before: Ctrl-C while a cost-based request waited on the router's loop left the provider call running there
    (paid, though the request was recorded as failed)."""
    import signal

    class Interrupted(BaseException):
        pass

    def interrupt(*_):
        raise Interrupted

    tr = TaskRouter(make_config(provider, router_settings={"routing_strategy": "cost-based-routing"}),
                    cascade=shipped_cascade)  # fmt: skip
    provider.set(**{"math-a": {"mode": "slow", "delay": 30}})  # far longer than the poll below waits
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(Interrupted):
            tr.complete(MATH)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

    async def tasks_once_cancelled(within_s: float) -> list[str]:
        """The loop's other tasks once no completion is left among them, or when `within_s` has passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within_s
        while True:
            left = [repr(t.get_coro()) for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            if not any("completion" in t for t in left) or loop.time() >= deadline:
                return left
            await asyncio.sleep(0.01)  # a bounded poll: until the cancellation lands

    try:
        left = tr._loop.run(tasks_once_cancelled(10), timeout=20)
    finally:
        tr.close()
    assert not [t for t in left if "completion" in t], left


@pytest.fixture
def build_log():
    """The records `get_router` logs at DEBUG on `taskrouter.complete` during the test (around each build; its own
    handler, since the command line may turn off propagation on `taskrouter`)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("taskrouter.complete")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_aroute_and_complete_builds_its_router_off_the_event_loop(provider, build_log):
    """Before: the first call for a config built its router (the model loaded, the telemetry database opened) on the
    event loop, under the lock that every `get_router` takes: the loop stalled for the whole build, 0.5 s or more.

    Observed through the debug lines `get_router` logs around a build: the thread each was logged on, and the
    timestamps of a task ticking on the loop (none fall inside a build that blocks the loop)."""
    from routing.complete import close_all

    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.01)
            ticks.append(time.time())

    async def first_call():
        tick = asyncio.create_task(ticker())
        try:
            result = await aroute_and_complete(MATH, config=make_config(provider, name="off-the-loop"))
        finally:
            tick.cancel()
        return result, threading.get_ident()

    try:
        result, loop_thread = asyncio.run(first_call())
    finally:
        close_all()
    start, end = [r for r in build_log if r.getMessage().endswith("a router for a content config")]
    assert result.served_pool == "math"
    assert start.thread == end.thread != loop_thread
    assert any(start.created < t < end.created for t in ticks)  # the loop ran while the router was built


def test_concurrent_first_calls_for_one_config_share_one_router(provider, tmp_path):
    """The router is built outside the lock other configs' calls take, and still once per config: calls for a
    config being built wait for that build."""
    from routing import get_router
    from routing.complete import close_all

    config = make_config(provider, name="shared", telemetry={"url": f"sqlite:///{tmp_path / 'e.db'}"})

    async def calls():
        return await asyncio.gather(*(aroute_and_complete(MATH, config=dict(config)) for _ in range(4)))

    try:
        results = asyncio.run(calls())
        router = get_router(config)
        assert router.telemetry.flush()
        assert [r.served_pool for r in results] == ["math"] * 4 and router.telemetry.written == 4  # all on it
    finally:
        close_all()


class _CountingExecutor(ThreadPoolExecutor):
    """The event loop's default executor, counting the jobs given to it (`asyncio.to_thread`, `run_in_executor`)."""

    def __init__(self, max_workers: int) -> None:
        super().__init__(max_workers=max_workers, thread_name_prefix="test-default-executor")
        self.jobs = 0

    def submit(self, fn, /, *args, **kwargs):
        self.jobs += 1
        return super().submit(fn, *args, **kwargs)


def test_calls_for_a_built_router_wait_neither_for_a_thread_nor_for_another_configs_build(provider, tmp_path):
    """Before: `aroute_and_complete` picked every router on a worker thread of the loop's default executor, and each
    call waiting for a router being built blocked one such thread for the whole build: a burst of first calls for
    a new config took every worker, so a call for a config already built (whose classification also runs on a
    worker) waited for that unrelated build, as did the application's own `to_thread` work. Now a built router is
    picked on the loop, the calls for a config being built await its build, and only the call that builds holds a
    thread.

    The build is held up by a real cause, its telemetry database locked by another connection (SQLite waits up to
    the URL's `timeout`), until the call for the built config has returned: nothing here depends on timings."""
    from routing import get_router
    from routing.complete import close_all

    slow_db = tmp_path / "slow.db"
    fast = make_config(provider, name="fast")
    slow = make_config(provider, name="slow", telemetry={"url": f"sqlite:///{slow_db}?timeout=600"})
    executor = _CountingExecutor(max_workers=3)  # fewer workers than calls waiting for the slow build
    lock = sqlite3.connect(slow_db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")

    async def calls():
        asyncio.get_running_loop().set_default_executor(executor)
        await aroute_and_complete(MATH, config=fast)  # built: the router of `fast` is kept
        jobs = executor.jobs
        await get_router(fast).acomplete(MATH)
        own_jobs, jobs = executor.jobs - jobs, executor.jobs  # the router's own (it classifies on a worker)
        await aroute_and_complete(MATH, config=fast)
        routed_jobs = executor.jobs - jobs
        waiting = [asyncio.create_task(aroute_and_complete(MATH, config=slow)) for _ in range(8)]
        try:
            # The eight calls start first (tasks run in the order made) and one builds; this call, for the built
            # config, returns while the build is held. Before, it got no worker until the build ended.
            served = await asyncio.wait_for(aroute_and_complete(MATH, config=fast), timeout=60)
            still_building = not any(task.done() for task in waiting)
        finally:
            lock.execute("COMMIT")  # the build goes on
        return own_jobs, routed_jobs, served, still_building, await asyncio.gather(*waiting)

    try:
        own_jobs, routed_jobs, served, still_building, slow_results = asyncio.run(calls())
        slow_router = get_router(slow)
        assert slow_router.telemetry.flush()
        assert slow_router.telemetry.written == 8  # all on the one router built
    finally:
        lock.close()
        close_all()
    assert routed_jobs == own_jobs  # no thread taken to pick a built router
    assert served.served_pool == "math" and still_building
    assert [r.served_pool for r in slow_results] == ["math"] * 8


def test_calls_waiting_for_a_build_that_fails_all_get_its_error(provider, tmp_path, build_log):
    """The calls for a config being built await that one build, and get its error when it fails."""
    from routing import ConfigError
    from routing.complete import close_all

    (tmp_path / "a-directory.db").mkdir()  # a SQLite "file" that can never take an event: a ConfigError at build
    config = make_config(provider, name="broken", telemetry={"url": f"sqlite:///{tmp_path / 'a-directory.db'}"})

    async def calls():
        same = [aroute_and_complete(MATH, config=config) for _ in range(6)]
        return await asyncio.gather(*same, return_exceptions=True)

    try:
        results = asyncio.run(calls())
    finally:
        close_all()
    assert all(isinstance(r, ConfigError) and r.path == "taskrouter.telemetry.url" for r in results), results
    assert len([r for r in build_log if r.getMessage() == "building a router for a content config"]) == 1
    assert provider.requests == []


def test_a_call_cancelled_while_it_waits_for_a_build_leaves_the_build_and_the_other_calls_alone(provider, tmp_path):
    """A call waiting for another call's build awaits it; cancelled (a caller's timeout), it stops waiting, and the
    build and the calls still waiting go on. The build is held up by its locked telemetry database meanwhile."""
    from routing import complete, get_router
    from routing.complete import close_all

    db = tmp_path / "locked.db"
    config = make_config(provider, name="awaited", telemetry={"url": f"sqlite:///{db}?timeout=600"})
    lock = sqlite3.connect(db, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")

    async def calls():
        builder = asyncio.create_task(aroute_and_complete(MATH, config=config))
        await asyncio.sleep(0)  # the first call has started the build
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(aroute_and_complete(MATH, config=config), timeout=0.5)
        lock.execute("COMMIT")
        return await builder

    try:
        assert asyncio.run(calls()).served_pool == "math"
        router = get_router(config)
        router.close_when_idle()  # nothing in flight: the cancelled call holds nothing
        assert router.closed
    finally:
        lock.close()
        close_all()
    assert complete._building == {}
