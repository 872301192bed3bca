"""The breaker's count holds across replicas: two engines on one store deciding a storm
over 100 distinct targets at the same moment, with ``max_actions.count: 5``, act 5 times
and skip 95, round after round, on SQLite and PostgreSQL.

Each replica's batch reads the count before either commits (a barrier after the read
makes sure of it), which is the race: each one alone would admit 5."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from monitor import policy
from monitor.actions import Services, default_registry
from monitor.actions.registry import Registry
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
from tests.engine.test_breaker_storm import POLICIES  # the same storm, over the API there
from tests.support import service
from tests.support.engine import Clock, firing

T0 = datetime(2026, 11, 28, 14, 30, tzinfo=UTC)
REASON = "breaker open: 5 live actions in the last 10m (max 5)"


class Replica:
    """A replica's breaker as its deciders use it (a ``deciding.Gate``), with what
    happens between its read of the count and its decisions left to :meth:`read`."""

    def __init__(self, breaker: Breaker) -> None:
        self.breaker = breaker

    async def read(self, now: datetime) -> None:
        return None

    async def refresh(self, now: datetime) -> None:
        await self.breaker.refresh(now)
        await self.read(now)

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


class Together(Replica):
    """A replica's breaker whose batches wait, after reading the count, until the other
    replica's batch has read it too: both decide from the same count."""

    def __init__(self, breaker: Breaker, barrier: asyncio.Barrier) -> None:
        super().__init__(breaker)
        self.barrier = barrier

    async def read(self, now: datetime) -> None:
        await self.barrier.wait()


class Behind(Replica):
    """A replica's breaker that read the count just before another replica's actions
    filled it: its own count says there is room."""

    def __init__(self, breaker: Breaker, db: database.Handle, at: datetime) -> None:
        super().__init__(breaker)
        self.db = db
        self.at = at

    async def read(self, now: datetime) -> None:
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


@dataclass
class Storm:
    """The storm policy on one store, and what the replicas' breakers told people."""

    url: str
    db: database.Handle
    registry: Registry
    policies: policy.PolicySet
    told: list[str] = field(default_factory=list)

    async def tell(self, message: str) -> None:
        self.told.append(message)

    def engine(
        self,
        handle: database.Handle,
        http: httpx.AsyncClient,
        settings: MaxActions,
        clock: Clock,
        gate: Callable[[Breaker], Replica],
        owner: str | None = None,
    ) -> Engine:
        """A live replica on ``handle`` whose breaker (``max_actions``) is ``gate``'s."""
        metrics = Metrics()
        return Engine(
            store=Store(handle),
            policies=self.policies,
            registry=self.registry,
            services=Services(http=http),
            metrics=metrics,
            automation=AutomationSettings(dry_run=False, max_actions=settings),
            firing=FiringCheck(None, None, http),
            clock=clock,
            owner=owner,
            gate=gate(Breaker(settings, Store(handle), metrics, notify=self.tell)),
        )


@pytest.fixture(params=["sqlite", "postgres"])
def storm(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storm]:
    url = service.store_url(request, tmp_path, "conea_breaker_replicas")
    (tmp_path / "p.yaml").write_text(POLICIES)
    registry = default_registry()
    db = database.connect(url)
    database.migrate(db)
    yield Storm(url, db, registry, policy.load([tmp_path / "p.yaml"], registry))
    db.dispose()


async def test_two_replicas_deciding_a_storm_together_act_exactly_count_times(
    storm: Storm,
) -> None:
    settings = MaxActions.model_validate({"count": 5, "window": "10m", "reset": "manual"})
    db = storm.db
    clock = Clock(T0)
    barrier = asyncio.Barrier(2)
    handles = [database.connect(storm.url) for _ in range(2)]
    async with httpx.AsyncClient() as http:
        engines = [
            storm.engine(
                handle,
                http,
                settings,
                clock,
                lambda breaker: Together(breaker, barrier),
                owner=f"replica-{n}",
            )
            for n, handle in enumerate(handles)
        ]
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
            assert len(storm.told) == round_ + 1, "one notification each time it opens"
            assert store_breaker.breaker_state(db).open
            # An operator resumes: the next round gets the next 5 actions.
            assert store_breaker.close_breaker(db, clock.at + timedelta(seconds=30), "test")
    for handle in handles:
        handle.dispose()


async def test_a_single_decision_the_store_refuses_is_skipped_and_opens_it_once(
    storm: Storm,
) -> None:
    settings = MaxActions.model_validate({"count": 5, "window": "10m"})
    db = storm.db
    async with httpx.AsyncClient() as http:
        engine = storm.engine(db, http, settings, Clock(T0), lambda b: Behind(b, db, T0))
        found = storm.policies.get("storm")
        assert found is not None
        ctx = alert_context(firing("f" * 16, alertname="Storm", deployment="svc-1"))
        await engine.decide(found, ctx, 0)
        await engine.stop(within=30)
    with db.connect() as conn:
        mine = conn.execute(
            select(executions.c.id).where(executions.c.fingerprint == "f" * 16)
        ).all()
        skips = conn.execute(
            select(audit.c.message).where(audit.c.kind == "skip", audit.c.outcome == "breaker")
        ).all()
    assert store_breaker.breaker_state(db).open
    assert mine == [], "the store refused the claim: nothing acted"
    assert [m for (m,) in skips] == [f"'storm': breaker: {REASON}"]
    gate = engine.gate
    assert isinstance(gate, Behind)
    assert gate.breaker.is_open and gate.breaker.reason() == REASON
    assert len(storm.told) == 1 and REASON in storm.told[0]
    sample = engine.parts.metrics.registry.get_sample_value
    assert sample("conea_monitor_skips_total", {"policy": "storm", "guardrail": "breaker"}) == 1
    assert sample("conea_monitor_breaker_open", {}) == 1
