"""The diagnostics' blocking calls run in their own threads, never in asyncio's default
pool where the steps' calls run: the PostgreSQL diagnostic's lookup of its target's host
name (within the diagnostic's timeout: a resolver that does not answer is the
diagnostic's timeout, recorded, and the step is not held up) and the Prometheus query."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from monitor import targets
from monitor.actions import builtin
from monitor.actions import registry as actions
from monitor.actions.diagnose import postgres as pg_diagnose
from monitor.actions.diagnose import prometheus as prom_diagnose
from monitor.engine import verifier
from monitor.engine.core import Engine
from monitor.store import database
from monitor.store.states import State
from tests.support import services
from tests.support.engine import firing, offline_engine, stored

HOST = "db.conea.test"  # a name only the test's resolver knows


@dataclass
class Resolver:
    """What the diagnostic's lookups saw: the host and the thread each ran in."""

    answer: str | None = None  # an address; None: no answer until ``release``
    asked: list[tuple[str, str]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


RESOLVERS: list[Resolver] = []


class Activity(pg_diagnose.Activity):
    """postgres.activity, its lookups answered by the test's resolver."""

    def lookup(self, host: str, port: int) -> list[str]:
        resolver = RESOLVERS[-1]
        resolver.asked.append((host, threading.current_thread().name))
        if resolver.answer is None:
            resolver.release.wait(timeout=30)  # bounded: a failing test ends
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [resolver.answer]


POLICY = """
policies:
  - name: db-slow
    match: ['alertname="DbSlow"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: log, with: {message: "restarting the api"}}]]
    diagnose:
      - {action: postgres.activity, name: sessions, with: {target: db}, timeout: 100ms}
  - name: db-down
    match: ['alertname="DbDown"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: log, with: {message: "restarting the api"}}]]
    diagnose:
      - {action: postgres.activity, name: sessions, with: {target: db}, timeout: 30s}
  - name: api-slow
    match: ['alertname="ApiSlow"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: log, with: {message: "restarting the api"}}]]
    diagnose:
      - {action: prometheus.query, name: latency, with: {promql: "api_latency_seconds"}}
"""


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    registry = actions.Registry()
    builtin.register(registry)
    registry.register(Activity)
    registry.register(prom_diagnose.Query)
    db = database.connect(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate(db)
    async with httpx.AsyncClient() as http:
        eng = offline_engine(db, POLICY, registry, http, tmp_path)
        port = services.free_port()  # nothing listens there: refused at once
        target = targets.PostgresTarget(host=HOST, port=port, user="conea")
        eng.services.postgres = {"db": target}
        yield eng
    db.dispose()


async def test_the_host_name_is_looked_up_in_the_diagnostics_threads(engine: Engine) -> None:
    RESOLVERS.append(Resolver(answer="127.0.0.1"))
    await engine.handle(stored([firing("d1", alertname="DbDown")]))
    [execution] = await engine.store.for_alert("d1", datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert execution.state == State.SUCCEEDED
    assert RESOLVERS[-1].asked == [(HOST, "diagnose_0")]
    [found] = await engine.store.evidence(execution.id)
    # connected to the address the lookup gave (the name itself resolves nowhere)
    assert found.outcome == "failed"
    assert 'connection to server at "127.0.0.1"' in (found.error or "")


async def test_a_lookup_that_does_not_answer_is_the_diagnostics_timeout(engine: Engine) -> None:
    resolver = Resolver(answer=None)
    RESOLVERS.append(resolver)
    async with asyncio.timeout(30):  # guards against a hang, not a measure
        await engine.handle(stored([firing("d2", alertname="DbSlow")]))
    [execution] = await engine.store.for_alert("d2", datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    assert execution.state == State.SUCCEEDED  # the step was not held up
    [found] = await engine.store.evidence(execution.id)
    assert (found.name, found.outcome, found.error) == (
        "sessions",
        "timed_out",
        "did not finish within 0.1s",
    )
    assert resolver.asked == [(HOST, "diagnose_0")]  # still held there, not in the default pool
    resolver.release.set()
    await asyncio.to_thread(engine.diagnoser.pool.shutdown, wait=True)


class Prometheus:
    """Stands in for the Prometheus client the verifier calls (blocking, in a worker
    thread): answers one series and notes the thread it was called in."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def custom_query(self, query: str) -> list[dict[str, object]]:
        self.threads.append(threading.current_thread().name)
        return [{"metric": {"pod": "api-1"}, "value": [0, "2.5"]}]


async def test_a_prometheus_query_runs_in_the_diagnostics_threads(engine: Engine) -> None:
    prometheus = verifier.Verifier("http://127.0.0.1:9")
    prometheus.close()  # its HTTP client, replaced by the stand-in
    client = Prometheus()
    prometheus._prom = client
    engine.services.prometheus = prometheus
    await engine.handle(stored([firing("d3", alertname="ApiSlow")]))
    [execution] = await engine.store.for_alert("d3", datetime(2026, 11, 28, 10, 0, tzinfo=UTC))
    [found] = await engine.store.evidence(execution.id)
    assert (found.name, found.outcome, found.summary) == (
        "latency",
        "ok",
        '1 series, highest {pod="api-1"} = 2.5',
    )
    assert client.threads == ["diagnose_0"]
