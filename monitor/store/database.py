"""Connecting to the store and bringing its schema up to date (Alembic)."""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from monitor.errors import StoreError

log = logging.getLogger(__name__)

Handle: TypeAlias = Engine
"""The store's connection handle, as the rest of the service holds it (pass it back to
the store's functions; only ``monitor/store`` imports SQLAlchemy)."""

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK = 0x636F6E6561  # PostgreSQL advisory lock id held while migrating


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def connect(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 5) -> Engine:
    """An Engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys."""
    url = normalise_url(url)
    parsed = make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # No checkpoint inside a commit (a latency spike on whichever request hits
            # it): checkpoint() runs them in the background instead.
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

    return engine


_WRITERS: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()


@contextlib.contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """``engine.begin()``, for the store's writes. On SQLite the process's writers take
    turns on a lock of their own: SQLite admits one writer, and a writer that finds the
    database locked sleeps in its busy handler (1, 2, 5, 10... ms) instead of starting
    when the other commits. During a storm the webhook's group commit and the engine's
    decisions would otherwise wait on each other's sleeps. Re-entrant for the thread
    that holds it; other processes (the CLI) still meet the busy timeout."""
    if engine.dialect.name != "sqlite":
        with engine.begin() as conn:
            yield conn
        return
    with _WRITERS_LOCK:
        lock = _WRITERS.get(engine)
        if lock is None:
            lock = _WRITERS[engine] = threading.RLock()
    with lock, engine.begin() as conn:
        yield conn


def migrate(engine: Engine) -> None:
    """Apply every Alembic migration; several replicas on PostgreSQL take turns."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the store at {redact(engine)}: {exc}") from exc


def checkpoint(engine: Engine) -> None:
    """Copy the SQLite WAL back into the database (PASSIVE: never blocks writers)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


def redact(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def ping(engine: Engine) -> None:
    """Does the store answer? StoreError naming the kind of failure if not (the kind
    only: the driver's message may quote the server's address)."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise StoreError(type(exc).__name__) from exc
