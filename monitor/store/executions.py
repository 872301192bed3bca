"""Executions and their audit records (locks: :mod:`.locks`; the kill switch: :mod:`.control`).

Exactly-once comes from the store, not from process memory: an execution is keyed by
(policy, step, fingerprint, startsAt) with a uniqueness constraint, so of two processes
inserting the same key one wins and the other learns it lost (:class:`AlreadyClaimed`).
Deferred decisions, pending verifications and reverts are rows with a due time, so a
restarted service picks them up again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, Engine, and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from monitor.store import breaker as breaker_mod
from monitor.store import locks as locks_mod
from monitor.store import states

# Lock, control and record names that used to live here still import from this module.
from monitor.store.control import PAUSE_KEY as PAUSE_KEY
from monitor.store.control import get_control as get_control
from monitor.store.control import is_paused as is_paused
from monitor.store.control import set_control as set_control
from monitor.store.control import set_paused as set_paused
from monitor.store.database import transaction
from monitor.store.locks import release as release
from monitor.store.locks import renew as renew
from monitor.store.locks import take as take
from monitor.store.records import ActionEntry as ActionEntry
from monitor.store.records import AlreadyClaimed as AlreadyClaimed
from monitor.store.records import Audit as Audit
from monitor.store.records import DecisionInputs as DecisionInputs
from monitor.store.records import ExecutionKey as ExecutionKey
from monitor.store.records import Lock as Lock
from monitor.store.records import TargetHistory as TargetHistory
from monitor.store.schema import alerts, audit, control, executions
from monitor.store.states import (
    ACTED,
    REHEARSAL_ACTED,
    IllegalTransition,
    Machine,
    RevertState,
    State,
    VerifyState,
)

# Values as the columns hold them: enums as their strings, action entries as JSON.


def _plain(value: Any) -> Any:
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, BaseModel):
        return value.stored() if isinstance(value, ActionEntry) else value.model_dump(mode="json")
    if isinstance(value, tuple | list) and any(isinstance(v, BaseModel) for v in value):
        return [_plain(v) for v in value]
    return value


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _plain(value) for name, value in values.items()}


def _birth(key: ExecutionKey, row: Mapping[str, Any]) -> dict[str, Any]:
    """The INSERT's values for a new execution, checked against the state table."""
    values = _columns(
        {
            "policy": key.policy,
            "step": key.step,
            "fingerprint": key.fingerprint,
            "starts_at": key.starts_at,
            "verify_state": VerifyState.NONE,
            "revert_state": RevertState.NONE,
            **row,
        }
    )
    for machine in states.MACHINES:
        target = _member(machine, values.get(machine))
        if not states.allowed(machine, None, target):
            raise IllegalTransition(machine, None, target, f"a new execution {key}")
    return values


def _member(machine: Machine, value: Any) -> StrEnum:
    enum = states.ENUMS[machine]
    try:
        return enum(value)
    except ValueError:
        raise IllegalTransition(
            machine, None, str(value), reason=f"not a state; one of {', '.join(enum)}"
        ) from None


def claim(engine: Engine, key: ExecutionKey, row: Mapping[str, Any]) -> int:
    """Insert an execution for ``key``; raises AlreadyClaimed if it exists."""
    values = _birth(key, row)
    try:
        with transaction(engine) as conn:
            result = conn.execute(insert(executions).returning(executions.c.id), [values])
            return int(result.scalar_one())
    except IntegrityError as exc:
        raise AlreadyClaimed(str(key)) from exc


def defer(engine: Engine, key: ExecutionKey, row: Mapping[str, Any], audit_record: Audit) -> int:
    """Insert a deferred execution for ``key`` and its audit record, in one commit; raises
    AlreadyClaimed if the key exists (then nothing is written)."""
    values = _birth(key, {**row, "state": State.DEFERRED})
    try:
        with transaction(engine) as conn:
            result = conn.execute(insert(executions).returning(executions.c.id), [values])
            execution_id = int(result.scalar_one())
            conn.execute(
                insert(audit),
                [audit_record.row(execution_id, _moved("state", None, State.DEFERRED))],
            )
            return execution_id
    except IntegrityError as exc:
        raise AlreadyClaimed(str(key)) from exc


def _moved(machine: Machine, source: StrEnum | None, target: StrEnum) -> dict[str, Any]:
    return {
        "machine": machine,
        "from": None if source is None else source.value,
        "to": target.value,
    }


