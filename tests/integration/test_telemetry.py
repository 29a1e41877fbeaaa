"""Telemetry from real routed completions into real SQLite and PostgreSQL, and the report read back."""

import asyncio
import sqlite3
import time

import pytest

from routing import PoolsExhausted, TaskRouter
from routing.report import compute_metrics
from routing.telemetry import SCHEMA_VERSION, TelemetryStore, redact
from tests.integration.conftest import make_config
from tests.integration.servers import postgres_server

PRICED = {"capable": (3e-6, 1.2e-5), "math": (1e-6, 4e-6), "fast": (1e-7, 4e-7), "creative": (2e-6, 8e-6)}


@pytest.fixture(scope="module")
def postgres_url():
    with postgres_server() as url:
        if url is None:
            pytest.skip("no PostgreSQL binaries (initdb/pg_ctl) on this machine")
        yield url


def priced_config(fake, url, **taskrouter):
    cfg = make_config(
        fake,
        router_settings={"fallbacks": [{"math": ["capable"]}, {"capable": ["fast"]}]},
        telemetry={"url": url, "store_text": True},
        **taskrouter,
    )
    for d in cfg["model_list"]:
        if d["model_name"] in PRICED:
            d["litellm_params"]["input_cost_per_token"], d["litellm_params"]["output_cost_per_token"] = PRICED[
                d["model_name"]
            ]
    return cfg


def scripted_traffic(fake, tr):
    """The same requests every time: successes, a fallback, a total failure, an async call."""
    fake.reset()
    tr.complete("Solve 3x + 4 = 19 for x.")
    tr.complete("Write a haiku about rain on a tin roof, my key is sk-live-abcdefghijkl12345 and mail is a@b.io")
    tr.complete("What should I pack for a week in Iceland?")
    fake.set(**{"math-a": {"mode": "500"}})
    tr.complete("What is the derivative of x^3 + 2x?")
    fake.set(**{"capable-a": {"mode": "500"}, "fast-a": {"mode": "500"}})
    with pytest.raises(PoolsExhausted):
        tr.complete("Compute the integral of 2x from 0 to 5.")
    fake.reset()

    async def later():
        await tr.acomplete("What is the tallest mountain in Africa?")  # a plain question: the default pool
        await asyncio.sleep(0.5)  # async callbacks run as tasks on this loop

    asyncio.run(later())
    time.sleep(0.5)  # sync callbacks run on LiteLLM's worker threads
    tr.close()


def metrics_for(fake, shipped_cascade, url):
    tr = TaskRouter(priced_config(fake, url), cascade=shipped_cascade)
    scripted_traffic(fake, tr)
    assert tr.telemetry.failed == 0 and tr.telemetry.dropped == 0
    events = TelemetryStore(url).events()
    return events, compute_metrics(events, config=tr.config)


def check(events, m):
    assert m["requests"] == 6 and m["succeeded"] == 5 and m["failed"] == 1
    assert m["fallback_rate"]["math"] == pytest.approx(1 / 3)
    assert m["pool_distribution"] == pytest.approx({"math": 0.2, "creative": 0.2, "fast": 0.4, "capable": 0.2})
    assert m["cost_usd"]["math"] > 0 and m["baseline_cost_usd"] > m["total_cost_usd"]
    failed = next(e for e in events if e["status"] == "failure")
    assert failed["error_class"] and failed["served_pool"] is None
    fell_back = next(e for e in events if e["fallback"])
    assert (fell_back["requested_pool"], fell_back["served_pool"]) == ("math", "capable")
    texts = " ".join(e["query_text"] or "" for e in events)
    assert "sk-live" not in texts and "a@b.io" not in texts and "[secret]" in texts and "[email]" in texts


def test_sqlite_and_postgres_give_the_same_report(provider, shipped_cascade, tmp_path, postgres_url):
    ev_sqlite, m_sqlite = metrics_for(provider, shipped_cascade, f"sqlite:///{tmp_path / 'events.db'}")
    ev_pg, m_pg = metrics_for(provider, shipped_cascade, postgres_url)
    check(ev_sqlite, m_sqlite)
    check(ev_pg, m_pg)
    comparable = (
        "requests",
        "succeeded",
        "failed",
        "pool_distribution",
        "fallback_rate",
        "stage_coverage",
        "escalation_rate",
        "error_classes",
    )
    assert {k: m_sqlite[k] for k in comparable} == {k: m_pg[k] for k in comparable}
    assert m_sqlite["total_cost_usd"] == pytest.approx(m_pg["total_cost_usd"])
    assert m_sqlite["baseline_cost_usd"] == pytest.approx(m_pg["baseline_cost_usd"])


@pytest.mark.parametrize("kind", ["down", "read-only"])
def test_a_broken_store_never_fails_a_completion(provider, shipped_cascade, tmp_path, kind):
    if kind == "down":
        url = "postgresql://postgres@127.0.0.1:9/nowhere"  # nothing listens on port 9
    else:
        db = tmp_path / "ro.db"
        store = TelemetryStore(f"sqlite:///{db}")
        store.migrate()
        url = f"sqlite:///file:{db}?mode=ro&uri=true"
    tr = TaskRouter(priced_config(provider, url), cascade=shipped_cascade)
    results = [tr.complete(q) for q in ("Solve 2x = 10.", "Name three rivers in Africa.")]
    time.sleep(0.5)
    tr.close()
    assert [r.served_pool for r in results] == ["math", "fast"]
    assert tr.telemetry.failed >= 2 and tr.telemetry.written == 0


def test_text_is_not_stored_unless_asked(provider, shipped_cascade, tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    cfg = priced_config(provider, url)
    cfg["taskrouter"]["telemetry"]["store_text"] = False
    tr = TaskRouter(cfg, cascade=shipped_cascade)
    tr.complete("A private question about my bank account")
    time.sleep(0.5)
    tr.close()
    (event,) = TelemetryStore(url).events()
    assert event["query_text"] is None and event["status"] == "success"


def test_migrations_are_numbered_and_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = TelemetryStore(url)
    assert store.migrate() == 0 and TelemetryStore(url).migrate() == SCHEMA_VERSION
    con = sqlite3.connect(tmp_path / "m.db")
    assert con.execute("select version from taskrouter_schema").fetchone() == (SCHEMA_VERSION,)
    assert "ix_taskrouter_events_ts" in {r[1] for r in con.execute("pragma index_list('taskrouter_events')")}
    con.execute("drop index ix_taskrouter_events_ts")
    con.execute("update taskrouter_schema set version = 1")
    con.commit()
    assert TelemetryStore(url).migrate() == 1  # resumes at migration 2
    assert "ix_taskrouter_events_ts" in {r[1] for r in con.execute("pragma index_list('taskrouter_events')")}


def test_redaction():
    text = "key sk-proj-AbCdEf1234567890xyz, aws AKIAABCDEFGHIJKLMNOP, mail jane.doe+x@corp.example.com, ok"
    assert redact(text) == "key [secret], aws [secret], mail [email], ok"
