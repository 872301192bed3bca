"""Alerts coalesced into another alert's execution: written with a batch, read back.

A batch's commit (:mod:`.batches`) writes each coalesced alert (:class:`Member`) as a row
and its audit records in bulk (:func:`write`); the engine reads the alerts coalesced into
an execution back with :func:`members`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from monitor.store.notifications import _Driver
from monitor.store.queue import aware, in_chunks
from monitor.store.records import Audit, ExecutionKey
from monitor.store.schema import coalesced

# Written with a batch ---------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """An alert recorded against another alert's execution of the same policy/target."""

    key: ExecutionKey
    labels: Mapping[str, str]
    reason: str
    target_key: str
    at: datetime


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


def write(
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
