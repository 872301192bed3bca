"""Each replica beats in its own row: one replica stopping does not make the store look
unused while another runs, and rows of replicas long gone are removed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, event, select

from monitor.store import database, presence
from monitor.store.schema import control

NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
A = {"host": "conea-monitor-0", "pid": 1, "public_url": "http://a"}
B = {"host": "conea-monitor-1", "pid": 1, "public_url": "http://b"}


def test_one_replica_stopping_leaves_the_store_in_use_by_the_other(db: database.Handle) -> None:
    presence.beat(db, NOW - timedelta(seconds=10), B)
    presence.beat(db, NOW, A, stopped=True)
    seen = presence.usage(db)
    assert seen.running(NOW + timedelta(seconds=5))
    assert (seen.service or {}).get("host") == "conea-monitor-1"
    assert not seen.stopped


def test_the_last_replica_stopping_is_reported_as_a_stop(db: database.Handle) -> None:
    presence.beat(db, NOW - timedelta(hours=2), B)  # died without a word, long ago
    presence.beat(db, NOW, A, stopped=True)
    seen = presence.usage(db)
    assert seen.stopped
    assert seen.last_seen == NOW
    assert not seen.running(NOW + timedelta(seconds=5))


def test_a_replica_gone_for_a_day_is_forgotten_at_the_next_beat(db: database.Handle) -> None:
    presence.beat(db, NOW - timedelta(days=2), B)
    presence.beat(db, NOW, A)
    with db.connect() as conn:
        keys = [row[0] for row in conn.execute(select(control.c.key))]
    assert keys == [presence.key(A)]
    assert len(presence.key(A)) <= 64
    assert presence.key(A) != presence.key(B)


def test_a_beat_and_the_forgetting_of_gone_replicas_are_one_commit(db: database.Handle) -> None:
    C = {"host": "conea-monitor-2", "pid": 1, "public_url": "http://c"}
    presence.beat(db, NOW - timedelta(days=2), B)  # gone: removed
    presence.beat(db, NOW - timedelta(hours=23), C)  # quiet, not yet gone: kept
    commits: list[Connection] = []

    def committed(conn: Connection) -> None:
        commits.append(conn)

    event.listen(db, "commit", committed)
    try:
        presence.beat(db, NOW, A)
    finally:
        event.remove(db, "commit", committed)
    with db.connect() as conn:
        keys = {row[0] for row in conn.execute(select(control.c.key))}
    assert keys == {presence.key(A), presence.key(C)}
    assert len(commits) == 1
