"""Shared switches in the ``control`` table; the kill switch is one of them.

Pausing and resuming go through :func:`set_paused`, for the engine, the API and the
command line alike, so the switch never changes without its audit record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from monitor.store.schema import audit, control

PAUSE_KEY = "paused"  # the kill switch's row in the control table


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
