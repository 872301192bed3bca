"""Executions, audit records, target locks and the pause switch.

Exactly-once comes from the store, not from process memory: an execution is keyed by
(policy, step, fingerprint, startsAt) with a uniqueness constraint, so of two processes
inserting the same key one wins and the other learns it lost (:class:`AlreadyClaimed`).
Deferred decisions, pending verifications and reverts are rows with a due time, so a
restarted service picks them up again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from monitor.store.records import TargetHistory
from monitor.store.schema import alerts, audit, control, executions, locks

PAUSE_KEY = "paused"  # the kill switch's row in the control table


class AlreadyClaimed(Exception):
    """Another delivery or another process holds this execution key."""


@dataclass(frozen=True)
class ExecutionKey:
    policy: str
    step: int
    fingerprint: str
    starts_at: datetime


def claim(engine: Engine, key: ExecutionKey, row: Mapping[str, Any]) -> int:
    """Insert an execution for ``key``; raises AlreadyClaimed if it exists."""
    values = {
        "policy": key.policy,
        "step": key.step,
        "fingerprint": key.fingerprint,
        "starts_at": key.starts_at,
        "verify_state": "none",
        "revert_state": "none",
        **row,
    }
    try:
        with engine.begin() as conn:
            result = conn.execute(insert(executions).returning(executions.c.id), [values])
            return int(result.scalar_one())
    except IntegrityError as exc:
        raise AlreadyClaimed(str(key)) from exc


@dataclass(frozen=True)
class Audit:
    """An audit record to write in the same transaction as a state change."""

    at: datetime
    kind: str
    message: str
    policy: str | None = None
    fingerprint: str | None = None
    target_key: str | None = None
    outcome: str | None = None
    details: Mapping[str, Any] | None = None

    def row(self, execution_id: int | None) -> dict[str, Any]:
        return {
            "at": self.at,
            "kind": self.kind,
            "message": self.message,
            "policy": self.policy,
            "fingerprint": self.fingerprint,
            "target_key": self.target_key,
            "execution_id": execution_id,
            "outcome": self.outcome,
            "details": dict(self.details) if self.details is not None else None,
        }


@dataclass(frozen=True)
class Lock:
    key: str
    owner: str
    now: datetime
    ttl: timedelta


def _take_lock(conn: Any, lock: Lock) -> bool:
    conn.execute(delete(locks).where(locks.c.key == lock.key, locks.c.expires_at < lock.now))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    taken = conn.execute(
        dialect.insert(locks)
        .values(key=lock.key, owner=lock.owner, expires_at=lock.now + lock.ttl)
        .on_conflict_do_nothing(index_elements=[locks.c.key])
        .returning(locks.c.key)
    ).first()
    return taken is not None


def start(
    engine: Engine,
    key: ExecutionKey,
    row: Mapping[str, Any],
    audit_record: Audit,
    lock: Lock,
    existing: int | None = None,
) -> tuple[int, bool] | None:
    """Claim an execution, record the decision and try the target's lock, in one commit.

    A new key is inserted (raises AlreadyClaimed if it exists); an ``existing`` deferred
    execution is taken with a compare-and-set (None if another replica took it). Returns
    the execution id and whether the lock was taken.
    """
    try:
        with engine.begin() as conn:
            if existing is None:
                values = {
                    "policy": key.policy,
                    "step": key.step,
                    "fingerprint": key.fingerprint,
                    "starts_at": key.starts_at,
                    "verify_state": "none",
                    "revert_state": "none",
                    **row,
                }
                result = conn.execute(insert(executions).returning(executions.c.id), [values])
                execution_id = int(result.scalar_one())
            else:
                moved = conn.execute(
                    update(executions)
                    .where(executions.c.id == existing, executions.c.state == "deferred")
                    .values(**row)
                ).rowcount
                if not moved:
                    return None
                execution_id = existing
            conn.execute(insert(audit), [audit_record.row(execution_id)])
            return execution_id, _take_lock(conn, lock)
    except IntegrityError as exc:
        raise AlreadyClaimed(str(key)) from exc


def finish(engine: Engine, execution_id: int, lock: Lock | None, **values: Any) -> None:
    """Record an execution's result and release the target's lock, in one commit."""
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == execution_id).values(**values))
        if lock is not None:
            conn.execute(delete(locks).where(locks.c.key == lock.key, locks.c.owner == lock.owner))


@dataclass(frozen=True)
class DecisionInputs:
    """What the store knows that a decision needs, read in one go."""

    history: TargetHistory
    paused: bool
    resolved: bool
    scheduled_reverts: list[int]


def decision_inputs(
    engine: Engine,
    target_key: str,
    since: datetime,
    alert: tuple[str, datetime],
    policy: str | None,
) -> DecisionInputs:
    """Cooldown and budget history (excluding the alert's own ladder), the pause switch,
    whether the alert was already resolved, and (when ``policy`` is given) the reverts
    of that policy on the target still waiting for their delay."""
    acted = executions.c.state.in_(["running", "succeeded", "failed"])
    cond = [
        executions.c.target_key == target_key,
        acted,
        or_(executions.c.fingerprint != alert[0], executions.c.starts_at != alert[1]),
    ]
    with engine.connect() as conn:
        last, attempts = conn.execute(
            select(
                func.max(executions.c.created_at),
                func.count().filter(executions.c.created_at >= since),
            ).where(and_(*cond))
        ).one()
        switch = conn.execute(select(control.c.value).where(control.c.key == PAUSE_KEY)).first()
        resolved = conn.execute(
            select(alerts.c.id).where(
                alerts.c.fingerprint == alert[0],
                alerts.c.starts_at == alert[1],
                alerts.c.status == "resolved",
            )
        ).first()
        reverts: list[int] = []
        if policy is not None:
            reverts = [
                int(r[0])
                for r in conn.execute(
                    select(executions.c.id).where(
                        executions.c.policy == policy,
                        executions.c.target_key == target_key,
                        executions.c.revert_state == "scheduled",
                    )
                )
            ]
    return DecisionInputs(
        TargetHistory(last, int(attempts or 0)),
        bool(switch is not None and switch[0].get("paused")),
        resolved is not None,
        reverts,
    )


def transition(
    engine: Engine, execution_id: int, expect: str | Sequence[str], **values: Any
) -> bool:
    """Move an execution out of state ``expect`` (compare-and-set); False if it was not."""
    states = [expect] if isinstance(expect, str) else list(expect)
    with engine.begin() as conn:
        result = conn.execute(
            update(executions)
            .where(executions.c.id == execution_id, executions.c.state.in_(states))
            .values(**values)
        )
        return bool(result.rowcount)


def set_fields(engine: Engine, execution_id: int, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == execution_id).values(**values))


def cas_field(
    engine: Engine, execution_id: int, column: str, expect: Sequence[str], **values: Any
) -> bool:
    """Compare-and-set on ``verify_state`` or ``revert_state``."""
    col = executions.c[column]
    with engine.begin() as conn:
        result = conn.execute(
            update(executions)
            .where(executions.c.id == execution_id, col.in_(list(expect)))
            .values(**values)
        )
        return bool(result.rowcount)


def claim_verify_tick(
    engine: Engine, execution_id: int, expected: datetime | None, next_at: datetime
) -> bool:
    """Take one verification check: move ``verify_at`` from ``expected`` to ``next_at``.
    Of several replicas woken for the same check, exactly one gets True."""
    cond = [executions.c.id == execution_id, executions.c.verify_state == "pending"]
    cond.append(
        executions.c.verify_at.is_(None) if expected is None else executions.c.verify_at == expected
    )
    with engine.begin() as conn:
        result = conn.execute(update(executions).where(*cond).values(verify_at=next_at))
        return bool(result.rowcount)


def get(engine: Engine, execution_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
    return dict(row._mapping) if row else None


def for_alert(
    engine: Engine, fingerprint: str, starts_at: datetime, policy: str | None = None
) -> list[dict[str, Any]]:
    q = select(executions).where(
        executions.c.fingerprint == fingerprint, executions.c.starts_at == starts_at
    )
    if policy is not None:
        q = q.where(executions.c.policy == policy)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q.order_by(executions.c.step))]


def target_history(
    engine: Engine, target_key: str, since: datetime, exclude: tuple[str, datetime] | None = None
) -> TargetHistory:
    """Executions that acted (or tried to) on ``target_key``; ``exclude`` leaves out one
    alert's own ladder: its steps are neither each other's cooldown nor its budget (the
    budget counts remediation attempts of other alerts; a ladder is bounded by its steps)."""
    acted = executions.c.state.in_(["running", "succeeded", "failed"])
    cond = [executions.c.target_key == target_key, acted]
    if exclude is not None:
        cond.append(
            or_(executions.c.fingerprint != exclude[0], executions.c.starts_at != exclude[1])
        )
    with engine.connect() as conn:
        last = conn.execute(
            select(func.max(executions.c.created_at)).where(and_(*cond))
        ).scalar_one()
        count_cond = [*cond, executions.c.created_at >= since]
        attempts = conn.execute(
            select(func.count()).select_from(executions).where(and_(*count_cond))
        ).scalar_one()
    return TargetHistory(last, int(attempts))


def alert_annotations(
    engine: Engine, fingerprint: str, starts_at: datetime
) -> tuple[dict[str, str], str]:
    """Annotations and generatorURL of a stored alert (timers rebuild the alert from them)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(alerts.c.annotations, alerts.c.generator_url)
            .where(alerts.c.fingerprint == fingerprint, alerts.c.starts_at == starts_at)
            .order_by(alerts.c.id)
        ).first()
    if row is None:
        return {}, ""
    return dict(row[0] or {}), str(row[1] or "")


