"""A step's temporary failures are retried by the action runner and each failed try is
in the audit trail; the step's `retries:` is the count, and a permanent failure is
tried once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar

import httpx

from monitor.actions import default_registry
from monitor.actions.registry import Action, ActionContext, Outcome, Plan, StrictModel
from monitor.errors import PermanentActionError, TemporaryActionError
from monitor.store import database
from monitor.store.states import State
from tests.engine.test_interrupted import Rig, stored
from tests.support.engine import offline_engine

POLICY = """
policies:
  - name: stuck
    match: ['alertname="Stuck"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: test.flaky, retries: %d, with: {permanent: %s}}]]
"""


class FlakyParams(StrictModel):
    permanent: bool = False


class Flaky(Action[FlakyParams]):
    """Fails every apply: temporarily (asking for a short wait) or for good."""

    name = "test.flaky"
    Params = FlakyParams
    applied: ClassVar[int] = 0

    async def plan(self, params: FlakyParams, ctx: ActionContext) -> Plan:
        return Plan(action=self.name, summary="flaky")

    async def apply(self, params: FlakyParams, ctx: ActionContext, plan: Plan) -> Outcome:
        Flaky.applied += 1
        if params.permanent:
            raise PermanentActionError("refused for good")
        raise TemporaryActionError("busy, try later", delay=0.05)


async def run(tmp_path: Path, retries: int, permanent: bool) -> tuple[Rig, list[float]]:
    Flaky.applied = 0
    db = database.connect(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate(db)
    registry = default_registry()
    registry.register(Flaky)
    waits: list[float] = []
    async with httpx.AsyncClient() as http:
        text = POLICY % (retries, str(permanent).lower())
        engine = offline_engine(db, text, registry, http, tmp_path)

        async def no_wait(seconds: float) -> None:
            waits.append(seconds)
            await asyncio.sleep(0)

        engine.runner.sleep = no_wait
        await asyncio.wait_for(engine.handle(stored("bbbb0001")), 30)
    return Rig(engine, db), waits


async def test_temporary_failures_are_retried_and_each_try_is_audited(tmp_path: Path) -> None:
    r, waits = await run(tmp_path, retries=2, permanent=False)
    assert Flaky.applied == 3  # the first try and the step's 2 retries
    assert waits == [1.0, 2.0]  # the backoff, longer than the error's 0.05s hint
    [row] = await r.engine.store.for_alert("bbbb0001", datetime(2026, 11, 28, 10, tzinfo=UTC))
    assert row.state == State.FAILED and "busy, try later" in (row.error or "")
    assert row.actions[0].attempts == 3
    kinds = r.audit()
    assert kinds.count(("retry", "apply")) == 2
    assert ("execute", "failed") in kinds
    r.db.dispose()


async def test_a_permanent_failure_is_tried_once(tmp_path: Path) -> None:
    r, waits = await run(tmp_path, retries=5, permanent=True)
    assert Flaky.applied == 1
    assert waits == []
    assert ("retry", "apply") not in r.audit()
    r.db.dispose()
