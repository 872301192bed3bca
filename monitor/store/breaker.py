"""The blast-radius breaker's side of the store: how many live actions a window holds, and
the breaker's state, a row of the ``control`` table shared by every replica.

The row's value is ``{"open", "opened_at", "reason", "closed_at", "closed_by"}`` (times in
ISO 8601). Opening and closing are compare-and-set updates guarded by the stored
``open``: of two replicas that trip it at once, exactly one opens it (and notifies), and
each move is written with its audit record (kind ``breaker``) in the same commit.

A live claim is admitted in the claim's own transaction (:class:`Admission`): the row is
locked first (``FOR UPDATE`` on PostgreSQL; on SQLite a no-op write takes the one
writer's lock), the window is counted under that lock, and every admission or refusal of
the transaction is counted against it. Of replicas claiming at once, each waits for the
other's commit and counts what it wrote, so together they never pass ``count``; the
claim that would pass it opens the breaker in the same commit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, false, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from monitor import durations
from monitor.store import states
from monitor.store.database import transaction
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


def describe(count: int, window: timedelta, actions: int) -> str:
    """The reason a tripped breaker gives, e.g. ``breaker open: 5 live actions in the
    last 10m (max 5)``."""
    return (
        f"breaker open: {actions} live actions in the last {durations.format(window)} (max {count})"
    )


@dataclass(frozen=True)
class Limit:
    """``automation.max_actions`` as a claim made at ``now`` is checked against it."""

    count: int
    window: timedelta
    now: datetime


@dataclass(frozen=True)
class Refusal:
    """A live claim the breaker refused in the store: why, and whether this refusal
    opened the breaker (its caller then tells the notifier)."""

    reason: str
    opened: bool


class Refused(Exception):
    """Raised, after its commit, by a claim the breaker refused (:attr:`refusal`)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


class Admission:
    """The breaker's count within one transaction: built first thing in it (the lock is
    taken before any other, so two claiming transactions cannot deadlock on it), asked
    once per live claim."""

    def __init__(self, conn: Connection, limit: Limit) -> None:
        self._conn = conn
        self._limit = limit
        self.state = _locked(conn, limit.now)
        self.counted = (
            0 if self.state.open else _live(conn, since(self.state, limit.now, limit.window))
        )

    def __call__(self) -> Refusal | None:
        """None: admitted (counted); else why not. The first refusal of a closed
        breaker opens it, with its audit record, in this transaction."""
        if self.state.open:
            return Refusal(self.state.reason or "breaker open", False)
        limit = self._limit
        if self.counted < limit.count:
            self.counted += 1
            return None
        reason = describe(limit.count, limit.window, self.counted)
        before = self.state
        self.state = BreakerState(True, limit.now, reason, before.closed_at, before.closed_by)
        self._conn.execute(
            update(control)
            .where(control.c.key == KEY)
            .values(value=self.state.value(), updated_at=limit.now, updated_by="breaker")
        )
        _audit(self._conn, limit.now, "open", reason, None)
        return Refusal(reason, True)

    def give_back(self) -> None:
        """An admitted claim that was not written after all (a duplicate)."""
        self.counted = max(0, self.counted - 1)


def _locked(conn: Connection, at: datetime) -> BreakerState:
    """Lock the breaker's row (created closed if missing) until the transaction ends."""
    for _ in range(2):
        if conn.dialect.name == "postgresql":
            value = conn.execute(
                select(control.c.value).where(control.c.key == KEY).with_for_update()
            ).first()
        else:  # SQLite: a write first takes the database's one writer lock
            value = conn.execute(
                update(control)
                .where(control.c.key == KEY)
                .values(updated_at=control.c.updated_at)
                .returning(control.c.value)
            ).first()
        if value is not None:
            return BreakerState.from_value(value[0])
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        conn.execute(
            dialect.insert(control)
            .values(key=KEY, value=BreakerState().value(), updated_at=at, updated_by="breaker")
            .on_conflict_do_nothing(index_elements=[control.c.key])
        )
    raise AssertionError("the breaker's row was neither found nor created")


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
    with transaction(engine) as conn:
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
    with transaction(engine) as conn:
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
