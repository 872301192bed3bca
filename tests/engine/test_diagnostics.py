"""Diagnostics in the engine: gathered beside the first step (never in front of it),
again after a failed verification or a failed step, each result stored as evidence; one
that fails or times out is recorded and never stops the remediation; rehearsals gather
too. A step waiting for approval gathers before anyone approves, not again once approved
(unless that evidence is stale); the diagnostics' blocking calls run in threads of their
own, and each counts in the metrics."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor import errors, policy, threads
from monitor.actions import Services, builtin
from monitor.actions import registry as actions
from monitor.actions.diagnose import common
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store import database
from monitor.store.facade import Store
from monitor.store.states import State, VerifyState
from tests.support.engine import Clock, firing, stored

STARTS = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)  # firing()'s startsAt


@dataclass
class Gates:
    """What the test's actions share: the step opens ``released`` once it runs."""

    released: asyncio.Event = field(default_factory=asyncio.Event)
    never: asyncio.Event = field(default_factory=asyncio.Event)
    step_saw_evidence: list[bool] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # what happened, in order
    blocking: asyncio.Event = field(default_factory=asyncio.Event)  # a thread is held
    unblock: threading.Event = field(default_factory=threading.Event)


GATES: list[Gates] = []


class NoParams(actions.StrictModel):
    pass


class Acting(actions.Action[NoParams]):
    """A step's action in these tests: its plan says ``planned``, its apply is its own."""

    Params = NoParams
    planned = "act"

    async def plan(self, params: NoParams, ctx: actions.ActionContext) -> actions.Plan:
        return actions.Plan(action=self.name, summary=self.planned)


class Reading(common.Diagnostic[NoParams]):
    """A diagnostic in these tests: its gather is its own."""

    Params = NoParams


class Step(Acting):
    """The first step: it runs while the waiting diagnostic still waits, and frees it."""

    name = "test.step"
    planned = "step"

    async def apply(
        self, params: NoParams, ctx: actions.ActionContext, plan: actions.Plan
    ) -> actions.Outcome:
        GATES[-1].step_saw_evidence.append(GATES[-1].released.is_set())
        GATES[-1].released.set()
        return actions.Outcome(summary="acted")


class Breaks(Acting):
    """A step whose action fails outright."""

    name = "test.breaks"
    planned = "break"

    async def apply(
        self, params: NoParams, ctx: actions.ActionContext, plan: actions.Plan
    ) -> actions.Outcome:
        raise errors.PermanentActionError("the Deployment is gone")


class Waits(Reading):
    """Finishes only once the step has run: it cannot have been run in front of it."""

    name = "test.waits"

    async def gather(self, params: NoParams, ctx: actions.ActionContext) -> common.Found:
        await GATES[-1].released.wait()
        return common.table(["pod", "ready"], [["api-1", "0/1"]], "1 pod, 1 not ready")


class Hangs(Reading):
    name = "test.hangs"

    async def gather(self, params: NoParams, ctx: actions.ActionContext) -> common.Found:
        await GATES[-1].never.wait()
        raise AssertionError("unreachable")


class Fails(Reading):
    name = "test.fails"

    async def gather(self, params: NoParams, ctx: actions.ActionContext) -> common.Found:
        raise errors.PermanentActionError("the API refused: token=abcdef123456 is invalid")


class Crashes(Reading):
    name = "test.crashes"

    async def gather(self, params: NoParams, ctx: actions.ActionContext) -> common.Found:
        raise ZeroDivisionError("a bug")


class Blocks(Reading):
    """Holds one of its worker threads until ``unblock`` (a slow API call)."""

    name = "test.blocks"

    async def gather(self, params: NoParams, ctx: actions.ActionContext) -> common.Found:
        gates, loop = GATES[-1], asyncio.get_running_loop()

        def blocking() -> str:
            gates.events.append(f"diagnostic holds a {threading.current_thread().name} thread")
            loop.call_soon_threadsafe(gates.blocking.set)
            released = gates.unblock.wait(timeout=30)  # bounded: a failing test ends
            gates.events.append("diagnostic released" if released else "diagnostic gave up")
            return "done"

        await threads.run(blocking)
        return common.lines([], "held a thread")


