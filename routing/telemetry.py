"""Telemetry: one event per routed request, written by a LiteLLM callback to SQLite or PostgreSQL.

One code path (SQLAlchemy Core) for both; the schema is versioned with numbered migrations. Writes happen on
a background thread: a slow, full or broken store never blocks or fails a completion; faults are logged and
counted. Prompt text is stored only when asked for, with API-key-like strings and e-mail addresses redacted.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from classifier.errors import ConfigError

from ._litellm import CustomLogger

__all__ = ["SCHEMA_VERSION", "TelemetryCallback", "TelemetryStore", "events_table", "redact"]

log = logging.getLogger("taskrouter.telemetry")

metadata = sa.MetaData()
events_table = sa.Table(
    "taskrouter_events",
    metadata,
    sa.Column("request_id", sa.String(80), primary_key=True),
    sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("label", sa.String(64)),
    sa.Column("stage", sa.String(16)),
    sa.Column("confidence", sa.Float),
    sa.Column("escalated", sa.Boolean),
    sa.Column("requested_pool", sa.String(128)),
    sa.Column("served_pool", sa.String(128)),
    sa.Column("deployment", sa.String(256)),
    sa.Column("fallback", sa.Boolean),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cost_usd", sa.Float),
    sa.Column("latency_s", sa.Float),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error_class", sa.String(128)),
    sa.Column("query_text", sa.Text),
)
version_table = sa.Table("taskrouter_schema", metadata, sa.Column("version", sa.Integer, nullable=False))
ts_index = sa.Index("ix_taskrouter_events_ts", events_table.c.ts)


# Migrations emit explicit DDL, so each one does exactly its own step whatever the table object holds.
def _v1(conn: sa.Connection) -> None:
    conn.execute(sa.schema.CreateTable(events_table))


def _v2(conn: sa.Connection) -> None:
    conn.execute(sa.schema.CreateIndex(ts_index))


MIGRATIONS: list[Callable[[sa.Connection], None]] = [_v1, _v2]
SCHEMA_VERSION = len(MIGRATIONS)

_SECRET = re.compile(
    r"\b(?:sk|pk|rk|api|key|token|ghp|gho|xox[abp])[-_][A-Za-z0-9_\-]{12,}\b|\bAKIA[0-9A-Z]{16}\b"
    r"|\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{5,}\b",
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")


def redact(text: str) -> str:
    """Replace API-key-like strings and e-mail addresses."""
    return _EMAIL.sub("[email]", _SECRET.sub("[secret]", text))


class TelemetryStore:
    """Events in a database given by URL (`sqlite:///events.db`, `postgresql://...`)."""

    def __init__(self, url: str, *, create: bool = True) -> None:
        """`create=False` (readers): a SQLite file that does not exist is an error, not a new empty database."""
        if "://" not in url:
            raise ConfigError("must be a database URL such as sqlite:///events.db", path="taskrouter.telemetry.url")
        if not create and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            file = Path(url[len("sqlite:///") :].split("?", 1)[0])
            if not file.is_file():
                raise ConfigError(f"no telemetry database at {str(file)!r}", path="db")
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        except (sa.exc.ArgumentError, ImportError) as exc:
            raise ConfigError(
                f"unusable database URL ({type(exc).__name__})", path="taskrouter.telemetry.url"
            ) from None
        self._migrated = False

    def migrate(self) -> int:
        """Bring the schema to SCHEMA_VERSION; returns the version found before."""
        with self.engine.begin() as conn:
            version_table.create(conn, checkfirst=True)
            current = conn.execute(sa.select(version_table.c.version)).scalar()
            if current is None:
                conn.execute(version_table.insert().values(version=0))
                current = 0
            if current > SCHEMA_VERSION:
                raise ConfigError(f"telemetry schema {current} is newer than this taskrouter ({SCHEMA_VERSION})")
            for step in MIGRATIONS[current:]:
                step(conn)
            conn.execute(version_table.update().values(version=SCHEMA_VERSION))
        self._migrated = True
        return current

    def record(self, event: dict[str, Any]) -> None:
        """Insert or merge one request's event: a success replaces an earlier failed attempt, never the reverse."""
        if not self._migrated:
            self.migrate()
        t = events_table
        with self.engine.begin() as conn:
            old = conn.execute(sa.select(t).where(t.c.request_id == event["request_id"])).mappings().first()
            if old is None:
                conn.execute(t.insert().values(**event))
                return
            if old["status"] == "success" and event["status"] != "success":
                return
            merged = {
                **event,
                "ts": min(_aware(old["ts"]), event["ts"]) if old["ts"] else event["ts"],
                "error_class": event.get("error_class") or old["error_class"],
                # attempts run one after another: the request took as long as all of them
                "latency_s": (old["latency_s"] or 0.0) + (event["latency_s"] or 0.0),
            }
            conn.execute(t.update().where(t.c.request_id == event["request_id"]).values(**merged))

    def events(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """All events (oldest first), optionally since a time."""
        if not self._migrated:
            self.migrate()
        q = sa.select(events_table).order_by(events_table.c.ts)
        if since is not None:
            q = q.where(events_table.c.ts >= since)
        with self.engine.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        for r in rows:
            r["ts"] = _aware(r["ts"])
        return rows


def _aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


class TelemetryCallback(CustomLogger):
    """LiteLLM callback recording taskrouter's routed requests (sync and async paths) without blocking them."""

    def __init__(
        self, store: TelemetryStore, *, store_text: bool = False, max_queue: int = 10_000, router_id: str | None = None
    ) -> None:
        super().__init__()
        self.store = store
        self.router_id = router_id  # record only this TaskRouter's requests (LiteLLM's callbacks are global)
        self.store_text = store_text
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=max_queue)
        # request_id -> status LiteLLM will log for it; cleared when its callback fires (it runs after the call)
        self._expected: dict[str, str] = {}
        self._early: OrderedDict[tuple[str, str], None] = OrderedDict()  # logged before `expect` was called
        self._seen = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._drain, daemon=True, name="taskrouter-telemetry")
        self._thread.start()
        _open.add(self)

    # LiteLLM calls these by keyword: the parameter names matter.
    def log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._enqueue(kwargs, start_time, end_time, "success")

    async def async_log_success_event(self, kwargs, response_obj, start_time, end_time):
        self._enqueue(kwargs, start_time, end_time, "success")

    def log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._enqueue(kwargs, start_time, end_time, "failure")

    async def async_log_failure_event(self, kwargs, response_obj, start_time, end_time):
        self._enqueue(kwargs, start_time, end_time, "failure")

    def expect(self, request_id: str, status: str) -> None:
        """Note that LiteLLM will log `request_id` with `status`; `flush` waits for that event too."""
        with self._seen:
            if (request_id, status) in self._early:  # LiteLLM logged it already
                del self._early[request_id, status]
            else:
                self._expected[request_id] = status

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until expected events arrived and queued events are written (or `timeout` passes).

        True when nothing was left; otherwise the count left is logged.
        """
        deadline = time.monotonic() + timeout
        with self._seen:
            self._seen.wait_for(lambda: not self._expected, timeout)
            missing = len(self._expected)
            self._expected.clear()  # what did not come by now is not waited for again
        done = threading.Event()
        self._flushed = done  # set before the marker is queued, so the writer always finds it
        if self._thread.is_alive():
            self._queue.put(None)
        written = done.wait(max(0.0, deadline - time.monotonic()))
        if missing or not written:
            log.warning(
                "telemetry: %d expected event(s) never arrived and %d queued event(s) were not written within %.1f s",
                missing,
                self._queue.qsize(),
                timeout,
            )
        return not missing and written

    def close(self, timeout: float = 10.0) -> bool:
        """Flush (bounded by `timeout`), stop the writer thread and dispose of the database engine. Idempotent."""
        if self._closed:
            return True
        ok = self.flush(timeout)
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=max(1.0, timeout))
        self.store.engine.dispose()
        _open.discard(self)
        return ok

    def _enqueue(self, kwargs: dict, start_time: Any, end_time: Any, status: str) -> None:
        event, request_id = None, None
        try:
            event = self._event(kwargs, start_time, end_time, status)
            if event is not None:
                request_id = event.pop("taskrouter_request_id")  # matched here; the writer never sees it
                self._queue.put_nowait(event)
        except queue.Full:
            self.dropped += 1
            log.warning("telemetry: queue full, event dropped")
        except Exception as exc:  # a malformed callback payload must not reach the caller
            self.failed += 1
            log.warning("telemetry: could not build event (%s)", type(exc).__name__)
        if event is not None:
            self._arrived(request_id, status)

    def _event(self, kwargs: dict, start_time: Any, end_time: Any, status: str) -> dict | None:
        params = kwargs.get("litellm_params") or {}
        md = params.get("metadata") or {}
        tr = md.get("taskrouter")
        if not isinstance(tr, dict):
            return None  # not a routed request (e.g. the LLM classifier's own call)
        if self.router_id is not None and tr.get("router_id") != self.router_id:
            return None
        slo = kwargs.get("standard_logging_object") or {}
        served = slo.get("model_group") or md.get("model_group")
        requested = tr.get("requested_pool")
        err = (slo.get("error_information") or {}).get("error_class") if status == "failure" else None
        if status == "failure" and err is None and kwargs.get("exception") is not None:
            err = type(kwargs["exception"]).__name__
        latency = None
        if isinstance(start_time, datetime) and isinstance(end_time, datetime):
            latency = (end_time - start_time).total_seconds()
        text = tr.get("query")
        return {
            "taskrouter_request_id": tr.get("request_id"),
            "request_id": str(slo.get("trace_id") or kwargs.get("litellm_trace_id") or kwargs.get("litellm_call_id")),
            "ts": datetime.now(UTC),
            "label": tr.get("label"),
            "stage": tr.get("stage"),
            "confidence": tr.get("confidence"),
            "escalated": bool(tr.get("escalated")),
            "requested_pool": requested,
            "served_pool": served if status == "success" else None,
            "deployment": slo.get("model_id") or md.get("model_info", {}).get("id"),
            "fallback": bool(status == "success" and served and requested and served != requested),
            "input_tokens": int(slo.get("prompt_tokens") or 0),
            "output_tokens": int(slo.get("completion_tokens") or 0),
            "cost_usd": float(slo.get("response_cost") or kwargs.get("response_cost") or 0.0),
            "latency_s": latency,
            "status": status,
            "error_class": err,
            "query_text": redact(text) if (self.store_text and isinstance(text, str)) else None,
        }

    def _arrived(self, request_id: object, status: str) -> None:
        """Match an event with its expectation; an event logged before `expect` is remembered (boundedly)."""
        if not isinstance(request_id, str):
            return
        with self._seen:
            if self._expected.get(request_id) == status:
                del self._expected[request_id]
                self._seen.notify_all()
            else:
                self._early[(request_id, status)] = None
                while len(self._early) > _EARLY_MAX:
                    self._early.popitem(last=False)

    def _drain(self) -> None:
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            if event is None:
                flushed = getattr(self, "_flushed", None)
                if flushed is not None:
                    flushed.set()
                continue
            try:
                self.store.record(event)
                self.written += 1
            except Exception as exc:  # store down, read-only, full: count it, log it, carry on
                self.failed += 1
                log.warning("telemetry: write failed (%s); the request itself was not affected", type(exc).__name__)


_EARLY_MAX = 10_000
"""Events remembered while their `expect` may still come (streams and failures never expect one)."""
_STOP: dict = {}
"""The writer thread's stop marker (compared by identity)."""
_open: weakref.WeakSet[TelemetryCallback] = weakref.WeakSet()
EXIT_FLUSH_S = 5.0
"""How long, at most, a process waits at exit for its queued telemetry to be written."""


@atexit.register
def _flush_at_exit() -> None:
    """Write what is still queued when the process exits normally (bounded: EXIT_FLUSH_S in all)."""
    deadline = time.monotonic() + EXIT_FLUSH_S
    for callback in list(_open):
        callback.close(max(0.1, deadline - time.monotonic()))
