"""A batch of decisions: what it reads and writes at once.

A consumer takes a batch of notifications from the queue (:mod:`.queue`), reads what
deciding them needs in one go (:func:`inputs`), and writes the claims, deferrals,
coalesced alerts and audit records in one transaction (:func:`commit`). Exactly-once
per execution key still comes from the uniqueness constraints: every insert here is
``ON CONFLICT DO NOTHING`` and a conflict is reported back as a duplicate (or as
"coalesced into" the deferred execution another replica created for the same policy
and target a moment before). With the blast-radius breaker configured, every live claim
is admitted or refused by its count in the same transaction (:class:`.breaker.Admission`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import psycopg
from sqlalchemy import Connection, Engine, and_, or_, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from monitor.store import breaker as breaker_mod
from monitor.store import locks as locks_mod
from monitor.store.control import PAUSE_KEY
from monitor.store.database import transaction
from monitor.store.executions import _birth, _moved, acted
from monitor.store.notifications import _Driver
from monitor.store.queue import aware, in_chunks
from monitor.store.records import Audit, ExecutionKey, Lock, TargetHistory
from monitor.store.schema import alerts, coalesced, control, executions, notifications
from monitor.store.states import RevertState, State

# What deciding a batch reads -------------------------------------------------------------


@dataclass(frozen=True)
class Open:
    """An execution of a (policy, target) a batch must know of: its first step waiting
    (new alerts are coalesced into it), or a revert waiting for its delay."""

    id: int
    policy: str
    step: int
    state: str
    revert_state: str


@dataclass
class Inputs:
    paused: bool
    # (target_key, rehearsal) -> start times of the executions that acted on it since
    # ``since`` (the longest budget window or cooldown of the batch's policies), newest
    # first: live ones (rehearsal False) and rehearsed ones (True) apart.
    started: dict[tuple[str, bool], list[datetime]] = field(default_factory=dict)
    # (policy, target_key) -> executions not finished with (deferred, running, verifying)
    # and reverts waiting for their delay.
    open: dict[tuple[str, str], list[Open]] = field(default_factory=dict)
    decided: set[tuple[str, str, datetime]] = field(default_factory=set)  # policy, fp, starts
    resolved: set[tuple[str, datetime]] = field(default_factory=set)

    def history(self, target_key: str, rehearsal: bool, window_start: datetime) -> TargetHistory:
        """What cooldown and budget know of a target, in live mode or in rehearsal."""
        times = self.started.get((target_key, rehearsal), [])
        return TargetHistory(
            times[0] if times else None, sum(1 for at in times if at >= window_start)
        )


def inputs(
    engine: Engine,
    *,
    now: datetime,
    since: datetime,
    targets: Sequence[str],
    fingerprints: Sequence[str],
) -> Inputs:
    """Everything a batch's first-step decisions need from the store, in one read.
    ``since`` must reach back the longest budget window and cooldown asked about."""
    ex = executions.c
    out = Inputs(paused=False)
    targets = list(dict.fromkeys(targets))
    fingerprints = list(dict.fromkeys(fingerprints))
    with engine.connect() as conn:
        switch = conn.execute(select(control.c.value).where(control.c.key == PAUSE_KEY)).first()
        out.paused = bool(switch and isinstance(switch[0], dict) and switch[0].get("paused"))
        for chunk in in_chunks(targets):
            started: dict[tuple[str, bool], list[datetime]] = defaultdict(list)
            for key, rehearsed, at in conn.execute(
                select(ex.target_key, ex.dry_run, ex.created_at)
                .where(
                    ex.target_key.in_(chunk),
                    or_(acted(False), acted(True)),
                    ex.created_at >= since,
                )
                .order_by(ex.created_at.desc())
            ):
                started[(key, bool(rehearsed))].append(aware(at))
            out.started.update(started)
            for row in conn.execute(
                select(
                    ex.id,
                    ex.policy,
                    ex.step,
                    ex.target_key,
                    ex.state,
                    ex.revert_state,
                )
                .where(
                    ex.target_key.in_(chunk),
                    or_(
                        and_(
                            ex.state.in_([State.DEFERRED.value, State.AWAITING_APPROVAL.value]),
                            ex.step == 0,
                        ),
                        ex.revert_state == RevertState.SCHEDULED.value,
                    ),
                )
                .order_by(ex.id)
            ):
                one = Open(int(row[0]), row[1], int(row[2]), row[4], row[5])
                out.open.setdefault((row[1], row[3]), []).append(one)
        for chunk in in_chunks(fingerprints):
            decided = union_all(
                *(
                    select(t.c.policy, t.c.fingerprint, t.c.starts_at).where(
                        t.c.step == 0, t.c.fingerprint.in_(chunk)
                    )
                    for t in (executions, coalesced)
                )
            )
            for policy, fp, starts in conn.execute(decided):
                out.decided.add((policy, fp, aware(starts)))
            for fp, starts in conn.execute(
                select(alerts.c.fingerprint, alerts.c.starts_at).where(
                    alerts.c.fingerprint.in_(chunk), alerts.c.status == "resolved"
                )
            ):
                out.resolved.add((fp, aware(starts)))
    return out


# What deciding a batch writes ------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """An alert recorded against another alert's execution of the same policy/target."""

    key: ExecutionKey
    labels: Mapping[str, str]
    reason: str
    target_key: str
    at: datetime