def start(
    engine: Engine,
    key: ExecutionKey,
    row: Mapping[str, Any],
    audit_record: Audit,
    lock: Lock,
    existing: int | None = None,
    *,
    limit: breaker_mod.Limit | None = None,
    refused: Audit | None = None,
) -> tuple[int, bool] | None:
    """Claim an execution, record the decision and try the target's lock, in one commit.

    A new key is inserted (raises AlreadyClaimed if it exists); an ``existing`` deferred
    execution is taken with a compare-and-set (None if another replica took it). Returns
    the execution id and whether the lock was taken. The state table is checked first
    (:class:`IllegalTransition`; nothing is written).

    With ``limit`` (a live claim and the blast-radius breaker), the breaker admits it
    first, by its count locked in this transaction; refused, nothing is claimed: the
    ``refused`` skip record (its message completed with the reason) is written, an
    ``existing`` deferred execution is skipped, and :class:`~.breaker.Refused` raised
    after the commit.
    """
    target = _member("state", _plain(row.get("state", State.RUNNING)))
    source = None if existing is None else State.DEFERRED
    if not states.allowed("state", source, target):
        raise IllegalTransition("state", source, target, f"execution {existing or key}")
    try:
        with transaction(engine) as conn:
            refusal = breaker_mod.Admission(conn, limit)() if limit is not None else None
            if refusal is None:
                return _start_in(conn, key, row, audit_record, lock, existing, source, target)
            _refuse(conn, refusal, refused, existing)
    except IntegrityError as exc:
        raise AlreadyClaimed(str(key)) from exc
    raise breaker_mod.Refused(refusal)  # after the commit of its records


def _start_in(
    conn: Connection,
    key: ExecutionKey,
    row: Mapping[str, Any],
    audit_record: Audit,
    lock: Lock,
    existing: int | None,
    source: State | None,
    target: StrEnum,
) -> tuple[int, bool] | None:
    """The claim itself (:func:`start`), in ``conn``'s transaction."""
    if existing is None:
        result = conn.execute(insert(executions).returning(executions.c.id), [_birth(key, row)])
        execution_id = int(result.scalar_one())
    else:
        moved = conn.execute(
            update(executions)
            .where(executions.c.id == existing, executions.c.state == State.DEFERRED.value)
            .values(**_columns(row))
        ).rowcount
        if not moved:
            return None
        execution_id = existing
    conn.execute(insert(audit), [audit_record.row(execution_id, _moved("state", source, target))])
    return execution_id, locks_mod.take_in(conn, lock)


def _refuse(
    conn: Connection, refusal: breaker_mod.Refusal, record: Audit | None, existing: int | None
) -> None:
    """A claim the breaker refused: its skip record, and an existing deferred execution
    moved to skipped (unless another replica took it meanwhile)."""
    if record is None:
        return
    record = dataclasses.replace(record, message=record.message + refusal.reason)
    if existing is None:
        conn.execute(insert(audit), [record.row(None)])
        return
    moved = conn.execute(
        update(executions)
        .where(executions.c.id == existing, executions.c.state == State.DEFERRED.value)
        .values(
            state=State.SKIPPED.value,
            reason=f"breaker: {refusal.reason}",
            due_at=None,
            updated_at=record.at,
        )
    ).rowcount
    if moved:
        conn.execute(
            insert(audit), [record.row(existing, _moved("state", State.DEFERRED, State.SKIPPED))]
        )


def move(
    engine: Engine,
    execution_id: int,
    machine: Machine,
    source: StrEnum | Iterable[StrEnum],
    target: StrEnum,
    audit_record: Audit,
    *,
    release: Lock | None = None,
    before: Sequence[Audit] = (),
    **fields: Any,
) -> bool:
    """THE way an execution changes state: move ``machine`` of ``execution_id`` from one
    of ``source`` to ``target``, set ``fields``, write ``audit_record`` (its details get
    ``machine``, ``from`` and ``to``) and give back ``release``, all in one transaction.
    ``before`` are records of what led to the move (the last action's result), written
    ahead of the move's own in the same commit, and like it only when the row moved.

    A move the table does not allow raises :class:`IllegalTransition` before anything is
    written; so does a field that sets another machine's column to a state it cannot
    reach. The UPDATE is guarded by the current state: False (and no audit record) when
    the row was not in ``source``, so of two replicas moving one row exactly one wins.
    ``release`` (the target's lock, ours) is let go either way. ``updated_at`` defaults
    to the audit record's time.
    """
    machine = _machine(machine)
    sources = _sources(machine, source)
    target = _member(machine, _plain(target))
    what = f"execution {execution_id}"
    for one in sources:
        if not states.allowed(machine, one, target):
            raise IllegalTransition(machine, one, target, what)
    if machine in fields:
        raise ValueError(f"{machine} is the move's target; pass it as target, not as a field")
    guards = [executions.c.id == execution_id]
    for other in states.MACHINES:
        if other != machine and other in fields:
            reached = _member(other, _plain(fields[other]))
            reachable_from = states.sources_of(other, reached)
            if not reachable_from:
                raise IllegalTransition(
                    other, None, reached, what, reason="no state moves there (only a birth)"
                )
            guards.append(executions.c[other].in_(sorted(s.value for s in reachable_from)))
    values = _columns({"updated_at": audit_record.at, **fields, machine: target})
    column = executions.c[machine]
    with transaction(engine) as conn:
        if len(sources) == 1:
            (was,) = sources
            moved = conn.execute(
                update(executions).where(*guards, column == was.value).values(**values)
            ).rowcount
        else:
            # Several sources: lock the row (a no-op write) to learn which it is in.
            found = conn.execute(
                update(executions)
                .where(*guards, column.in_([s.value for s in sources]))
                .values({column: column})
                .returning(column)
            ).first()
            moved = 0
            if found is not None:
                was = _member(machine, found[0])
                moved = conn.execute(
                    update(executions).where(*guards, column == was.value).values(**values)
                ).rowcount
        if moved:
            rows = [record.row(execution_id) for record in before]
            rows.append(audit_record.row(execution_id, _moved(machine, was, target)))
            conn.execute(insert(audit), rows)
        if release is not None:
            locks_mod.release_in(conn, release)
        return bool(moved)


