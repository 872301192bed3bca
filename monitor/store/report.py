"""What the store knows about one incident, read in one go for its record (:mod:`monitor.report`).

An incident is the ladder of one alert under one policy: every step (execution) of that
policy for the alert's fingerprint and ``startsAt``. Its audit trail is the records of
those executions, the records about the alert that carry no execution (a skip decided
before any row was written), and the kill switch's pauses and resumes while it was open
(from the alert's first delivery to its last record; open-ended while a step, its
verification or its revert is still to come).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select

from monitor.store import evidence, executions, queries
from monitor.store.records import Evidence, Execution
from monitor.store.schema import alerts, audit
from monitor.store.states import FINAL, RevertState, VerifyState

AUDIT_LIMIT = 1000  # records of one incident read at most (the rest: ``truncated``)
LADDER_LIMIT = 100  # steps of one ladder read at most
EVIDENCE_LIMIT = 100  # diagnostics' results of one incident read at most
SWITCH_KINDS = ("pause", "resume")


@dataclass(frozen=True)
class Incident:
    """``executions``: the ladder by step; ``alert``: its firing row (None if the store
    no longer has it); ``resolved_at``: when a resolved notification said it ended;
    ``audit``: records oldest first; ``evidence``: what the policy's diagnostics gathered,
    step by step; ``open``: something is still to come."""

    executions: list[Execution]
    alert: dict[str, Any] | None
    resolved_at: datetime | None
    audit: list[dict[str, Any]]
    evidence: list[Evidence]
    coalesced: dict[str, Any]
    open: bool
    truncated: bool


def _open(row: Execution) -> bool:
    """Is something still to come for this step: its decision or action, its
    verification, its revert?"""
    return (
        row.state not in FINAL["state"]
        or row.verify_state == VerifyState.PENDING
        or row.revert_state in (RevertState.SCHEDULED, RevertState.RUNNING)
    )


def incident(engine: Engine, execution_id: int) -> Incident | None:
    """The incident ``execution_id`` is a step of; None when there is no such execution."""
    found = executions.get(engine, execution_id)
    if found is None:
        return None
    row = Execution.from_row(found)
    ladder = [
        Execution.from_row(r)
        for r in executions.for_alert(engine, row.fingerprint, row.starts_at, row.policy)[
            :LADDER_LIMIT
        ]
    ]
    if all(e.id != row.id for e in ladder):  # past the limit: the one asked for is kept
        ladder.append(row)
    ids = [e.id for e in ladder]
    alert, resolved_at = _alert(engine, row)
    still_open = any(_open(e) for e in ladder)
    a = audit.c
    with engine.connect() as conn:
        own = conn.execute(
            select(audit).where(a.execution_id.in_(ids)).order_by(a.at, a.id).limit(AUDIT_LIMIT + 1)
        ).all()
        start = min(
            [e.created_at for e in ladder]
            + ([alert["first_received_at"]] if alert is not None else [])
        )
        end = None if still_open or not own else max(r.at for r in own)
        window = [a.at >= start] + ([a.at <= end] if end is not None else [])
        loose = conn.execute(
            select(audit)
            .where(
                a.execution_id.is_(None),
                *window,
                or_(
                    and_(a.fingerprint == row.fingerprint, a.policy == row.policy),
                    a.kind.in_(SWITCH_KINDS),
                ),
            )
            .order_by(a.at, a.id)
            .limit(AUDIT_LIMIT + 1)
        ).all()
    gathered = [item for _, item in evidence.for_ladder(engine, execution_id, EVIDENCE_LIMIT + 1)]
    rows = sorted([dict(r._mapping) for r in (*own, *loose)], key=lambda r: (r["at"], r["id"]))
    return Incident(
        executions=ladder,
        alert=alert,
        resolved_at=resolved_at,
        audit=rows[:AUDIT_LIMIT],
        evidence=gathered[:EVIDENCE_LIMIT],
        coalesced=queries.coalesced_into(engine, execution_id),
        open=still_open,
        truncated=len(rows) > AUDIT_LIMIT or len(gathered) > EVIDENCE_LIMIT,
    )


def _alert(engine: Engine, row: Execution) -> tuple[dict[str, Any] | None, datetime | None]:
    """The alert's firing row (its labels, annotations, generatorURL) and when it resolved."""
    columns = queries.readable(alerts)
    with engine.connect() as conn:
        found = [
            dict(r._mapping)
            for r in conn.execute(
                select(*columns)
                .where(alerts.c.fingerprint == row.fingerprint, alerts.c.starts_at == row.starts_at)
                .order_by(alerts.c.id)
            )
        ]
    firing = next((r for r in found if r["status"] == "firing"), found[0] if found else None)
    resolved = next((r for r in found if r["status"] == "resolved"), None)
    ended = (resolved["ends_at"] or resolved["first_received_at"]) if resolved else None
    return firing, ended
