"""A step approved while the evidence for its approval is still being gathered joins
that gathering: each diagnostic runs once, its result is recorded once and the
execution's page shows it once; and nobody is asked to approve it any more."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor import targets
from monitor.actions import builtin, notify
from monitor.actions import registry as actions
from monitor.actions.diagnose import common
from monitor.engine.core import Engine
from monitor.settings import AutomationSettings
from monitor.store import database
from monitor.store import evidence as evidence_store
from monitor.store.states import State
from tests.support import notifier
from tests.support.engine import firing, offline_engine, stored


@dataclass
class Held:
    """The diagnostic's runs; each waits for ``release`` (an approver is quicker)."""

    runs: list[str] = field(default_factory=list)
    reading: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    inbox: notifier.Recorder | None = None  # the approval notifier's


HELD: list[Held] = []


class NoParams(actions.StrictModel):
    pass


class Reads(common.Diagnostic[NoParams]):
    name = "test.held_reads"
    Params = NoParams

    async def gather(self, params: NoParams, ctx: actions.ActionContext) -> common.Found:
        held = HELD[-1]
        held.runs.append("read")
        held.reading.set()
        await held.release.wait()
        return common.lines(["api-1 restarted 3 times"], "1 pod restarting")


POLICY = """
policies:
  - name: api-asked
    match: ['alertname="ApiAsked"']
    target: {kind: Deployment, namespace: production, name: api}
    approval: required
    steps: [[{action: log, with: {message: "restarting the api"}}]]
    diagnose:
      - {action: test.held_reads, name: pods, timeout: 30s}
"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, database.Handle]]:
    HELD.append(Held())
    registry = actions.Registry()
    builtin.register(registry)
    notify.register(registry)
    registry.register(Reads)
    db = database.connect(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate(db)
    with notifier.running() as inbox:
        async with httpx.AsyncClient() as http:
            eng = offline_engine(db, POLICY, registry, http, tmp_path)
            chat = {"kind": "webhook", "url": inbox.url, "retries": 0}
            eng.services.notifiers = {"chat": targets.Notifier.model_validate(chat)}
            eng.parts.automation = AutomationSettings.model_validate(
                {"dry_run": False, "approval": {"notifier": "chat"}}
            )
            HELD[-1].inbox = inbox
            yield eng, db
    db.dispose()


async def test_approved_while_its_evidence_is_gathered_the_step_gathers_it_once(
    engine: tuple[Engine, database.Handle],
) -> None:
    eng, db = engine
    held = HELD[-1]
    await eng.handle(stored([firing("a1", alertname="ApiAsked")]))
    [row] = await eng.store.for_alert("a1", datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    asking = asyncio.get_running_loop().create_task(eng.redecide(row.id))
    async with asyncio.timeout(30):  # guards against a hang, not a measure
        await held.reading.wait()  # the approval's evidence is being gathered
        waiting = await eng.store.get(row.id)
        assert waiting is not None and waiting.state == State.AWAITING_APPROVAL
        assert (await eng.answer(row.id, approve=True, by="alice")).ok
        await eng.redecide(row.id)  # the approved step runs; its diagnostics join
        done = await eng.store.get(row.id)
        assert done is not None and done.state == State.SUCCEEDED
        held.release.set()
        await asking
        await eng.diagnoser.settle()
    assert held.runs == ["read"]
    [found] = await eng.store.evidence(row.id)
    assert (found.phase, found.name, found.outcome) == ("before", "pods", "ok")
    shown = evidence_store.for_ladder(db, row.id)  # what the execution's page lists
    assert [(step, item.name) for step, item in shown] == [(1, "pods")]
    assert eng.diagnoser.running == 0
    assert held.inbox is not None and held.inbox.requests == []  # answered: nobody asked


async def test_a_request_nobody_answered_while_gathering_is_sent_with_the_evidence(
    engine: tuple[Engine, database.Handle],
) -> None:
    eng, _ = engine
    held = HELD[-1]
    held.release.set()
    await eng.handle(stored([firing("a2", alertname="ApiAsked")]))
    [row] = await eng.store.for_alert("a2", datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    await eng.redecide(row.id)
    assert held.runs == ["read"]
    assert held.inbox is not None
    [request] = held.inbox.requests
    assert "Approval needed for" in request["message"]
    assert "1 pod restarting" in str(request)
