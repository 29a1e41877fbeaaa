"""What real clients send, through real servers: tool-call histories, list content, very long prompts, short-lived
processes writing telemetry, program errors that must not pass for outages."""

import os
import sqlite3
import subprocess
import sys
import threading

import pytest
import yaml

from classifier.errors import ConfigError, QueryError
from routing import PoolsExhausted, TaskRouter, get_router, route_and_complete
from routing.complete import close_all
from tests.conftest import ROOT
from tests.integration.conftest import deployment, make_config

pytestmark = pytest.mark.integration

CODE = "Why does my Python list comprehension raise NameError inside a class body?"
LONG_DOC = ("The quarterly report covers revenue, churn and hiring plans across all regions. " * 4000)[:300_000]

TOOL_HISTORY = [
    {"role": "system", "content": "You are a coding assistant."},
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Read main.py and fix the failing import."},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "read_file", "arguments": '{"path": "main.py"}'}}
        ],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "import nump as np\nprint(np.zeros(3))"},
    {"role": "assistant", "content": [{"type": "text", "text": "The module name is misspelled."}]},
]


def rows(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from taskrouter_events").fetchone()[0]


def write_config(path, cfg) -> str:
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture
def router_cache():
    """`get_router`'s routers are closed at teardown, pass or fail."""
    yield
    close_all()


def test_every_openai_message_shape_is_routed(provider, build):
    tr = build(make_config(provider))
    r = tr.complete("Now run it again and show me the output.", TOOL_HISTORY)
    assert (r.decision.label, r.served_pool) == ("code", "code")
    assert provider.requests[-1]["roles"] == ["system", "user", "assistant", "tool", "assistant", "user"]


@pytest.mark.parametrize(
    ("history", "field"),
    [
        ([{"role": "user", "content": 5}], r"history\[0\].content"),
        ([{"role": "user", "content": [{"type": "text", "text": 7}]}], r"history\[0\].content\[0\].text"),
        ([{"role": "wizard", "content": "hi"}], r"history\[0\].role"),
        ([{"content": "hi"}], r"history\[0\].role"),
        ("not a list", "history"),
    ],
    ids=["int-content", "int-text-part", "unknown-role", "no-role", "string-history"],
)
def test_malformed_history_names_the_field(provider, build, history, field):
    tr = build(make_config(provider))
    with pytest.raises(QueryError, match=field):
        tr.complete(CODE, history)


def test_a_300k_character_prompt_is_classified_and_goes_to_long_context_demo():
    with TaskRouter(ROOT / "routing" / "configs" / "demo.yaml") as tr:
        r = tr.complete(LONG_DOC + "\n\nSummarize the document above in three bullet points.")
    assert r.decision.stage != "llm" and r.decision.label == "default"
    assert (r.requested_pool, r.served_pool, r.fallback) == ("fast", "long-context", True)


def test_a_300k_character_prompt_is_classified_and_goes_to_long_context_fake(provider, build):
    deployments = [deployment(provider, p, f"{p}-a") for p in ("fast", "capable", "math", "code", "creative")]
    deployments.append(deployment(provider, "long-context", "long-a"))
    provider.set(
        **{f"{p}-a": {"mode": "ctx", "max_tokens": 20_000} for p in ("fast", "capable", "math", "code", "creative")}
    )
    cfg = make_config(
        provider,
        deployments=deployments,
        router_settings={"context_window_fallbacks": [{"fast": ["long-context"]}, {"code": ["long-context"]}]},
    )
    cfg["taskrouter"]["pools"] = {"code": "code"}
    tr = build(cfg)
    r = tr.complete(
        "Find the bug in this log processing script:\n"
        + "for line in open('x.log'): print(line)\n" * 8000
        + "\nWhy does it run out of memory?"
    )
    assert r.decision.label == "code"
    assert (r.requested_pool, r.served_pool, r.fallback) == ("code", "long-context", True)


def test_program_errors_propagate_unchanged(build_demo):
    with pytest.raises(TypeError) as info:
        build_demo.complete("write a haiku about snow", n=object())
    assert not isinstance(info.value, PoolsExhausted)


def test_provider_errors_keep_their_cause(provider, build):
    provider.set(**{"math-a": {"mode": "500"}, "capable-a": {"mode": "500"}})
    tr = build(make_config(provider, router_settings={"fallbacks": [{"math": ["capable"]}]}))
    with pytest.raises(PoolsExhausted) as info:
        tr.complete("Solve for x: 3x + 7 = 22")
    assert info.value.__cause__ is not None and "InternalServerError" in type(info.value.__cause__).__name__


@pytest.fixture
def build_demo(shipped_cascade):
    with TaskRouter(ROOT / "routing" / "configs" / "demo.yaml", cascade=shipped_cascade) as tr:
        yield tr


def test_a_pool_key_that_is_not_a_model_label_is_a_config_error(provider, shipped_cascade):
    cfg = make_config(provider)
    cfg["taskrouter"]["pools"] = {"mth": "math", "code": "code"}
    with pytest.raises(ConfigError, match=r"taskrouter.pools.mth: 'mth' is not a label of the classifier model"):
        TaskRouter(cfg, cascade=shipped_cascade)


def test_route_and_complete_then_close_writes_the_event(tmp_path, provider, router_cache):
    db = tmp_path / "events.db"
    path = write_config(tmp_path / "c.yaml", make_config(provider, telemetry={"url": f"sqlite:///{db}"}))
    route_and_complete(CODE, config=path)
    get_router(path).close()  # no sleep: close waits for LiteLLM's callback, which runs after the call returns
    assert rows(db) == 1


def test_five_cli_runs_write_five_events(tmp_path, provider):
    db = tmp_path / "events.db"
    path = write_config(tmp_path / "c.yaml", make_config(provider, telemetry={"url": f"sqlite:///{db}"}))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for i in range(5):
        r = subprocess.run(
            [sys.executable, "-m", "routing.cli", "complete", "--config", path, f"{CODE} ({i})"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )
        assert r.returncode == 0, r.stderr
    assert rows(db) == 5


def test_at_exit_queued_events_are_written(tmp_path, provider):
    """A script that never closes its router still writes its events when it exits normally."""
    db = tmp_path / "events.db"
    path = write_config(tmp_path / "c.yaml", make_config(provider, telemetry={"url": f"sqlite:///{db}"}))
    script = (
        "from routing import route_and_complete\n"
        f"for q in ['integrate x^2', 'write a limerick about a cat', 'sort a dict in python']:\n"
        f"    route_and_complete(q, config={path!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert rows(db) == 3


def test_with_block_leaves_no_thread_of_its_own(tmp_path, provider, shipped_cascade):
    db = tmp_path / "events.db"
    cfg = make_config(
        provider, telemetry={"url": f"sqlite:///{db}"}, router_settings={"routing_strategy": "cost-based-routing"}
    )
    before = {t.ident for t in threading.enumerate()}
    with TaskRouter(cfg, cascade=shipped_cascade) as tr:
        tr.complete(CODE)
        assert any(t.name.startswith("taskrouter-") for t in threading.enumerate())
    mine = [t.name for t in threading.enumerate() if t.ident not in before and t.name.startswith("taskrouter-")]
    assert mine == [] and rows(db) == 1
    with pytest.raises(RuntimeError, match="closed"):
        tr.complete(CODE)


@pytest.mark.parametrize(
    ("follow_up", "label"),
    [
        ("Explain that step by step.", "code"),
        ("Make it shorter.", "code"),
        ("try again", "code"),
        ("Now write a poem about this.", "creative"),
        ("Now calculate the probability that two of them fail.", "math"),
    ],
)
def test_a_follow_up_keeps_the_conversation_label_unless_it_starts_a_new_task(provider, build, follow_up, label):
    tr = build(make_config(provider))
    history = [
        {
            "role": "user",
            "content": "My Flask app returns 500 when I post JSON, here is the route: "
            "@app.post('/x') def x(): return request.json['a']",
        },
        {"role": "assistant", "content": "The key 'a' is missing from the body."},
    ]
    r = tr.complete(follow_up, history)
    assert (r.decision.label, r.served_pool) == (label, label)
