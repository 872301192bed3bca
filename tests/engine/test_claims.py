"""Exactly once comes from the store: of many racing claims for one key, one wins."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.store import database
from monitor.store import executions as store
from monitor.store.states import State
from tests.support.services import Postgres


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claims.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.url(pg.create_database("conea_claims"))


def test_racing_claims_for_one_key_have_one_winner(db_url: str) -> None:
    engine = database.connect(db_url, pool_size=10)
    database.migrate(engine)
    now = datetime.now(UTC)
    key = store.ExecutionKey("scale-out", 0, "abcd", now)
    row = {
        "alertname": "X",
        "labels": {},
        "target_key": "Deployment/p/a",
        "target": {},
        "state": "running",
        "dry_run": False,
        "actions": [],
        "created_at": now,
        "updated_at": now,
    }
    won: list[int] = []
    lost: list[str] = []
    gate = threading.Barrier(12)

    def contender() -> None:
        gate.wait()
        try:
            won.append(store.claim(engine, key, row))
        except store.AlreadyClaimed as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=contender) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert len(won) == 1 and len(lost) == 11


def test_a_deferred_execution_is_taken_by_one_replica_only(db_url: str) -> None:
    engine = database.connect(db_url, pool_size=10)
    database.migrate(engine)
    now = datetime.now(UTC)
    row = {
        "alertname": "X",
        "labels": {},
        "target_key": "t",
        "target": {},
        "state": "deferred",
        "dry_run": False,
        "actions": [],
        "created_at": now,
        "updated_at": now,
        "due_at": now,
    }
    execution_id = store.claim(engine, store.ExecutionKey("p", 0, "f", now), row)
    results: list[bool] = []
    gate = threading.Barrier(8)

    def take() -> None:
        gate.wait()
        record = store.Audit(now, "decision", "taken", outcome="execute")
        moved = store.move(engine, execution_id, "state", State.DEFERRED, State.RUNNING, record)
        results.append(moved)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert sorted(results) == [False] * 7 + [True]
