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
