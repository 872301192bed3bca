"""A ladder's PagerDuty pages end when the remediation is verified or the alert resolves
(the same dedup key, once), and a page carries what the diagnostics stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from monitor.engine.core import Engine
from monitor.store.records import Evidence
from monitor.store.states import VerifyState
from tests.support import pagers
from tests.support.paging import PAGING, World, alert_down, resolved, until

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


def started(world: World, text: str) -> Engine:
    """An engine whose timers run: a page is resolved in the background, by a timer."""
    engine = world.engine(text)
    engine.timers.start()
    return engine


async def test_a_verified_step_resolves_its_page_once(world: World) -> None:
    engine = started(world, PAGING)
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    [row] = await world.rows(engine)
    [trigger] = world.pd.events("trigger")
    assert trigger["dedup_key"] == f"conea-monitor/{row.id}"
    href = trigger["links"][0]["href"]
    assert href.startswith("https://mon.example/") and href.endswith(f"/executions/{row.id}")

    world.switch.answer = "not_firing"
    await engine.verify(row.id)
    [row] = await world.rows(engine)
    assert row.verify_state == VerifyState.RECOVERED
    assert await asyncio.to_thread(world.pd.wait, "resolve") == [
        {
            "routing_key": pagers.ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": f"conea-monitor/{row.id}",
        }
    ]
    # The audit record is written just after PagerDuty answers.
    await asyncio.wait_for(until(lambda: world.audit("page") == [("resolved", row.id)]), 10)
    await engine.on_resolved(resolved())  # Alertmanager says so later: not resolved again
    assert not [job for job in engine.timers.pending() if job.startswith("page-")]
    await world.settled(engine)  # nor being resolved: every page job has returned
    assert len(world.pd.events("resolve")) == 1 and world.pd.received == world.pd.accepted


async def test_a_page_carries_the_evidence_and_ends_when_the_alert_resolves(
    world: World,
) -> None:
    engine = started(world, TWO_STEPS)
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    [first] = await world.rows(engine)
    for name, phase, minutes, summary in (
        ("pods", "before", 0, "3 pods, 1 not ready"),
        ("pods", "after_verification", 10, "3 pods, 2 not ready (CrashLoopBackOff)"),
        ("errors", "after_verification", 10, "2 ERROR lines"),
    ):
        at = world.clock.at + timedelta(minutes=minutes)
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
    world.clock.at += timedelta(minutes=11)
    await engine.verify(first.id)  # escalates: step 2 is decided and run before it returns
    rows = await world.rows(engine)
    second = next(r for r in rows if r.step == 1)
    [trigger] = world.pd.events("trigger")
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
    world.clock.at += timedelta(minutes=11)
    await engine.verify(second.id)
    assert world.pd.events("resolve") == []
    await engine.on_resolved(resolved())
    sent = await asyncio.to_thread(world.pd.wait, "resolve")
    assert [e["dedup_key"] for e in sent] == [f"conea-monitor/{second.id}"]
    await world.settled(engine)
    assert len(world.pd.events("resolve")) == 1


async def test_a_resolve_that_pagerduty_refuses_is_recorded(world: World) -> None:
    engine = started(world, PAGING)
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    [row] = await world.rows(engine)
    world.pd.replies = [400]  # the resolve is refused (400: not retried)
    await engine.on_resolved(resolved())
    await asyncio.wait_for(until(lambda: world.audit("page") == [("failed", row.id)]), 10)
    await world.settled(engine)  # its job has returned: nothing more is sent at once
    assert world.pd.events("resolve") == [] and len(world.pd.received) == 2
    # It was pending when the alert resolved: that verification ended the page.
    assert row.verify_state == VerifyState.PENDING
    [after] = await world.rows(engine)
    assert after.verify_state == VerifyState.RECOVERED
