"""An action that hangs, or that is killed mid-flight, never leaves its target locked or
its execution running: the row reaches a final state, the lock is free, and the audit
trail says why."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import select

from monitor.actions import default_registry
from monitor.actions.registry import Action, ActionContext, Outcome, Plan, StrictModel
from monitor.engine.core import Engine
from monitor.store import database
from monitor.store.notifications import StoredNotification
from monitor.store.records import Audit, ExecutionKey, Lock
from monitor.store.schema import audit, locks
from monitor.store.states import State
from tests.support import engine as support
from tests.support.engine import firing, offline_engine

POLICY = """
policies:
  - name: stuck
    match: ['alertname="Stuck"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: test.hang, timeout: %s, retries: 0}]]
"""


class HangParams(StrictModel):
    pass


class Hang(Action[HangParams]):
    """Plans at once; applying never returns (a hung API call, a stuck connection)."""

    name = "test.hang"
    Params = HangParams
    entered: ClassVar[asyncio.Event]

    async def plan(self, params: HangParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="hang forever")

    async def apply(self, params: HangParams, ctx: ActionContext, plan: Plan) -> Outcome:
        Hang.entered.set()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


@dataclass
class Rig:
    engine: Engine
    db: Any

    def locks(self) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(select(locks)).all())

    def audit(self) -> list[tuple[str, str | None]]:
        with self.db.connect() as conn:
            rows = conn.execute(select(audit.c.kind, audit.c.outcome).order_by(audit.c.id))
            return [(r.kind, r.outcome) for r in rows]


def stored(fingerprint: str) -> StoredNotification:
    return support.stored(
        [firing(fingerprint, alertname="Stuck", namespace="production", deployment="api")]
    )


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, timeout: str) -> AsyncIterator[Rig]:
    Hang.entered = asyncio.Event()
    db = database.connect(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate(db)
    registry = default_registry()
    registry.register(Hang)
    async with httpx.AsyncClient() as http:
        engine = offline_engine(db, POLICY % timeout, registry, http, tmp_path)
        try:
            yield Rig(engine, db)
        finally:
            db.dispose()


async def test_an_action_killed_mid_flight_frees_the_lock_and_fails_the_row(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path, "1h") as r:
        task = asyncio.create_task(r.engine.handle(stored("aaaa0001")))
        await asyncio.wait_for(Hang.entered.wait(), 10)
        [row] = await r.engine.store.for_alert("aaaa0001", datetime(2026, 11, 28, 10, tzinfo=UTC))
        assert row.state == State.RUNNING
        assert [lock.key for lock in r.locks()] == [row.target_key]

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

        [row] = await r.engine.store.for_alert("aaaa0001", row.starts_at)
        assert row.state == State.FAILED
        assert row.error is not None and "interrupted" in row.error
        assert r.locks() == []
        assert r.audit()[-1] == ("finish", "failed")


async def test_a_hanging_action_hits_its_step_timeout_and_frees_the_lock(tmp_path: Path) -> None:
    async with rig(tmp_path, "1s") as r:
        await asyncio.wait_for(r.engine.handle(stored("aaaa0002")), 30)

        [row] = await r.engine.store.for_alert("aaaa0002", datetime(2026, 11, 28, 10, tzinfo=UTC))
        assert row.state == State.FAILED
        assert row.error is not None and "timed out after 1s" in row.error
        [entry] = row.actions
        assert entry.action == "test.hang" and entry.plan is not None and entry.outcome is None
        assert r.locks() == []
        kinds = r.audit()
        assert ("execute", "failed") in kinds and ("finish", "failed") in kinds
        assert kinds[-1] == ("escalate", "exhausted")  # a one-step ladder: a person takes over


async def test_a_step_left_running_by_a_stopped_replica_is_failed_by_the_sweep(
    tmp_path: Path,
) -> None:
    """A replica killed mid-action (no chance to clean up) leaves its row running; once
    its lock on the target has expired, any replica's sweep fails the step and the
    ladder goes on. A step whose owner still holds the lock is left alone."""
    async with rig(tmp_path, "1h") as r:
        store, starts = r.engine.store, datetime(2026, 11, 28, 10, tzinfo=UTC)
        then = datetime.now(UTC) - timedelta(minutes=5)
        for fingerprint, owner, taken_at in (
            ("dead0001", "killed-replica", then),  # lock expired 4 minutes ago
            ("live0001", "busy-replica", datetime.now(UTC)),  # lock held, renewed
        ):
            target_key = f"Deployment/production/{fingerprint}"
            row: dict[str, Any] = {
                "alertname": "Stuck",
                "labels": {"alertname": "Stuck"},
                "target_key": target_key,
                "target": {},
                "actions": [],
                "state": State.RUNNING,
                "dry_run": False,
                "created_at": then,
                "updated_at": then,
                "owner": owner,
            }
            claimed = await store.start(
                ExecutionKey("stuck", 0, fingerprint, starts),
                row,
                Audit(then, "decision", "claimed before the crash", outcome="execute"),
                Lock(target_key, owner, taken_at, timedelta(minutes=1)),
            )
            assert claimed is not None and claimed[1]

        await r.engine.sweep()

        [dead] = await store.for_alert("dead0001", starts)
        assert dead.state == State.FAILED
        assert dead.error is not None and "abandoned" in dead.error
        [live] = await store.for_alert("live0001", starts)
        assert live.state == State.RUNNING
        kinds = r.audit()
        assert ("finish", "failed") in kinds
        assert kinds[-1] == ("escalate", "exhausted")  # the ladder goes on: a person
