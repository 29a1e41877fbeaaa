"""The report page says so where a chart would have nothing to show, and shows traffic by label."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from routing.report import compute_metrics, readings, render_html

pytest.importorskip("matplotlib")

START = datetime(2026, 11, 2, 9, 5, tzinfo=UTC)


def event(i, label, *, minutes=0, fallback=False, escalated=False):
    pool = {"math": "math", "code": "code"}.get(label, "fast")
    return {
        "ts": START + timedelta(minutes=minutes, seconds=i),
        "label": label,
        "stage": "embedding",
        "confidence": 0.9,
        "escalated": escalated,
        "requested_pool": pool,
        "served_pool": "capable" if fallback else pool,
        "fallback": fallback,
        "input_tokens": 10,
        "output_tokens": 20,
        "cost_usd": 0.001,
        "status": "success",
        "error_class": None,
        "query_text": None,
    }


def section(page, key):
    return re.search(rf'<section id="{key}">(.*?)</section>', page, re.S).group(1)


def test_one_period_without_fallbacks_says_so_instead_of_empty_charts():
    events = [event(i, label) for i, label in enumerate(["math", "math", "code", "chat"])]
    events[2]["escalated"] = True
    m = compute_metrics(events)
    assert m["label_distribution"] == {"math": 0.5, "code": 0.25, "chat": 0.25}
    assert set(m["fallback_rate"].values()) == {0.0} and len(m["escalation_over_time"]) == 1
    page = render_html(m)
    fallbacks, trend = section(page, "fallback_rate"), section(page, "escalation_rate")
    assert "<img" not in fallbacks and "No fallbacks in this period" in fallbacks
    assert readings(m)["fallback_rate"].startswith("No fallbacks in this period")  # what `taskrouter report` prints
    assert "<img" not in trend and "4 requests, all in one period (2026-11-02 09:00): 25% escalated" in trend
    labels = section(page, "label_distribution")
    assert "<h2>Traffic by label</h2><img" in labels and "Most common label: &#x27;math&#x27; with 50%" in labels
    assert page.count("data:image/png;base64,") == 4  # label, served pool, cost, stage


def test_fallbacks_and_two_periods_are_charts():
    events = [event(0, "math", fallback=True), event(1, "code"), event(2, "math", minutes=60, escalated=True)]
    page = render_html(compute_metrics(events))
    assert "<img" in section(page, "fallback_rate") and "<img" in section(page, "escalation_rate")
    assert page.count("data:image/png;base64,") == 6


def test_no_events_is_a_page_of_sentences():
    page = render_html(compute_metrics([]))
    assert "data:image/png" not in page
    keys = ("label_distribution", "fallback_rate", "escalation_rate", "stage_coverage")
    assert all("No requests in this period." in section(page, k) for k in keys)


def test_stage_coverage_names_the_stages_the_events_name():
    """A stage the report has never heard of (a plugin's) is read like the built-in ones, most common first."""
    events = [{**event(i, "chat"), "stage": stage} for i, stage in enumerate(["length", "length", "embedding"])]
    text = readings(compute_metrics(events))["stage_coverage"]
    assert text.startswith("Decided by stage: length 67%, embedding 33%"), text


def test_held_back_queries_and_error_classes_are_on_the_page():
    """Both were computed (and the held-back share printed by `taskrouter report`) but the page left them out."""
    events = [event(i, "math") for i in range(4)]
    events[0]["held_back"] = True
    events[1].update(status="failure", served_pool=None, error_class="RateLimitError")
    events[2].update(status="failure", served_pool=None, error_class="<b>Bad</b>Error")
    events[3].update(fallback=True, error_class="RateLimitError")  # answered after a failed attempt
    m = compute_metrics(events)
    page = render_html(m)
    held = section(page, "held_back_rate")
    assert "<h2>Held back by the escalation budget</h2>" in held and "25% of queries were below" in held
    errors = section(page, "error_classes")
    assert "<td>RateLimitError</td><td>2</td>" in errors and "<td>&lt;b&gt;Bad&lt;/b&gt;Error</td><td>1</td>" in errors
    assert "<b>Bad</b>" not in page
    assert readings(m)["error_classes"].startswith("2 request(s) failed. Errors by class: RateLimitError 2,")
    quiet = render_html(compute_metrics([event(0, "math")]))
    assert "No query was held back" in section(quiet, "held_back_rate")
    assert "No request met an error" in section(quiet, "error_classes")


@pytest.mark.parametrize("label", [r"cost_$\x$", "$x$", "price in $ or $", "a \\$ b"])
def test_a_label_with_dollar_signs_is_shown_as_written_not_as_math(label):
    """Labels, pools and stages are tick labels; matplotlib reads text between two `$` as mathtext, so a stored
    label `cost_$\\x$` failed the whole report and `$x$` showed as an italic x."""
    from matplotlib.text import Text

    from routing.report import _tick

    events = [event(0, label), event(1, "math"), {**event(2, "math"), "stage": None}]  # a stage may be None too
    events[0]["requested_pool"] = events[0]["served_pool"] = label
    page = render_html(compute_metrics(events))
    assert page.count("data:image/png;base64,") == 4
    assert Text()._preprocess_math(_tick(label)) == (label, False)  # what the chart shows: the label, no math


def test_a_pool_named_total_and_the_total_are_two_bars():
    """The cost chart adds a `total` bar after the pools'; a pool named `total` (or `all chat`, the baseline's
    name) used to be drawn on the same place, one bar hiding the other."""
    from routing.report import _bar_chart

    fig = _bar_chart([("total", 0.25), ("chat", 0.5), ("total", 0.75)], [("total", 1.0)])
    (ax,) = fig.axes
    bars = ax.patches
    assert [b.get_height() for b in bars] == [0.25, 0.5, 0.75, 1.0]
    assert len({b.get_x() for b in bars}) == 4  # each at its own place
    assert [t.get_text() for t in ax.get_xticklabels()] == ["total", "chat", "total", "total"]

    events = [event(0, "math")]
    events[0]["requested_pool"] = events[0]["served_pool"] = "total"
    assert render_html(compute_metrics(events)).count("data:image/png;base64,") >= 3  # the page still renders


def priced(**prices):
    """A routing config whose deployment key is a secret nobody set: the report never reads it."""
    from routing.report import load_report_config

    return load_report_config(
        {
            "model_list": [
                {
                    "model_name": pool,
                    "litellm_params": {"model": f"openai/{pool}", "api_key": "os.environ/NOT_SET_KEY", **p},
                }  # fmt: skip
                for pool, p in prices.items()
            ],
            "taskrouter": {"default_pool": next(iter(prices))},
        }
    )


def test_a_zero_baseline_is_nothing_to_price_not_missing_prices():
    config = priced(capable={"input_cost_per_token": 3e-6, "output_cost_per_token": 1.2e-5})
    failed = [{**event(i, "chat"), "status": "failure", "served_pool": None, "cost_usd": 0.0} for i in range(3)]
    m = compute_metrics(failed, config=config)
    assert m["baseline_cost_usd"] == 0
    text = readings(m)["cost_usd"]
    assert "No prices" not in text and "no tokens to price: no request succeeded in this period." in text
    m = compute_metrics([{**event(0, "chat"), "input_tokens": 0, "output_tokens": 0}], config=config)
    assert readings(m)["cost_usd"].endswith("no tokens to price: no successful request used tokens.")
    unpriced = compute_metrics(failed, config=priced(capable={}))
    assert unpriced["baseline_cost_usd"] is None and readings(unpriced)["cost_usd"].startswith("No prices for")


def test_the_report_reads_the_proxys_own_config_without_its_secrets(monkeypatch, tmp_path):
    """The proxy's config.yaml has `litellm_settings.callbacks` and `general_settings`, which `load_config` refuses,
    and `os.environ/...` keys that only the proxy's environment sets; the report needs neither."""
    from classifier.errors import ConfigError
    from routing.report import load_report_config
    from tests.conftest import ROOT

    for name in ("UPSTREAM_API_BASE", "UPSTREAM_API_KEY", "LITELLM_MASTER_KEY"):
        monkeypatch.delenv(name, raising=False)
    example = ROOT / "examples" / "proxy" / "config.yaml"
    config = load_report_config(example)
    assert config.pool_for("math") == "math" and config.source == str(example)
    assert config.model_list[0].litellm_params["api_key"] == "os.environ/UPSTREAM_API_KEY"  # never resolved
    prices = {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6}
    m = compute_metrics([event(0, "chat")], config=priced(capable=prices))
    assert m["baseline_cost_usd"] == pytest.approx(10 * 1e-6 + 20 * 2e-6)
    bad = tmp_path / "config.yaml"  # what it does read is still checked, naming the field and the file
    bad.write_text(
        "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"
        "taskrouter: {default_pool: a, telemetry: {store_text: 'yes'}}\n"
    )
    with pytest.raises(ConfigError, match=rf"^taskrouter.telemetry.store_text: .*\(in {bad}\)$"):
        load_report_config(bad)
