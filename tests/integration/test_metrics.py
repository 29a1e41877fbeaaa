"""Decisions in Prometheus: TaskRouter with `taskrouter.metrics: prometheus`, and the real proxy's /metrics."""

from __future__ import annotations

import shutil
import urllib.request
from collections import Counter

import pytest
import yaml

from tests.integration.conftest import make_config
from tests.integration.servers import litellm_proxy
from tests.integration.test_proxy import EXAMPLE, MASTER_KEY, MISSING

prometheus_client = pytest.importorskip("prometheus_client")
pytestmark = pytest.mark.integration

MATH = "Solve for x: 3x + 7 = 22, and show each step."
QUERIES = [
    MATH,
    "Write a short poem about the sea at night.",
    "Fix this Python: print('a' + 1)",
    "What's the capital of Canada?",
    "Compute the integral of x^2 from 0 to 3.",
]


FALLBACK = dict(router="default", requested_pool="math", served_pool="capable", fallback="true", status="success")
MATH_DECISION = dict(label="math", stage="heuristic", escalated="false", requested_pool="math")
SERVED_MATH = dict(requested_pool="math", served_pool="math", fallback="false", status="success")


def value(name: str, **labels: str) -> float:
    return prometheus_client.REGISTRY.get_sample_value(name, labels) or 0.0


def test_taskrouter_counts_decisions_and_responses(provider, shipped_cascade):
    from routing import TaskRouter

    config = make_config(provider, router_settings={"fallbacks": [{"math": ["capable"]}]}, metrics="prometheus")
    config["model_list"][1]["litellm_params"].update(input_cost_per_token=1e-6, output_cost_per_token=2e-6)
    tr = TaskRouter(config, cascade=shipped_cascade)
    labels = dict(router="default", **MATH_DECISION)
    cost = dict(router="default", requested_pool="math", served_pool="capable")
    failed_math = dict(FALLBACK, served_pool="math", fallback="false", status="failure")
    before = (
        value("taskrouter_decisions_total", **labels),
        value("taskrouter_responses_total", **FALLBACK),
        value("taskrouter_cost_usd_total", **cost),
        value("taskrouter_responses_total", **failed_math),
    )
    provider.set(**{"math-a": {"mode": "500"}})
    results = [tr.complete(MATH) for _ in range(3)]
    assert all(r.decision.stage == "heuristic" and r.served_pool == "capable" for r in results)
    # counted when each call returned: no waiting
    assert value("taskrouter_responses_total", **FALLBACK) == before[1] + 3
    assert value("taskrouter_responses_total", **failed_math) == before[3] + 3  # the failed attempt before each
    assert value("taskrouter_decisions_total", **labels) == before[0] + 3
    assert value("taskrouter_cost_usd_total", **cost) == pytest.approx(before[2] + sum(r.cost_usd for r in results))
    assert value("taskrouter_decision_seconds_count", router="default", stage="heuristic") >= 3
    tr.close()


def test_two_routers_in_one_process_keep_separate_metrics(provider, shipped_cascade):
    from routing import TaskRouter

    def build(name: str) -> TaskRouter:
        return TaskRouter(make_config(provider, metrics="prometheus", name=name), cascade=shipped_cascade)

    a, b = build("separate-a"), build("separate-b")
    for router, n in ((a, 2), (b, 1)):
        for _ in range(n):
            assert router.complete(MATH).served_pool == "math"
    for name, n in (("separate-a", 2), ("separate-b", 1)):
        assert value("taskrouter_decisions_total", router=name, **MATH_DECISION) == n
        assert value("taskrouter_responses_total", router=name, **SERVED_MATH) == n
    b.close()  # b's series go with it; a keeps counting
    get = prometheus_client.REGISTRY.get_sample_value
    assert get("taskrouter_decisions_total", {"router": "separate-b", **MATH_DECISION}) is None
    a.complete(MATH)
    assert value("taskrouter_decisions_total", router="separate-a", **MATH_DECISION) == 3
    assert value("taskrouter_responses_total", router="separate-a", **SERVED_MATH) == 3
    a.close()
    assert get("taskrouter_responses_total", {"router": "separate-a", **SERVED_MATH}) is None


@pytest.mark.skipif(bool(MISSING), reason="needs the LiteLLM Proxy's packages (routing.proxy imports them)")
def test_a_proxy_hook_in_the_process_leaves_other_routers_metrics_on(provider, shipped_cascade):
    from routing import TaskRouter
    from routing.proxy import TaskRouterHook

    router = TaskRouter(make_config(provider, metrics="prometheus", name="beside-a-hook"), cascade=shipped_cascade)
    hook = TaskRouterHook(make_config(provider, name="hook"), cascade=shipped_cascade, prometheus=True)
    hook.decide(MATH)  # loads the hook's router, which forwards its own events and unregisters its own callback
    router.complete(MATH)
    assert value("taskrouter_responses_total", router="beside-a-hook", **SERVED_MATH) == 1
    router.close()
    hook.close()


