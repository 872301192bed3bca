"""A notification whose processing keeps raising is retried, then parked as poisoned
(recorded, audited, counted), and never stands in the way of the others; recovery at
start-up takes up every unprocessed notification, however many are parked before them."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update

from monitor.alerts import payload
from monitor.api import health
from monitor.auth import Authenticator
from monitor.metrics import Metrics
from monitor.runtime import Runtime
from monitor.settings import Settings
from monitor.store import database, queue
from monitor.store import notifications as store_notifications
from monitor.store.notifications import NotificationWriter, StoredNotification
from monitor.store.schema import audit, notifications
from tests.engine.conftest import alert, notification, wait_for
from tests.support import migrations
from tests.support import service as svc
from tests.support.services import Postgres


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'poison.db'}"
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.url(pg.create_database("conea_poison"))


def test_the_migration_keeps_unprocessed_notifications_and_goes_back(db_url: str) -> None:
    db = database.connect(db_url)
    migrations.to(db, "0001")
    body = notification(alert("Down", "m000"))
    with db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO notifications (received_at, receiver, status, group_key, "
                "truncated_alerts, alert_count, payload) "
                "VALUES (:at, 'r', 'firing', 'g', 0, 1, :body)"
            ),
            {"at": datetime(2026, 11, 28, tzinfo=UTC), "body": body.decode()},
        )
    database.migrate(db)
    now = datetime.now(UTC)
    [pending] = queue.lease(db, "r", now, now, limit_alerts=10)
    assert (pending.body, pending.attempts) == (body.decode(), 0)
    queue.retry_later(db, {pending.id: (3, "boom", now)}, now)
    assert queue.lease(db, "r", now, now, limit_alerts=10) == []
    migrations.to(db, "0001", down=True)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM notifications")).scalar() == 1
    db.dispose()


def store(db: object, *bodies: bytes) -> list[StoredNotification]:
    items = [(body, payload.parse(body), datetime.now(UTC)) for body in bodies]
    return store_notifications.write_batch(db, items)  # type: ignore[arg-type]


async def test_a_notification_that_keeps_failing_is_retried_then_parked(db_url: str) -> None:
    db = database.connect(db_url)
    database.migrate(db)
    bad, good = store(db, notification(alert("Bad", "bad0")), notification(alert("Ok", "good")))
    writer = NotificationWriter(db)
    writer.start()
    metrics = Metrics()
    calls: list[int] = []
    decided = asyncio.Event()

    async def handler(batch: list[StoredNotification]) -> dict[int, BaseException]:
        failures: dict[int, BaseException] = {}
        for stored in batch:
            calls.append(stored.id)
            if stored.id == bad.id:
                failures[stored.id] = RuntimeError("the engine cannot take this one")
            else:
                decided.set()
        return failures

    settings = Settings(policies=[])
    rt = Runtime(settings, metrics, db, writer, Authenticator(settings), handler=handler)
    rt.retry_backoff = 0.0
    rt.idle_poll = 0.01
    try:
        rt.start()
        deadline = asyncio.get_running_loop().time() + 30
        while calls.count(bad.id) < 3 and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        await rt.drain()
    finally:
        writer.stop()
    assert decided.is_set()
    assert calls.count(bad.id) == 3 and calls.count(good.id) == 1
    with db.connect() as conn:
        rows = {
            r.id: r
            for r in conn.execute(
                select(
                    notifications.c.id,
                    notifications.c.attempts,
                    notifications.c.last_error,
                    notifications.c.poisoned_at,
                    notifications.c.processed_at,
                )
            )
        }
        records = conn.execute(
            select(audit.c.kind, audit.c.outcome, audit.c.message, audit.c.details)
        ).all()
    db.dispose()
    assert rows[bad.id].attempts == 3
    assert rows[bad.id].last_error == "RuntimeError: the engine cannot take this one"
    assert rows[bad.id].poisoned_at is not None and rows[bad.id].processed_at is None
    assert rows[good.id].processed_at is not None and rows[good.id].poisoned_at is None
    [record] = records
    assert (record.kind, record.outcome) == ("poison", "poisoned")
    assert f"notification {bad.id} failed 3 times" in record.message
    assert record.details["notification_id"] == bad.id
    assert metrics.registry.get_sample_value("conea_monitor_notifications_poisoned_total") == 1.0


POLICY = """
policies:
  - name: record
    match: ['alertname="Down"']
    target: {kind: Service, namespace: production, name: "{{ labels.service }}"}
    steps: [[{action: log}]]
