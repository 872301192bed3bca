"""Evidence: what a policy's diagnostics gathered for an execution, one row each."""

from __future__ import annotations

from sqlalchemy import Engine, insert, select

from monitor.store.records import Evidence
from monitor.store.schema import evidence


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
