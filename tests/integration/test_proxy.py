"""taskrouter inside the real LiteLLM Proxy (examples/proxy), in front of the fake provider, used with `openai`."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.fake_provider import FakeProvider
from tests.integration.servers import litellm_proxy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "proxy"
MASTER_KEY = "sk-taskrouter-test-master"
MATH = "Solve for x: 3x + 7 = 22, and show each step."
POEM = "Write a short poem about the sea at night."

# The modules behind the `proxy` extra that the proxy imports at start (see docs/workers.md).
PROXY_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "uvloop",
    "websockets",
    "orjson",
    "backoff",
    "apscheduler",
    "jwt",
    "cryptography",
    "python_multipart",
    "semver",
    "expression",
    "fastapi_sso",
    "mcp",
    "soundfile",
)
MISSING = [m for m in PROXY_MODULES if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING),
    reason=f"the LiteLLM Proxy's packages are not installed (missing {', '.join(MISSING)}): pip install -e '.[proxy]'",
)

RECORDER = '''"""Test-only callback: what LiteLLM callbacks see of each successful call, to $TASKROUTER_TEST_RECORD."""
import json, os
from litellm.integrations.custom_logger import CustomLogger

class Recorder(CustomLogger):
    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        md = (kwargs.get("litellm_params") or {}).get("metadata") or {}
        with open(os.environ["TASKROUTER_TEST_RECORD"], "a", encoding="utf-8") as f:
            f.write(json.dumps({"model_group": md.get("model_group"), "taskrouter": md.get("taskrouter")}) + "\\n")

recorder = Recorder()
'''

JUDGE_HOOK = """from pathlib import Path
from routing.proxy import TaskRouterHook

