"""The blast-radius breaker's side of the store: how many live actions a window holds, and
the breaker's state, a row of the ``control`` table shared by every replica.

The row's value is ``{"open", "opened_at", "reason", "closed_at", "closed_by"}`` (times in
ISO 8601). Opening and closing are compare-and-set updates guarded by the stored
``open``: of two replicas that trip it at once, exactly one opens it (and notifies), and
each move is written with its audit record (kind ``breaker``) in the same commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, false, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store import states
from monitor.store.schema import audit, control, executions

KEY = "breaker"  # the breaker's row in the control table


@dataclass(frozen=True)
class BreakerState:
    """The stored breaker: closed and never opened unless the row says otherwise."""

    open: bool = False
    opened_at: datetime | None = None
    reason: str = ""
    closed_at: datetime | None = None
    closed_by: str | None = None

    @classmethod
    def from_value(cls, value: Any) -> BreakerState:
        """The state a stored value holds; a value that is no mapping reads as closed."""
        if not isinstance(value, Mapping):
            return cls()
        return cls(
            open=value.get("open") is True,
            opened_at=_time(value.get("opened_at")),
            reason=str(value.get("reason") or ""),
            closed_at=_time(value.get("closed_at")),
            closed_by=str(value["closed_by"]) if value.get("closed_by") is not None else None,
        )

    def value(self) -> dict[str, Any]:
        """The JSON the control row holds."""
        return {
            "open": self.open,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "reason": self.reason,
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
            "closed_by": self.closed_by,
        }


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _live(conn: Connection, since: datetime) -> int:
    query = select(func.count()).where(
        executions.c.dry_run == false(),
        executions.c.state.in_([s.value for s in states.ACTED]),
        executions.c.created_at >= since,
    )
    return int(conn.execute(query).scalar_one())


def live_actions(engine: Engine, since: datetime) -> int:
    """Executions created at or after ``since`` that acted for real (not dry-run)."""
    with engine.connect() as conn:
        return _live(conn, since)


def since(state: BreakerState, now: datetime, window: timedelta) -> datetime:
    """Where the breaker starts counting: the window, or its last close if later (a resume
    gives the next ``count`` actions)."""
    start = now - window
    return max(start, state.closed_at) if state.closed_at is not None else start


def reading(engine: Engine, now: datetime, window: timedelta) -> tuple[BreakerState, int]:
    """The stored state and the live actions counted at ``now``, on one connection."""
    with engine.connect() as conn:
        state = _read(conn)
        return state, _live(conn, since(state, now, window))


def _read(conn: Connection) -> BreakerState:
    value = conn.execute(select(control.c.value).where(control.c.key == KEY)).scalar()
    return BreakerState.from_value(value)


def breaker_state(engine: Engine) -> BreakerState:
    with engine.connect() as conn:
        return _read(conn)


def _is_open() -> Any:
    return control.c.value["open"].as_boolean()


def _audit(conn: Connection, at: datetime, outcome: str, message: str, by: str | None) -> None:
    conn.execute(
        insert(audit),
        [
            {
                "at": at,
                "kind": "breaker",
                "outcome": outcome,
                "message": message,
                "details": {"by": by} if by else None,
            }
        ],
    )


def open_breaker(engine: Engine, at: datetime, reason: str) -> bool:
    """Open the breaker; True only for the call that moved it from closed to open."""
    with engine.begin() as conn:
        before = _read(conn)
        value = BreakerState(True, at, reason, before.closed_at, before.closed_by).value()
        moved = conn.execute(
            update(control)
            .where(control.c.key == KEY, func.coalesce(_is_open(), False) == false())
            .values(value=value, updated_at=at, updated_by="breaker")
        ).rowcount
        if not moved:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            inserted = conn.execute(
                dialect.insert(control)
                .values(key=KEY, value=value, updated_at=at, updated_by="breaker")
                .on_conflict_do_nothing(index_elements=[control.c.key])
                .returning(control.c.key)
            ).first()
            if inserted is None:
                return False  # it was open already
        _audit(conn, at, "open", reason, None)
    return True


def close_breaker(engine: Engine, at: datetime, by: str) -> bool:
    """Close the breaker (``closed_at = at``); True if it was open."""
    with engine.begin() as conn:
        before = _read(conn)
        if not before.open:
            return False
        value = BreakerState(False, before.opened_at, before.reason, at, by).value()
        moved = conn.execute(
            update(control)
            .where(control.c.key == KEY, _is_open() == True)  # noqa: E712 (SQL, not Python)
            .values(value=value, updated_at=at, updated_by=by)
        ).rowcount
        if not moved:
            return False  # another caller closed it in between
        _audit(conn, at, "closed", f"breaker closed by {by}", by)
    return True
