"""The breaker's count holds across replicas: two engines on one store deciding a storm
over 100 distinct targets at the same moment, with ``max_actions.count: 5``, act 5 times
and skip 95, round after round, on SQLite and PostgreSQL.

Each replica's batch reads the count before either commits (a barrier after the read
makes sure of it), which is the race: each one alone would admit 5."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from monitor import policy
from monitor.actions import Services, default_registry
from monitor.alerts import payload
from monitor.alerts.context import alert_context
from monitor.engine.breaker import Breaker
from monitor.engine.core import Engine
from monitor.engine.firing import FiringCheck
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings, MaxActions
from monitor.store import breaker as store_breaker
from monitor.store import database
from monitor.store import executions as store_executions
from monitor.store import notifications as store_notifications
from monitor.store.breaker import Limit, Refusal
from monitor.store.facade import Store
from monitor.store.records import ExecutionKey
from monitor.store.schema import audit, executions
from tests.engine.conftest import alert, notification
from tests.support import service
from tests.support.engine import firing

POLICIES = """
policies:
  - name: storm
    match: ['alertname="Storm"']
    target: {kind: Deployment, namespace: production, name: "{{ labels.deployment }}"}
    steps: [[{action: log, with: {message: "storm on {{ labels.deployment }}"}}]]
    cooldown: 0s
"""
T0 = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)
REASON = "breaker open: 5 live actions in the last 10m (max 5)"


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


class Together:
    """A replica's breaker whose batches wait, after reading the count, until the other
    replica's batch has read it too: both decide from the same count."""

    def __init__(self, breaker: Breaker, barrier: asyncio.Barrier) -> None:
        self.breaker = breaker
        self.barrier = barrier

    async def refresh(self, now: datetime) -> None:
        await self.breaker.refresh(now)
        await self.barrier.wait()

    def admit(self) -> bool:
        return self.breaker.admit()

    def reason(self) -> str:
        return self.breaker.reason()

    async def settle(self, now: datetime) -> None:
        await self.breaker.settle(now)

    def limit(self, now: datetime) -> Limit | None:
        return self.breaker.limit(now)

    async def refused(self, now: datetime, refusal: Refusal) -> None:
        await self.breaker.refused(now, refusal)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield service.store_url(request, tmp_path, "conea_breaker_replicas")


