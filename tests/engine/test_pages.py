"""A ladder's PagerDuty pages end when the remediation is verified or the alert resolves
(the same dedup key, once), and a page carries what the diagnostics stored."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from monitor import policy, targets
from monitor.actions import Services, default_registry
from monitor.alerts.context import AlertContext
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck, State
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store import database
from monitor.store.facade import Store
from monitor.store.notifications import StoredNotification
from monitor.store.records import Evidence, Execution
from monitor.store.states import VerifyState
from tests.engine.test_interrupted import Rig
from tests.support import pagers
from tests.support.engine import firing, stored

STARTS = datetime(2026, 11, 28, 10, tzinfo=UTC)

ONE_STEP = """
policies:
  - name: paging
    match: ['alertname="Down"']
    target: {kind: Service, namespace: production, name: "{{ labels.service }}"}
    steps: [[{action: notify, with: {notifier: pager}}]]
    verify: {window: 10m, interval: 1m}
"""

TWO_STEPS = """
policies:
  - name: paging
    match: ['alertname="Down"']
    target: {kind: Service, namespace: production, name: "{{ labels.service }}"}
    steps:
      - [{action: log, with: {message: "looking"}}]
      - [{action: notify, with: {notifier: pager, message: "a person must look"}}]
    cooldown: 0s
    verify: {window: 10m, interval: 1m}