def due(engine: Engine) -> list[dict[str, Any]]:
    """Executions with a timer: deferred decisions, pending verifications, reverts."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(executions).where(
                or_(
                    executions.c.state == "deferred",
                    executions.c.verify_state == "pending",
                    executions.c.revert_state == "scheduled",
                )
            )
        ).all()
    return [dict(r._mapping) for r in rows]


def alert_resolved(engine: Engine, fingerprint: str, starts_at: datetime) -> bool:
    """Has a resolved notification for this alert (fingerprint, startsAt) been stored?"""
    with engine.connect() as conn:
        row = conn.execute(
            select(alerts.c.id).where(
                alerts.c.fingerprint == fingerprint,
                alerts.c.starts_at == starts_at,
                alerts.c.status == "resolved",
            )
        ).first()
    return row is not None


# Audit trail.


def record(
    engine: Engine,
    at: datetime,
    kind: str,
    message: str,
    *,
    policy: str | None = None,
    fingerprint: str | None = None,
    target_key: str | None = None,
    execution_id: int | None = None,
    outcome: str | None = None,
    details: Mapping[str, Any] | None = None,
) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(audit),
            [
                {
                    "at": at,
                    "kind": kind,
                    "message": message,
                    "policy": policy,
                    "fingerprint": fingerprint,
                    "target_key": target_key,
                    "execution_id": execution_id,
                    "outcome": outcome,
                    "details": dict(details) if details is not None else None,
                }
            ],
        )


# Per-target locks: at most one execution at a time per target, across processes.


# The kill switch and other shared switches.


def get_control(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(control).where(control.c.key == key)).first()
    if row is None:
        return None
    return {"value": row.value, "updated_at": row.updated_at, "updated_by": row.updated_by}


def set_paused(engine: Engine, paused: bool, by: str, reason: str, at: datetime) -> str:
    """The kill switch, for the engine, the API and the command line alike: the switch and
    its audit record in one transaction. Returns the audit message."""
    verb = "paused" if paused else "resumed"
    message = f"automation {verb} by {by}" + (f": {reason}" if reason else "")
    set_control(
        engine,
        PAUSE_KEY,
        {"paused": paused, "reason": reason},
        at,
        by,
        audited=("pause" if paused else "resume", message, verb),
    )
    return message


def is_paused(engine: Engine) -> bool:
    """Whether the kill switch in the store is on (the config's ``automation.paused``
    aside)."""
    found = get_control(engine, PAUSE_KEY)
    return bool(found and found["value"].get("paused"))


def set_control(
    engine: Engine,
    key: str,
    value: Any,
    at: datetime,
    by: str | None,
    *,
    audited: tuple[str, str, str | None] | None = None,
) -> None:
    """Set a switch; ``audited`` (kind, message, outcome) is its audit record, written in
    the same transaction: the switch never changes without it."""
    with engine.begin() as conn:
        updated = conn.execute(
            update(control)
            .where(control.c.key == key)
            .values(value=value, updated_at=at, updated_by=by)
        ).rowcount
        if not updated:
            try:
                with conn.begin_nested():
                    conn.execute(
                        insert(control),
                        [{"key": key, "value": value, "updated_at": at, "updated_by": by}],
                    )
            except IntegrityError:
                conn.execute(
                    update(control)
                    .where(control.c.key == key)
                    .values(value=value, updated_at=at, updated_by=by)
                )
        if audited is not None:
            kind, message, outcome = audited
            conn.execute(
                insert(audit), [{"at": at, "kind": kind, "message": message, "outcome": outcome}]
            )
