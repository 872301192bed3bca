"""A batch of decisions written at once.

A consumer takes a batch of notifications from the queue (:mod:`.queue`), reads what
deciding them needs in one go (:func:`.batch_reads.inputs`), and writes the claims,
deferrals, coalesced alerts (:mod:`.coalescing`) and audit records in one transaction
(:func:`commit`). Exactly-once per execution key still comes from the uniqueness
constraints: every insert here is
``ON CONFLICT DO NOTHING`` and a conflict is reported back as a duplicate (or as
"coalesced into" the deferred execution another replica created for the same policy
and target a moment before). With the blast-radius breaker configured, every live claim
is admitted or refused by its count in the same transaction (:class:`.breaker.Admission`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from sqlalchemy import Connection, Engine, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from monitor.store import breaker as breaker_mod
from monitor.store import coalescing
from monitor.store import locks as locks_mod
from monitor.store.database import transaction
from monitor.store.executions import _birth, _moved, acted
from monitor.store.queue import in_chunks
from monitor.store.records import Audit, ExecutionKey, Lock
from monitor.store.schema import executions, notifications
from monitor.store.states import State

# What deciding a batch writes ------------------------------------------------------------


@dataclass
class Birth:
    """A new first-step execution: to act (``lock`` given: taken in the same commit, or
    else the execution is born deferred until ``busy_due`` with ``busy_record``), or
    deferred by a guardrail (``record`` is then its defer record)."""

    key: ExecutionKey
    row: dict[str, Any]
    record: Audit
    members: list[coalescing.Member] = field(default_factory=list)
    lock: Lock | None = None
    busy_due: datetime | None = None
    busy_record: Audit | None = None
    # When the batch read the target's history: an execution that acted on the target
    # after that (another replica's) makes this claim wait as if the target were busy,
    # so that its cooldown is judged again with what the read did not see.
    seen_at: datetime | None = None
    # A live claim the breaker refuses is not written; these skip records are, each
    # message completed with the breaker's reason (the claim's alert and the others of
    # its group).
    refused: Sequence[Audit] = ()
    # A deferral that only exists because the claim of this key acts (the other alerts
    # of its group, waiting for its cooldown): not written when that claim is refused.
    after: ExecutionKey | None = None


Fate = Literal["claimed", "deferred", "busy", "duplicate", "coalesced", "refused"]


@dataclass(frozen=True)
class Born:
    fate: Fate
    execution_id: int | None  # the new row; for "coalesced", the row it joined
    refusal: breaker_mod.Refusal | None = None  # for a "refused" claim (not its followers)


def commit(
    engine: Engine,
    *,
    births: Sequence[Birth],
    joins: Mapping[int, Sequence[coalescing.Member]],
    records: Iterable[Audit],
    processed: Sequence[int] = (),
    at: datetime | None = None,
    limit: breaker_mod.Limit | None = None,
) -> list[Born]:
    """Write a batch's decisions in one transaction: the ``births`` (claims with their
    lock, or deferrals), the alerts coalesced into existing executions (``joins``: id ->
    members), the standalone ``records`` (skips), and the notifications decided
    (``processed``, marked at ``at``). Returns each birth's fate. With ``limit`` (the
    blast-radius breaker), each live claim is first admitted by the breaker's count,
    locked and counted in this transaction; a refused one is "refused".

    Locks and rows are taken in one order (the breaker's row first, then by target and
    policy, a group's claim before its deferral) so that two replicas' batches cannot
    deadlock on each other; a deadlock the database reports anyway (or a serialization
    failure) is retried, up to ``RETRIES`` times."""
    records = list(records)
    order = sorted(
        range(len(births)),
        key=lambda i: (
            births[i].row["target_key"],
            births[i].key.policy,
            births[i].lock is None,
            births[i].key.fingerprint,
        ),
    )
    if limit is not None and not any(_live(birth) for birth in births):
        limit = None  # nothing to count: no lock on the breaker's row
    for attempt in range(RETRIES + 1):
        try:
            fates = _commit(
                engine, [births[i] for i in order], joins, records, processed, at, limit
            )
        except DBAPIError as exc:
            if attempt == RETRIES or not isinstance(exc.orig, _CONTENTION):
                raise
            continue
        out: list[Born | None] = [None] * len(births)
        for position, fate in zip(order, fates, strict=True):
            out[position] = fate
        return [fate for fate in out if fate is not None]
    raise AssertionError("unreachable")


RETRIES = 3
_CONTENTION = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def _commit(
    engine: Engine,
    births: Sequence[Birth],
    joins: Mapping[int, Sequence[coalescing.Member]],
    records: Sequence[Audit],
    processed: Sequence[int],
    at: datetime | None,
    limit: breaker_mod.Limit | None,
) -> list[Born]:
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    fates: list[Born] = []
    with transaction(engine) as conn:
        admit = breaker_mod.Admission(conn, limit) if limit is not None else None
        audits: list[Audit | tuple[Audit, int | None]] = list(records)
        members: list[tuple[int, coalescing.Member]] = [
            (eid, m) for eid, many in joins.items() for m in many
        ]
        refused: set[ExecutionKey] = set()
        for birth in births:
            if birth.after is not None and birth.after in refused:
                fates.append(Born("refused", None))
                continue
            fate = _born(conn, dialect, birth, audits, admit)
            if fate.fate == "refused":
                refused.add(birth.key)
            fates.append(fate)
            if fate.execution_id is not None and fate.fate != "duplicate":
                members.extend((fate.execution_id, m) for m in birth.members)
        coalescing.write(conn, members, audits)
        for chunk in in_chunks(sorted(set(processed))):
            conn.execute(
                update(notifications)
                .where(notifications.c.id.in_(chunk), notifications.c.processed_at.is_(None))
                .values(processed_at=at)
            )
    return fates


def _insert(conn: Connection, dialect: Any, values: Mapping[str, Any]) -> int | None:
    row = conn.execute(
        dialect.insert(executions)
        .values(**values)
        .on_conflict_do_nothing()
        .returning(executions.c.id)
    ).first()
    return int(row[0]) if row is not None else None


def _with(record: Audit, extra: Mapping[str, Any]) -> Audit:
    return dataclasses.replace(record, details={**(record.details or {}), **extra})


def _acted_since(conn: Connection, birth: Birth) -> bool:
    if birth.seen_at is None:
        return False
    ex = executions.c
    found = conn.execute(
        select(ex.id)
        .where(
            ex.target_key == birth.row["target_key"],
            acted(bool(birth.row.get("dry_run"))),
            ex.created_at > birth.seen_at,
        )
        .limit(1)
    ).first()
    return found is not None


def _live(birth: Birth) -> bool:
    """A claim that would act for real (the breaker counts it)."""
    return birth.lock is not None and not birth.row.get("dry_run")


def _born(
    conn: Connection,
    dialect: Any,
    birth: Birth,
    audits: list[Audit | tuple[Audit, int | None]],
    admit: breaker_mod.Admission | None = None,
) -> Born:
    key = birth.key
    claimed = birth.lock is not None and locks_mod.take_in(conn, birth.lock)
    if claimed and birth.lock is not None and _acted_since(conn, birth):
        locks_mod.release_in(conn, birth.lock)
        claimed = False
    counted = False
    if claimed and birth.lock is not None and admit is not None and _live(birth):
        refusal = admit()
        if refusal is not None:
            locks_mod.release_in(conn, birth.lock)
            for record in birth.refused:
                audits.append(dataclasses.replace(record, message=record.message + refusal.reason))
            return Born("refused", None, refusal)
        counted = True
    if claimed and birth.lock is not None:
        new = _insert(conn, dialect, _birth(key, {**birth.row, "state": State.RUNNING}))
        if new is None:
            locks_mod.release_in(conn, birth.lock)
            if counted and admit is not None:
                admit.give_back()
            return Born("duplicate", None)
        audits.append((_with(birth.record, _moved("state", None, State.RUNNING)), new))
        return Born("claimed", new)
    if birth.lock is not None:  # the target is busy: born deferred, decided again later
        assert birth.busy_due is not None and birth.busy_record is not None
        row = {**birth.row, "due_at": birth.busy_due, "reason": birth.busy_record.message}
        record, fate = birth.busy_record, "busy"
    else:
        row, record, fate = birth.row, birth.record, "deferred"
    new = _insert(conn, dialect, _birth(key, {**row, "state": State.DEFERRED}))
    if new is not None:
        audits.append((_with(record, _moved("state", None, State.DEFERRED)), new))
        return Born(fate, new)  # type: ignore[arg-type]
    ex = executions.c
    exists = conn.execute(
        select(ex.id).where(
            ex.policy == key.policy,
            ex.step == key.step,
            ex.fingerprint == key.fingerprint,
            ex.starts_at == key.starts_at,
        )
    ).first()
    if exists is not None:
        return Born("duplicate", None)
    waiting = conn.execute(
        select(ex.id).where(
            ex.policy == key.policy,
            ex.target_key == birth.row["target_key"],
            ex.step == 0,
            ex.state == State.DEFERRED.value,
        )
    ).first()
    if waiting is None:  # gone again in between: the alert is decided with the next batch
        return Born("duplicate", None)
    return Born("coalesced", int(waiting[0]))
