"""Shared switches in the ``control`` table; the kill switch is one of them.

Pausing and resuming go through :func:`set_paused` and :func:`resume`, for the engine,
the API and the command line alike, so the switch never changes without its audit
record. The switch remembers when the pause began (``since``): resume queues the alerts
skipped since then to be decided again (:mod:`.catchup`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from monitor.store import catchup
from monitor.store.database import transaction
from monitor.store.queue import aware
from monitor.store.schema import audit, control

PAUSE_KEY = "paused"  # the kill switch's row in the control table


def get_control(engine: Engine, key: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(control).where(control.c.key == key)).first()
    if row is None:
        return None
    return {"value": row.value, "updated_at": row.updated_at, "updated_by": row.updated_by}


@dataclass(frozen=True)
class Resumed:
    """What a resume did: ``caught_up`` alerts skipped during the pause were queued to
    be decided again (``notification_id``), ``passed_over`` were not (catch-up off),
    ``left_out`` were over the limit; ``message`` is its audit record's."""

    message: str
    was_paused: bool
    catch_up: bool = True
    caught_up: int = 0
    passed_over: int = 0
    left_out: int = 0
    notification_id: int | None = None
    limit: int = catchup.LIMIT

    @property
    def summary(self) -> str:
        """For the API's answer and the command line: "automation resumed; 3 alerts
        skipped during the pause are decided again"."""
        return "automation resumed" + self.catch_up_text

    @property
    def catch_up_text(self) -> str:
        """What became of the alerts skipped during the pause ("" if nothing was paused)."""
        if not self.was_paused:
            return ""
        if not self.catch_up:
            count = self.passed_over
            text = f"; {_alerts(count)} skipped during the pause {_be(count)} not decided again"
            return text + " (catch-up off)"
        text = f"; {_alerts(self.caught_up)} skipped during the pause {_be(self.caught_up)} "
        text += "decided again"
        if self.left_out:
            text += (
                f"; {self.left_out:,} more {_be(self.left_out)} left out "
                f"(at most {self.limit:,} are decided again)"
            )
        return text


def _alerts(count: int) -> str:
    return f"{count:,} alert" + ("" if count == 1 else "s")


def _be(count: int) -> str:
    return "is" if count == 1 else "are"


def set_paused(engine: Engine, paused: bool, by: str, reason: str, at: datetime) -> str:
    """The kill switch, for the engine, the API and the command line alike: the switch and
    its audit record in one transaction. Returns the audit message. Resuming this way
    queues nothing again (:func:`resume` does)."""
    if not paused:
        return resume(engine, by, reason, at, catch_up=False).message
    message = f"automation paused by {by}" + (f": {reason}" if reason else "")
    with transaction(engine) as conn:
        found = _locked(conn)
        since = _paused_since(found) or at  # paused again: the pause began before
        value = {"paused": True, "reason": reason, "since": since.isoformat()}
        put(conn, PAUSE_KEY, value, at, by)
        conn.execute(
            insert(audit), [{"at": at, "kind": "pause", "message": message, "outcome": "paused"}]
        )
    return message


def resume(
    engine: Engine,
    by: str,
    reason: str,
    at: datetime,
    *,
    catch_up: bool = True,
    limit: int = catchup.LIMIT,
) -> Resumed:
    """Turn the kill switch off. The alerts skipped because of the pause since it began
    that the store still knows as firing are queued to be decided again (unless not
    ``catch_up``): one notification, written in the same transaction as the switch and
    its audit record, so of two replicas resuming at once only one writes it."""
    for attempt in range(RETRIES + 1):
        try:
            return _resume(engine, by, reason, at, catch_up, limit)
        except DBAPIError as exc:  # the catch-up's alerts and a webhook's, locked in turn
            if attempt == RETRIES or not isinstance(exc.orig, _CONTENTION):
                raise
    raise AssertionError("unreachable")


RETRIES = 3
_CONTENTION = (psycopg.errors.DeadlockDetected, psycopg.errors.SerializationFailure)


def _resume(
    engine: Engine, by: str, reason: str, at: datetime, catch_up: bool, limit: int
) -> Resumed:
    with transaction(engine) as conn:
        since = _paused_since(_locked(conn))
        result = Resumed("", was_paused=since is not None, catch_up=catch_up, limit=limit)
        if since is not None:
            found = catchup.find(conn, since, limit)
            if not catch_up:
                result = replace(result, passed_over=len(found.alerts))
            elif found.alerts:
                nid = catchup.write(conn, found.alerts, at)
                result = replace(
                    result,
                    caught_up=len(found.alerts),
                    left_out=found.left_out,
                    notification_id=nid,
                )
        message = f"automation resumed by {by}" + (f": {reason}" if reason else "")
        result = replace(result, message=message + result.catch_up_text)
        put(conn, PAUSE_KEY, {"paused": False, "reason": reason}, at, by)
        details = {
            "caught_up": result.caught_up,
            "passed_over": result.passed_over,
            "left_out": result.left_out,
            "notification_id": result.notification_id,
        }
        conn.execute(
            insert(audit),
            [
                {
                    "at": at,
                    "kind": "resume",
                    "message": result.message,
                    "outcome": "resumed",
                    "details": details if result.was_paused else None,
                }
            ],
        )
    return result


def _locked(conn: Connection) -> Any:
    """The kill switch's row, locked for this transaction (a write first: on SQLite it
    takes the write lock, on PostgreSQL the row's; a second resume waits for the first
    and then sees what it wrote)."""
    c = control.c
    conn.execute(update(control).where(c.key == PAUSE_KEY).values(updated_at=c.updated_at))
    return conn.execute(select(control).where(c.key == PAUSE_KEY)).first()


def _paused_since(row: Any) -> datetime | None:
    """When the pause in force began (None: not paused). Rows written before the pause
    kept its start say when they were last set."""
    if row is None or not isinstance(row.value, dict) or not row.value.get("paused"):
        return None
    since = row.value.get("since")
    if isinstance(since, str):
        with contextlib.suppress(ValueError):
            return aware(datetime.fromisoformat(since))
    return aware(row.updated_at)


@dataclass(frozen=True)
class Switch:
    """The kill switch as the store holds it: on or off, when the pause in force began
    (``since``), and who changed it last, when and why (a pause or a resume)."""

    paused: bool
    since: datetime | None = None
    by: str | None = None
    at: datetime | None = None
    reason: str = ""


def switch(engine: Engine) -> Switch:
    """The kill switch in the store (the config's ``automation.paused`` aside); never
    set: off, no one changed it."""
    with engine.connect() as conn:
        row = conn.execute(select(control).where(control.c.key == PAUSE_KEY)).first()
    if row is None:
        return Switch(False)
    value = row.value if isinstance(row.value, dict) else {}
    since = _paused_since(row)
    reason = value.get("reason")
    return Switch(
        paused=since is not None,
        since=since,
        by=row.updated_by,
        at=aware(row.updated_at),
        reason=reason if isinstance(reason, str) else "",
    )


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
    with transaction(engine) as conn:
        put(conn, key, value, at, by)
        if audited is not None:
            kind, message, outcome = audited
            conn.execute(
                insert(audit), [{"at": at, "kind": kind, "message": message, "outcome": outcome}]
            )


def put(conn: Connection, key: str, value: Any, at: datetime, by: str | None) -> None:
    """Set a switch within the caller's transaction (``conn``)."""
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