"""


class Switch(FiringCheck):
    """Alertmanager as the test says: the alert fires until ``answer`` changes."""

    answer: State = "firing"

    @property
    def configured(self) -> bool:
        return True

    async def state(self, alert: AlertContext) -> tuple[State, str]:
        return self.answer, f"the test says {self.answer}"


class Clock:
    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def now(self) -> datetime:
        return self.at


@dataclasses.dataclass
class Paging:
    rig: Rig
    pd: pagers.Service
    switch: Switch
    clock: Clock

    @property
    def engine(self) -> Engine:
        return self.rig.engine

    async def rows(self) -> list[Execution]:
        return await self.engine.store.for_alert("dddd0001", STARTS)

    async def resolved(self) -> None:
        ctx = AlertContext(
            labels={"alertname": "Down", "service": "api"},
            annotations={},
            status="resolved",
            fingerprint="dddd0001",
            starts_at=STARTS,
        )
        await self.engine.on_resolved(ctx)


@pytest.fixture
async def paging(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Paging]:
    monkeypatch.setenv("PD_ROUTING_KEY", pagers.ROUTING_KEY)
    text = request.param
    db = database.connect(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate(db)
    path = tmp_path / "policies.yaml"
    path.write_text(text)
    registry = default_registry()
    with pagers.service("pagerduty") as pd:
        notifier = targets.Notifier.model_validate(
            {"kind": "pagerduty", "url": pd.url, "routing_key": {"env": "PD_ROUTING_KEY"}}
        )
        async with httpx.AsyncClient() as http:
            switch = Switch(None, None, http)
            clock = Clock()
            engine = Engine(
                store=Store(db),
                policies=policy.load([path], registry),
                registry=registry,
                services=Services(
                    http=http, notifiers={"pager": notifier}, public_url="https://mon.example/"
                ),
                metrics=Metrics(),
                automation=AutomationSettings(mode="live"),
                firing=switch,
                clock=clock,
            )
            engine.timers.start()  # a page is resolved in the background, by a timer
            try:
                yield Paging(Rig(engine, db), pd, switch, clock)
            finally:
                await engine.stop()
                db.dispose()


def alert_down() -> StoredNotification:
    return stored([firing("dddd0001", alertname="Down", service="api")])


@pytest.mark.parametrize("paging", [ONE_STEP], indirect=True)
async def test_a_verified_step_resolves_its_page_once(paging: Paging) -> None:
    await asyncio.wait_for(paging.engine.handle(alert_down()), 30)
    [row] = await paging.rows()
    [trigger] = paging.pd.events("trigger")
    assert trigger["dedup_key"] == f"conea-monitor/{row.id}"
    href = trigger["links"][0]["href"]
    assert href.startswith("https://mon.example/") and href.endswith(f"/executions/{row.id}")

    paging.switch.answer = "not_firing"
    await paging.engine.verify(row.id)
    [row] = await paging.rows()
    assert row.verify_state == VerifyState.RECOVERED
    assert await asyncio.to_thread(paging.pd.wait, "resolve") == [
        {
            "routing_key": pagers.ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": f"conea-monitor/{row.id}",
        }
    ]
    await asyncio.wait_for(_audited(paging, ("page", "resolved")), 10)
    await paging.resolved()  # Alertmanager says so later: the page is not resolved again
    assert not [job for job in paging.engine.timers.pending() if job.startswith("page-")]
    assert len(paging.pd.events("resolve")) == 1 and paging.pd.received == paging.pd.accepted


@pytest.mark.parametrize("paging", [TWO_STEPS], indirect=True)
async def test_a_page_carries_the_evidence_and_ends_when_the_alert_resolves(
    paging: Paging,
) -> None:
    engine = paging.engine
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    [first] = await paging.rows()
    for name, phase, minutes, summary in (
        ("pods", "before", 0, "3 pods, 1 not ready"),
        ("pods", "after_verification", 10, "3 pods, 2 not ready (CrashLoopBackOff)"),
        ("errors", "after_verification", 10, "2 ERROR lines"),
    ):
        at = paging.clock.at + timedelta(minutes=minutes)
        await engine.store.add_evidence(
            Evidence(
                id=0,
                execution_id=first.id,
                phase=phase,
                name=name,
                action="kubernetes.pods" if name == "pods" else "kubernetes.logs",
                started_at=at,
                finished_at=at,
                outcome="ok",
                error=None,
                summary=summary,
                result={"kind": "table", "columns": ["pod", "ready"], "rows": [["api-1", "0/1"]]}
                if name == "pods"
                else {"kind": "lines", "lines": [f"ERROR {i}" for i in range(8)]},
                truncated=False,
            )
        )
    # The step does not help: after the window, the ladder's next step pages.
    paging.clock.at += timedelta(minutes=11)
    await engine.verify(first.id)  # escalates: step 2 is decided and run before it returns
    rows = await paging.rows()
    second = next(r for r in rows if r.step == 1)
    [trigger] = paging.pd.events("trigger")
    assert trigger["dedup_key"] == f"conea-monitor/{second.id}"
    # Newest first, one line per diagnostic (its newest result), a few lines of each.
    assert trigger["payload"]["custom_details"]["evidence"] == [
        {
            "name": "errors",
            "outcome": "ok",
            "summary": "2 ERROR lines",
            "excerpt": ["ERROR 3", "ERROR 4", "ERROR 5", "ERROR 6", "ERROR 7"],
        },
        {
            "name": "pods",
            "outcome": "ok",
            "summary": "3 pods, 2 not ready (CrashLoopBackOff)",
            "excerpt": ["api-1 0/1"],
        },
    ]
    # No step left and not recovered: the page stays open until the alert resolves.
    paging.clock.at += timedelta(minutes=11)
    await engine.verify(second.id)
    assert paging.pd.events("resolve") == []
    await paging.resolved()
    resolved = await asyncio.to_thread(paging.pd.wait, "resolve")
    assert [e["dedup_key"] for e in resolved] == [f"conea-monitor/{second.id}"]


async def _audited(paging: Paging, record: tuple[str, str]) -> None:
    """The audit record is written just after PagerDuty answers."""
    while record not in paging.rig.audit():
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("paging", [ONE_STEP], indirect=True)
async def test_a_resolve_that_pagerduty_refuses_is_recorded(paging: Paging) -> None:
    await asyncio.wait_for(paging.engine.handle(alert_down()), 30)
    [row] = await paging.rows()
    paging.pd.replies = [400]  # the resolve is refused (400: not retried)
    await paging.resolved()
    await asyncio.wait_for(_audited(paging, ("page", "failed")), 10)
    assert paging.pd.events("resolve") == [] and len(paging.pd.received) == 2
    # It was pending when the alert resolved: that verification ended the page.
    assert row.verify_state == VerifyState.PENDING
    [after] = await paging.rows()
    assert after.verify_state == VerifyState.RECOVERED
