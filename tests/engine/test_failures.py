"""A store that fails while a batch is decided: the failure is raised naming the store's
operation, nothing is half-written, and the runtime leaves the notification unprocessed
(tried again after a backoff, or at the next start)."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from monitor.actions import default_registry
from monitor.errors import StoreError
from monitor.metrics import Metrics
from monitor.store import database
from tests.support.engine import firing, offline_engine, stored
from tests.support.services import Postgres

POLICY = """
policies:
  - name: record
    match: ['alertname="Down"']
    target: {kind: Service, namespace: production, name: "{{ labels.service }}"}
    steps: [[{action: log}]]
"""


async def test_a_failing_store_fails_the_batch_and_is_reported(
    tmp_path: Path, postgres: Postgres
) -> None:
    name = postgres.create_database("conea_failures")
    db = database.connect(postgres.url(name))
    database.migrate(db)
    metrics = Metrics()
    async with httpx.AsyncClient() as http:
        engine = offline_engine(db, POLICY, default_registry(), http, tmp_path, metrics)
        note = stored([firing(f"{n:016x}", alertname="Down", service=f"s{n}") for n in range(3)])
        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        # A typed error naming the operation (the driver's message may quote the server).
        with pytest.raises(StoreError, match="batch_inputs: OperationalError"):
            await engine.handle(note)
        assert engine.running == 0
    db.dispose()
