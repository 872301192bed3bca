"""Approvals in the store: the key that signs approve/reject links, and the answer.

The key is one row of the ``control`` table, made once by whichever replica needs it
first, so every replica checks every link. An answer is one guarded move of the
execution (``awaiting_approval`` -> ``deferred``, approved, decided again at once; or
-> ``rejected``) with its audit record: of two answers to one request exactly one
counts, for the API, the links and the command line alike.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from monitor.store import executions
from monitor.store.database import transaction
from monitor.store.records import Audit, Execution
from monitor.store.schema import control
from monitor.store.schema import executions as executions_table
from monitor.store.states import State

KEY = "approval_key"  # the control row holding the links' signing key


def signing_key(engine: Engine, at: datetime) -> str:
    """The shared signing key, created (random, 32 bytes) if there is none yet."""
    with transaction(engine) as conn:
        row = conn.execute(select(control.c.value).where(control.c.key == KEY)).first()
        if row is not None:
            return str(row[0]["key"])
        value = {"key": secrets.token_urlsafe(32)}
        try:
            with conn.begin_nested():
                conn.execute(
                    insert(control),
                    [{"key": KEY, "value": value, "updated_at": at, "updated_by": "conea-monitor"}],
                )
        except IntegrityError:  # another replica made it a moment before
            row = conn.execute(select(control.c.value).where(control.c.key == KEY)).one()
            return str(row[0]["key"])
        return value["key"]


@dataclass(frozen=True)
class Answer:
    """What became of an answer: ``ok`` when it counted; else why not (``state``: the
    execution's state now, None when there is no such execution)."""

    ok: bool
    state: str | None
    message: str
    policy: str | None = None  # the execution's policy, when there is such an execution


def answer(
    engine: Engine,
    execution_id: int,
    *,
    approve: bool,
    by: str,
    reason: str,
    at: datetime,
) -> Answer:
    """Approve or reject an execution awaiting approval (one guarded move)."""
    with engine.connect() as conn:
        found = conn.execute(
            select(executions_table).where(executions_table.c.id == execution_id)
        ).first()
    if found is None:
        return Answer(False, None, f"no execution #{execution_id}")
    row = Execution.from_row(dict(found._mapping))
    where = f"step {row.step + 1} of {row.policy!r} on {row.target_key}"
    verb = "approved" if approve else "rejected"
    message = f"{where}: {verb} by {by}" + (f": {reason}" if reason else "")
    record = Audit(
        at,
        "approval",
        message,
        row.policy,
        row.fingerprint,
        row.target_key,
        verb,
        {"by": by, "reason": reason},
    )
    if approve:
        moved = executions.move(
            engine,
            execution_id,
            "state",
            State.AWAITING_APPROVAL,
            State.DEFERRED,
            record,
            due_at=at,
            approved_by=by,
            approved_at=at,
            reason=f"approved by {by}" + (f": {reason}" if reason else ""),
            updated_at=at,
        )
    else:
        moved = executions.move(
            engine,
            execution_id,
            "state",
            State.AWAITING_APPROVAL,
            State.REJECTED,
            record,
            due_at=None,
            reason=f"rejected by {by}" + (f": {reason}" if reason else ""),
            updated_at=at,
        )
    if moved:
        state = State.DEFERRED if approve else State.REJECTED
        return Answer(True, str(state), message, row.policy)
    with engine.connect() as conn:
        state = conn.execute(
            select(executions_table.c.state).where(executions_table.c.id == execution_id)
        ).scalar_one()
    return Answer(
        False,
        str(state),
        f"execution #{execution_id} is {state}, not awaiting approval",
        row.policy,
    )
