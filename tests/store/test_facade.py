"""The async store: typed records out, StoreError (never SQLAlchemy's) when the database
is gone, and the same guarded moves as the synchronous functions."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import StoreError
from monitor.store import database, locks, queries
from monitor.store import executions as store
from monitor.store.facade import Store
from monitor.store.records import ActionEntry, Audit, Execution, ExecutionKey, Lock
from monitor.store.states import IllegalTransition, RevertState, State, VerifyState

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)
LOCK = Lock("Deployment/shop/api", "replica-a", NOW, timedelta(minutes=10))

# One element of `actions` as today's engine writes it, plus a key no version knows.
WRITTEN_TODAY = {
    "action": "kubernetes.scale",
    "params": {"replicas": 6},
    "plan": {"summary": "scale shop/api 4 -> 6", "changes": []},
    "outcome": {"summary": "scaled", "revert_state": {"replicas": 4}},
    "error": None,
    "from_a_future_version": True,
}


def _row(**fields: Any) -> dict[str, Any]:
    return {
        "alertname": "HighLatency",
        "labels": {"alertname": "HighLatency", "namespace": "shop"},
        "target_key": "Deployment/shop/api",
        "target": {"kind": "Deployment", "namespace": "shop", "name": "api"},
        "dry_run": False,
        "actions": [],
        "created_at": NOW,
        "updated_at": NOW,
        "state": State.RUNNING,
        **fields,
    }


def _audit(kind: str) -> Audit:
    return Audit(NOW, kind, f"a {kind}", "scale-out", "fp1")


def test_an_actions_entry_written_today_loads_as_an_action_entry() -> None:
    entry = ActionEntry.model_validate(WRITTEN_TODAY)
    assert entry.action == "kubernetes.scale"
    assert entry.params == {"replicas": 6}
    assert entry.revert_state == {"replicas": 4}
    assert entry.attempts == 0 and entry.revert is None
    assert entry.stored() == {
        "action": "kubernetes.scale",
        "params": {"replicas": 6},
        "plan": {"summary": "scale shop/api 4 -> 6", "changes": []},
        "outcome": {"summary": "scaled", "revert_state": {"replicas": 4}},
        "attempts": 0,
    }
    assert ActionEntry(action="notify", error="boom").revert_state is None


async def test_executions_come_back_typed(db: database.Handle) -> None:
    s = Store(db)
    key = ExecutionKey("scale-out", 0, "fp1", NOW)
    started = await s.start(key, _row(), _audit("decision"), LOCK)
    assert started is not None
    execution_id, locked = started
    assert locked
    entry = ActionEntry(action="kubernetes.scale", params={"replicas": 6}, attempts=2)
    assert await s.move(
        execution_id,
        "state",
        State.RUNNING,
        State.SUCCEEDED,
        _audit("finish"),
        release=LOCK,
        actions=[entry, WRITTEN_TODAY],
        verify_state=VerifyState.PENDING,
        verify_at=NOW + timedelta(minutes=1),
        finished_at=NOW,
    )
    got = await s.get(execution_id)
    assert isinstance(got, Execution)
    assert got.state is State.SUCCEEDED and got.verify_state is VerifyState.PENDING
    assert got.revert_state is RevertState.NONE
    assert got.actions == (entry, ActionEntry.model_validate(WRITTEN_TODAY))
    assert got.actions[1].revert_state == {"replicas": 4}
    assert got.target == {"kind": "Deployment", "namespace": "shop", "name": "api"}
    assert got.starts_at == NOW and got.finished_at == NOW and got.updated_at == NOW
    assert got.verify_at is not None and got.verify_at.tzinfo is not None
    assert [e.id for e in await s.for_alert("fp1", NOW)] == [execution_id]
    assert [e.id for e in await s.due()] == [execution_id]  # a pending verification
    assert await s.get(execution_id + 1000) is None


async def test_deferring_and_claim_conflicts_pass_through(db: database.Handle) -> None:
    s = Store(db)
    key = ExecutionKey("scale-out", 1, "fp1", NOW)
    execution_id = await s.defer(key, _row(due_at=NOW), _audit("defer"))
    [deferred] = await s.for_alert("fp1", NOW, "scale-out")
    assert deferred.state is State.DEFERRED and deferred.due_at == NOW
    with pytest.raises(store.AlreadyClaimed):
        await s.defer(key, _row(due_at=NOW), _audit("defer"))
    with pytest.raises(IllegalTransition):
        await s.move(execution_id, "state", State.DEFERRED, State.SUCCEEDED, _audit("x"))
    assert await s.start(key, _row(), _audit("decision"), LOCK, existing=execution_id)
    assert await s.start(key, _row(), _audit("decision"), LOCK, existing=execution_id) is None


async def test_audit_locks_and_the_kill_switch(db: database.Handle) -> None:
    s = Store(db)
    await s.record(_audit("escalate"))
    assert not await s.is_paused()
    message = await s.set_paused(True, "oncall", "incident 42", NOW)
    assert message == "automation paused by oncall: incident 42"
    assert await s.is_paused()
    assert queries.count(db, "audit") == 2
    await s.ping()
    assert locks.take(db, LOCK)
    assert await s.renew(LOCK, NOW + timedelta(minutes=5))
    await s.release(LOCK)
    assert not await s.renew(LOCK, NOW + timedelta(minutes=6))
    assert await s.backlog() == (0, 0)


async def test_a_postgres_that_does_not_answer_is_a_store_error_naming_the_operation() -> None:
    db = database.connect("postgresql://monitor:hunter2@127.0.0.1:1/monitor")
    s = Store(db)
    try:
        with pytest.raises(StoreError) as caught:
            await s.get(1)
        with pytest.raises(StoreError) as moving:
            await s.move(1, "state", State.DEFERRED, State.RUNNING, _audit("decision"))
        with pytest.raises(StoreError) as pinging:
            await s.ping()
    finally:
        db.dispose()
    assert str(caught.value) == "get: OperationalError"
    assert str(moving.value) == "move: OperationalError"
    assert str(pinging.value) == "ping: OperationalError"
    assert "hunter2" not in str(caught.value)


async def test_a_sqlite_file_whose_directory_is_gone_is_a_store_error(tmp_path: Path) -> None:
    directory = tmp_path / "data"
    db = database.connect(f"sqlite:///{directory / 'store.db'}")
    shutil.rmtree(directory)
    s = Store(db)
    try:
        with pytest.raises(StoreError) as caught:
            await s.due()
    finally:
        db.dispose()
    assert str(caught.value) == "due: OperationalError"
