"""Telemetry from real routed completions into real SQLite and PostgreSQL, and the report read back."""

import asyncio
import sqlite3

import pytest

from classifier.errors import ConfigError
from routing import PoolsExhausted, TaskRouter
from routing.report import compute_metrics, readings
from routing.review import export_for_review
from routing.telemetry import OLDEST_WRITER, SCHEMA_VERSION, TelemetryStore, redact
from tests.integration.conftest import make_config
from tests.integration.servers import free_port, postgres_server

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
    asyncio.run(tr.acomplete("What is the tallest mountain in Africa?"))  # a plain question: the default pool
    tr.close()  # no sleep: each request handed its event over before it returned; close writes them


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


def test_sqlite_gives_the_expected_report(provider, shipped_cascade, tmp_path):
    """Runs without PostgreSQL: fallback rate, pool shares, cost, redaction and the failed row."""
    check(*metrics_for(provider, shipped_cascade, f"sqlite:///{tmp_path / 'events.db'}"))


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


def test_a_store_that_is_down_never_fails_a_completion(provider, shipped_cascade):
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere"  # nothing listens there: it may come up later
    tr = TaskRouter(priced_config(provider, url), cascade=shipped_cascade)
    results = [tr.complete(q) for q in ("Solve 2x = 10.", "Name three rivers in Africa.")]
    tr.close()
    assert [r.served_pool for r in results] == ["math", "fast"]
    assert tr.telemetry.failed == 2 and tr.telemetry.written == 0


def _read_only(tmp_path):
    db = tmp_path / "ro.db"
    TelemetryStore(f"sqlite:///{db}").migrate()
    return f"sqlite:///file:{db}?mode=ro&uri=true"


def _newer(tmp_path, oldest_writer=SCHEMA_VERSION + 1):
    """A database a later taskrouter migrated: one more nullable column, and its mark of the oldest writer."""
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    TelemetryStore(url).migrate()
    con = sqlite3.connect(tmp_path / "newer.db")
    con.execute("alter table taskrouter_events add column added_later text")
    con.execute("update taskrouter_schema set version = ?", (SCHEMA_VERSION + 1,))
    con.execute("update taskrouter_schema_compat set oldest_writer = ?", (oldest_writer,))
    con.commit()
    return url


@pytest.mark.parametrize(
    "make_url",
    [lambda tmp: f"sqlite:///{tmp / 'no-such-dir' / 'events.db'}", _read_only, _newer],
    ids=["no-such-directory", "read-only", "newer-schema"],
)
def test_a_store_that_can_never_take_an_event_fails_the_build(provider, shipped_cascade, tmp_path, make_url):
    """Such a store used to be accepted and every event lost, one warning each."""
    with pytest.raises(ConfigError) as info:
        TaskRouter(priced_config(provider, make_url(tmp_path)), cascade=shipped_cascade)
    assert info.value.path == "taskrouter.telemetry.url"


def test_a_newer_schema_that_allows_older_writers_is_written_and_read(provider, shipped_cascade, tmp_path):
    """A rolling upgrade: a worker of the new version migrated the database; the workers of this version still
    serve until they are replaced, and their events are kept, since the new schema says they may write it."""
    url = _newer(tmp_path, oldest_writer=SCHEMA_VERSION)
    tr = TaskRouter(priced_config(provider, url), cascade=shipped_cascade)
    tr.complete("Solve 2x = 10.")
    tr.close()
    assert tr.telemetry.written == 1 and tr.telemetry.failed == 0
    (event,) = TelemetryStore(url).events()
    assert event["served_pool"] == "math" and "added_later" not in event


def test_a_schema_is_marked_by_writers_never_by_readers(tmp_path):
    """A database a taskrouter without the mark migrated gets it from the first writer; a reader adds nothing."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    TelemetryStore(url).migrate()
    con = sqlite3.connect(tmp_path / "m.db")
    assert con.execute("select oldest_writer from taskrouter_schema_compat").fetchall() == [(OLDEST_WRITER,)]
    con.execute("drop table taskrouter_schema_compat")
    con.commit()
    TelemetryStore(url).events()
    tables = {r[0] for r in con.execute("select name from sqlite_master where type = 'table'")}
    assert "taskrouter_schema_compat" not in tables
    TelemetryStore(url).migrate()
    assert con.execute("select oldest_writer from taskrouter_schema_compat").fetchall() == [(OLDEST_WRITER,)]


def test_reading_an_up_to_date_store_writes_nothing(provider, shipped_cascade, tmp_path):
    """The report, the review export and `priors --from-telemetry` read with read-only credentials too."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    tr = TaskRouter(priced_config(provider, url), cascade=shipped_cascade)
    tr.complete("Solve 2x = 10.")
    tr.close()
    (event,) = TelemetryStore(f"sqlite:///file:{tmp_path / 'e.db'}?mode=ro&uri=true").events()
    assert event["served_pool"] == "math"


