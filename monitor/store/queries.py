"""Reading the audit trail: alerts, executions and audit events with filters and pages.

Pages are keyset-paginated by id, newest first: pass the ``next`` cursor of one page as
``before`` to get the following one.

Steps are numbered as people read them: the store keeps a step's index in its policy
(0 for the first), every row read here says ``step: 1`` for the first. The values each
equality filter accepts are in :data:`CHOICES` (the API refuses any other, naming them).

Times are read clamped to what Python can hold: PostgreSQL keeps times past the year
9999 (an alert's ``endsAt`` of ``9999-12-31T23:59:59-01:00`` stored by a version that
did not bound it), which the driver cannot convert; they read as 9999-12-30.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, Table, case, literal, select, type_coerce

from monitor.store.schema import UTCDateTime, alerts, audit, coalesced, executions, notifications
from monitor.store.states import State

# A day inside Python's range, so that no session time zone can push them out of it.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, tzinfo=UTC)


STATUSES = ("firing", "resolved")
"""An alert's or a notification's ``status``."""
MODES = ("live", "rehearsal")
"""An execution's ``mode``: acted on, or rehearsed (planned, nothing applied)."""
AUDIT_KINDS = (
    "approval",
    "breaker",
    "cancel",
    "coalesce",
    "decision",
    "defer",
    "escalate",
    "execute",
    "finish",
    "job",
    "page",
    "pause",
    "plan",
    "poison",
    "reload",
    "replay",
    "resume",
    "retry",
    "revert",
    "skip",
    "verify",
)
"""Every ``kind`` of audit record the service writes (tests/store/test_queries.py holds
the writers to it)."""

CHOICES: dict[str, dict[str, tuple[str, ...]]] = {
    "alerts": {"status": STATUSES},
    "notifications": {"status": STATUSES},
    "executions": {"status": tuple(s.value for s in State), "mode": MODES},
    "audit": {"kind": AUDIT_KINDS},
}
"""The values each listing's closed filters accept, by listing and parameter."""


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    mode: str | None = None
    alertname: str | None = None
    fingerprint: str | None = None
    policy: str | None = None
    target: str | None = None
    states: tuple[str, ...] = ()  # any of these (the column ``status`` compares)
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: int | None


@functools.cache
def _readable(table: Table, hidden: tuple[str, ...] = ()) -> tuple[ColumnElement[Any], ...]:
    """The table's columns, times clamped into the range Python's datetime holds (built
    once per table: building the expressions costs more than a page's query)."""
    out: list[ColumnElement[Any]] = []
    for column in table.c:
        if column.name in hidden:
            continue
        if table is executions and column.name == "step":  # as people read it: 1 is the first
            out.append((column + 1).label("step"))
        elif isinstance(column.type, UTCDateTime):
            low = literal(_EARLIEST, UTCDateTime())
            high = literal(_LATEST, UTCDateTime())
            clamped = case((column > high, high), (column < low, low), else_=column)
            out.append(type_coerce(clamped, UTCDateTime()).label(column.name))
        else:
            out.append(column)
    if table is executions:  # rehearsed or live, as every surface says it
        out.append(
            case((executions.c.dry_run, literal("rehearsal")), else_=literal("live")).label("mode")
        )
    return tuple(out)


def readable(table: Table) -> tuple[ColumnElement[Any], ...]:
    """The table's columns as the read API shows them (times clamped)."""
    return _readable(table)


def _page(engine: Engine, table: Table, query: Select[Any], f: Filters) -> Page:
    if f.before is not None:
        query = query.where(table.c.id < f.before)
    query = query.order_by(table.c.id.desc()).limit(f.limit + 1)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    return Page(rows, rows[-1]["id"] if more and rows else None)


@dataclass(frozen=True)
class _Listing:
    """How the filters map onto one table: which column each equality filter compares,
    and which times ``since`` and ``until`` bound."""

    table: Table
    equal: dict[str, str]
    since: str
    until: str
    hidden: tuple[str, ...] = ()

    def query(self, f: Filters) -> Select[Any]:
        q = select(*_readable(self.table, self.hidden))
        for name, column in self.equal.items():
            value = getattr(f, name)
            if value:
                q = q.where(self.table.c[column] == value)
        if f.mode and self.table is executions:
            q = q.where(executions.c.dry_run.is_(f.mode == "rehearsal"))
        if f.states:
            q = q.where(self.table.c[self.equal["status"]].in_(f.states))
        if f.since:
            q = q.where(self.table.c[self.since] >= f.since)
        if f.until:
            q = q.where(self.table.c[self.until] < f.until)
        return q


_ALERTS = _Listing(
    alerts,
    {"status": "status", "alertname": "alertname", "fingerprint": "fingerprint"},
    since="last_received_at",
    until="first_received_at",
)
_NOTIFICATIONS = _Listing(
    notifications, {"status": "status"}, "received_at", "received_at", hidden=("payload",)
)
_EXECUTIONS = _Listing(
    executions,
    {
        "status": "state",
        "alertname": "alertname",
        "fingerprint": "fingerprint",
        "policy": "policy",
        "target": "target_key",
    },
    since="created_at",
    until="created_at",
)
_AUDIT = _Listing(
    audit, {"status": "kind", "fingerprint": "fingerprint", "policy": "policy"}, "at", "at"
)


