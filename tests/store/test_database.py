"""The store's connection handle as the rest of the service uses it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from monitor.errors import StoreError
from monitor.store import database


def test_ping_of_a_store_that_does_not_answer_is_a_store_error_naming_only_the_kind() -> None:
    # Nothing listens on port 1: the driver's error must reach /readyz as a StoreError
    # (not SQLAlchemy's), and its message must not quote the URL's password.
    db = database.connect("postgresql://monitor:hunter2@127.0.0.1:1/monitor")
    try:
        with pytest.raises(StoreError) as caught:
            database.ping(db)
    finally:
        db.dispose()
    assert str(caught.value) == "OperationalError"
    assert "hunter2" not in str(caught.value)


def test_the_services_sqlite_writers_take_turns_without_meeting_a_locked_database(
    tmp_path: Path,
) -> None:
    # SQLite's busy handler sleeps 1, 2, 5, 10... ms between tries: during a storm the
    # webhook's writer and the engine's decisions waited on each other's sleeps. With the
    # busy timeout at 0, any writer that found the database locked would fail at once:
    # none does, because the process's writers take turns on a lock of their own.
    db = database.connect(f"sqlite:///{tmp_path / 'store.db'}")

    @event.listens_for(db, "connect")
    def no_busy_wait(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=0")

    with database.transaction(db) as conn:
        conn.execute(text("CREATE TABLE turns (writer INTEGER, n INTEGER)"))
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def write(writer: int) -> None:
        start.wait()
        try:
            for n in range(150):
                with database.transaction(db) as conn:
                    conn.execute(text("INSERT INTO turns VALUES (:w, :n)"), {"w": writer, "n": n})
                    with database.transaction(db) as nested:  # the same thread: re-entrant
                        nested.execute(text("SELECT count(*) FROM turns")).scalar()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        with db.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM turns")).scalar() == 600
    finally:
        db.dispose()