@dataclass
class Birth:
    """A new first-step execution: to act (``lock`` given: taken in the same commit, or
    else the execution is born deferred until ``busy_due`` with ``busy_record``), or
    deferred by a guardrail (``record`` is then its defer record)."""

    key: ExecutionKey
    row: dict[str, Any]
    record: Audit
    members: list[Member] = field(default_factory=list)
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
    joins: Mapping[int, Sequence[Member]],
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
    joins: Mapping[int, Sequence[Member]],
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
        members: list[tuple[int, Member]] = [(eid, m) for eid, many in joins.items() for m in many]
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
        _write(conn, members, audits)
        for chunk in in_chunks(sorted(set(processed))):
            conn.execute(
                update(notifications)
                .where(notifications.c.id.in_(chunk), notifications.c.processed_at.is_(None))
                .values(processed_at=at)
            )
    return fates


# A storm writes thousands of these rows a second: straight to the DB-API cursor, as the
# webhook's writer does (SQLAlchemy's per-row parameter processing costs more).
_COALESCED = (
    "INSERT INTO coalesced (execution_id, policy, step, fingerprint, starts_at, labels, "
    "reason, at) VALUES ({}) ON CONFLICT DO NOTHING"
)
_AUDIT = (
    "INSERT INTO audit (at, kind, message, policy, fingerprint, target_key, execution_id, "
    "outcome, details) VALUES ({})"
)
LISTED = 100  # fingerprints named in one "coalesced" audit record


def _write(
    conn: Connection,
    members: Sequence[tuple[int, Member]],
    audits: list[Audit | tuple[Audit, int | None]],
) -> None:
    """The coalesced alerts (one row each) and the audit records: one record per
    execution and reason for the alerts coalesced into it by this batch."""
    d = _Driver(conn.dialect.name)
    groups: dict[tuple[int, str], list[Member]] = {}
    for eid, member in members:
        groups.setdefault((eid, member.reason), []).append(member)
    for (eid, reason), many in groups.items():
        first = many[0]
        said = f"{len(many)} alerts coalesced" if len(many) > 1 else "coalesced"
        record = Audit(
            first.at,
            "coalesce",
            f"{said} into #{eid}: {reason}",
            first.key.policy,
            first.key.fingerprint,
            first.target_key,
            "coalesced",
            {
                "coalesced_into": eid,
                "alerts": len(many),
                "fingerprints": [m.key.fingerprint for m in many[:LISTED]],
            },
        )
        audits.append((record, eid))
    members = sorted(members, key=lambda em: (em[1].key.policy, em[1].key.fingerprint))
    cur = conn.connection.cursor()
    try:
        if members:
            cur.executemany(
                _COALESCED.format(", ".join([d.ph] * 8)),
                [
                    (
                        eid,
                        m.key.policy,
                        m.key.step,
                        m.key.fingerprint,
                        d.ts(m.key.starts_at),
                        d.json(dict(m.labels)),
                        m.reason,
                        d.ts(m.at),
                    )
                    for eid, m in members
                ],
            )
        if audits:
            rows = []
            for item in audits:
                record, owner = item if isinstance(item, tuple) else (item, None)
                rows.append(
                    (
                        d.ts(record.at),
                        record.kind,
                        record.message,
                        record.policy,
                        record.fingerprint,
                        record.target_key,
                        owner,
                        record.outcome,
                        None if record.details is None else d.json(record.details),
                    )
                )
            cur.executemany(_AUDIT.format(", ".join([d.ph] * 9)), rows)
    finally:
        cur.close()


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


# Coalesced alerts as the engine reads them back ------------------------------------------


@dataclass(frozen=True)
class Coalesced:
    fingerprint: str
    starts_at: datetime
    labels: dict[str, str]
    reason: str
    at: datetime


def members(engine: Engine, execution_ids: Sequence[int]) -> dict[int, list[Coalesced]]:
    """The alerts coalesced into each execution, oldest alert first."""
    c = coalesced.c
    out: dict[int, list[Coalesced]] = {}
    with engine.connect() as conn:
        for chunk in in_chunks(list(execution_ids)):
            for eid, fp, starts, labels, reason, at in conn.execute(
                select(c.execution_id, c.fingerprint, c.starts_at, c.labels, c.reason, c.at)
                .where(c.execution_id.in_(chunk))
                .order_by(c.starts_at, c.id)
            ):
                out.setdefault(int(eid), []).append(
                    Coalesced(
                        fp,
                        aware(starts),
                        {str(k): str(v) for k, v in (labels or {}).items()},
                        reason,
                        aware(at),
                    )
                )
    return out


def resolved_among(
    engine: Engine, keys: Sequence[tuple[str, datetime]]
) -> set[tuple[str, datetime]]:
    """Which of these alerts (fingerprint, startsAt) a resolved notification was stored for."""
    wanted = set(keys)
    out: set[tuple[str, datetime]] = set()
    with engine.connect() as conn:
        for chunk in in_chunks(sorted({fp for fp, _ in keys})):
            for fp, starts in conn.execute(
                select(alerts.c.fingerprint, alerts.c.starts_at).where(
                    alerts.c.fingerprint.in_(chunk), alerts.c.status == "resolved"
                )
            ):
                if (fp, aware(starts)) in wanted:
                    out.add((fp, aware(starts)))
    return out


def for_alerts(
    engine: Engine, keys: Sequence[tuple[str, datetime]]
) -> dict[tuple[str, datetime], list[dict[str, Any]]]:
    """The executions of each alert (fingerprint, startsAt), by step: for a batch of
    resolved alerts, one read instead of one per alert."""
    wanted = set(keys)
    out: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    ex = executions.c
    with engine.connect() as conn:
        for chunk in in_chunks(sorted({fp for fp, _ in keys})):
            for row in conn.execute(
                select(executions).where(ex.fingerprint.in_(chunk)).order_by(ex.step, ex.id)
            ):
                mapping = dict(row._mapping)
                key = (mapping["fingerprint"], aware(mapping["starts_at"]))
                if key in wanted:
                    out.setdefault(key, []).append(mapping)
    return out
