"""Reading the audit trail: alerts, executions and audit events with filters and pages.

Pages are keyset-paginated by id, newest first: pass the ``next`` cursor of one page as
``before`` to get the following one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, Table, select

from monitor.store.schema import alerts, audit, executions, notifications


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    alertname: str | None = None
    fingerprint: str | None = None
    policy: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next: int | None


def _page(engine: Engine, table: Table, query: Select[Any], f: Filters) -> Page:
    if f.before is not None:
        query = query.where(table.c.id < f.before)
    query = query.order_by(table.c.id.desc()).limit(f.limit + 1)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    more = len(rows) > f.limit
    rows = rows[: f.limit]
    return Page(rows, rows[-1]["id"] if more and rows else None)


def list_alerts(engine: Engine, f: Filters) -> Page:
    q = select(alerts)
    if f.status:
        q = q.where(alerts.c.status == f.status)
    if f.alertname:
        q = q.where(alerts.c.alertname == f.alertname)
    if f.fingerprint:
        q = q.where(alerts.c.fingerprint == f.fingerprint)
    if f.since:
        q = q.where(alerts.c.last_received_at >= f.since)
    if f.until:
        q = q.where(alerts.c.first_received_at < f.until)
    return _page(engine, alerts, q, f)


def list_notifications(engine: Engine, f: Filters) -> Page:
    q = select(*[c for c in notifications.c if c.name != "payload"])
    if f.status:
        q = q.where(notifications.c.status == f.status)
    if f.since:
        q = q.where(notifications.c.received_at >= f.since)
    if f.until:
        q = q.where(notifications.c.received_at < f.until)
    return _page(engine, notifications, q, f)


def list_executions(engine: Engine, f: Filters) -> Page:
    q = select(executions)
    if f.status:
        q = q.where(executions.c.state == f.status)
    if f.alertname:
        q = q.where(executions.c.alertname == f.alertname)
    if f.fingerprint:
        q = q.where(executions.c.fingerprint == f.fingerprint)
    if f.policy:
        q = q.where(executions.c.policy == f.policy)
    if f.since:
        q = q.where(executions.c.created_at >= f.since)
    if f.until:
        q = q.where(executions.c.created_at < f.until)
    return _page(engine, executions, q, f)


def list_audit(engine: Engine, f: Filters, execution_id: int | None = None) -> Page:
    q = select(audit)
    if execution_id is not None:
        q = q.where(audit.c.execution_id == execution_id)
    if f.status:
        q = q.where(audit.c.kind == f.status)
    if f.fingerprint:
        q = q.where(audit.c.fingerprint == f.fingerprint)
    if f.policy:
        q = q.where(audit.c.policy == f.policy)
    if f.since:
        q = q.where(audit.c.at >= f.since)
    if f.until:
        q = q.where(audit.c.at < f.until)
    return _page(engine, audit, q, f)


def get_execution(engine: Engine, execution_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(executions).where(executions.c.id == execution_id)).first()
    return dict(row._mapping) if row else None


def count(engine: Engine, table_name: str) -> int:
    from sqlalchemy import func

    table = {
        "alerts": alerts,
        "notifications": notifications,
        "executions": executions,
        "audit": audit,
    }[table_name]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())
