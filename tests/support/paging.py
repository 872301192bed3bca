"""Engines that page a PagerDuty on 127.0.0.1 (:mod:`tests.support.pagers`), for the tests
of pages and of their resolves.

A :class:`World` is one store, one PagerDuty, one Alertmanager (:class:`Switch`) and one
clock: the engines built on it are replicas, or the same service before and after a
restart. Its policies act on the alert ``Down`` of the service ``api`` (:func:`alert_down`,
:func:`resolved`). When a test ends, every timer job its engines set off has returned
(none is cut off by the stop) and none was skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

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
from monitor.store.records import Execution
from monitor.store.schema import audit
from tests.support import pagers, service
from tests.support.engine import Clock, firing, stored
from tests.support.timers import Jobs

STARTS = datetime(2026, 11, 28, 10, tzinfo=UTC)  # when alert_down() began
PUBLIC_URL = "https://mon.example/"


def policy_text(name: str, step: str, *, approval: bool = False) -> str:
    """One policy on ``Down``, one step of one action (``step``, a YAML flow mapping)."""
    asks = "\n    approval: required" if approval else ""
    return (
        "policies:\n"
        f"  - name: {name}\n"
        "    match: ['alertname=\"Down\"']\n"
        '    target: {kind: Service, namespace: production, name: "{{ labels.service }}"}'
        f"{asks}\n"
        f"    steps: [[{step}]]\n"
        "    verify: {window: 10m, interval: 1m}\n"
    )


PAGING = policy_text("paging", "{action: notify, with: {notifier: pager}}")


class Switch(FiringCheck):
    """Alertmanager as the test says: the alert fires until ``answer`` changes."""

    answer: State = "firing"

    @property
    def configured(self) -> bool:
        return True

    async def state(self, alert: AlertContext) -> tuple[State, str]:
        return self.answer, f"the test says {self.answer}"


def alert_down() -> StoredNotification:
    return stored([firing("dddd0001", alertname="Down", service="api")])


def resolved() -> AlertContext:
    """Alertmanager's word that alert_down() resolved."""
    return AlertContext(
        labels={"alertname": "Down", "service": "api"},
        annotations={},
        status="resolved",
        fingerprint="dddd0001",
        starts_at=STARTS,
    )


async def until(check: Callable[[], bool]) -> None:
    """Until ``check()`` holds: what a background job writes (an audit record)."""
    while not check():
        await asyncio.sleep(0.01)


@dataclasses.dataclass
class World:
    db: database.Handle
    pd: pagers.Service
    http: httpx.AsyncClient
    switch: Switch
    clock: Clock
    path: Path
    engines: list[Engine] = dataclasses.field(default_factory=list)
    jobs: dict[int, Jobs] = dataclasses.field(default_factory=dict)  # by id(engine)

    def engine(self, text: str, **automation: Any) -> Engine:
        """A live engine on the world's store with ``text`` as its policies, paging
        PagerDuty as the notifier ``pager`` (no retries: a refusal is the test's)."""
        self.path.write_text(text)
        registry = default_registry()
        notifier = targets.Notifier.model_validate(
            {
                "kind": "pagerduty",
                "url": self.pd.url,
                "routing_key": {"env": "PD_ROUTING_KEY"},
                "retries": 0,
            }
        )
        engine = Engine(
            store=Store(self.db),
            policies=policy.load([self.path], registry),
            registry=registry,
            services=Services(http=self.http, notifiers={"pager": notifier}, public_url=PUBLIC_URL),
            metrics=Metrics(),
            automation=AutomationSettings.model_validate({"mode": "live", **automation}),
            firing=self.switch,
            clock=self.clock,
        )
        self.engines.append(engine)
        self.jobs[id(engine)] = Jobs(engine.timers)
        return engine

    async def rows(self, engine: Engine) -> list[Execution]:
        """The executions of alert_down()."""
        return await engine.store.for_alert("dddd0001", STARTS)

    def audit(self, kind: str) -> list[tuple[str | None, int | None]]:
        """The audit records of ``kind``, oldest first: (outcome, execution)."""
        with self.db.connect() as conn:
            rows = conn.execute(
                select(audit.c.outcome, audit.c.execution_id)
                .where(audit.c.kind == kind)
                .order_by(audit.c.id)
            )
            return [(r.outcome, r.execution_id) for r in rows]

    async def settled(self, *engines: Engine) -> None:
        """Until no engine has a resolve waiting to be sent or being sent (each job has
        returned: it claimed or gave up), none of them skipped."""
        for engine in engines:
            jobs = self.jobs[id(engine)]
            await jobs.idle("page-")
            assert jobs.skipped == []

    async def quiet(self) -> None:
        """Until every job the engines' timers started, or that is due, has returned: a
        stop would cancel it halfway (a resolve sent and not recorded, a step cut off)."""
        for engine in self.engines:
            jobs = self.jobs[id(engine)]
            try:
                await asyncio.wait_for(jobs.quiet(), 30)
            except TimeoutError:
                raise AssertionError(f"timer jobs still running: {jobs.running()}") from None


@contextlib.asynccontextmanager
async def world(
    request: pytest.FixtureRequest, directory: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    """A world on SQLite, or on PostgreSQL for a fixture parametrised with ``postgres``;
    its engines are stopped at the end."""
    monkeypatch.setenv("PD_ROUTING_KEY", pagers.ROUTING_KEY)
    db = database.connect(service.store_url(request, directory, "conea_pages"))
    database.migrate(db)
    with pagers.service("pagerduty") as pd:
        async with httpx.AsyncClient() as http:
            made = World(db, pd, http, Switch(None, None, http), Clock(), directory / "p.yaml")
            try:
                yield made
                await made.quiet()
            finally:
                for engine in made.engines:
                    await engine.stop()
                db.dispose()
    skipped = [job for jobs in made.jobs.values() for job in jobs.skipped]
    assert skipped == [], f"timer jobs skipped, one of the same id still running: {skipped}"