def _machine(name: str) -> Machine:
    for machine in states.MACHINES:
        if machine == name:
            return machine
    raise ValueError(f"unknown state machine {name!r}; one of {states.MACHINES}")


def _sources(machine: Machine, source: str | Iterable[str]) -> tuple[StrEnum, ...]:
    given = [source] if isinstance(source, str) else list(source)
    if not given:
        raise ValueError("a move needs at least one source state")
    return tuple(dict.fromkeys(_member(machine, _plain(s)) for s in given))


def acted(rehearsal: bool) -> ColumnElement[bool]:
    """Executions that acted on their target (live rows in ``ACTED``), or, for a
    rehearsal, would have (rehearsed rows in ``REHEARSAL_ACTED``): what cooldown and
    budget count. A rehearsal never counts for live mode, nor live for a rehearsal."""
    ex = executions.c
    states = REHEARSAL_ACTED if rehearsal else ACTED
    return and_(ex.dry_run == rehearsal, ex.state.in_(sorted(s.value for s in states)))


def decision_inputs(
    engine: Engine,
    target_key: str,
    since: datetime,
    alert: tuple[str, datetime],
    policy: str | None,
    rehearsal: bool = False,
) -> DecisionInputs:
    """Cooldown and budget history (excluding the alert's own ladder), the pause switch,
    whether the alert was already resolved, and (when ``policy`` is given) the reverts
    of that policy on the target still waiting for their delay. The history is live
    mode's, or with ``rehearsal`` the rehearsal's own (rehearsed rows only)."""
    cond = [
        executions.c.target_key == target_key,
        acted(rehearsal),
        or_(executions.c.fingerprint != alert[0], executions.c.starts_at != alert[1]),
    ]
    history = (
        select(
            func.max(executions.c.created_at).label("last"),
            func.count().filter(executions.c.created_at >= since).label("attempts"),
        )
        .where(and_(*cond))
        .subquery()
    )
    switch = select(control.c.value).where(control.c.key == PAUSE_KEY).scalar_subquery()
    resolved = (
        select(alerts.c.id)
        .where(
            alerts.c.fingerprint == alert[0],
            alerts.c.starts_at == alert[1],
            alerts.c.status == "resolved",
        )
        .limit(1)
        .scalar_subquery()
    )
    with engine.connect() as conn:
        # One statement for what every decision needs (a storm makes thousands).
        last, attempts, paused, resolved_id = conn.execute(
            select(history.c.last, history.c.attempts, switch, resolved)
        ).one()
        reverts: list[int] = []
        if policy is not None:
            reverts = [
                int(r[0])
                for r in conn.execute(
                    select(executions.c.id).where(
                        executions.c.policy == policy,
                        executions.c.target_key == target_key,
                        executions.c.revert_state == RevertState.SCHEDULED.value,
                    )
                )
            ]
    return DecisionInputs(
        TargetHistory(last, int(attempts or 0)),
        bool(isinstance(paused, dict) and paused.get("paused")),
        resolved_id is not None,
        reverts,
    )


def claim_verify_tick(
    engine: Engine, execution_id: int, expected: datetime | None, next_at: datetime
) -> bool:
    """Take one verification check: move ``verify_at`` from ``expected`` to ``next_at``.
    Of several replicas woken for the same check, exactly one gets True."""
    cond = [executions.c.id == execution_id, executions.c.verify_state == VerifyState.PENDING.value]
    cond.append(
        executions.c.verify_at.is_(None) if expected is None else executions.c.verify_at == expected
    )
    with transaction(engine) as conn:
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
    engine: Engine,
    target_key: str,
    since: datetime,
    exclude: tuple[str, datetime] | None = None,
    rehearsal: bool = False,
) -> TargetHistory:
    """Executions that acted (or tried to) on ``target_key`` (with ``rehearsal``, the
    rehearsed ones that would have); ``exclude`` leaves out one alert's own ladder: its
    steps are neither each other's cooldown nor its budget (the budget counts remediation
    attempts of other alerts; a ladder is bounded by its steps)."""
    cond = [executions.c.target_key == target_key, acted(rehearsal)]
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
    """Executions with a timer: deferred decisions, approvals awaited (until they
    expire), pending verifications, reverts."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(executions).where(
                or_(
                    executions.c.state.in_([State.DEFERRED.value, State.AWAITING_APPROVAL.value]),
                    executions.c.verify_state == VerifyState.PENDING.value,
                    executions.c.revert_state == RevertState.SCHEDULED.value,
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


def write(engine: Engine, audit_record: Audit, execution_id: int | None = None) -> None:
    """Write one audit record on its own (a state change writes its record in
    :func:`move`)."""
    with transaction(engine) as conn:
        conn.execute(insert(audit), [audit_record.row(execution_id)])
