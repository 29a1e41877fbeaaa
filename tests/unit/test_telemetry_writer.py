"""Request events become telemetry rows: one per request, written by the time `close` returns, no waiting."""

from datetime import UTC, datetime

import pytest

from classifier.results import Decision
from routing.events import Answer, Attempt, RequestEvent, RoutedRequest
from routing.telemetry import TelemetryStore, TelemetryWriter, event_row

MATH = Decision(label="math", stage="heuristic", confidence=1.0, escalated=False)


def request(query: str | None = None) -> RoutedRequest:
    return RoutedRequest(MATH, "math", router_id="r", query=query)


def fell_back(query: str | None = None) -> RequestEvent:
    """math failed once with HTTP 500, then capable answered."""
    failed = (Attempt("math", "math-a-id", 0.01, error="InternalServerError"),)
    return request(query).end(Answer(Attempt("capable", "capable-a-id", 0.02), 7, 3, 2.5e-5), failed=failed)


def test_a_fallback_keeps_the_failed_attempts_error_class():
    row = event_row(fell_back())
    assert (row["requested_pool"], row["served_pool"], row["deployment"], row["fallback"]) == (
        "math",
        "capable",
        "capable-a-id",
        True,
    )
    assert (row["status"], row["error_class"], row["input_tokens"], row["output_tokens"]) == (
        "success",
        "InternalServerError",
        7,
        3,
    )
    assert row["cost_usd"] == 2.5e-5 and row["ts"].tzinfo is UTC


def test_a_failed_request_has_no_served_pool_and_names_the_last_deployment_tried():
    failed = (Attempt("math", "math-a-id", 0.01, "InternalServerError"), Attempt("capable", "capable-a-id", 0.01, "X"))
    row = event_row(request().fail(TimeoutError("slow"), failed=failed))
    assert (row["status"], row["served_pool"], row["deployment"], row["fallback"], row["error_class"]) == (
        "failure",
        None,
        "capable-a-id",
        False,
        "TimeoutError",
    )


@pytest.mark.parametrize("store_text", [False, True], ids=["text-off", "text-on"])
def test_text_is_stored_only_when_asked_and_redacted(store_text):
    row = event_row(fell_back("my key is sk-live-abcdefghijkl12345"), store_text=store_text)
    assert row["query_text"] == ("my key is [secret]" if store_text else None)


def test_close_writes_every_event_handed_over(tmp_path):
    store = TelemetryStore(f"sqlite:///{tmp_path / 'e.db'}")
    writer = TelemetryWriter(store)
    events = [fell_back() for _ in range(50)]
    for event in events:
        writer.handle(event)
    assert writer.close()  # no sleep: close waits for the queue
    rows = TelemetryStore(f"sqlite:///{tmp_path / 'e.db'}").events()
    assert sorted(r["request_id"] for r in rows) == sorted(e.request_id for e in events)
    assert (writer.written, writer.failed, writer.dropped) == (50, 0, 0)
    writer.handle(fell_back())  # after close: counted, not written, never raised
    assert writer.dropped == 1


def test_flush_returns_once_written(tmp_path):
    writer = TelemetryWriter(TelemetryStore(f"sqlite:///{tmp_path / 'e.db'}"))
    event = fell_back()
    writer.handle(event)
    assert writer.flush(timeout=30)
    assert [r["request_id"] for r in writer.store.events()] == [event.request_id]
    writer.close()


def test_a_first_write_whose_migration_lost_a_race_is_kept(tmp_path, monkeypatch):
    """A worker that migrates without the lock (an older taskrouter) can still race this one to a step, and
    PostgreSQL then refuses ours (a duplicate table or type). The write migrates once more, finds the step done, and
    keeps its row; before, that first event was counted failed and lost."""
    import sqlalchemy as sa

    from routing import telemetry

    first = telemetry.MIGRATIONS[0]
    raced = []

    def racing_first_step(conn: sa.Connection) -> None:
        if not raced:
            raced.append(True)
            raise sa.exc.IntegrityError("CREATE TABLE taskrouter_events", {}, Exception("duplicate key value"))
        first(conn)

    monkeypatch.setattr(telemetry, "MIGRATIONS", [racing_first_step, *telemetry.MIGRATIONS[1:]])
    url = f"sqlite:///{tmp_path / 'e.db'}"
    writer = TelemetryWriter(TelemetryStore(url))
    writer.handle(fell_back())
    assert writer.close()
    assert raced and (writer.written, writer.failed) == (1, 0)
    assert len(TelemetryStore(url).events()) == 1


def test_the_event_time_is_when_the_request_started():
    before = datetime.now(UTC)
    event = fell_back()
    assert before <= event_row(event)["ts"] <= datetime.now(UTC)


class HangingStore:
    """A database that stops answering: every write blocks until the test lets it go."""

    def __init__(self):
        import threading

        self.entered = threading.Event()  # a write began
        self.release = threading.Event()
        self.left = threading.Event()  # a write returned
        self.engine = type("Engine", (), {"dispose": lambda self: None})()

    def record(self, row):
        self.entered.set()
        self.release.wait(30)
        self.left.set()


def test_close_returns_in_time_when_the_database_hangs():
    store = HangingStore()
    writer = TelemetryWriter(store, max_queue=2)  # type: ignore[arg-type]
    try:
        writer.handle(fell_back())
        assert store.entered.wait(30)  # the first event blocks in the write
        for _ in range(4):
            writer.handle(fell_back())  # two wait in the queue, two find it full
        assert writer.close(timeout=0.5) is False
        assert not store.left.is_set() and not store.release.is_set()  # returned while the write still hangs
        assert writer.written == 0 and writer.dropped == 4  # 2 on a full queue, 2 given up at close
        writer.handle(fell_back())
        assert writer.dropped == 5  # handed over after close: counted, never queued
    finally:
        store.release.set()


def test_redaction_covers_the_common_key_formats():
    from routing.telemetry import redact

    keys = [
        "AIza" + "SyA1234567890abcdefghijklmnopqrstuv",  # Google, 39 characters
        "github_pat_11ABCDEFG0" + "123456789_abcdefXYZabcdefghijklmnopqrstuvwxyz0123",
        "hf_" + "abcdefghijklmnopqrstuvwxyzABCDEFGH",
        "gsk_" + "abcdefghijklmnop1234abcdefghijklmnop1234abcdefgh",
        "glpat-" + "abcdefghij0123456789",
    ]
    for key in keys:
        assert redact(f"my key is {key} ok") == "my key is [secret] ok", key
    assert redact("Authorization: Bearer abcdefghijklmnop1234567890") == "Authorization: Bearer [secret]"
    assert (
        redact("postgresql://admin:hunter2pass@db.example.com:5432/x") == "postgresql://[secret]@db.example.com:5432/x"
    )
    for plain in ["how do I use hf_hub_download", "the Bearer of bad news", "see http://example.com/a:b@c"]:
        assert redact(plain) == plain
