"""Evidence in the store: what diagnostics gathered, kept with its execution, read back
in order and typed, on SQLite and PostgreSQL; the 0005 migration goes up and down."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from monitor.store import database
from monitor.store import executions as store
from monitor.store.facade import Store
from monitor.store.records import Evidence, ExecutionKey
from monitor.store.states import State
from tests.support import migrations, service

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def _execution(db: database.Handle, fingerprint: str) -> int:
    return store.claim(
        db,
        ExecutionKey("api-down", 0, fingerprint, NOW),
        {
            "alertname": "ApiDown",
            "labels": {},
            "target_key": "Deployment/production/conea-api",
            "target": {},
            "state": State.RUNNING,
            "dry_run": False,
            "actions": [],
            "created_at": NOW,
            "updated_at": NOW,
        },
    )


def _item(execution_id: int, name: str, at: datetime, **fields: object) -> Evidence:
    values: dict[str, object] = {
        "id": 0,
        "execution_id": execution_id,
        "phase": "before",
        "name": name,
        "action": "kubernetes.pods",
        "started_at": at,
        "finished_at": at + timedelta(milliseconds=40),
        "outcome": "ok",
        "error": None,
        "summary": "3 pods, 1 not ready (CrashLoopBackOff, 7 restarts)",
        "result": {
            "kind": "table",
            "columns": ["name", "ready"],
            "rows": [["conea-api-1", "0/1"], ["conea-api-2", "1/1"]],
        },
        "truncated": False,
    }
    values.update(fields)
    return Evidence(**values)  # type: ignore[arg-type]


async def test_evidence_comes_back_with_its_execution_in_the_order_it_was_gathered(
    db: database.Handle,
) -> None:
    s = Store(db)
    one, other = _execution(db, "fp1"), _execution(db, "fp2")
    later = NOW + timedelta(minutes=5)
    # Stored out of order: read back by started_at, then by id.
    after = await s.add_evidence(
        _item(
            one,
            "logs",
            later,
            phase="after_verification",
            action="kubernetes.logs",
            outcome="timed_out",
            error="did not finish within 10s",
            summary="timed out",
            result=None,
            truncated=False,
        )
    )
    pods = await s.add_evidence(_item(one, "pods", NOW, id=999))
    events = await s.add_evidence(
        _item(
            one,
            "events",
            NOW,
            action="kubernetes.events",
            result={"kind": "lines", "lines": ["BackOff x7"]},
            truncated=True,
        )
    )
    await s.add_evidence(_item(other, "pods", NOW))
    assert pods != 999 and len({after, pods, events}) == 3

    found = await s.evidence(one)
    assert [(e.id, e.name, e.phase) for e in found] == [
        (pods, "pods", "before"),
        (events, "events", "before"),
        (after, "logs", "after_verification"),
    ]
    first = found[0]
    assert first == _item(one, "pods", NOW, id=pods)
    assert first.started_at.tzinfo is not None
    assert found[1].truncated and found[1].result == {"kind": "lines", "lines": ["BackOff x7"]}
    assert (found[2].outcome, found[2].error, found[2].result) == (
        "timed_out",
        "did not finish within 10s",
        None,
    )
    assert await s.evidence(12345) == []


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return service.store_url(request, tmp_path, "conea_migrate_evidence")


def test_0005_adds_the_evidence_table_and_goes_back(url: str) -> None:
    db = database.connect(url)
    migrations.to(db, "head")
    tables = inspect(db)
    assert "evidence" in tables.get_table_names()
    assert [ix["column_names"] for ix in tables.get_indexes("evidence")] == [["execution_id"]]
    migrations.to(db, "0004", down=True)
    assert "evidence" not in inspect(db).get_table_names()
    db.dispose()