def test_a_store_that_cannot_be_read_is_a_config_error_without_the_password():
    with pytest.raises(ConfigError, match=r"^db: telemetry database unusable \(OperationalError\)$"):
        TelemetryStore(f"postgresql://postgres:hunter2-secret@127.0.0.1:{free_port()}/nowhere", create=False).events()


def test_text_is_not_stored_unless_asked(provider, shipped_cascade, tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    cfg = priced_config(provider, url)
    cfg["taskrouter"]["telemetry"]["store_text"] = False
    tr = TaskRouter(cfg, cascade=shipped_cascade)
    tr.complete("A private question about my bank account")
    tr.close()
    (event,) = TelemetryStore(url).events()
    assert event["query_text"] is None and event["status"] == "success"


def test_a_stream_is_recorded_once_read_to_its_end(provider, shipped_cascade, tmp_path):
    url = f"sqlite:///{tmp_path / 'e.db'}"
    tr = TaskRouter(priced_config(provider, url), cascade=shipped_cascade)
    provider.set(**{"math-a": {"mode": "500"}})
    stream = tr.complete("What is the derivative of x^3 + 2x?", stream=True)
    assert tr.telemetry.flush() and TelemetryStore(url).events() == []  # not read yet: not ended
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    tr.close()
    (row,) = TelemetryStore(url).events()
    assert text == "[capable-a] ok" and row["status"] == "success"
    assert (row["served_pool"], row["fallback"], row["error_class"]) == ("capable", True, "InternalServerError")
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0 and row["cost_usd"] > 0


def test_a_stream_left_half_read_is_recorded(provider, shipped_cascade, tmp_path):
    """Before: a stream the caller stopped reading (closed, collected, cancelled) left no row, though it was paid."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    tr = TaskRouter(priced_config(provider, url), cascade=shipped_cascade)
    chunks = iter(tr.complete("What is the derivative of x^3 + 2x?", stream=True))
    next(chunks)
    chunks.close()

    async def read_one_async() -> None:
        stream = aiter(await tr.acomplete("What is the derivative of x^3 + 2x?", stream=True))
        await anext(stream)
        await stream.aclose()

    asyncio.run(read_one_async())
    tr.close()
    rows = TelemetryStore(url).events()
    assert [(r["status"], r["error_class"], r["requested_pool"]) for r in rows] == [
        ("failure", "GeneratorExit", "math")
    ] * 2


def test_the_database_url_can_be_a_secret_read_from_the_environment(provider, shipped_cascade, tmp_path, monkeypatch):
    """Before: `url: os.environ/NAME` was refused as no database URL, so a password had to be in the config."""
    url = f"sqlite:///{tmp_path / 'e.db'}"
    monkeypatch.setenv("TR_TELEMETRY_URL", url)
    cfg = priced_config(provider, "os.environ/TR_TELEMETRY_URL")
    tr = TaskRouter(cfg, cascade=shipped_cascade)
    tr.complete("What is the derivative of x^3 + 2x?")
    tr.close()
    assert [r["status"] for r in TelemetryStore(url).events()] == ["success"]
    assert str(tmp_path) not in repr(tr.config)


def test_migrations_are_numbered_and_resume(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    store = TelemetryStore(url)
    assert store.migrate() == 0 and TelemetryStore(url).migrate() == SCHEMA_VERSION
    con = sqlite3.connect(tmp_path / "m.db")
    assert con.execute("select version from taskrouter_schema").fetchone() == (SCHEMA_VERSION,)
    assert "ix_taskrouter_events_ts" in {r[1] for r in con.execute("pragma index_list('taskrouter_events')")}
    con.execute("drop index ix_taskrouter_events_ts")
    con.execute("alter table taskrouter_events drop column held_back")
    con.execute("update taskrouter_schema set version = 1")
    con.commit()
    assert TelemetryStore(url).migrate() == 1  # resumes at migration 2
    assert "ix_taskrouter_events_ts" in {r[1] for r in con.execute("pragma index_list('taskrouter_events')")}
    assert "held_back" in {r[1] for r in con.execute("pragma table_info('taskrouter_events')")}  # migration 3


def test_held_back_queries_are_recorded_and_reported(provider, shipped_cascade, tmp_path):
    """With `max_escalation`, a query the budget keeps from stage 3 is stored as held back, and the report says so."""
    from classifier.serving.cascade import Cascade

    url = f"sqlite:///{tmp_path / 'h.db'}"
    cfg = priced_config(
        provider,
        url,
        llm_classifier={"alias": "capable", "timeout_s": 1.0},
        classifier={"max_escalation": 0.1, "escalation_window": 100},
    )
    provider.set(**{"capable-a": {"mode": "ok", "reply": "default"}})
    tr = TaskRouter(cfg, cascade=Cascade(shipped_cascade.classifier, None, 1.0))  # every query below threshold
    for n in range(12):
        tr.complete(f"Tell me something about the moon landing, part {n}")
    tr.close()
    events = TelemetryStore(url).events()
    assert [(e["escalated"], e["held_back"]) for e in events] == [(True, False)] * 10 + [(False, True)] * 2
    m = compute_metrics(events)
    assert m["held_back_rate"] == pytest.approx(2 / 12)
    assert "held back by the escalation budget" in readings(m)["held_back_rate"]
    out = tmp_path / "review.jsonl"
    assert export_for_review(events, out, n=50, low_confidence=0.0) == 12  # the held back are reviewed too


def test_redaction():
    text = "key sk-proj-AbCdEf1234567890xyz, aws AKIAABCDEFGHIJKLMNOP, mail jane.doe+x@corp.example.com, ok"
    assert redact(text) == "key [secret], aws [secret], mail [email], ok"


# -- several workers writing one database -----------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request, tmp_path):
    """A database that two workers share."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'shared.db'}"
    return request.getfixturevalue("postgres_url")


def two_rows(n: int) -> list[tuple[dict, dict]]:
    """(failed attempt, complete success) rows of `n` requests, as two workers could both write them."""
    from classifier.results import Decision
    from routing.events import Answer, Attempt, RoutedRequest
    from routing.telemetry import event_row

    decision = Decision(label="math", stage="heuristic", confidence=1.0, escalated=False)
    pairs = []
    for _ in range(n):
        request = RoutedRequest(decision, "math", router_id="r", query="Solve 2x = 10.")
        failed = (Attempt("math", "math-a-id", 0.25, error="InternalServerError"),)
        success = request.end(Answer(Attempt("capable", "capable-a-id", 0.5), 12, 4, 3e-5), failed=failed)
        pairs.append(
            (event_row(request.fail("InternalServerError"), store_text=True), event_row(success, store_text=True))
        )
    return pairs


def stored(url: str, rows: list[dict]) -> dict[str, dict]:
    """The stored rows of these rows' requests (the PostgreSQL database is shared by this module's tests)."""
    ids = {r["request_id"] for r in rows}
    found = [r for r in TelemetryStore(url).events() if r["request_id"] in ids]
    assert len(found) == len({r["request_id"] for r in found})
    return {r["request_id"]: r for r in found}


def test_long_labels_and_names_are_kept_cut_to_their_columns(shared_url):
    """Before: PostgreSQL refused a row whose label, pool or deployment was longer than its column: the row was
    lost (counted as failed)."""
    ((_, row),) = two_rows(1)
    long = {**row, "label": "l" * 100, "served_pool": "p" * 200, "deployment": "d" * 300, "error_class": "E" * 200}
    TelemetryStore(shared_url).record(long)
    (got,) = stored(shared_url, [long]).values()
    assert (got["label"], got["served_pool"], got["deployment"]) == ("l" * 64, "p" * 128, "d" * 256)
    assert got["error_class"] == "E" * 128 and got["status"] == row["status"]


def test_a_request_written_twice_is_one_unchanged_row(shared_url):
    """Two workers (two stores) writing the same complete row: one row, equal to it (latencies are not summed)."""
    ((_, row),) = two_rows(1)
    for store in (TelemetryStore(shared_url), TelemetryStore(shared_url)):
        store.record(row)
    assert stored(shared_url, [row]) == {row["request_id"]: row}


def test_two_workers_writing_one_request_at_once_leave_one_complete_row(shared_url):
    """Worker A writes a request's failed attempt while worker B writes its success, at the same moment, 25 times:
    each request ends as exactly one row, the complete success, whoever came first."""
    import threading

    pairs = two_rows(25)
    stores = TelemetryStore(shared_url), TelemetryStore(shared_url)
    for store in stores:
        store.migrate()
    start, errors = threading.Barrier(2), []

    def worker(store: TelemetryStore, which: int) -> None:
        for pair in pairs:
            start.wait()
            try:
                store.record(pair[which])
            except Exception as exc:  # e.g. a unique-key violation: a lost row
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(store, i)) for i, store in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    successes = [success for _, success in pairs]
    assert stored(shared_url, successes) == {success["request_id"]: success for success in successes}