async def test_two_replicas_deciding_a_storm_together_act_exactly_count_times(
    url: str, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(POLICIES)
    registry = default_registry()
    policies = policy.load([tmp_path / "p.yaml"], registry)
    settings = MaxActions.model_validate({"count": 5, "window": "10m", "reset": "manual"})
    db = database.connect(url)
    database.migrate(db)
    clock = Clock(T0)
    barrier = asyncio.Barrier(2)
    told: list[str] = []

    async def tell(message: str) -> None:
        told.append(message)

    handles = [database.connect(url) for _ in range(2)]
    async with httpx.AsyncClient() as http:
        engines = []
        for n, handle in enumerate(handles):
            metrics = Metrics()
            breaker = Breaker(settings, Store(handle), metrics, notify=tell)
            engines.append(
                Engine(
                    store=Store(handle),
                    policies=policies,
                    registry=registry,
                    services=Services(http=http),
                    metrics=metrics,
                    automation=AutomationSettings(dry_run=False, max_actions=settings),
                    firing=FiringCheck(None, None, http),
                    clock=clock,
                    owner=f"replica-{n}",
                    gate=Together(breaker, barrier),
                )
            )
        for round_ in range(5):
            clock.at = T0 + timedelta(minutes=round_)
            first = 100 * round_
            bodies = [
                notification(
                    *(
                        alert("Storm", f"{n:016x}", deployment=f"svc-{n}")
                        for n in range(group, group + 10)
                    )
                )
                for group in range(first, first + 100, 10)
            ]
            items = [(b, payload.parse(b), clock.at) for b in bodies]
            notes = store_notifications.write_batch(db, items)
            failures = await asyncio.gather(
                engines[0].decide_batch(notes[0::2]), engines[1].decide_batch(notes[1::2])
            )
            assert failures == [{}, {}]
            for engine in engines:
                await engine.stop(within=30)

            with db.connect() as conn:
                acted = conn.execute(
                    select(executions.c.state).where(executions.c.created_at == clock.at)
                ).all()
                skips = conn.execute(
                    select(audit.c.message).where(
                        audit.c.kind == "skip", audit.c.outcome == "breaker", audit.c.at == clock.at
                    )
                ).all()
                opened = conn.execute(
                    select(audit.c.message).where(
                        audit.c.kind == "breaker", audit.c.outcome == "open"
                    )
                ).all()
            assert sorted(state for (state,) in acted) == ["succeeded"] * 5, f"round {round_}"
            assert len(skips) == 95, f"round {round_}"
            assert {message for (message,) in skips} == {f"'storm': breaker: {REASON}"}
            assert [message for (message,) in opened] == [REASON] * (round_ + 1)
            assert len(told) == round_ + 1, "one notification each time it opens"
            assert store_breaker.breaker_state(db).open
            # An operator resumes: the next round gets the next 5 actions.
            assert store_breaker.close_breaker(db, clock.at + timedelta(seconds=30), "test")
    for handle in handles:
        handle.dispose()
    db.dispose()


class Behind:
    """A replica's breaker that read the count just before another replica's actions
    filled it: its own count says there is room."""

    def __init__(self, breaker: Breaker, db: database.Handle, at: datetime) -> None:
        self.breaker = breaker
        self.db = db
        self.at = at

    async def refresh(self, now: datetime) -> None:
        await self.breaker.refresh(now)
        for n in range(5):  # another replica acts meanwhile
            row = {
                "alertname": "Storm",
                "labels": {},
                "target_key": f"Deployment/production/other-{n}",
                "target": {},
                "state": "running",
                "dry_run": False,
                "actions": [],
                "created_at": self.at,
                "updated_at": self.at,
            }
            store_executions.claim(self.db, ExecutionKey("storm", 0, f"other{n}", self.at), row)

    def admit(self) -> bool:
        return self.breaker.admit()

    def reason(self) -> str:
        return self.breaker.reason()

    async def settle(self, now: datetime) -> None:
        await self.breaker.settle(now)

    def limit(self, now: datetime) -> Limit | None:
        return self.breaker.limit(now)

    async def refused(self, now: datetime, refusal: Refusal) -> None:
        await self.breaker.refused(now, refusal)


async def test_a_single_decision_the_store_refuses_is_skipped_and_opens_it_once(
    url: str, tmp_path: Path
) -> None:
    (tmp_path / "p.yaml").write_text(POLICIES)
    registry = default_registry()
    policies = policy.load([tmp_path / "p.yaml"], registry)
    settings = MaxActions.model_validate({"count": 5, "window": "10m"})
    db = database.connect(url)
    database.migrate(db)
    told: list[str] = []

    async def tell(message: str) -> None:
        told.append(message)

    metrics = Metrics()
    breaker = Breaker(settings, Store(db), metrics, notify=tell)
    async with httpx.AsyncClient() as http:
        engine = Engine(
            store=Store(db),
            policies=policies,
            registry=registry,
            services=Services(http=http),
            metrics=metrics,
            automation=AutomationSettings(dry_run=False, max_actions=settings),
            firing=FiringCheck(None, None, http),
            clock=Clock(T0),
            gate=Behind(breaker, db, T0),
        )
        storm = policies.get("storm")
        assert storm is not None
        ctx = alert_context(firing("f" * 16, alertname="Storm", deployment="svc-1"))
        await engine.decide(storm, ctx, 0)
        await engine.stop(within=30)
    with db.connect() as conn:
        mine = conn.execute(
            select(executions.c.id).where(executions.c.fingerprint == "f" * 16)
        ).all()
        skips = conn.execute(
            select(audit.c.message).where(audit.c.kind == "skip", audit.c.outcome == "breaker")
        ).all()
    assert store_breaker.breaker_state(db).open
    db.dispose()
    assert mine == [], "the store refused the claim: nothing acted"
    assert [m for (m,) in skips] == [f"'storm': breaker: {REASON}"]
    assert breaker.is_open and breaker.reason() == REASON
    assert len(told) == 1 and REASON in told[0]
    sample = metrics.registry.get_sample_value
    assert sample("conea_monitor_skips_total", {"policy": "storm", "guardrail": "breaker"}) == 1
    assert sample("conea_monitor_breaker_open", {}) == 1
