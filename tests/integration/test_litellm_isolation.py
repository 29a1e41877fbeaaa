"""What one router's LiteLLM Router leaves to the others of the process, and what LiteLLM's own errors become:
the process-wide response cache (`router_settings.cache_responses`), pydantic's errors from building the Router
(which quote the values, secrets included), and a bad call argument LiteLLM wraps as a connection error."""

from __future__ import annotations

import asyncio
import json
import traceback

import pytest

from classifier.errors import ConfigError, InvalidParameterError
from routing import CompletionError, _litellm
from routing._litellm import litellm
from routing.telemetry import TelemetryStore
from tests.fake_provider import FakeProvider
from tests.integration.conftest import deployment, make_config

pytestmark = pytest.mark.integration

QUESTION = "What is the capital of France?"


def one_pool(fake, reply: str, **router_settings) -> dict:
    """Every label to pool `fast`, one deployment (`fast-a`) answering `reply`."""
    fake.set(**{"fast-a": {"mode": "ok", "reply": reply}})
    return make_config(fake, deployments=[deployment(fake, "fast", "fast-a")], router_settings=router_settings)


@pytest.fixture
def other():
    """A second provider: another tenant's, with its own answers."""
    server = FakeProvider()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_response_cache_left():
    """Each test starts without `litellm.cache` and must leave none behind."""
    before, litellm.cache = litellm.cache, None
    yield
    leftover, litellm.cache = litellm.cache, before
    assert leftover is None, "a test left LiteLLM's process-wide response cache installed"


# -- the response cache ---------------------------------------------------------------------------------------------


def test_a_closed_routers_response_cache_does_not_answer_for_the_next_router(provider, other, build):
    """Before: LiteLLM installed the first router's cache as `litellm.cache` and nothing removed it, so the next
    router with cache_responses (another provider, another key) got the first one's answer without asking its own
    provider."""
    a = build(one_pool(provider, "answer from A's provider", cache_responses=True))
    assert a.complete(QUESTION).text == "answer from A's provider"
    assert litellm.cache is not None
    a.close()
    assert litellm.cache is None
    c = build(one_pool(other, "answer from C's provider", cache_responses=True))
    assert c.complete(QUESTION).text == "answer from C's provider"
    assert other.hits("fast-a") == 1
    assert c.complete(QUESTION).text == "answer from C's provider"
    assert other.hits("fast-a") == 1  # C's own cache answers C


def test_a_second_router_with_cache_responses_is_refused_while_anothers_cache_is_installed(provider, other, build):
    """Before: the second router was built on the first one's cache (its answers, its Redis)."""
    a = build(one_pool(provider, "answer from A's provider", cache_responses=True))
    installed = litellm.cache
    with pytest.raises(ConfigError, match="process-wide") as info:
        build(one_pool(other, "answer from C's provider", cache_responses=True))
    assert info.value.path == "router_settings.cache_responses"
    assert litellm.cache is installed  # the refused build changed nothing
    a.close()
    build(one_pool(other, "answer from C's provider", cache_responses=True))  # once A is closed


def test_a_failed_build_leaves_no_response_cache_behind(provider, build):
    cfg = one_pool(provider, "x", cache_responses=True)
    cfg["model_list"][0]["litellm_params"]["rpm"] = "not a number"
    with pytest.raises(ConfigError):
        build(cfg)
    assert litellm.cache is None


def test_a_router_without_cache_responses_neither_reads_nor_fills_anothers_cache(provider, other, build):
    """Before: LiteLLM stores every answer in `litellm.cache` once one is set, even for a call that does not read it,
    so the caching router A served B's answer (another provider's) as its own."""
    a = build(one_pool(provider, "answer from A's provider", cache_responses=True))
    b = build(one_pool(other, "answer from B's provider"))
    assert b.complete(QUESTION).text == "answer from B's provider"
    assert a.complete(QUESTION).text == "answer from A's provider"
    assert b.complete(QUESTION).text == "answer from B's provider"  # A's cache does not answer B either
    assert (provider.hits("fast-a"), other.hits("fast-a")) == (1, 2)

    async def both() -> tuple[str, str]:
        question = "What is the capital of Spain?"
        from_b = (await b.acomplete(question)).text
        await asyncio.sleep(0.2)  # LiteLLM writes the cache on a task of its own
        return from_b, (await a.acomplete(question)).text

    assert asyncio.run(both()) == ("answer from B's provider", "answer from A's provider")


def test_a_router_without_cache_responses_uses_the_applications_own_cache(provider, build):
    """Before: every call of a router without cache_responses sent `cache={"no-cache": True, "no-store": True}`,
    so an application's own `litellm.cache` never answered, not even a caller's `caching=True`: 4 provider requests
    for 4 equal calls. Only another router's cache is kept out of; the application's works as LiteLLM makes it
    work: each answer is stored, and a call with `caching=True` is answered from it."""
    b = build(one_pool(provider, "answer from B's provider"))
    litellm.cache = litellm.Cache()  # the application's own, installed before any call
    try:
        plain = [b.complete(QUESTION).text for _ in range(2)]
        asked = provider.hits("fast-a")
        cached = [b.complete(QUESTION, caching=True).text for _ in range(2)]
    finally:
        litellm.cache = None
    assert plain + cached == ["answer from B's provider"] * 4
    assert (asked, provider.hits("fast-a")) == (2, 2)