@pytest.fixture(scope="module")
def metrics_proxy(tmp_path_factory):
    """The example proxy with the taskrouter hook and LiteLLM's `prometheus` callback."""
    if MISSING:
        pytest.skip(f"the LiteLLM Proxy's packages are not installed (missing {', '.join(MISSING)})")
    from tests.fake_provider import FakeProvider

    upstream = FakeProvider()
    tmp = tmp_path_factory.mktemp("proxy-metrics")
    config = yaml.safe_load((EXAMPLE / "config.yaml").read_text())
    config["litellm_settings"]["callbacks"] = ["taskrouter_hook.hook", "prometheus"]
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(EXAMPLE / "taskrouter_hook.py", tmp / "taskrouter_hook.py")
    env = {
        "UPSTREAM_API_BASE": upstream.url,
        "UPSTREAM_API_KEY": "sk-fake-upstream",
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "PROMETHEUS_MULTIPROC_DIR": None,
    }
    try:
        with litellm_proxy(tmp, env) as base:
            yield {"url": base, "upstream": upstream}
    finally:
        upstream.close()


def scrape(url: str) -> str:
    """/metrics, as a Prometheus scrape job with the proxy's key as its bearer token reads it."""
    req = urllib.request.Request(url + "/metrics/", headers={"Authorization": f"Bearer {MASTER_KEY}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.read().decode()


def samples(text: str, name: str) -> list[tuple[dict, float]]:
    from prometheus_client.parser import text_string_to_metric_families

    return [
        (s.labels, s.value) for family in text_string_to_metric_families(text) for s in family.samples if s.name == name
    ]


def test_the_proxys_metrics_count_decisions_per_label_and_stage(metrics_proxy):
    import openai

    upstream = metrics_proxy["upstream"]
    upstream.set(**{"code-a": {"mode": "500"}})  # code requests fall back to `capable`
    expected, served = Counter(), Counter()
    with openai.OpenAI(base_url=metrics_proxy["url"], api_key=MASTER_KEY, max_retries=0, timeout=90) as client:
        for i in range(20):
            raw = client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": QUERIES[i % len(QUERIES)]}]
            )
            h = raw.headers
            expected[
                h["x-taskrouter-label"], h["x-taskrouter-stage"], h["x-taskrouter-escalated"], h["x-taskrouter-pool"]
            ] += 1
            served[h["x-taskrouter-pool"], h["x-litellm-model-group"]] += 1
    assert served["code", "capable"] == 4  # the fallback really happened
    # No waiting: the hook counts a request before the proxy sends its response.
    text = scrape(metrics_proxy["url"])
    responses = {
        (s["requested_pool"], s["served_pool"], s["fallback"]): v
        for s, v in samples(text, "taskrouter_responses_total")
        if s["status"] == "success"
    }
    decisions = {
        (s["label"], s["stage"], s["escalated"], s["requested_pool"]): v
        for s, v in samples(text, "taskrouter_decisions_total")
    }
    assert decisions == expected
    assert responses == {(req, srv, "true" if req != srv else "false"): n for (req, srv), n in served.items()}
    failures = Counter()
    for s, v in samples(text, "taskrouter_responses_total"):
        if s["status"] == "failure":
            failures[s["requested_pool"]] += v
    # one failed attempt before each fallback (once `code-a` cools down, LiteLLM's record names the next pool)
    assert failures == {"code": 4}
    assert any(name.startswith("litellm_") for name in text.split())  # LiteLLM's own metrics share the endpoint
    lines = [
        line
        for line in text.splitlines()
        if line.startswith(("taskrouter_decisions_total", "taskrouter_responses_total"))
    ]
    print("\n/metrics after 20 requests (taskrouter_ lines):\n" + "\n".join(lines))


def test_held_back_decisions_are_counted(provider, shipped_cascade):
    from classifier.serving.cascade import Cascade
    from routing import TaskRouter

    config = make_config(
        provider,
        metrics="prometheus",
        name="budgeted",
        llm_classifier={"alias": "capable", "timeout_s": 1.0},
        classifier={"max_escalation": 0.1, "escalation_window": 100},
    )
    provider.set(**{"capable-a": {"mode": "ok", "reply": "default"}})
    tr = TaskRouter(config, cascade=Cascade(shipped_cascade.classifier, None, 1.0))  # every query below threshold
    results = [tr.complete(f"Tell me something about the moon landing, part {n}") for n in range(12)]
    held = [r.decision for r in results if r.decision.held_back]
    assert len(held) == 2 and {d.label for d in held} == {"default"}
    assert value("taskrouter_held_back_total", router="budgeted", label="default", requested_pool="fast") == 2
    tr.close()
    assert value("taskrouter_held_back_total", router="budgeted", label="default", requested_pool="fast") == 0
