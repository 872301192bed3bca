"""Pages: every PagerDuty incident conea-monitor opened, until its resolve is sent.

A row per (notifier, dedup key): a step's page (kind ``step``, key
``conea-monitor/<execution id>``), an approval request (``approval``) or the breaker's
message (``breaker``). The engine (:mod:`monitor.engine.paging`) records a page once
PagerDuty accepted its trigger, and marks it resolved in the same commit as the audit
record of the resolve (kind ``page``), so a resolve pending or failed when a process
stops is still owed, and found again, after a restart.

Sending a resolve is claimed first (:func:`claim`, a compare-and-set on ``retry_at``):
of two replicas, one sends it. A failed resolve leaves ``retry_at`` at its next try.
Open pages are found by ``ix_pages_open`` (a partial index on ``opened_at`` of the
unresolved rows), so the sweep reads the open pages, not the executions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Select, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store.queue import aware, in_chunks
from monitor.store.records import Audit, Execution
from monitor.store.schema import alerts, audit, executions, pages

KINDS = ("step", "approval", "breaker")


@dataclass(frozen=True)
class Page:
    """One page conea-monitor opened (``resolved_at`` None: its resolve is owed)."""

    id: int
    notifier: str
    dedup_key: str
    kind: str
    execution_id: int | None
    opened_at: datetime
    resolved_at: datetime | None
    retry_at: datetime | None
    attempts: int
    error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Page:
        execution_id = row.get("execution_id")
        return cls(
            id=int(row["id"]),
            notifier=str(row["notifier"]),
            dedup_key=str(row["dedup_key"]),
            kind=str(row["kind"]),
            execution_id=int(execution_id) if execution_id is not None else None,
            opened_at=aware(row["opened_at"]),
            resolved_at=aware(row["resolved_at"]) if row.get("resolved_at") else None,
            retry_at=aware(row["retry_at"]) if row.get("retry_at") else None,
            attempts=int(row.get("attempts") or 0),
            error=row.get("error"),
        )


@dataclass(frozen=True)
class Ladder:
    """What ends a step's page: its execution, the executions of its ladder (the same
    alert and policy, by step) and whether the alert was stored as resolved."""

    execution: Execution
    rows: list[Execution]
    alert_resolved: bool


def opened(
    handle: Engine,
    *,
    notifier: str,
    dedup_key: str,
    kind: str,
    execution_id: int | None,
    at: datetime,
    reopen: bool = True,
) -> None:
    """Record a page PagerDuty accepted. A trigger for a key resolved before opens it
    again (``reopen``, as PagerDuty does); with ``reopen`` False an existing row is left
    as it is (a page found in an execution's recorded outcome)."""
    assert kind in KINDS, kind
    dialect = postgresql if handle.dialect.name == "postgresql" else sqlite
    values = {
        "notifier": notifier,
        "dedup_key": dedup_key,
        "kind": kind,
        "execution_id": execution_id,
        "opened_at": at,
        "attempts": 0,
    }
    statement = dialect.insert(pages).values(**values)
    keys = [pages.c.notifier, pages.c.dedup_key]
    if reopen:
        again = {"opened_at": at, "resolved_at": None, "retry_at": None, "attempts": 0}
        statement = statement.on_conflict_do_update(
            index_elements=keys, set_={**again, "error": None}
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=keys)
    with handle.begin() as conn:
        conn.execute(statement)


def of_executions(handle: Engine, execution_ids: Sequence[int], kind: str) -> list[Page]:
    """The open pages of kind ``kind`` of these executions."""
    found: list[Page] = []
    with handle.connect() as conn:
        for chunk in in_chunks(sorted(set(execution_ids))):
            rows = conn.execute(
                select(pages)
                .where(
                    pages.c.execution_id.in_(chunk),
                    pages.c.kind == kind,
                    pages.c.resolved_at.is_(None),
                )
                .order_by(pages.c.id)
            )
            found += [Page.from_row(dict(row._mapping)) for row in rows]
    return found


def open_query(since: datetime, limit: int) -> Select[Any]:
    """Open pages opened at ``since`` or later, oldest first, at most ``limit`` (read by
    ``ix_pages_open``: the open pages only, whatever the number of executions)."""
    return (
        select(pages)
        .where(pages.c.resolved_at.is_(None), pages.c.opened_at >= since)
        .order_by(pages.c.opened_at, pages.c.id)
        .limit(limit)
    )


def open_since(handle: Engine, since: datetime, limit: int) -> list[Page]:
    """:func:`open_query`'s pages."""
    with handle.connect() as conn:
        rows = conn.execute(open_query(since, limit))
        return [Page.from_row(dict(row._mapping)) for row in rows]


def claim(handle: Engine, page_id: int, now: datetime, until: datetime) -> bool:
    """Take the sending of a page's resolve until ``until``: False when it is resolved,
    another replica sends it, or a failed resolve waits for its next try."""
    with handle.begin() as conn:
        result = conn.execute(
            update(pages)
            .where(
                pages.c.id == page_id,
                pages.c.resolved_at.is_(None),
                or_(pages.c.retry_at.is_(None), pages.c.retry_at <= now),
            )
            .values(retry_at=until)
        )
        return bool(result.rowcount)


def resolved(handle: Engine, page_id: int, at: datetime, record: Audit) -> None:
    """The resolve was sent: the page is closed, with its audit record (one commit)."""
    with handle.begin() as conn:
        conn.execute(
            update(pages)
            .where(pages.c.id == page_id)
            .values(resolved_at=at, retry_at=None, error=None, attempts=pages.c.attempts + 1)
        )
        conn.execute(insert(audit), [record.row(_execution(conn, page_id))])


def failed(handle: Engine, page_id: int, retry_at: datetime, error: str, record: Audit) -> None:
    """The resolve failed: tried again from ``retry_at``, with its audit record."""
    with handle.begin() as conn:
        conn.execute(
            update(pages)
            .where(pages.c.id == page_id, pages.c.resolved_at.is_(None))
            .values(retry_at=retry_at, error=error, attempts=pages.c.attempts + 1)
        )
        conn.execute(insert(audit), [record.row(_execution(conn, page_id))])


def ladders(handle: Engine, execution_ids: Sequence[int]) -> dict[int, Ladder]:
    """For each execution (a step's page), its ladder and its alert's resolution, in three
    queries whatever the number of executions."""
    e = executions.c
    out: dict[int, Ladder] = {}
    with handle.connect() as conn:
        mine: dict[int, dict[str, Any]] = {}
        for chunk in in_chunks(sorted(set(execution_ids))):
            for row in conn.execute(select(executions).where(e.id.in_(chunk))):
                mine[int(row.id)] = dict(row._mapping)
        fingerprints = sorted({str(row["fingerprint"]) for row in mine.values()})
        same: dict[tuple[str, datetime, str], list[dict[str, Any]]] = {}
        gone: set[tuple[str, datetime]] = set()
        for chunk in in_chunks(fingerprints):
            for row in conn.execute(
                select(executions).where(e.fingerprint.in_(chunk)).order_by(e.step, e.id)
            ):
                key = (str(row.fingerprint), aware(row.starts_at), str(row.policy))
                same.setdefault(key, []).append(dict(row._mapping))
            for fingerprint, starts_at in conn.execute(
                select(alerts.c.fingerprint, alerts.c.starts_at).where(
                    alerts.c.fingerprint.in_(chunk), alerts.c.status == "resolved"
                )
            ):
                gone.add((str(fingerprint), aware(starts_at)))
    for ident, found in mine.items():
        alert = (str(found["fingerprint"]), aware(found["starts_at"]))
        ladder = same.get((*alert, str(found["policy"])), [])
        out[ident] = Ladder(
            Execution.from_row(found), [Execution.from_row(r) for r in ladder], alert in gone
        )
    return out


def _execution(conn: Connection, page_id: int) -> int | None:
    value = conn.execute(select(pages.c.execution_id).where(pages.c.id == page_id)).scalar()
    return int(value) if value is not None else None