def _at_once(n: int, work) -> list[Exception]:
    """Run `work(i)` for i in range(n) on n threads released together; the exceptions they raised."""
    import threading

    start, errors = threading.Barrier(n), []

    def run(i: int) -> None:
        start.wait()
        try:
            work(i)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_workers_opening_a_new_sqlite_file_at_once_all_start(tmp_path):
    """A first deploy: six workers (each its own engine) build their routers on a new file at the same moment,
    five times over. Before: `CREATE TABLE` raced, and all but one failed with "telemetry database unusable"."""
    for trial in range(5):
        db = tmp_path / f"new-{trial}.db"
        stores = [TelemetryStore(f"sqlite:///{db}") for _ in range(6)]
        errors = _at_once(len(stores), lambda i, stores=stores: stores[i].open())
        for store in stores:
            store.engine.dispose()
        assert errors == []
        con = sqlite3.connect(db)
        assert con.execute("select version from taskrouter_schema").fetchall() == [(SCHEMA_VERSION,)]
        assert con.execute("select oldest_writer from taskrouter_schema_compat").fetchall() == [(OLDEST_WRITER,)]
        assert "held_back" in {r[1] for r in con.execute("pragma table_info('taskrouter_events')")}
        assert "ix_taskrouter_events_ts" in {r[1] for r in con.execute("pragma index_list('taskrouter_events')")}
        con.close()


