"""Evidence: what a policy's diagnostics gathered for an execution, one row each."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from monitor.store.records import Evidence
from monitor.store.schema import evidence, executions


def add(handle: Engine, item: Evidence) -> int:
    """Store one diagnostic's result (``item.id`` is ignored); returns its id."""
    with handle.begin() as conn:
        inserted = conn.execute(insert(evidence).values(item.row()).returning(evidence.c.id))
        return int(inserted.scalar_one())


def for_execution(handle: Engine, execution_id: int) -> list[Evidence]:
    """An execution's evidence, oldest first (by ``started_at``, then id)."""
    with handle.connect() as conn:
        rows = conn.execute(
            select(evidence)
            .where(evidence.c.execution_id == execution_id)
            .order_by(evidence.c.started_at, evidence.c.id)
        ).all()
    return [Evidence.from_row(dict(row._mapping)) for row in rows]


LADDER_LIMIT = 100  # evidence items of one ladder read at most


def for_ladder(
    handle: Engine, execution_id: int, limit: int = LADDER_LIMIT
) -> list[tuple[int, Evidence]]:
    """What the diagnostics gathered for the ladder ``execution_id`` is a step of (the
    same alert under the same policy), step by step and oldest first within a step, each
    with its step (1-based); empty when there is no such execution. At most ``limit``
    items, in one query."""
    e = executions.c
    with handle.connect() as conn:
        me = conn.execute(
            select(e.fingerprint, e.starts_at, e.policy).where(e.id == execution_id)
        ).first()
        if me is None:
            return []
        rows = conn.execute(
            select(evidence, (e.step + 1).label("ladder_step"))
            .join(executions, e.id == evidence.c.execution_id)
            .where(
                e.fingerprint == me.fingerprint,
                e.starts_at == me.starts_at,
                e.policy == me.policy,
            )
            .order_by(e.step, evidence.c.started_at, evidence.c.id)
            .limit(limit)
        ).all()
    return [(int(row.ladder_step), Evidence.from_row(dict(row._mapping))) for row in rows]