def test_a_callers_caching_is_honoured_beside_another_routers_cache(provider, other, build):
    """Before: the router's default `no-cache` beat a caller's explicit `caching=True`. While another router's cache
    is installed, a call that asks for `caching=True` uses it; `caching=False` still keeps its answer out of it
    (LiteLLM would store it there), so the caching router keeps answering from its own provider."""
    a = build(one_pool(provider, "answer from A's provider", cache_responses=True))
    b = build(one_pool(other, "answer from B's provider"))
    question = "What is the capital of Italy?"
    assert [b.complete(question, caching=True).text for _ in range(2)] == ["answer from B's provider"] * 2
    assert other.hits("fast-a") == 1  # the second answered from the cache, as the caller asked
    assert b.complete(QUESTION, caching=False).text == "answer from B's provider"
    assert a.complete(QUESTION).text == "answer from A's provider"  # B's answer was not stored for A
    assert (provider.hits("fast-a"), other.hits("fast-a")) == (1, 2)


# -- LiteLLM's ValidationError when the Router is built --------------------------------------------------------------

SECRET = "s3cr3t-value-4711"


def _bad_rpm_from_env(cfg):
    cfg["model_list"][1]["litellm_params"]["rpm"] = "os.environ/TR_ISOLATION_RPM"


def _numeric_api_key(cfg):
    cfg["model_list"][0]["litellm_params"]["api_key"] = 4711  # e.g. a YAML key written without quotes


def _bad_strategy_args(cfg):
    cfg["router_settings"].update(routing_strategy="usage-based-routing-v2", routing_strategy_args={"ttl": SECRET})


def _bad_group_args(cfg):
    cfg["router_settings"]["routing_groups"] = [
        {
            "group_name": "g",
            "models": ["math"],
            "routing_strategy": "latency-based-routing",
            "routing_strategy_args": {"ttl": SECRET},
        }
    ]


@pytest.mark.parametrize(
    ("change", "path", "hidden"),
    [
        (_bad_rpm_from_env, "model_list[1].litellm_params.rpm", SECRET),
        (_numeric_api_key, "model_list[0].litellm_params.api_key", "4711"),
        (_bad_strategy_args, "router_settings.routing_strategy_args.ttl", SECRET),
        (_bad_group_args, "router_settings.routing_groups[0].routing_strategy_args.ttl", SECRET),
    ],
    ids=["rpm-from-env", "api-key-number", "strategy-args", "group-strategy-args"],
)
def test_a_value_litellm_refuses_is_a_config_error_naming_the_field_not_the_value(
    provider, build, monkeypatch, change, path, hidden
):
    """Before: pydantic's ValidationError from inside LiteLLM's Router, quoting `input_value=...` (a resolved
    os.environ/NAME secret too) and naming no deployment."""
    monkeypatch.setenv("TR_ISOLATION_RPM", SECRET)
    cfg = make_config(provider)
    change(cfg)
    with pytest.raises(ConfigError) as info:
        build(cfg)
    assert info.value.path == path
    assert str(info.value).startswith(f"{path}: ")
    shown = "".join(traceback.format_exception(info.value))
    assert hidden not in shown
    assert "input_value" not in shown


# -- a call argument LiteLLM cannot use ------------------------------------------------------------------------------


def test_a_call_argument_litellm_cannot_use_is_the_callers_error_not_an_outage(provider, build, tmp_path):
    """Before: `timeout="abc"` raised ProviderUnavailable ("APIConnectionError (HTTP 500)") naming the deployment:
    LiteLLM wraps the ValueError it raises before sending anything as a connection error. Telemetry names the
    caller's error too, not the wrapper."""
    db = f"sqlite:///{tmp_path / 'events.db'}"
    cfg = one_pool(provider, "fine")
    cfg["taskrouter"]["telemetry"] = {"url": db}
    tr = build(cfg)

    def sync():
        return tr.complete(QUESTION, timeout="abc")

    def sync_stream():
        return tr.complete(QUESTION, timeout="abc", stream=True)

    def in_loop():
        return asyncio.run(tr.acomplete(QUESTION, timeout="abc"))

    for call in (sync, sync_stream, in_loop):
        with pytest.raises(InvalidParameterError) as info:
            call()
        assert not isinstance(info.value, CompletionError)
        assert info.value.parameter == "timeout"
        assert "abc" not in str(info.value)
    assert provider.hits("fast-a") == 0
    assert tr.complete(QUESTION).text == "fine"  # and the deployment was not put in cooldown for it
    tr.close()
    errors = sorted(str(row["error_class"]) for row in TelemetryStore(db).events())
    assert errors == ["InvalidParameterError"] * 3 + ["None"], errors


def _wrapped(inner: BaseException) -> BaseException:
    """LiteLLM's APIConnectionError raised while `inner` was handled, as its completion wrapper raises it."""
    try:
        try:
            raise inner
        except BaseException as exc:
            raise litellm.APIConnectionError(message="x", llm_provider="openai", model="m") from exc
    except BaseException as outer:
        return outer


@pytest.mark.parametrize(
    "inner",
    [json.JSONDecodeError("Expecting value", "<html>", 0), UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad")],
    ids=["malformed-json", "undecodable-body"],
)
def test_a_value_error_from_reading_a_response_stays_the_providers(inner):
    assert _litellm.program_error(_wrapped(inner)) is None