def test_workers_writing_their_first_events_to_a_new_postgres_database_keep_every_row(postgres_url):
    """Eight workers (each its own engine) write their first event to a new PostgreSQL database at the same
    moment, three times over: every row lands, once. Before: each migrated on its first event, they raced to
    `CREATE TABLE` (a duplicate table or type), and the losers' events were counted failed and lost."""
    import sqlalchemy as sa

    admin = sa.create_engine(
        postgres_url.replace("postgresql://", "postgresql+psycopg://"), isolation_level="AUTOCOMMIT"
    )
    try:
        for trial in range(3):
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE first_use_{trial}")
            url = f"{postgres_url.rsplit('/', 1)[0]}/first_use_{trial}"
            rows = [success for _, success in two_rows(8)]
            stores = [TelemetryStore(url) for _ in rows]
            errors = _at_once(len(stores), lambda i, stores=stores, rows=rows: stores[i].record(rows[i]))
            for store in stores:
                store.engine.dispose()
            assert errors == []
            reader = TelemetryStore(url)
            assert stored(url, rows) == {row["request_id"]: row for row in rows}
            assert len(reader.events()) == len(rows)
            with reader.engine.connect() as conn:
                assert conn.execute(sa.text("select version from taskrouter_schema")).fetchall() == [(SCHEMA_VERSION,)]
            reader.engine.dispose()
    finally:
        admin.dispose()


def test_a_stream_that_fails_mid_way_raises_our_error_and_is_recorded(provider, shipped_cascade, tmp_path):
    """A provider's error while the chunks come is this library's typed error (as for a call that fails at once),
    naming the pool, and the request's row says it failed."""
    from routing.errors import CompletionError

    url = f"sqlite:///{tmp_path / 'e.db'}"
    tr = TaskRouter(priced_config(provider, url), cascade=shipped_cascade)
    provider.set(**{"math-a": {"mode": "cut"}})
    stream = tr.complete("What is the derivative of x^3 + 2x?", stream=True)
    with pytest.raises(CompletionError) as info:
        for _ in stream:
            pass
    tr.close()
    assert info.value.pool == "math" and "mid-stream" not in str(info.value)  # the provider's words stay out
    (row,) = TelemetryStore(url).events()
    assert row["status"] == "failure" and row["requested_pool"] == "math"
