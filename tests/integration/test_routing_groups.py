"""A routing strategy per pool (router_settings.routing_groups), in one router against the fake provider."""

import asyncio
from collections import Counter

import pytest

from routing import TaskRouter
from tests.integration.conftest import deployment, make_config

pytestmark = pytest.mark.integration

N = 12  # requests per pool and mode
CHEAP, PRICEY = (
    {"input_cost_per_token": 1e-7, "output_cost_per_token": 2e-7},
    {"input_cost_per_token": 1e-5, "output_cost_per_token": 1e-5},
)
# One request to each pool: "tips" questions are unmapped (-> fast), poems go to `capable`.
QUERIES = {"fast": "Any tips for visiting {}?", "capable": "Write a short poem about {} at night."}
PLACES = ["Oslo", "Lima", "Cairo", "Hanoi", "Quito", "Perth", "Accra", "Riga", "Porto", "Dakar", "Kyoto", "Bern"]
FAST_ONE = {"fast": "fast-quick-id", "capable": "capable-cheap-id"}  # the deployment each pool should prefer


@pytest.fixture
def tr(provider, shipped_cascade):
    deployments = [
        deployment(provider, "fast", "fast-slow"),
        deployment(provider, "fast", "fast-quick"),
        deployment(provider, "capable", "capable-pricey", **PRICEY),
        deployment(provider, "capable", "capable-cheap", **CHEAP),
        deployment(provider, "math", "math-a"),
        deployment(provider, "code", "code-a", **CHEAP),
    ]
    provider.set(**{"fast-slow": {"mode": "slow", "delay": 0.3}})
    groups = [
        {
            "group_name": "quickest",
            "models": ["fast", "math"],
            "routing_strategy": "latency-based-routing",
            "routing_strategy_args": {"ttl": 60, "lowest_latency_buffer": 0},
        },
        {"group_name": "cheapest", "models": ["capable", "code"], "routing_strategy": "cost-based-routing"},
    ]
    config = make_config(
        provider,
        deployments=deployments,
        router_settings={"routing_groups": groups, "fallbacks": [{"math": ["capable"]}, {"code": ["fast"]}]},
    )
    config["taskrouter"]["pools"] = {"creative": "capable", "math": "math", "code": "code"}
    router = TaskRouter(config, cascade=shipped_cascade)
    yield router
    router.close()


def _text(chunks) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def _run(tr, mode: str, query: str) -> tuple[str, str | None]:
    """(requested pool, deployment that served) for one request sent the given way."""
    if mode == "sync":
        r = tr.complete(query)
    elif mode == "async":
        r = asyncio.run(tr.acomplete(query))
    else:
        r = tr.complete(query, stream=True)
        assert _text(r).startswith("[")  # the whole stream arrives
    return r.requested_pool, r.deployment


def test_each_pool_follows_its_own_strategy_sync_async_and_streaming(tr, provider):
    # Latency routing keeps the first samples of each deployment: pay the router's one-time start-up costs on
    # another pool first, or they land on whichever `fast` deployment is tried first.
    tr.complete("Solve for x: 3x + 7 = 22, and show each step.")
    shares: dict[tuple[str, str], float] = {}
    for mode in ("sync", "async", "stream"):
        for pool, template in QUERIES.items():
            served = Counter()
            for place in PLACES[:N]:
                requested, dep = _run(tr, mode, template.format(place))
                assert requested == pool
                served[dep] += 1
            assert sum(served.values()) == N and set(served) <= {
                f"{pool}-{k}-id" for k in ("slow", "quick", "pricey", "cheap")
            }
            shares[pool, mode] = served[FAST_ONE[pool]] / N
    print("\nshare of traffic to the quick (fast pool, latency-based) / cheap (capable pool, cost-based) deployment")
    print(f"{'pool':<10}{'strategy':<24}{'sync':>8}{'async':>8}{'stream':>8}")
    for pool, strategy in (("fast", "latency-based-routing"), ("capable", "cost-based-routing")):
        print(f"{pool:<10}{strategy:<24}" + "".join(f"{shares[pool, m]:>8.2f}" for m in ("sync", "async", "stream")))
    assert provider.hits("capable-pricey") == 0
    assert all(shares["capable", m] == 1.0 for m in ("sync", "async", "stream"))
    # Latency-based routing tries each deployment before it knows their speed; after that the quick one wins.
    assert shares["fast", "sync"] >= 0.75 and shares["fast", "async"] >= 0.9 and shares["fast", "stream"] >= 0.9
    assert provider.hits("fast-slow") <= 4


def test_fallbacks_cross_between_groups(tr, provider):
    provider.set(**{"math-a": {"mode": "500"}, "code-a": {"mode": "500"}})
    math = tr.complete("Solve for x: 3x + 7 = 22, and show each step.")  # latency group -> cost group
    assert (math.requested_pool, math.served_pool, math.fallback, math.deployment) == (
        "math",
        "capable",
        True,
        "capable-cheap-id",
    )
    code = asyncio.run(tr.acomplete("Fix this Python: print('a' + 1)"))  # cost group -> latency group
    assert (code.requested_pool, code.served_pool, code.fallback) == ("code", "fast", True)
    assert code.deployment in {"fast-quick-id", "fast-slow-id"}
    streamed = tr.complete("Compute the integral of x^2 from 0 to 3.", stream=True)
    assert _text(streamed) == "[capable-cheap] ok" and streamed.served_pool == "capable"
    assert provider.hits("capable-pricey") == 0