hook = TaskRouterHook(Path(__file__).with_name("judge.yaml"), model="auto-judge")
"""


@pytest.fixture(scope="module")
def upstream():
    server = FakeProvider()
    yield server
    server.close()


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    """The example proxy config with a recording callback added, served by `litellm` on a free port."""
    tmp = tmp_path_factory.mktemp("proxy")
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    config["litellm_settings"]["callbacks"] = ["taskrouter_hook.hook", "judge_hook.hook", "recorder.recorder"]
    # A second hook, for model "auto-judge", tries stage 3 through the proxy's own router: its "judge" pool always
    # answers "code", and threshold 1.0 without the static stage sends it every query the keyword rules do not decide.
    config["model_list"].append(
        {
            "model_name": "judge",
            "litellm_params": {
                "model": "openai/judge-a",
                **{k: config["model_list"][0]["litellm_params"][k] for k in ("api_base", "api_key")},
            },
        }
    )
    judge = {
        "model_list": config["model_list"],
        "taskrouter": {
            **config["taskrouter"],
            "llm_classifier": {"alias": "judge"},
            "classifier": {"threshold": 1.0, "static": False},
        },
    }
    # The judge pool routes by cost: LiteLLM 1.110 answers that strategy on its async path only, so stage 3 must
    # ask the proxy's router through `acompletion` on the proxy's loop (the sync call answered "No deployments").
    config["router_settings"]["routing_groups"] = [
        {"group_name": "by-cost", "models": ["judge"], "routing_strategy": "cost-based-routing"}
    ]
    upstream.set(**{"judge-a": {"reply": "code"}})
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    (tmp / "judge.yaml").write_text(yaml.safe_dump(judge))
    shutil.copy(EXAMPLE / "taskrouter_hook.py", tmp / "taskrouter_hook.py")
    (tmp / "judge_hook.py").write_text(JUDGE_HOOK)
    (tmp / "recorder.py").write_text(RECORDER)
    record = tmp / "record.jsonl"
    env = {
        "UPSTREAM_API_BASE": upstream.url,
        "UPSTREAM_API_KEY": "sk-fake-upstream",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "TASKROUTER_TEST_RECORD": str(record),
    }
    with litellm_proxy(tmp, env) as base:
        yield {"url": base, "record": record, "log": tmp / "proxy.log"}


@pytest.fixture(scope="module")
def client(proxy):
    import openai

    with openai.OpenAI(base_url=proxy["url"], api_key=MASTER_KEY, max_retries=0, timeout=90) as c:
        yield c


def ask(client, model: str, text: str):
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": text}])
    return raw.parse(), raw.headers


def recorded(proxy, n: int, timeout: float = 10) -> list[dict]:
    """The callback records once there are at least `n` (callbacks run after the response is sent)."""
    deadline = time.monotonic() + timeout
    while True:
        path = proxy["record"]
        rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(rows) >= n or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_auto_sends_a_math_question_to_the_math_pool(client, upstream, proxy):
    before = upstream.hits("math-a")
    r, headers = ask(client, "auto", MATH)
    assert headers["x-litellm-model-group"] == "math" and r.choices[0].message.content == "[math-a] ok"
    assert upstream.hits("math-a") == before + 1
    assert (headers["x-taskrouter-label"], headers["x-taskrouter-pool"]) == ("math", "math")
    assert headers["x-taskrouter-stage"] in {"heuristic", "static", "embedding"}
    assert headers["x-taskrouter-escalated"] in {"true", "false"}
    assert 0 <= float(headers["x-taskrouter-confidence"]) <= 1
    rows = recorded(proxy, 1)
    assert rows[-1]["model_group"] == "math"
    assert {k: rows[-1]["taskrouter"][k] for k in ("label", "requested_pool")} == {
        "label": "math",
        "requested_pool": "math",
    }
    assert {"label", "stage", "confidence", "escalated", "requested_pool"} <= set(rows[-1]["taskrouter"])


def test_auto_sends_a_poem_request_to_the_creative_pool(client, upstream):
    before = upstream.hits("creative-a")
    r, headers = ask(client, "auto", POEM)
    assert (headers["x-litellm-model-group"], headers["x-taskrouter-label"]) == ("creative", "creative")
    assert upstream.hits("creative-a") == before + 1


def test_streaming_with_auto(client, upstream):
    before = upstream.hits("math-a")
    with client.chat.completions.with_streaming_response.create(
        model="auto", stream=True, messages=[{"role": "user", "content": MATH}]
    ) as response:
        headers = response.headers
        text = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert text == "[math-a] ok"
    assert (headers["x-litellm-model-group"], headers["x-taskrouter-label"]) == ("math", "math")
    assert upstream.hits("math-a") == before + 1 and upstream.requests[-1]["stream"]


def test_a_pool_named_directly_is_not_rerouted(client, upstream):
    before = upstream.hits("creative-a"), upstream.hits("code-a")
    forged = {"label": "math", "stage": "heuristic", "confidence": 1.0, "escalated": False, "requested_pool": "math"}
    raw = client.chat.completions.with_raw_response.create(
        model="code", messages=[{"role": "user", "content": POEM}], extra_body={"metadata": {"taskrouter": forged}}
    )
    r, headers = raw.parse(), raw.headers
    assert headers["x-litellm-model-group"] == "code" and r.choices[0].message.content == "[code-a] ok"
    assert (upstream.hits("creative-a"), upstream.hits("code-a")) == (before[0], before[1] + 1)
    assert not any(h.startswith("x-taskrouter-") for h in headers)


def test_a_follow_up_in_content_parts_is_read_with_the_conversation(client):
    messages = [
        {"role": "user", "content": MATH},
        {"role": "assistant", "content": "x = 5"},
        {"role": "user", "content": [{"type": "text", "text": "Now do the same with 22 replaced by 40."}]},
    ]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
    assert raw.headers["x-litellm-model-group"] == "math"


def test_stage_3_answers_through_the_proxys_router(client, upstream):
    before = upstream.hits("judge-a"), upstream.hits("code-a")
    r, headers = ask(client, "auto-judge", "What is the capital of Canada?")
    assert (headers["x-taskrouter-stage"], headers["x-taskrouter-label"], headers["x-taskrouter-escalated"]) == (
        "llm",
        "code",
        "true",
    )
    assert "x-taskrouter-confidence" not in headers and headers["x-litellm-model-group"] == "code"
    assert (upstream.hits("judge-a"), upstream.hits("code-a")) == (before[0] + 1, before[1] + 1)


def test_auto_without_a_user_message_is_a_400(client):
    import openai

    with pytest.raises(openai.BadRequestError, match="needs a user message"):
        client.chat.completions.create(model="auto", messages=[{"role": "system", "content": "Be brief."}])


def test_an_unavailable_pool_still_falls_back_behind_auto(client, upstream):
    upstream.set(**{"math-a": {"mode": "500"}})
    try:
        r, headers = ask(client, "auto", "Compute the integral of x^2 from 0 to 3.")
    finally:
        upstream.set(**{"math-a": {"mode": "ok"}})
    assert (headers["x-taskrouter-pool"], headers["x-litellm-model-group"]) == ("math", "capable")


def test_the_decision_comes_back_with_an_error_too(client, upstream):
    import openai

    upstream.set(**{name: {"mode": "500"} for name in ("math-a", "capable-a", "fast-a")})
    try:
        with pytest.raises(openai.InternalServerError) as info:
            ask(client, "auto", MATH)
    finally:
        upstream.set(**{name: {"mode": "ok"} for name in ("math-a", "capable-a", "fast-a")})
    headers = info.value.response.headers
    assert (headers["x-taskrouter-label"], headers["x-taskrouter-pool"]) == ("math", "math")


# -- the hook in this process: the decision record and a free event loop ----------------------------------------
@pytest.fixture
def example_env(monkeypatch, upstream):
    monkeypatch.setenv("UPSTREAM_API_BASE", upstream.url)
    monkeypatch.setenv("UPSTREAM_API_KEY", "sk-fake-upstream")
    monkeypatch.setenv("LITELLM_MASTER_KEY", MASTER_KEY)


def test_the_routing_config_is_read_from_the_proxy_config(example_env):
    from routing.proxy import load_routing_config

    config = load_routing_config(EXAMPLE / "config.yaml")  # general_settings etc. are the proxy's, not checked
    assert config.pool_for("math") == "math" and config.pool_for("default") == "fast"
    assert config.source == str(EXAMPLE / "config.yaml")  # so a relative classifier.model is read from there


def test_the_hook_records_the_decision_like_taskrouter(example_env, shipped_cascade):
    from routing.proxy import TaskRouterHook

    hook = TaskRouterHook(EXAMPLE / "config.yaml", cascade=shipped_cascade)
    data = {"model": "auto", "messages": [{"role": "user", "content": MATH}], "metadata": {"user": "u1"}}
    out = asyncio.run(hook.async_pre_call_hook(None, None, data, "acompletion"))
    record = out["metadata"]["taskrouter"]
    assert out["model"] == "math" and out["metadata"]["user"] == "u1"
    assert {k: record[k] for k in ("label", "requested_pool")} == {"label": "math", "requested_pool": "math"}
    assert isinstance(record["escalated"], bool) and record["stage"] in {"heuristic", "static", "embedding"}
    headers = asyncio.run(hook.async_post_call_response_headers_hook(out, None, None))
    assert headers["x-taskrouter-label"] == "math" and headers["x-taskrouter-pool"] == "math"
    direct = {"model": "creative", "messages": [{"role": "user", "content": MATH}], "metadata": {"user": "u1"}}
    forged = {**direct, "metadata": {"user": "u1", "taskrouter": dict(record)}}  # as a client would send it
    assert asyncio.run(hook.async_pre_call_hook(None, None, forged, "acompletion")) == direct


def test_classification_does_not_block_the_event_loop(example_env, shipped_cascade):
    import threading

    from classifier.serving.cascade import Cascade
    from routing.proxy import TaskRouterHook

    classified_on: set[int] = set()

    class RecordingCascade(Cascade):  # notes the thread each classification runs on
        def classify(self, text):
            classified_on.add(threading.get_ident())
            return super().classify(text)

        def classify_batch(self, texts):
            classified_on.add(threading.get_ident())
            return super().classify_batch(texts)

    cascade = RecordingCascade(shipped_cascade.classifier, shipped_cascade.rules, shipped_cascade.threshold)
    hook = TaskRouterHook(EXAMPLE / "config.yaml", cascade=cascade)

    async def main():
        data = await hook.async_pre_call_hook(
            None, None, {"model": "auto", "messages": [{"role": "user", "content": POEM}]}, "acompletion"
        )
        return data, threading.get_ident()

    data, loop_thread = asyncio.run(main())
    assert data["model"] == "creative"
    assert classified_on and loop_thread not in classified_on  # the loop's thread stayed free for other requests


def test_the_hook_records_one_event_per_auto_request(example_env, upstream, shipped_cascade, tmp_path):
    """Telemetry in the proxy: the hook ends each request in LiteLLM's post-call hooks (before the response goes
    out), with the failed attempts LiteLLM logged on the way; here the hook's methods are called as the proxy
    does, around a LiteLLM Router built from the same config."""
    from routing import _litellm
    from routing.config import load_config
    from routing.proxy import TaskRouterHook
    from routing.telemetry import TelemetryStore

    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    config["taskrouter"]["telemetry"] = {"url": f"sqlite:///{tmp_path / 'events.db'}"}
    hook = TaskRouterHook(config, cascade=shipped_cascade, prometheus=False)
    # the proxy's Router: the config's model_list and router_settings (fallbacks math -> capable -> fast)
    router = _litellm.build_router(load_config({k: config[k] for k in ("model_list", "router_settings", "taskrouter")}))
    _litellm.add_callback(hook)  # as the proxy registers it: LiteLLM logs failed attempts to it

    async def ask_through_the_hook() -> None:
        data = {"model": "auto", "messages": [{"role": "user", "content": MATH}]}
        data = await hook.async_pre_call_hook(None, None, data, "acompletion")
        try:
            response = await router.acompletion(**data)
        except Exception as exc:
            await hook.async_post_call_failure_hook(data, exc, None)
        else:
            await hook.async_post_call_success_hook(data, None, response)

    broken = ("math-a", "capable-a", "fast-a")
    try:
        asyncio.run(ask_through_the_hook())
        upstream.set(**{"math-a": {"mode": "500"}})
        asyncio.run(ask_through_the_hook())  # math fails, capable answers
        upstream.set(**{name: {"mode": "500"} for name in broken})
        asyncio.run(ask_through_the_hook())  # every pool of the chain fails
    finally:
        upstream.set(**{name: {"mode": "ok"} for name in broken})
        _litellm.remove_callback(hook)
        router.retire()
        hook.close()  # writes the telemetry: no waiting
    rows = TelemetryStore(f"sqlite:///{tmp_path / 'events.db'}").events()
    got = [(r["label"], r["requested_pool"], r["served_pool"], r["status"], r["error_class"]) for r in rows]
    assert got == [
        ("math", "math", "math", "success", None),
        ("math", "math", "capable", "success", "InternalServerError"),
        ("math", "math", None, "failure", "InternalServerError"),
    ]
    assert rows[1]["fallback"] and rows[0]["input_tokens"] > 0 and rows[2]["deployment"] == "fast-a-id"


def registered(callback) -> bool:
    """Whether LiteLLM would still call `callback` (in any of the lists it copies callbacks into)."""
    from routing._litellm import litellm

    lists = ("callbacks", "success_callback", "failure_callback", "_async_success_callback", "_async_failure_callback")
    return any(callback in getattr(litellm, name, []) for name in lists)


def test_prometheus_true_without_prometheus_client_fails_at_the_start(example_env, monkeypatch):
    """Before: the hook was built, and each request failed building its router (or used one half-built)."""
    from classifier.errors import ConfigError
    from routing import metrics
    from routing.proxy import TaskRouterHook

    monkeypatch.setattr(metrics, "available", lambda: False)  # as if prometheus_client were not installed
    with pytest.raises(ConfigError, match=r"^TaskRouterHook\(prometheus=True\): needs prometheus_client"):
        TaskRouterHook(EXAMPLE / "config.yaml", prometheus=True)
    TaskRouterHook(EXAMPLE / "config.yaml").close()  # the default: metrics only when installed


def test_a_router_whose_metrics_fail_is_closed_never_half_built(example_env, monkeypatch, shipped_cascade, tmp_path):
    """The decider was published before its metrics were made: after a failure there, later requests used it
    without metrics, and its own failed-attempts callback stayed registered next to the hook (attempts twice)."""
    from classifier.errors import ConfigError
    from routing import metrics, proxy

    built = []

    class Recorded(proxy.TaskRouter):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    def broken(*args, **kwargs):
        raise ConfigError("cannot register the series", path="taskrouter.metrics")

    monkeypatch.setattr(proxy, "TaskRouter", Recorded)
    monkeypatch.setattr(metrics, "prometheus", broken)
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    config["taskrouter"]["telemetry"] = {"url": f"sqlite:///{tmp_path / 'events.db'}"}  # so it registers attempts
    hook = proxy.TaskRouterHook(config, cascade=shipped_cascade, prometheus=True)
    try:
        for _ in range(2):  # each request tries again: none is served by a router without its metrics
            data = {"model": "auto", "messages": [{"role": "user", "content": MATH}]}
            with pytest.raises(ConfigError, match="cannot register the series"):
                asyncio.run(hook.async_pre_call_hook(None, None, data, "acompletion"))
        assert hook._decider is None and len(built) == 2
        assert all(r.closed and not registered(r.attempts) for r in built)
    finally:
        hook.close()


def test_close_ends_the_threads_decisions_ran_on(example_env, shipped_cascade):
    from routing.proxy import TaskRouterHook

    hook = TaskRouterHook(EXAMPLE / "config.yaml", cascade=shipped_cascade, prometheus=False)

    def ask():
        data = {"model": "auto", "messages": [{"role": "user", "content": POEM}]}
        return asyncio.run(hook.async_pre_call_hook(None, None, data, "acompletion"))["model"]

    assert ask() == "creative"
    threads = list(hook._pool._threads)
    assert threads
    hook.close()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    assert ask() == "creative"  # a later request decides on new threads
    hook.close()
