"""Storms: alerts about one target are coalesced into one decision (one row, one timer),
decided once for all of them when it comes due; alerts about a target nothing works on
go ahead of a backlog; two consumers share the queue with no execution key run twice."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from monitor import policy
from monitor.actions import Services, default_registry
from monitor.alerts import payload
from monitor.auth import Authenticator
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.settings import AutomationSettings, Settings
from monitor.store import database, queries
from monitor.store import notifications as store_notifications
from monitor.store.facade import Store
from monitor.store.notifications import NotificationWriter, StoredNotification
from monitor.store.schema import audit, coalesced, executions
from tests.engine.conftest import STARTS, alert, notification, wait_for
from tests.support import service as svc
from tests.support.services import Postgres

STARTED = datetime.fromisoformat(STARTS.replace("Z", "+00:00"))

POLICIES = """
policies:
  - name: patient
    match: ['alertname="Storm"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: log, with: {message: "storm on {{ labels.deployment }}"}}]]
    for_at_least: 5m
    cooldown: 10m
  - name: eager
    match: ['alertname="Burst"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: log}]]
    cooldown: 10m
"""


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


@dataclass
class Rig:
    engine: Engine
    db: database.Handle
    clock: Clock

    def store(self, *bodies: bytes) -> list[StoredNotification]:
        items = [(b, payload.parse(b), datetime.now(UTC)) for b in bodies]
        return store_notifications.write_batch(self.db, items)

    def rows(self, table: Any) -> list[Any]:
        with self.db.connect() as conn:
            return list(conn.execute(select(table).order_by(table.c.id)))

    def decide_timers(self) -> list[str]:
        return [j for j in self.engine.timers.pending() if j.startswith("decide-")]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db = database.connect(f"sqlite:///{tmp_path / 'storm.db'}")
    database.migrate(db)
    (tmp_path / "p.yaml").write_text(POLICIES)
    registry = default_registry()
    clock = Clock(STARTED + timedelta(minutes=1))
    async with httpx.AsyncClient() as http:
        engine = Engine(
            store=Store(db),
            policies=policy.load([tmp_path / "p.yaml"], registry),
            registry=registry,
            services=Services(http=http),
            metrics=Metrics(),
            automation=AutomationSettings(dry_run=False),
            firing=FiringCheck(None, None, http),
            clock=clock,
        )
        yield Rig(engine, db, clock)
    db.dispose()


def storm(name: str, first: int, count: int, deployment: str = "api") -> bytes:
    return notification(
        *(
            alert(name, f"{n:016x}", deployment=deployment, pod=f"{deployment}-{n}")
            for n in range(first, first + count)
        )
    )


async def test_fifty_alerts_waiting_on_one_target_are_one_decision_and_one_timer(
    rig: Rig,
) -> None:
    [note] = rig.store(storm("Storm", 0, 50))
    await rig.engine.handle(note)

    [row] = rig.rows(executions)
    assert (row.state, row.fingerprint) == ("deferred", f"{0:016x}")
    assert row.due_at.replace(tzinfo=UTC) == STARTED + timedelta(minutes=5)
    members = rig.rows(coalesced)
    assert len(members) == 49 and {m.execution_id for m in members} == {row.id}
    assert rig.decide_timers() == [f"decide-{row.id}"]
    records = [(a.kind, a.message, a.details) for a in rig.rows(audit)]
    assert [k for k, _, _ in records].count("defer") == 1
    [(_, joined, details)] = [r for r in records if r[0] == "coalesce"]
    assert joined.startswith(f"49 alerts coalesced into #{row.id}: for_at_least: ")
    assert details["alerts"] == 49 and len(details["fingerprints"]) == 49
    assert all(m.reason.startswith("for_at_least: alert has fired") for m in members)

    # More alerts while it waits join it: still one row and one timer.
    [more] = rig.store(storm("Storm", 50, 10))
    await rig.engine.handle(more)
    assert len(rig.rows(executions)) == 1 and len(rig.rows(coalesced)) == 59
    late = [a.message for a in rig.rows(audit) if a.kind == "coalesce"][-1]
    waiting = f"a decision on this target is already waiting (#{row.id})"
    assert late == f"10 alerts coalesced into #{row.id}: {waiting}"
    shown = queries.coalesced_into(rig.db, row.id, limit=5)  # GET /api/v1/executions/{id}
    assert shown["count"] == 59 and len(shown["alerts"]) == 5
    assert shown["alerts"][0]["labels"]["pod"] == "api-1"
    assert rig.decide_timers() == [f"decide-{row.id}"]

    # The first alert resolves: the decision stays for the others, and when it comes due
    # it is taken once, for the oldest alert still firing, which acts.
    resolved = alert("Storm", f"{0:016x}", status="resolved", deployment="api", pod="api-0")
    [gone] = rig.store(notification(resolved))
    await rig.engine.handle(gone)
    assert rig.rows(executions)[0].state == "deferred"
    rig.clock.at = STARTED + timedelta(minutes=6)
    await rig.engine.redecide(row.id)
    [done] = rig.rows(executions)
    assert (done.id, done.state, done.fingerprint) == (row.id, "succeeded", f"{1:016x}")
    assert [a.kind for a in rig.rows(audit)].count("decision") == 1


async def test_a_burst_acts_once_and_the_rest_wait_together_for_the_cooldown(rig: Rig) -> None:
    rig.clock.at = STARTED + timedelta(minutes=1)
    [note] = rig.store(storm("Burst", 0, 50))
    await rig.engine.handle(note)
    acted, waiting = rig.rows(executions)
    assert (acted.state, acted.fingerprint) == ("succeeded", f"{0:016x}")
    assert (waiting.state, waiting.fingerprint) == ("deferred", f"{1:016x}")
    assert waiting.due_at.replace(tzinfo=UTC) == rig.clock.at + timedelta(minutes=10)
    assert "acts on Deployment/production/api now" in waiting.reason
    assert len(rig.rows(coalesced)) == 48
    assert rig.decide_timers() == [f"decide-{waiting.id}"]
    # All of them resolve before the cooldown ends: nothing more is done.
    bodies = [
        notification(alert("Burst", f"{n:016x}", status="resolved", deployment="api"))
        for n in range(50)
    ]
    for gone in rig.store(*bodies):
        await rig.engine.handle(gone)
    rig.clock.at += timedelta(minutes=11)
    await rig.engine.redecide(waiting.id)
    rows = rig.rows(executions)
    assert [r.state for r in rows] == ["succeeded", "cancelled"]
    assert rows[1].reason == "all 49 alerts resolved"


async def test_a_new_target_is_decided_ahead_of_a_backlog_of_repeats(
    rig: Rig, tmp_path: Path
) -> None:
    engine, db = rig.engine, rig.db
    rig.clock.at = STARTED + timedelta(minutes=10)
    [first] = rig.store(storm("Burst", 0, 1))
    await engine.decide_batch([first])  # the target "api" is now being worked on
    store_notifications.write_batch(db, [], processed=[(first.id, datetime.now(UTC))])
    backlog = rig.store(*(storm("Burst", 1 + 100 * n, 100) for n in range(30)))
    writer = NotificationWriter(db)
    writer.start()
    order: list[int] = []

    async def handler(batch: list[StoredNotification]) -> dict[int, BaseException]:
        order.extend(n.id for n in batch)
        return dict(await engine.decide_batch(batch))

    settings = Settings(policies=[])
    rt = Runtime(
        settings,
        Metrics(),
        db,
        writer,
        Authenticator(settings),
        handler=handler,
        prefer=engine.urgent,
    )
    rt.batch_alerts = 200
    try:
        await rt._read_backlog()
        [fresh] = rig.store(storm("Burst", 9000, 1, deployment="billing"))
        rt.dispatch(fresh)
        rt.start()
        while len(order) < len(backlog) + 1:
            await asyncio.sleep(0.01)
        await rt.drain()
    finally:
        writer.stop()
    assert order[0] == fresh.id, "the alert for a target nobody works on goes first"
    assert order[1:] == [n.id for n in backlog]
    billing = [r for r in rig.rows(executions) if r.target_key.endswith("/billing")]
    assert [r.state for r in billing] == ["succeeded"]


@pytest.fixture(params=["sqlite", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
        return
    pg: Postgres = request.getfixturevalue("postgres")
    yield pg.url(pg.create_database("conea_storm_replicas"))


async def test_two_replicas_share_the_queue_and_run_no_key_twice(
    shared_url: str, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(POLICIES)
    registry = default_registry()
    policies = policy.load([tmp_path / "p.yaml"], registry)
    db = database.connect(shared_url)
    database.migrate(db)
    bodies = [storm("Burst", 100 * n, 100, deployment=f"d{n % 20}") for n in range(40)]
    items = [(b, payload.parse(b), datetime.now(UTC)) for body in bodies for b in (body, body)]
    store_notifications.write_batch(db, items)
    settings = Settings(policies=[])
    replicas = []
    async with httpx.AsyncClient() as http:
        for n in range(2):
            handle = database.connect(shared_url)
            engine = Engine(
                store=Store(handle),
                policies=policies,
                registry=registry,
                services=Services(http=http),
                metrics=Metrics(),
                automation=AutomationSettings(dry_run=False),
                firing=FiringCheck(None, None, http),
                owner=f"replica-{n}",
            )
            writer = NotificationWriter(handle)
            writer.start()
            rt = Runtime(
                settings,
                Metrics(),
                handle,
                writer,
                Authenticator(settings),
                handler=engine.decide_batch,
                prefer=engine.urgent,
                owner=f"replica-{n}",
            )
            rt.batch_alerts = 300
            rt.idle_poll = 0.02
            replicas.append((engine, rt, writer, handle))
        for _, rt, _, _ in replicas:
            rt.start()
        store = Store(db)
        while (await store.backlog())[0]:
            await asyncio.sleep(0.05)
        for engine, rt, writer, handle in replicas:
            await rt.drain()
            await engine.stop(within=30)
            writer.stop()
            handle.dispose()
    with db.connect() as conn:
        dupes = conn.execute(
            text(
                "SELECT count(*) FROM (SELECT policy, step, fingerprint, starts_at "
                "FROM executions GROUP BY 1, 2, 3, 4 HAVING count(*) > 1) d"
            )
        ).scalar_one()
        owned = conn.execute(text("SELECT fingerprint FROM executions WHERE step = 0")).all()
        joined = conn.execute(text("SELECT fingerprint FROM coalesced")).all()
        owners = conn.execute(text("SELECT DISTINCT lease_owner FROM notifications")).all()
    db.dispose()
    assert dupes == 0
    decided = [r[0] for r in owned] + [r[0] for r in joined]
    assert sorted(decided) == sorted(f"{n:016x}" for n in range(4000)), "each alert once"
    assert len(owned) == 40  # per target: one that acted and one waiting for the cooldown
    if shared_url.startswith("postgresql"):  # SQLite's one replica takes no lease
        assert {r[0] for r in owners} == {"replica-0", "replica-1"}, "both took a share"


def test_sigterm_with_a_backlog_exits_promptly_and_loses_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    db = database.connect(url)
    database.migrate(db)
    count = 600  # notifications of 100 alerts: 60,000 alerts over 30 targets
    bodies = [storm("Burst", 100 * n, 100, deployment=f"d{n % 30}") for n in range(count)]
    now = datetime.now(UTC)
    for first in range(0, count, 100):
        chunk = bodies[first : first + 100]
        store_notifications.write_batch(db, [(b, payload.parse(b), now) for b in chunk])
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICIES)
    config = svc.write_config(
        tmp_path, policies=[str(folder)], store={"url": url}, automation={"dry_run": False}
    )

    def processed() -> int:
        with db.connect() as conn:
            return int(
                conn.execute(
                    text("SELECT count(*) FROM notifications WHERE processed_at IS NOT NULL")
                ).scalar_one()
            )

    service = svc.start(config)
    try:
        wait_for(lambda: processed() > 0, 30, "the first batch decided")
        began = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        service.process.wait(timeout=30)
        took = time.monotonic() - began
    finally:
        svc.stop(service.process)
    left = count - processed()
    assert took < 10, f"SIGTERM took {took:.1f}s to stop the service"
    assert left > 0, "the backlog was gone before the signal: the test proves nothing"
    assert "waiting to be decided" in service.logs()

    with svc.running(config):
        wait_for(lambda: processed() == count, 120, "the rest decided after the restart")
    with db.connect() as conn:
        owned = conn.execute(text("SELECT fingerprint FROM executions WHERE step = 0")).all()
        joined = conn.execute(text("SELECT fingerprint FROM coalesced")).all()
    db.dispose()
    decided = sorted([r[0] for r in owned] + [r[0] for r in joined])
    assert decided == sorted(f"{n:016x}" for n in range(100 * count)), "each alert once"
