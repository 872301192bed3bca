"""Every PagerDuty incident the engine opens is closed by it: a resolve pending when the
service stops is sent after a restart, a failed one is tried again by the sweep, replicas
send it once, and approval requests and breaker messages are resolved with the dedup key
that opened them."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.actions import pagerduty
from monitor.engine import paging
from monitor.store import database, pages
from monitor.store.breaker import BreakerState
from monitor.store.records import Execution
from monitor.store.states import State, VerifyState
from tests.support import pagers
from tests.support.engine import firing, stored
from tests.support.paging import PAGING, STARTS, World, alert_down, policy_text, resolved, until

ACTS = '{action: log, with: {message: "acting"}}'
ASKING = policy_text("asking", ACTS, approval=True)
ACTING = policy_text("acting", ACTS)


async def _paged_and_left_unresolved(world: World) -> int:
    """A page opened, its ladder ended (the alert resolved, its step verified), and the
    service stopped before its resolve was sent: no timer ever ran."""
    engine = world.engine(PAGING)
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    [row] = await world.rows(engine)
    [trigger] = world.pd.events("trigger")
    assert trigger["dedup_key"] == f"conea-monitor/{row.id}"
    await engine.on_resolved(resolved())
    [row] = await world.rows(engine)
    assert row.verify_state == VerifyState.RECOVERED
    await engine.stop()
    assert world.pd.events("resolve") == [] and world.audit("page") == []
    return row.id


async def test_a_resolve_pending_at_shutdown_is_sent_after_a_restart(world: World) -> None:
    execution = await _paged_and_left_unresolved(world)
    restarted = world.engine(PAGING)
    await restarted.start()  # its first sweep finds the page still open
    resolve = await asyncio.to_thread(world.pd.wait, "resolve")
    assert resolve == [
        {
            "routing_key": pagers.ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": f"conea-monitor/{execution}",
        }
    ]
    await asyncio.wait_for(until(lambda: world.audit("page") == [("resolved", execution)]), 30)
    await restarted.sweep()  # a second sweep sends nothing more
    await world.settled(restarted)
    assert len(world.pd.events("resolve")) == 1 and world.pd.received == world.pd.accepted


@pytest.mark.parametrize("world", ["sqlite", "postgres"], indirect=True)
async def test_replicas_sweeping_at_once_send_one_resolve(world: World) -> None:
    execution = await _paged_and_left_unresolved(world)
    replicas = [world.engine(PAGING), world.engine(PAGING)]
    for replica in replicas:
        replica.timers.start()
    await asyncio.gather(*(replica.sweep() for replica in replicas))
    await asyncio.wait_for(until(lambda: world.audit("page") == [("resolved", execution)]), 30)
    await world.settled(*replicas)
    assert [e["dedup_key"] for e in world.pd.events("resolve")] == [f"conea-monitor/{execution}"]


async def test_a_failed_resolve_is_tried_again_by_the_sweep(world: World) -> None:
    engine = world.engine(PAGING)
    engine.timers.start()
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    [row] = await world.rows(engine)
    world.pd.replies = [400]  # PagerDuty refuses the resolve (400: not retried at once)
    await engine.on_resolved(resolved())
    await asyncio.wait_for(until(lambda: world.audit("page") == [("failed", row.id)]), 30)
    assert world.pd.events("resolve") == []
    # Its record is committed before its job returns: a job of the same id started
    # before then would be skipped (one instance at a time), and the retry lost.
    await asyncio.wait_for(world.settled(engine), 30)

    await engine.sweep()  # too early: the failed resolve waits a minute
    assert not [job for job in engine.timers.pending() if job.startswith("page-")]
    await world.settled(engine)  # and none started: a resend would have reached PagerDuty
    assert len(world.pd.received) == 2  # the trigger and the refused resolve

    world.clock.at += paging.RETRY_FIRST
    await engine.sweep()
    resolve = await asyncio.to_thread(world.pd.wait, "resolve")
    assert [e["dedup_key"] for e in resolve] == [f"conea-monitor/{row.id}"]
    done = [("failed", row.id), ("resolved", row.id)]
    await asyncio.wait_for(until(lambda: world.audit("page") == done), 30)
    world.clock.at += paging.RETRY_CAP
    await engine.sweep()
    await world.settled(engine)
    assert len(world.pd.events("resolve")) == 1


async def test_a_page_of_a_ladder_still_going_stays_open(world: World) -> None:
    engine = world.engine(PAGING)
    engine.timers.start()
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    assert await paging.sweep(engine.parts) == 0  # not verified, the alert fires
    assert world.pd.events("resolve") == []


async def _asking(world: World) -> Execution:
    """An execution awaiting approval, its request sent to PagerDuty."""
    engine = world.engine(ASKING, approval={"notifier": "pager", "timeout": "10m"})
    await asyncio.wait_for(engine.handle(alert_down()), 30)  # deferred: asked at once
    [row] = await world.rows(engine)
    await engine.redecide(row.id)
    engine.timers.start()
    # The deferral's own job runs now and finds the request asked. Until it has returned,
    # the job an answer sets off to take the step (the same id) would be skipped.
    await asyncio.wait_for(world.jobs[id(engine)].idle("decide-"), 30)
    [row] = await world.rows(engine)
    assert row.state == State.AWAITING_APPROVAL
    return row


@pytest.mark.parametrize("answer", ["approve", "reject", "expire"])
async def test_an_approval_page_is_resolved_with_its_key_once_answered(
    world: World, answer: str
) -> None:
    row = await _asking(world)
    engine = world.engines[-1]
    [trigger] = world.pd.events("trigger")
    key = f"conea-monitor/approval/{row.id}"
    assert trigger["dedup_key"] == key
    assert trigger["payload"]["summary"].startswith("Approve? step 1 of 'asking'")
    assert await paging.sweep(engine.parts) == 0  # nobody answered yet: it stays open

    if answer == "expire":
        world.clock.at += timedelta(minutes=11)
        await engine.expire(row.id)
    else:
        await engine.answer(row.id, approve=answer == "approve", by="alice")
    resolve = await asyncio.to_thread(world.pd.wait, "resolve")
    assert resolve == [
        {"routing_key": pagers.ROUTING_KEY, "event_action": "resolve", "dedup_key": key}
    ]
    await asyncio.wait_for(until(lambda: world.audit("page") == [("resolved", row.id)]), 30)
    # Approved, its step is taken by a job: until that job has returned, the sweep would
    # start it again (the row is still deferred), and that second one would be skipped.
    await world.quiet()
    await engine.sweep()
    await world.settled(engine)
    assert len(world.pd.events("resolve")) == 1


async def test_an_approval_page_is_resolved_when_the_alert_resolves_first(world: World) -> None:
    row = await _asking(world)
    engine = world.engines[-1]
    await engine.on_resolved(resolved())  # the request is cancelled
    resolve = await asyncio.to_thread(world.pd.wait, "resolve")
    assert [e["dedup_key"] for e in resolve] == [f"conea-monitor/approval/{row.id}"]
    await world.settled(engine)
    assert len(world.pd.events("resolve")) == 1


async def test_the_breaker_page_is_resolved_when_the_breaker_closes(world: World) -> None:
    engine = world.engine(
        ACTING,
        max_actions={"count": 1, "window": "1h", "reset": "manual", "notifier": "pager"},
    )
    engine.timers.start()
    two = [firing(f"dddd000{i}", alertname="Down", service=f"api-{i}") for i in (1, 2)]
    await asyncio.wait_for(engine.handle(stored(two)), 30)
    state = await engine.store.breaker_state()
    assert state.open and state.opened_at is not None
    [trigger] = world.pd.events("trigger")
    key = pagerduty.breaker_key(state.opened_at)
    assert trigger["dedup_key"] == key
    assert key == f"conea-monitor/breaker/{state.opened_at.astimezone(UTC).isoformat()}"
    assert await paging.sweep(engine.parts) == 0  # still open: the page stays

    assert await engine.breaker.close(world.clock.now(), "alice")
    await engine.sweep()  # the next sweep sees it closed
    resolve = await asyncio.to_thread(world.pd.wait, "resolve")
    assert resolve == [
        {"routing_key": pagers.ROUTING_KEY, "event_action": "resolve", "dedup_key": key}
    ]
    await asyncio.wait_for(until(lambda: world.audit("page") == [("resolved", None)]), 30)
    await engine.sweep()
    await world.settled(engine)
    assert len(world.pd.events("resolve")) == 1


def test_open_pages_are_found_by_their_index_not_by_reading_the_executions(
    tmp_path: Path,
) -> None:
    db = database.connect(f"sqlite:///{tmp_path / 'plan.db'}")
    database.migrate(db)
    query = pages.open_query(datetime.now(UTC) - paging.WINDOW, paging.SWEEP_LIMIT)
    compiled = query.compile(db, compile_kwargs={"literal_binds": True})
    with db.connect() as conn:
        plan = " ".join(
            str(row[-1]) for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
        )
    db.dispose()
    assert "ix_pages_open" in plan and "executions" not in plan


async def test_what_ends_each_kind_of_page(world: World) -> None:
    engine = world.engine(PAGING)
    await asyncio.wait_for(engine.handle(alert_down()), 30)
    [row] = await world.rows(engine)
    page = pages.Page(
        row.id, "pager", f"conea-monitor/{row.id}", "step", row.id, STARTS, None, None, 0, None
    )
    later = dataclasses.replace(row, id=row.id + 1, step=1, state=State.CANCELLED, reason="gone")
    recovered = dataclasses.replace(row, verify_state=VerifyState.RECOVERED)
    earlier = dataclasses.replace(row, step=0, verify_state=VerifyState.RECOVERED)
    mine = dataclasses.replace(row, step=1)
    assert paging.ended(page, pages.Ladder(row, [row], False), None) is None
    assert paging.ended(page, pages.Ladder(row, [row], True), None) == "the alert resolved"
    assert paging.ended(page, pages.Ladder(row, [recovered], False), None) == "step 1 verified"
    assert paging.ended(page, pages.Ladder(row, [row, later], False), None) == (
        "step 2 was cancelled: gone"
    )
    # a verification of an earlier step says nothing about a later step's page
    assert paging.ended(page, pages.Ladder(mine, [earlier, mine], False), None) is None
    assert paging.ended(page, None, None) == "its execution is gone"

    asking = dataclasses.replace(
        page, kind="approval", dedup_key=f"conea-monitor/approval/{row.id}"
    )
    waiting = dataclasses.replace(row, state=State.AWAITING_APPROVAL)
    assert paging.ended(asking, pages.Ladder(waiting, [waiting], False), None) is None
    for state, said in (
        (State.REJECTED, "rejected"),
        (State.EXPIRED, "expired"),
        (State.CANCELLED, "cancelled"),
    ):
        answered = dataclasses.replace(row, state=state)
        assert paging.ended(asking, pages.Ladder(answered, [], False), None) == (
            f"the approval request was {said}"
        )
    approved = dataclasses.replace(row, state=State.DEFERRED, approved_by="alice")
    assert paging.ended(asking, pages.Ladder(approved, [], False), None) == (
        "the approval request was approved"
    )

    opened = datetime(2026, 11, 29, 10, tzinfo=UTC)
    tripped = dataclasses.replace(
        page, kind="breaker", execution_id=None, dedup_key=pagerduty.breaker_key(opened)
    )
    assert paging.ended(tripped, None, BreakerState(True, opened, "full")) is None
    assert paging.ended(tripped, None, BreakerState(False, opened)) == "the breaker closed"
    again = BreakerState(True, opened + timedelta(hours=1), "full")
    assert paging.ended(tripped, None, again) == "the breaker closed (and opened again since)"