def list_alerts(engine: Engine, f: Filters) -> Page:
    return _page(engine, alerts, _ALERTS.query(f), f)


def list_notifications(engine: Engine, f: Filters) -> Page:
    return _page(engine, notifications, _NOTIFICATIONS.query(f), f)


_BRIEF = dataclasses.replace(
    _EXECUTIONS,
    hidden=("labels", "target", "actions", "error", "verify_detail", "owner", "notification_id"),
)


def list_executions(engine: Engine, f: Filters, brief: bool = False) -> Page:
    """Executions, newest first; ``brief``: without the labels, target, actions, error,
    verification detail, owner and notification (a list's columns only)."""
    return _page(engine, executions, (_BRIEF if brief else _EXECUTIONS).query(f), f)


def list_audit(engine: Engine, f: Filters, execution_id: int | None = None) -> Page:
    q = _AUDIT.query(f)
    if execution_id is not None:
        q = q.where(audit.c.execution_id == execution_id)
    return _page(engine, audit, q, f)


def get_execution(engine: Engine, execution_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        query = select(*_readable(executions)).where(executions.c.id == execution_id)
        row = conn.execute(query).first()
    return dict(row._mapping) if row else None


def coalesced_into(engine: Engine, execution_id: int, limit: int = 100) -> dict[str, Any]:
    """The alerts coalesced into an execution: how many, and the first ``limit``."""
    from sqlalchemy import func

    c = coalesced.c
    with engine.connect() as conn:
        total = conn.execute(
            select(func.count()).select_from(coalesced).where(c.execution_id == execution_id)
        ).scalar_one()
        rows = conn.execute(
            select(c.fingerprint, c.starts_at, c.labels, c.reason, c.at)
            .where(c.execution_id == execution_id)
            .order_by(c.id)
            .limit(limit)
        ).all()
    return {
        "count": int(total),
        "alerts": [
            {
                "fingerprint": fp,
                "starts_at": starts.isoformat(),
                "labels": labels,
                "reason": reason,
                "at": at.isoformat(),
            }
            for fp, starts, labels, reason, at in rows
        ],
    }


def firing_now(engine: Engine, limit: int = 100) -> list[dict[str, Any]]:
    """Alerts firing as last delivered (no resolved delivery of the same alert yet),
    newest first: id, fingerprint, alertname, labels, starts_at and last_received_at."""
    resolved = alerts.alias("resolved")
    a = alerts.c
    query = (
        select(a.id, a.fingerprint, a.alertname, a.labels, a.starts_at, a.last_received_at)
        .where(alerts.c.status == "firing")
        .where(
            ~select(resolved.c.id)
            .where(
                resolved.c.fingerprint == alerts.c.fingerprint,
                resolved.c.starts_at == alerts.c.starts_at,
                resolved.c.status == "resolved",
            )
            .exists()
        )
        .order_by(alerts.c.id.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def deliveries_of(engine: Engine, fingerprint: str, starts_at: datetime) -> list[dict[str, Any]]:
    """The stored deliveries (firing, resolved) of one alert."""
    query = (
        select(*_readable(alerts))
        .where(alerts.c.fingerprint == fingerprint, alerts.c.starts_at == starts_at)
        .order_by(alerts.c.id)
    )
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(query)]


def outcomes(
    engine: Engine, fingerprints: list[str], per_alert: int = 20
) -> dict[str, list[dict[str, Any]]]:
    """What alerts led to, by fingerprint: their executions and the skips recorded
    without one (newest first, at most ``per_alert`` of each)."""
    found: dict[str, list[dict[str, Any]]] = {fp: [] for fp in fingerprints}
    if not fingerprints:
        return found
    e, a = executions.c, audit.c
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                e.id,
                e.fingerprint,
                e.starts_at,
                e.policy,
                (e.step + 1).label("step"),
                e.state,
                e.reason,
            )
            .where(e.fingerprint.in_(fingerprints))
            .order_by(e.id.desc())
            .limit(per_alert * len(fingerprints))
        ).all()
        skips = conn.execute(
            select(a.id, a.fingerprint, a.policy, a.message, a.at)
            .where(a.fingerprint.in_(fingerprints), a.kind == "skip", a.execution_id.is_(None))
            .order_by(a.id.desc())
            .limit(per_alert * len(fingerprints))
        ).all()
    for row in rows:
        found[row.fingerprint].append({"what": "execution", **row._mapping})
    for skip in skips:
        found[skip.fingerprint].append({"what": "skip", **skip._mapping})
    for items in found.values():
        del items[per_alert * 2 :]
    return found


def count(engine: Engine, table_name: str) -> int:
    from sqlalchemy import func

    table = {
        "alerts": alerts,
        "notifications": notifications,
        "executions": executions,
        "audit": audit,
        "coalesced": coalesced,
    }[table_name]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