class Acts(Acting):
    """A step whose call runs in asyncio's default pool while the diagnostic blocks."""

    name = "test.acts"

    async def apply(
        self, params: NoParams, ctx: actions.ActionContext, plan: actions.Plan
    ) -> actions.Outcome:
        gates = GATES[-1]
        await gates.blocking.wait()
        await threads.run(lambda: gates.events.append("step acted in a worker thread"))
        gates.unblock.set()
        return actions.Outcome(summary="acted")


class Reads(Reading):
    name = "test.reads"

    async def gather(self, params: NoParams, ctx: actions.ActionContext) -> common.Found:
        GATES[-1].events.append("read")
        return common.lines(["api-1 restarted 3 times"], "1 pod restarting")


POLICY = """
policies:
  - name: api-down
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: test.step}]]
    verify: {window: 5m, interval: 30s}
    diagnose:
      - {action: test.waits, name: pods, timeout: 30s}
      - {action: test.hangs, timeout: 100ms}
      - {action: test.fails}
      - {action: test.crashes}
  - name: api-broken
    match: ['alertname="ApiBroken"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: test.breaks}], [{action: log, with: {message: "a person takes over"}}]]
    diagnose:
      - {action: test.fails}
  - name: api-slow
    match: ['alertname="ApiSlow"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: test.acts}]]
    diagnose:
      - {action: test.blocks, timeout: 60s}
  - name: api-stuck
    match: ['alertname="ApiStuck"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: log, with: {message: "restarting the api"}}]]
    diagnose:
      - {action: test.blocks, timeout: 60s}
  - name: api-asked
    match: ['alertname="ApiAsked"']
    target: {kind: Deployment, namespace: production, name: api}
    approval: required
    steps: [[{action: log, with: {message: "restarting the api"}}]]
    diagnose:
      - {action: test.reads}
"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[tuple[Engine, Clock]]:
    GATES.append(Gates())
    registry = actions.Registry()
    builtin.register(registry)
    for action in (Step, Breaks, Waits, Hangs, Fails, Crashes, Blocks, Acts, Reads):
        registry.register(action)
    path = tmp_path / "policies.yaml"
    path.write_text(POLICY)
    db = database.connect(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate(db)
    clock = Clock(STARTS + timedelta(minutes=5))
    async with httpx.AsyncClient() as http:
        yield (
            Engine(
                store=Store(db),
                policies=policy.load([path], registry, strict_actions=True),
                registry=registry,
                services=Services(http=http),
                metrics=Metrics(),
                automation=AutomationSettings(dry_run=False),
                firing=FiringCheck(None, None, http),
                clock=clock,
            ),
            clock,
        )
    db.dispose()


async def test_the_step_runs_beside_its_diagnostics_and_each_result_is_evidence(
    engine: tuple[Engine, Clock],
) -> None:
    eng, _ = engine
    await eng.handle(stored([firing("f1", alertname="ApiDown")]))
    [execution] = await eng.store.for_alert("f1", STARTS)
    assert execution.state == State.SUCCEEDED
    # the step ran while the "pods" diagnostic was still waiting for it
    assert GATES[-1].step_saw_evidence == [False]
    found = {e.name: e for e in await eng.store.evidence(execution.id)}
    assert sorted(found) == ["pods", "test.crashes", "test.fails", "test.hangs"]
    assert {e.phase for e in found.values()} == {"before"}
    pods = found["pods"]
    assert (pods.outcome, pods.summary, pods.action) == ("ok", "1 pod, 1 not ready", "test.waits")
    assert pods.result == {"kind": "table", "columns": ["pod", "ready"], "rows": [["api-1", "0/1"]]}
    hangs = found["test.hangs"]
    assert (hangs.outcome, hangs.error, hangs.result) == (
        "timed_out",
        "did not finish within 0.1s",
        None,
    )
    fails = found["test.fails"]
    assert fails.outcome == "failed"
    assert fails.error == "the API refused: token=<redacted> is invalid"
    assert found["test.crashes"].error == "ZeroDivisionError: a bug"
    assert eng.diagnoser.running == 0


async def test_a_failed_verification_gathers_again_before_escalating(
    engine: tuple[Engine, Clock],
) -> None:
    eng, clock = engine
    await eng.handle(stored([firing("f2", alertname="ApiDown")]))
    [execution] = await eng.store.for_alert("f2", STARTS)
    assert execution.verify_state == VerifyState.PENDING
    GATES[-1].released.set()
    clock.at += timedelta(minutes=6)  # past the verify window, the alert still unresolved
    await eng.verify(execution.id)
    row = await eng.store.get(execution.id)
    assert row is not None and row.verify_state == VerifyState.NOT_RECOVERED
    after = [e for e in await eng.store.evidence(execution.id) if e.phase == "after_verification"]
    assert sorted((e.name, e.outcome) for e in after) == [
        ("pods", "ok"),
        ("test.crashes", "failed"),
        ("test.fails", "failed"),
        ("test.hangs", "timed_out"),
    ]
    assert all(e.started_at == clock.at for e in after)


async def test_a_rehearsal_gathers_evidence_too(engine: tuple[Engine, Clock]) -> None:
    eng, _ = engine
    eng.parts.dry_run = True
    GATES[-1].released.set()  # a rehearsal does not apply the step
    await eng.handle(stored([firing("f3", alertname="ApiDown")]))
    [execution] = await eng.store.for_alert("f3", STARTS)
    assert execution.state == State.REHEARSED
    found = await eng.store.evidence(execution.id)
    assert len(found) == 4 and {e.phase for e in found} == {"before"}


async def test_a_step_that_fails_gathers_again_before_escalating(
    engine: tuple[Engine, Clock],
) -> None:
    eng, clock = engine
    await eng.handle(stored([firing("f4", alertname="ApiBroken")]))
    await eng.diagnoser.settle()
    rows = await eng.store.for_alert("f4", STARTS)
    first, second = sorted(rows, key=lambda r: r.step)
    assert (first.state, second.step) == (State.FAILED, 1)  # escalated to the next step
    phases = sorted((e.phase, e.name) for e in await eng.store.evidence(first.id))
    assert phases == [("after_failure", "test.fails"), ("before", "test.fails")]
    [after] = [e for e in await eng.store.evidence(first.id) if e.phase == "after_failure"]
    assert after.started_at == clock.at and after.outcome == "failed"


async def test_each_diagnostic_counts_by_kind_and_outcome(engine: tuple[Engine, Clock]) -> None:
    eng, _ = engine
    await eng.handle(stored([firing("f5", alertname="ApiDown")]))
    registry = eng.parts.metrics.registry

    def counted(kind: str, outcome: str) -> float | None:
        labels = {"kind": kind, "outcome": outcome}
        return registry.get_sample_value("conea_monitor_diagnostics_total", labels)

    assert counted("test.waits", "ok") == 1
    assert counted("test.hangs", "timeout") == 1
    assert counted("test.fails", "error") == 1
    assert counted("test.crashes", "error") == 1
    assert counted("test.waits", "error") is None
    for kind in ("test.waits", "test.hangs", "test.fails", "test.crashes"):
        labels = {"kind": kind}
        assert registry.get_sample_value("conea_monitor_diagnostic_seconds_count", labels) == 1
    # the one that timed out took its timeout (0.1 s): it is in no bucket below that
    fast = {"kind": "test.hangs", "le": "0.05"}
    assert registry.get_sample_value("conea_monitor_diagnostic_seconds_bucket", fast) == 0


async def test_a_diagnostic_holding_its_thread_does_not_hold_up_the_steps_calls(
    engine: tuple[Engine, Clock],
) -> None:
    eng, _ = engine
    # One thread in asyncio's default pool, where a step's blocking calls run: were the
    # diagnostic's call in it too, the step's would wait for the diagnostic to give up.
    default = ThreadPoolExecutor(max_workers=1, thread_name_prefix="default")
    asyncio.get_running_loop().set_default_executor(default)
    async with asyncio.timeout(60):  # a guard against a hang, not a measure
        await eng.handle(stored([firing("f6", alertname="ApiSlow")]))
    assert GATES[-1].events == [
        "diagnostic holds a diagnose_0 thread",
        "step acted in a worker thread",
        "diagnostic released",
    ]
    [execution] = await eng.store.for_alert("f6", STARTS)
    assert execution.state == State.SUCCEEDED
    [found] = await eng.store.evidence(execution.id)
    assert (found.name, found.outcome) == ("test.blocks", "ok")


async def test_stopping_does_not_wait_for_a_diagnostic_stuck_in_its_thread(
    engine: tuple[Engine, Clock],
) -> None:
    eng, _ = engine
    gates = GATES[-1]
    handled = asyncio.get_running_loop().create_task(
        eng.handle(stored([firing("f7", alertname="ApiStuck")]))
    )
    async with asyncio.timeout(30):  # guards against a hang, not measures
        await gates.blocking.wait()
        await eng.stop(within=0)
        assert gates.events == ["diagnostic holds a diagnose_0 thread"]  # and still does
        await handled  # the step's evidence no longer awaited
    [execution] = await eng.store.for_alert("f7", STARTS)
    assert execution.state == State.SUCCEEDED
    gates.unblock.set()
    await asyncio.to_thread(eng.diagnoser.pool.shutdown, wait=True)
    assert gates.events[-1] == "diagnostic released"


async def _asked(eng: Engine, fingerprint: str) -> int:
    """An ApiAsked alert handled and its approval requested: the waiting execution."""
    await eng.handle(stored([firing(fingerprint, alertname="ApiAsked")]))
    [row] = await eng.store.for_alert(fingerprint, STARTS)
    assert row.state == State.DEFERRED  # the request follows at once (a timer's job)
    await eng.redecide(row.id)
    return row.id


async def test_a_step_awaiting_approval_has_its_evidence_before_anyone_approves(
    engine: tuple[Engine, Clock],
) -> None:
    eng, clock = engine
    waiting = await _asked(eng, "f8")
    row = await eng.store.get(waiting)
    assert row is not None and row.state == State.AWAITING_APPROVAL
    [found] = await eng.store.evidence(waiting)
    assert (found.phase, found.name, found.outcome, found.summary) == (
        "before",
        "test.reads",
        "ok",
        "1 pod restarting",
    )
    assert found.result == {"kind": "lines", "lines": ["api-1 restarted 3 times"]}

    clock.at += timedelta(minutes=9)  # approved while the evidence is fresh
    assert (await eng.answer(waiting, approve=True, by="alice")).ok
    await eng.redecide(waiting)
    await eng.diagnoser.settle()
    row = await eng.store.get(waiting)
    assert row is not None and row.state == State.SUCCEEDED
    assert GATES[-1].events == ["read"]  # not gathered again
    assert [e.id for e in await eng.store.evidence(waiting)] == [found.id]


async def test_approved_once_its_evidence_is_stale_the_step_gathers_again(
    engine: tuple[Engine, Clock],
) -> None:
    eng, clock = engine
    waiting = await _asked(eng, "f9")
    clock.at += timedelta(minutes=11)
    assert (await eng.answer(waiting, approve=True, by="alice")).ok
    await eng.redecide(waiting)
    await eng.diagnoser.settle()
    assert GATES[-1].events == ["read", "read"]
    found = await eng.store.evidence(waiting)
    assert [(e.phase, e.started_at) for e in found] == [
        ("before", clock.at - timedelta(minutes=11)),
        ("before", clock.at),
    ]
