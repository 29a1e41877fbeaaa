"""Telemetry: one row per routed request, written to SQLite or PostgreSQL.

`TaskRouter` hands each request's `RequestEvent` (routing/events.py) to its `TelemetryWriter` when the request
ends; the writer turns it into a row on a background thread, so a slow, full or broken store never blocks or
fails a completion (faults are logged and counted). A row is written with one upsert keyed by request id, so
writers in several processes sharing a database neither lose nor duplicate a row. One code path (SQLAlchemy
Core) for both databases; the schema is versioned with numbered migrations. Prompt text is stored only when
asked for, with API-key-like strings and e-mail addresses redacted.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from classifier.errors import ConfigError

from .events import RequestEvent

__all__ = ["SCHEMA_VERSION", "TelemetryStore", "TelemetryWriter", "event_row", "events_table", "redact"]

log = logging.getLogger("taskrouter.telemetry")

CONNECT_TIMEOUT_S = 10
"""Seconds a PostgreSQL connection may take before the attempt fails (and the event is counted failed)."""
MIGRATION_LOCK = 0x7461736B726F7574  # "taskrout"
"""The PostgreSQL advisory lock (`pg_advisory_xact_lock`) that workers migrating one database take in turn."""

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
    sa.Column("held_back", sa.Boolean),  # below the threshold, not escalated: the escalation budget was spent
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
_LATER_COLUMNS = ("held_back",)  # added by _v3


def _v1(conn: sa.Connection) -> None:
    columns = [
        sa.Column(c.name, c.type, primary_key=c.primary_key, nullable=c.nullable)
        for c in events_table.columns
        if c.name not in _LATER_COLUMNS
    ]
    conn.execute(sa.schema.CreateTable(sa.Table(events_table.name, sa.MetaData(), *columns)))


def _v2(conn: sa.Connection) -> None:
    conn.execute(sa.schema.CreateIndex(ts_index))


def _v3(conn: sa.Connection) -> None:  # safe to run twice: a worker may add it between our read and our step
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("ALTER TABLE taskrouter_events ADD COLUMN IF NOT EXISTS held_back BOOLEAN"))
    elif "held_back" not in {c["name"] for c in sa.inspect(conn).get_columns("taskrouter_events")}:
        conn.execute(sa.text("ALTER TABLE taskrouter_events ADD COLUMN held_back BOOLEAN"))


MIGRATIONS: list[Callable[[sa.Connection], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)
OLDEST_WRITER = 1
"""The oldest schema version whose taskrouter still writes and reads this schema correctly: each migration so far
only added an index or a nullable column. A migration that older code cannot live with raises it to its own
version. The database keeps it (`taskrouter_schema_compat`), so that during a rolling upgrade a worker of an older
taskrouter that meets a newer schema goes on writing when that schema allows it, instead of refusing."""
compat_table = sa.Table(
    "taskrouter_schema_compat", metadata, sa.Column("oldest_writer", sa.Integer, nullable=False)
)  # a table of its own, outside the versions: a worker of schema 3 or older never looks at it

_SECRET = re.compile(
    r"\b(?:sk|pk|rk|api|key|token|gh[pousr]|xox[abp])[-_][A-Za-z0-9_\-]{12,}\b"
    r"|\b(?:hf_[A-Za-z0-9]{30,}|gsk_[A-Za-z0-9]{40,}|glpat-[A-Za-z0-9_\-]{20,}|github_pat_[A-Za-z0-9_]{40,})\b"
    r"|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_\-]{35}\b"  # AWS access key id, Google API key
    r"|\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{5,}\b"  # a JWT
    r"|\b(?<=Bearer )[A-Za-z0-9._~+/\-]{16,}=*"  # an Authorization header's token
    r"|(?<=://)[^\s:/@]+:[^\s/@]+(?=@)",  # user:password in a URL
    re.IGNORECASE,
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")


def redact(text: str) -> str:
    """Replace API-key-like strings and e-mail addresses."""
    return _EMAIL.sub("[email]", _SECRET.sub("[secret]", text))


def event_row(event: RequestEvent, *, store_text: bool = False) -> dict[str, Any]:
    """The `taskrouter_events` row of a request: a failed attempt's error class and deployment are kept when a
    retry or fallback answered; the text only with `store_text`, redacted."""
    failed = event.failed_attempts
    last_failed = failed[-1] if failed else None
    d = event.decision
    return {
        "request_id": event.request_id,
        "ts": event.started,
        "label": d.label,
        "stage": d.stage,
        "confidence": d.confidence,
        "escalated": d.escalated,
        "held_back": d.held_back,
        "requested_pool": event.requested_pool,
        "served_pool": event.served_pool,
        "deployment": event.deployment or (last_failed.deployment if last_failed else None),
        "fallback": event.fallback,
        "input_tokens": event.prompt_tokens,
        "output_tokens": event.completion_tokens,
        "cost_usd": event.cost_usd,
        "latency_s": event.latency_s,
        "status": event.status,
        "error_class": event.error or (last_failed.error if last_failed else None),
        "query_text": redact(event.query) if store_text and event.query is not None else None,
    }


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
        connect: dict[str, Any] = {}
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        if url.startswith("postgresql"):
            connect["connect_timeout"] = CONNECT_TIMEOUT_S  # libpq's default waits for the OS (minutes)
        try:
            self.engine = sa.create_engine(url, pool_pre_ping=True, connect_args=connect)
        except (sa.exc.ArgumentError, ImportError, ValueError) as exc:  # ValueError: e.g. a password read as the port
            raise ConfigError(
                f"unusable database URL ({type(exc).__name__})", path="taskrouter.telemetry.url"
            ) from None
        if self.engine.dialect.name == "sqlite":
            _begin_sqlite_transactions(self.engine)
        self._migrated = False

    def migrate(self, *, reader: bool = False) -> int:
        """Bring the schema to SCHEMA_VERSION; returns the version found before. A newer schema is used as it is
        when its `oldest_writer` is this version or older, else refused. A schema already up to date is only read
        by a `reader` (read-only credentials do); a writer also marks which versions may write it.

        Workers starting together on a new database migrate one at a time: whatever is to be written is written
        under a lock on the database (SQLite's write lock, taken by `BEGIN IMMEDIATE`; a PostgreSQL advisory lock)
        held to the commit, and the schema is read again once it is held, so the steps a worker finds done when
        it gets the lock are not run again (before, all but one worker failed on `CREATE TABLE`)."""
        with self.engine.connect() as conn:  # most opens find nothing to do: they neither lock nor write
            current = _migrate(conn, reader=reader, write=False)
        if current is None:
            with self._locked() as conn:
                current = _migrate(conn, reader=reader, write=True)
        assert current is not None
        self._migrated = True
        return current

    @contextmanager
    def _locked(self) -> Iterator[sa.Connection]:
        """A transaction that holds the database's migration lock from its start to its end."""
        dialect = self.engine.dialect.name
        options = {_SQLITE_BEGIN: "BEGIN IMMEDIATE"} if dialect == "sqlite" else {}
        with self.engine.connect().execution_options(**options) as conn, conn.begin():
            if dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            yield conn

    def open(self) -> TelemetryStore:
        """For a router being built: a SQLite file that can never take an event (it cannot be opened or written, or
        its schema is newer and does not allow this version) is a ConfigError now. A server is not waited for here:
        the writer's thread meets it at the first event."""
        if self.engine.dialect.name != "sqlite":
            return self
        try:
            self.migrate()
            with self.engine.connect() as conn, conn.begin() as transaction:  # a file that reads but will not write
                conn.execute(version_table.update().values(version=SCHEMA_VERSION))
                transaction.rollback()
        except sa.exc.DBAPIError as exc:
            raise ConfigError(
                f"telemetry database unusable ({type(exc).__name__})", path="taskrouter.telemetry.url"
            ) from None
        return self

    def record(self, row: dict[str, Any]) -> None:
        """Write one request's row (see `event_row`) in one statement: inserted, or replacing the row of the same
        request id unless that one is a success and this one is not. Atomic in the database, so writers in
        several processes neither lose nor duplicate a row."""
        if not self._migrated:
            try:
                self.migrate()
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                # A worker that migrates without the lock (an older taskrouter) raced this one to a step
                # (PostgreSQL: a duplicate table or type); once more finds that step done, and the row is kept.
                self.migrate()
        row = _fit_columns(row)
        t = events_table
        dialect = {"postgresql": postgresql, "sqlite": sqlite}.get(self.engine.dialect.name)
        with self.engine.begin() as conn:
            if dialect is None:  # another database: no upsert statement in SQLAlchemy Core
                self._insert_or_update(conn, row)
                return
            insert = dialect.insert(t).values(**row)
            conn.execute(
                insert.on_conflict_do_update(
                    index_elements=[t.c.request_id],
                    set_={name: insert.excluded[name] for name in row if name != "request_id"},
                    where=sa.or_(t.c.status != "success", insert.excluded.status == "success"),
                )
            )

    @staticmethod
    def _insert_or_update(conn: sa.Connection, row: dict[str, Any]) -> None:
        t = events_table
        try:
            with conn.begin_nested():
                conn.execute(t.insert().values(**row))
        except sa.exc.IntegrityError:
            keep_success = sa.or_(t.c.status != "success", sa.literal(row["status"]) == "success")
            conn.execute(t.update().where(t.c.request_id == row["request_id"], keep_success).values(**row))

    def events(self, since: datetime | None = None) -> list[dict[str, Any]]:
        """All events (oldest first), optionally since a time. Reading writes nothing unless the schema is older
        than this taskrouter's; a database that cannot be read is a ConfigError naming the fault's type."""
        q = sa.select(events_table).order_by(events_table.c.ts)
        if since is not None:
            q = q.where(events_table.c.ts >= since)
        try:
            if not self._migrated:
                self.migrate(reader=True)
            with self.engine.connect() as conn:
                rows = [dict(r) for r in conn.execute(q).mappings()]
        except sa.exc.DBAPIError as exc:  # the type only: a driver's message may carry the URL and its password
            raise ConfigError(f"telemetry database unusable ({type(exc).__name__})", path="db") from None
        for r in rows:
            r["ts"] = _aware(r["ts"])
        return rows


def _migrate(conn: sa.Connection, *, reader: bool, write: bool) -> int | None:
    """`migrate`'s work in `conn`: the version found, after bringing the schema up to date. With `write=False`
    nothing is written: None when something is to be written (then it is done again, under the lock)."""
    current = None
    if sa.inspect(conn).has_table(version_table.name):
        current = conn.execute(sa.select(version_table.c.version)).scalar()
    if current is None:
        if not write:
            return None
        version_table.create(conn, checkfirst=True)
        conn.execute(version_table.insert().values(version=0))
        current = 0
    if current > SCHEMA_VERSION:
        oldest = _oldest_writer(conn)
        if oldest is None or oldest > SCHEMA_VERSION:
            raise ConfigError(
                f"telemetry schema {current} is newer than this taskrouter ({SCHEMA_VERSION}) and "
                f"needs writers of schema {oldest if oldest is not None else current} or later",
                path="taskrouter.telemetry.url",
            )
    elif current < SCHEMA_VERSION:
        if not write:
            return None
        for step in MIGRATIONS[current:]:
            step(conn)
        conn.execute(version_table.update().values(version=SCHEMA_VERSION))
        _mark_oldest_writer(conn)
    elif not reader and _oldest_writer(conn) is None:  # migrated by a taskrouter that kept no mark
        if not write:
            return None
        _mark_oldest_writer(conn)
    return current


_SQLITE_BEGIN = "taskrouter_sqlite_begin"
"""The execution option naming the statement that begins a SQLite connection's transaction (default `BEGIN`)."""


def _begin_sqlite_transactions(engine: sa.Engine) -> None:
    """Have SQLAlchemy, not the sqlite3 driver, begin SQLite transactions: the recipe of SQLAlchemy's SQLite
    dialect documentation ("Enabling Non-Legacy SQLite Transactional Modes"). The driver's legacy mode begins
    none before DDL or SELECT, so a migration's `CREATE TABLE` ran outside any transaction and two workers'
    migrations interleaved; `BEGIN IMMEDIATE` (see `_SQLITE_BEGIN`) takes the write lock before the first read."""

    @sa.event.listens_for(engine, "connect")
    def _no_driver_begin(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver emits no BEGIN (COMMIT and ROLLBACK still work)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(_SQLITE_BEGIN, "BEGIN"))


def _oldest_writer(conn: sa.Connection) -> int | None:
    """The schema's mark of the oldest version that may write it (None: no mark)."""
    if not sa.inspect(conn).has_table(compat_table.name):
        return None
    return conn.execute(sa.select(compat_table.c.oldest_writer)).scalar()


def _mark_oldest_writer(conn: sa.Connection) -> None:
    """Record OLDEST_WRITER for the schema this version brought the database to."""
    conn.execute(sa.schema.CreateTable(compat_table, if_not_exists=True))  # workers may race to it
    conn.execute(compat_table.delete())
    conn.execute(compat_table.insert().values(oldest_writer=OLDEST_WRITER))


def _fit_columns(row: dict[str, Any]) -> dict[str, Any]:
    """`row` with each string cut to its column's length: PostgreSQL refuses a longer one, and the whole row (a
    long user label, pool name or deployment id) would be lost."""
    out = dict(row)
    for column in events_table.columns:
        length, value = getattr(column.type, "length", None), out.get(column.name)
        if length and isinstance(value, str) and len(value) > length:
            out[column.name] = value[:length]
    return out


def _aware(ts: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


class TelemetryWriter:
    """Writes the events a router hands it (`handle`) on a background thread, never blocking or failing the request.

    `written`, `failed` (write or build errors) and `dropped` (queue full, or handed over after `close`) count
    what happened to them.
    """

    def __init__(self, store: TelemetryStore, *, store_text: bool = False, max_queue: int = 10_000) -> None:
        self.store = store
        self.store_text = store_text
        self.written = 0
        self.failed = 0
        self.dropped = 0
        self._queue: queue.Queue[RequestEvent | threading.Event | None] = queue.Queue(maxsize=max_queue)
        self._closed = False
        self._lock = threading.Lock()
        """Taken to check `_closed` and queue an event, and to set `_closed`: no event is queued after the stop."""
        self._thread = threading.Thread(target=self._drain, daemon=True, name="taskrouter-telemetry")
        self._thread.start()
        _open.add(self)

    def handle(self, event: RequestEvent) -> None:
        """Queue one request's event for writing (returns at once)."""
        with self._lock:
            if self._closed:
                self.dropped += 1
                return
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                self.dropped += 1
                log.warning("telemetry: queue full, event dropped")

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every event handed over so far is written (or `timeout` passes); True when none was left."""
        if not self._thread.is_alive():
            return self._queue.empty()
        deadline = time.monotonic() + timeout
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        if not done.wait(max(0.0, deadline - time.monotonic())):
            log.warning("telemetry: %d queued event(s) were not written within %.1f s", self._queue.qsize(), timeout)
            return False
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush, stop the writer thread and dispose of the database engine, in about `timeout` at most even when the
        database hangs (what is still queued then counts as dropped). Idempotent; True when everything was written."""
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._closed:
                return True
            self._closed = True
        ok = self.flush(timeout)
        try:
            self._queue.put(None, timeout=max(0.0, deadline - time.monotonic()))
        except queue.Full:  # the database hangs and the queue is full: give up what is queued
            self._discard_queued()
            self._queue.put_nowait(None)
        self._thread.join(timeout=max(0.1, deadline - time.monotonic()))
        if self._thread.is_alive():  # still stuck in a write: what waits behind it will not be written
            self._discard_queued()
            self._queue.put_nowait(None)  # so the thread ends once that write returns
            ok = False
        self.store.engine.dispose()
        _open.discard(self)
        return ok

    def _discard_queued(self) -> None:
        """Empty the queue; its events count as dropped."""
        lost = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and not isinstance(item, threading.Event):  # a flush waiter times out: not written
                lost += 1
        if lost:
            with self._lock:  # `handle` counts drops under it too
                self.dropped += lost
            log.warning("telemetry: %d queued event(s) dropped at close; the database did not answer in time", lost)

    def _drain(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                self.store.record(event_row(item, store_text=self.store_text))
                self.written += 1
            except Exception as exc:  # store down, read-only, full: count it, log it, carry on
                self.failed += 1
                log.warning("telemetry: write failed (%s); the request itself was not affected", type(exc).__name__)


_open: weakref.WeakSet[TelemetryWriter] = weakref.WeakSet()
EXIT_FLUSH_S = 5.0
"""How long, at most, a process waits at exit for its queued telemetry to be written."""


@atexit.register
def _flush_at_exit() -> None:
    """Write what is still queued when the process exits normally (bounded: EXIT_FLUSH_S in all)."""
    deadline = time.monotonic() + EXIT_FLUSH_S
    for writer in list(_open):
        writer.close(max(0.1, deadline - time.monotonic()))
