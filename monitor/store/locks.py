"""Per-target locks: at most one execution acts on a target at a time, across processes.

A lock is a row (key, owner, expires_at). Taking it removes an expired holder first, so a
replica that died frees its targets after the lock's time to live; an owner working on
renews it (:func:`renew`) and gives it back when done (:func:`release`). Renewing and
releasing touch only the owner's own lock: one that expired and was taken by another
owner is left alone. A rehearsal locks the target under a key of its own
(:func:`monitor.store.states.lock_key`), so it never holds up a live execution.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store.database import transaction
from monitor.store.records import Lock
from monitor.store.schema import executions, locks
from monitor.store.states import REHEARSAL_LOCK, State


def take_in(conn: Connection, lock: Lock) -> bool:
    """Take ``lock`` inside the caller's transaction; False if another owner holds it."""
    conn.execute(delete(locks).where(locks.c.key == lock.key, locks.c.expires_at < lock.now))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    taken = conn.execute(
        dialect.insert(locks)
        .values(key=lock.key, owner=lock.owner, expires_at=lock.now + lock.ttl)
        .on_conflict_do_nothing(index_elements=[locks.c.key])
        .returning(locks.c.key)
    ).first()
    return taken is not None


def release_in(conn: Connection, lock: Lock) -> None:
    """Give ``lock`` back inside the caller's transaction, if it is still ours."""
    conn.execute(delete(locks).where(locks.c.key == lock.key, locks.c.owner == lock.owner))


def take(engine: Engine, lock: Lock) -> bool:
    """Take the target's lock (an expired holder loses it); False if someone holds it."""
    with transaction(engine) as conn:
        return take_in(conn, lock)


def renew(engine: Engine, lock: Lock, at: datetime | None = None) -> bool:
    """Extend a lock we hold to ``at + ttl`` (``at``: now); False when it is no longer
    ours (it expired and another owner took it, or it was released)."""
    expires = (at or datetime.now(UTC)) + lock.ttl
    with transaction(engine) as conn:
        result = conn.execute(
            update(locks)
            .where(locks.c.key == lock.key, locks.c.owner == lock.owner)
            .values(expires_at=expires)
        )
        return bool(result.rowcount)


def release(engine: Engine, lock: Lock) -> None:
    """Give a lock back, if it is still ours (another owner's is left alone)."""
    with transaction(engine) as conn:
        release_in(conn, lock)


def abandoned(engine: Engine, now: datetime, grace: timedelta) -> list[dict[str, Any]]:
    """Executions left ``running`` by an owner that no longer holds the target's lock
    (the replica stopped or was killed mid-action: its lock expired, or another took it),
    and not touched for ``grace``: a claim that found its target busy is ``running``
    without a lock only for the moment before it is deferred."""
    held = (
        select(locks.c.key)
        .where(
            locks.c.key
            == case(
                (executions.c.dry_run, literal(REHEARSAL_LOCK) + executions.c.target_key),
                else_=executions.c.target_key,
            ),
            locks.c.owner == executions.c.owner,
            locks.c.expires_at >= now,
        )
        .exists()
    )
    with engine.connect() as conn:
        rows = conn.execute(
            select(executions).where(
                executions.c.state == State.RUNNING.value,
                executions.c.updated_at < now - grace,
                ~held,
            )
        ).all()
    return [dict(r._mapping) for r in rows]
