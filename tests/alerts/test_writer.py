"""The store writer cannot die, cannot keep a request waiting forever, and says when it is
stuck: one bad row fails only its own request, a stuck store answers 503 within the
deadline and makes /readyz 503 until it moves again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest

from monitor import settings
from monitor.alerts import payload
from monitor.errors import ConfigError, StoreError
from monitor.heartbeat import Heartbeat
from monitor.store import database, notifications
from tests.support import service as svc
from tests.support.services import wait_for


def good(fingerprint: str) -> bytes:
    body = json.loads(svc.fixture_bytes("firing-single.json"))
    body["alerts"][0]["fingerprint"] = fingerprint
    return json.dumps(body).encode()


def _pg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def writes_blocked(url: str) -> Iterator[None]:
    """Another connection holds the write lock (as a stuck disk or a long lock would)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
    else:
        with psycopg.connect(_pg(url)) as pg:
            pg.execute("LOCK TABLE notifications IN EXCLUSIVE MODE")
            try:
                yield
            finally:
                pg.rollback()


def poison(url: str) -> None:
    """A trigger that makes the database refuse the alert with fingerprint 'poison'."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON alerts WHEN NEW.fingerprint = 'poison' "
            "BEGIN SELECT RAISE(ABORT, 'poisoned row'); END"
        )
        conn.close()
        return
    with psycopg.connect(_pg(url), autocommit=True) as pg:
        pg.execute(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "IF NEW.fingerprint = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; "
            "RETURN NEW; END $$"
        )
        pg.execute(
            "CREATE TRIGGER poison BEFORE INSERT ON alerts FOR EACH ROW EXECUTE FUNCTION poison()"
        )


def pending(service: svc.Service) -> float:
    for line in service.get("/metrics").text.splitlines():
        if line.startswith('conea_monitor_worker_pending{worker="store writer"}'):
            return float(line.split()[-1])
    raise AssertionError("no conea_monitor_worker_pending metric")


def stored(service: svc.Service) -> set[str]:
    items = service.get("/api/v1/alerts", params={"limit": 1000}).json()["items"]
    return {a["fingerprint"] for a in items}


def test_a_bad_row_fails_only_its_own_request_of_a_batch(store_url: str, tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, store={"url": store_url})
    with svc.running(config) as service, ThreadPoolExecutor(4) as pool:
        poison(store_url)
        with writes_blocked(store_url):
            first = pool.submit(service.post, good("first"))
            wait_for(lambda: pending(service) == 1, what="the first request queued")
            rest = {fp: pool.submit(service.post, good(fp)) for fp in ("poison", "a2", "a3")}
            # All four wait on the blocked writer: the last three are written together.
            wait_for(lambda: pending(service) == 4, what="the batch queued")
        answers = {"first": first.result(), **{fp: f.result() for fp, f in rest.items()}}
        assert {fp: r.status_code for fp, r in answers.items()} == {
            "first": 200,
            "poison": 503,
            "a2": 200,
            "a3": 200,
        }
        error = answers["poison"].json()["error"]
        assert error.startswith("the store could not commit the notification: ")
        assert "poisoned row" in error and error.endswith("; Alertmanager will retry")
        assert stored(service) == {"first", "a2", "a3"}
        assert "a grouped write of" in service.logs()  # it was a batch, retried one by one
        assert service.get("/readyz").status_code == 200
        assert service.post(good("later")).status_code == 200


def test_a_stuck_writer_answers_503_in_time_and_is_not_ready(
    store_url: str, tmp_path: Path
) -> None:
    config = svc.write_config(tmp_path, store={"url": store_url, "write_timeout_seconds": 1})
    with svc.running(config) as service:
        with writes_blocked(store_url):
            response = service.post(good("stuck"))
            assert response.status_code == 503
            assert response.json() == {
                "error": "the store did not commit the notification within 1 s; "
                "Alertmanager will retry"
            }
            wait_for(lambda: service.get("/readyz").status_code == 503, what="not ready")
            ready = service.get("/readyz").json()
            assert ready["status"] == "not ready"
            [problem] = ready["problems"]
            assert problem.startswith("store writer stalled: 1 item(s) waiting, nothing done for")
            assert problem.endswith("(deadline 1 s)")
            metrics = service.get("/metrics").text
            assert 'conea_monitor_worker_stalled{worker="store writer"} 1.0' in metrics
        wait_for(lambda: service.get("/readyz").status_code == 200, what="ready again")
        assert service.post(good("after")).status_code == 200
        assert {"stuck", "after"} <= stored(service)
        metrics = service.get("/metrics").text
        assert 'conea_monitor_worker_stalled{worker="store writer"} 0.0' in metrics


def test_the_writer_outlives_an_error_that_is_not_the_databases(tmp_path: Path) -> None:
    engine = database.connect(f"sqlite:///{tmp_path / 'store.db'}")
    database.migrate(engine)
    writer = notifications.NotificationWriter(engine, write_timeout=30)
    writer.start()
    valid = payload.parse(good("ok"))
    # Built past validation: a time that overflows when converted to UTC.
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    bad_alert = valid.alerts[0].model_copy(update={"starts_at": early, "fingerprint": "bad"})
    bad = valid.model_copy(update={"alerts": [bad_alert]})

    async def send() -> list[object]:
        now = datetime.now(UTC)
        results = await asyncio.gather(
            writer.submit(b"{}", bad, now),
            writer.submit(b"{}", valid, now),
            return_exceptions=True,
        )
        return list(results)

    try:
        failed, ok = asyncio.run(send())
        assert isinstance(failed, StoreError)
        assert isinstance(ok, notifications.StoredNotification)
        later = asyncio.run(writer.submit(b"{}", payload.parse(good("later")), datetime.now(UTC)))
        assert [a.alert.fingerprint for a in later.alerts] == ["later"]
        assert writer.heartbeat.problem() is None
    finally:
        writer.stop()
        engine.dispose()
    assert writer.heartbeat.problem() == "store writer is not running"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_heartbeat_is_stalled_only_while_work_waits_past_its_deadline() -> None:
    clock = Clock()
    beat = Heartbeat("consumer", 10, clock)
    assert beat.problem() == "consumer is not running"
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    beat.attach(thread)
    thread.start()
    try:
        clock.now += 3600  # idle for an hour: fine
        assert beat.problem() is None
        beat.waiting(2)
        clock.now += 10
        assert beat.problem() is None
        clock.now += 0.5
        assert beat.problem() == (
            "consumer stalled: 2 item(s) waiting, nothing done for 10.5 s (deadline 10 s)"
        )
        beat.done(1)  # progress: the clock starts again for what still waits
        assert beat.problem() is None
        clock.now += 11
        assert beat.problem() is not None
        beat.done(1)
        clock.now += 60
        assert beat.problem() is None
    finally:
        stop.set()
        thread.join()
    assert beat.problem() == "consumer is not running"


def test_a_write_timeout_of_zero_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as refused:
        settings.load(None, store={"write_timeout_seconds": 0})
    assert str(refused.value) == (
        "<defaults> (or environment CONEA_MONITOR_STORE__WRITE_TIMEOUT_SECONDS): "
        "store.write_timeout_seconds: Input should be greater than 0"
    )