"""


def down(fingerprint: str, **labels: str) -> bytes:
    return notification(alert("Down", fingerprint, service=fingerprint, **labels))


def test_restart_takes_up_every_interrupted_notification_past_the_parked_ones(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    db = database.connect(url)
    database.migrate(db)
    # 1,100 parked notifications first (lowest ids), then 610 a crash interrupted: 600
    # no policy acts on, and 10 the policy acts on, the last of all.
    parked = store(db, *(down(f"p{n:04d}") for n in range(1100)))
    with db.begin() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.id <= parked[-1].id)
            .values(attempts=3, last_error="RuntimeError: boom", poisoned_at=datetime.now(UTC))
        )
    quiet = store(db, *(notification(alert("Quiet", f"q{n:04d}")) for n in range(600)))
    acted = store(db, *(down(f"i{n:04d}") for n in range(10)))
    db.dispose()
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    config = svc.write_config(
        tmp_path, policies=[str(folder)], store={"url": url}, automation={"dry_run": False}
    )
    with svc.running(config) as service:

        def executions() -> list[dict[str, object]]:
            items: list[dict[str, object]] = service.get(
                "/api/v1/executions", params={"limit": 1000}
            ).json()["items"]
            return items

        def succeeded() -> list[dict[str, object]]:
            return [e for e in executions() if e["state"] == "succeeded"]

        wait_for(lambda: len(succeeded()) >= 10, 60, "the 10 interrupted notifications")
        done = executions()

        db = database.connect(url)

        def all_processed() -> bool:
            with db.connect() as conn:
                left = conn.execute(
                    select(notifications.c.id).where(
                        notifications.c.processed_at.is_(None),
                        notifications.c.poisoned_at.is_(None),
                    )
                ).all()
            return not left

        wait_for(all_processed, 60, "every interrupted notification processed")
        with db.connect() as conn:
            parked_processed = conn.execute(
                select(notifications.c.id).where(
                    notifications.c.id <= parked[-1].id, notifications.c.processed_at.isnot(None)
                )
            ).all()
        db.dispose()
        metrics = httpx.get(f"{service.url}/metrics").text
    assert sorted(str(e["fingerprint"]) for e in done) == [f"i{n:04d}" for n in range(10)]
    assert all(e["state"] == "succeeded" for e in done)
    assert not parked_processed, "parked notifications must stay parked"
    assert len(quiet) == 600 and len(acted) == 10
    assert "conea_monitor_notifications_poisoned_total 0.0" in metrics
    assert "resumed 610 notification(s)" in service.logs()


def test_a_stored_body_that_no_longer_parses_is_parked_not_lost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    db = database.connect(url)
    database.migrate(db)
    [broken] = store(db, down("b000"))
    [fine] = store(db, down("f000"))
    with db.begin() as conn:
        conn.execute(
            update(notifications)
            .where(notifications.c.id == broken.id)
            .values(payload=json.dumps({"receiver": "truncated"}))
        )
    db.dispose()
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    config = svc.write_config(
        tmp_path, policies=[str(folder)], store={"url": url}, automation={"dry_run": False}
    )
    with svc.running(config) as service:
        wait_for(
            lambda: service.get("/api/v1/executions", params={"fingerprint": "f000"}).json()[
                "items"
            ],
            30,
            "the notification after the broken one",
        )
        poisons = service.get("/api/v1/audit", params={"kind": "poison"}).json()["items"]
    assert len(poisons) == 1
    assert f"notification {broken.id} failed" in poisons[0]["message"]
    assert fine.id > broken.id


async def test_a_consumer_stuck_on_one_notification_is_reported(tmp_path: Path) -> None:
    db = database.connect(f"sqlite:///{tmp_path / 'stuck.db'}")
    database.migrate(db)
    [stuck] = store(db, notification(alert("Slow", "s000")))
    writer = NotificationWriter(db)
    writer.start()
    started, release = asyncio.Event(), asyncio.Event()

    async def handler(batch: list[StoredNotification]) -> dict[int, BaseException]:
        started.set()
        await release.wait()
        return {}

    settings = Settings(policies=[])
    rt = Runtime(settings, Metrics(), db, writer, Authenticator(settings), handler=handler)
    try:
        assert rt.consumer_stalled(after=0.0) is None
        rt.start()
        await started.wait()
        why = rt.consumer_stalled(after=0.0)
        assert why is not None and why.startswith(f"notification {stuck.id} has been processing")
        assert rt.consumer_stalled() is None  # not for 300s yet
        app = FastAPI()
        app.include_router(health.router)
        app.state.runtime = rt
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://conea"
        ) as client:
            assert (await client.get("/readyz")).status_code == 200
            rt.stall_after = 0.0
            answer = await client.get("/readyz")
            assert answer.status_code == 503
            [problem] = answer.json()["problems"]
            assert problem.startswith(
                f"engine consumer stalled: notification {stuck.id} has been processing"
            )
        release.set()
        while rt.consumer_stalled(after=0.0) is not None:
            await asyncio.sleep(0.01)
        await rt.drain()
        assert rt.consumer_stalled(after=0.0) is None
    finally:
        writer.stop()
        db.dispose()
