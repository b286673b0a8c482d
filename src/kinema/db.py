"""Database engines and schema migrations, for SQLite (embedded) and PostgreSQL (scale-out).

One engine is shared by the API threads and the embedded worker threads, so the SQLite
set-up here is about concurrency: WAL lets readers run beside the one writer, a busy
timeout makes writers queue instead of failing, and write transactions take the write
lock up front (``begin_write``) so a transaction never has to upgrade a stale read
snapshot, which SQLite refuses at once instead of waiting.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# Connection execution option marking a transaction that will write (see ``begin_write``).
_WRITE_OPTION = "kinema_write"

# Key of the PostgreSQL advisory lock that serialises concurrent first starts.
_MIGRATION_LOCK_KEY = 0x6B696E656D61  # "kinema"

_SQLITE_BUSY_TIMEOUT_MS = 10_000
_SQLITE_PRAGMAS = (
    f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}",  # first: the others may wait on locks
    "PRAGMA synchronous = NORMAL",
    "PRAGMA foreign_keys = ON",
)
_WAL_SWITCH_TRIES = 50
_PG_IDLE_PING_S = 5.0  # a pooled PostgreSQL connection idle this long is pinged first


def make_engine(url: str, *, idle_ping_s: float = _PG_IDLE_PING_S) -> Engine:
    """Build the engine for ``url`` (``sqlite:///path`` or ``postgresql://...``);
    PostgreSQL connections idle for ``idle_ping_s`` are pinged before reuse."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend in ("postgresql", "postgres"):
        if parsed.drivername in ("postgresql", "postgres"):
            parsed = parsed.set(drivername="postgresql+psycopg")
        return _postgres_engine(parsed, idle_ping_s)
    shown = parsed.render_as_string()  # password masked
    raise ValueError(f"unsupported database URL {shown!r}: use sqlite or postgresql")


def _postgres_engine(url: URL, idle_ping_s: float) -> Engine:
    """A PostgreSQL engine that checks connections which sat idle before handing them out.

    ``pool_pre_ping`` would add a round trip to every checkout, a third of a queue
    worker's database time on short jobs. Connections that go bad (a server restart, a
    firewall dropping idle sessions) are those left idle, so only those are pinged; a
    failed ping discards the connection and the pool hands out a fresh one.
    """
    # A server that does not answer (a host gone, packets dropped) fails a connect in
    # this time instead of the operating system's minutes, so a request gets its 503.
    connect_args = {} if "connect_timeout" in url.query else {"connect_timeout": 5}
    engine = create_engine(url, connect_args=connect_args)

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < idle_ping_s:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise DisconnectionError("idle connection is gone") from error

    return engine


def _sqlite_engine(url: URL) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:"):
        # Each pooled connection would see its own empty database.
        raise ValueError("an in-memory SQLite database cannot be shared; use sqlite:///path")
    if not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": _SQLITE_BUSY_TIMEOUT_MS / 1000},
        # Keep as many connections as the API thread pool (40) has threads: a connection
        # opened past the pool size is closed on return, and re-opening runs the PRAGMAs,
        # which made polls under load an order of magnitude slower.
        pool_size=48,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (which would BEGIN late
        # and never for SELECT), so SQLAlchemy's ``begin`` below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _SQLITE_PRAGMAS:
                cursor.execute(pragma)
            _use_wal(cursor)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # Reads run in autocommit: each SELECT is its own consistent snapshot, and a
        # poll costs one statement instead of BEGIN + SELECT + ROLLBACK.
        if connection.get_execution_options().get(_WRITE_OPTION, False):
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _use_wal(cursor: Any) -> None:
    """Switch the database file to WAL (a setting kept in the file) unless it already is.

    The switch needs an exclusive lock and SQLite does not wait for it through the busy
    handler, so processes starting together on a new file retry it for a moment.
    """
    for attempt in range(_WAL_SWITCH_TRIES):
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == _WAL_SWITCH_TRIES - 1:
                raise
            time.sleep(0.02 * (attempt + 1))


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A transaction that will write: commits on success, rolls back on error.

    On SQLite it starts with ``BEGIN IMMEDIATE``, taking the write lock (waiting up to the
    busy timeout) before the first read, so multi-statement writes cannot hit
    ``database is locked`` half-way. On PostgreSQL it is a plain transaction.
    """
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for kinema's migrations, built in code (no alembic.ini needed).

    With ``connection``, the migration environment runs on it (inside its transaction)
    instead of opening its own.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(
    engine: Engine,
    revision: str = "head",
    *,
    extra_step: Callable[[Connection], object] | None = None,
) -> None:
    """Bring the schema to ``revision``; a no-op when it is there already.

    Safe to call on every start, also from several processes at once: PostgreSQL takes
    a transaction-scoped advisory lock, SQLite the database write lock, so the second
    starter waits, then finds the schema current. ``extra_step`` runs after the
    migrations under the same lock and transaction: scale-out dispatch passes the step
    that installs procrastinate's own schema (PostgreSQL only).
    """
    with begin_write(engine) as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
            )
        command.upgrade(alembic_config(connection), revision)
        if extra_step is not None:
            extra_step(connection)
