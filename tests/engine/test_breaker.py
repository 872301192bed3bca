"""The blast-radius breaker (monitor.engine.breaker) on a real store, SQLite and PostgreSQL:
exact counts, one opening (and one notification) of racing replicas, the metric, resets."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.engine.breaker import Breaker
from monitor.metrics import Metrics
from monitor.settings import MaxActions
from monitor.store import breaker as store_breaker
from monitor.store import database, queries
from monitor.store import executions as store
from monitor.store.facade import Store
from tests.support import service

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
_keys = itertools.count()


@pytest.fixture(params=["sqlite", "postgres"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[database.Handle]:
    handle = database.connect(service.store_url(request, tmp_path, "conea_breaker"), pool_size=12)
    database.migrate(handle)
    yield handle
    handle.dispose()


def acted(
    db: database.Handle, at: datetime, *, state: str = "running", dry_run: bool = False
) -> None:
    """An execution created at ``at`` (running: it acted, unless dry-run)."""
    key = store.ExecutionKey("p", 0, f"f{next(_keys)}", at)
    row = {
        "alertname": "Storm",
        "labels": {},
        "target_key": f"Deployment/production/d{next(_keys)}",
        "target": {},
        "state": state,
        "dry_run": dry_run,
        "actions": [],
        "created_at": at,
        "updated_at": at,
    }
    if state == "deferred":
        row["due_at"] = at
    store.claim(db, key, row)


def breaker_records(db: database.Handle) -> list[tuple[str | None, str]]:
    items = queries.list_audit(db, queries.Filters(limit=1000)).items
    return [(r["outcome"], r["message"]) for r in reversed(items) if r["kind"] == "breaker"]


def gauge(metrics: Metrics, name: str = "conea_monitor_breaker_open", **labels: str) -> float:
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


class Told:
    def __init__(self, fail: bool = False) -> None:
        self.messages: list[str] = []
        self.fail = fail

    async def __call__(self, message: str) -> None:
        self.messages.append(message)
        if self.fail:
            raise RuntimeError("the chat is down")


def limit(count: int = 3, window: str = "10m", reset: str = "auto") -> MaxActions:
    return MaxActions.model_validate({"count": count, "window": window, "reset": reset})


def test_live_actions_count_only_real_actions_in_the_window(db: database.Handle) -> None:
    for minutes in (1, 2, 9):
        acted(db, NOW - timedelta(minutes=minutes))
    acted(db, NOW - timedelta(minutes=11))  # before the window
    acted(db, NOW - timedelta(minutes=1), dry_run=True)  # planned, never applied
    acted(db, NOW - timedelta(minutes=1), state="deferred")  # decided later, not acted
    assert store_breaker.live_actions(db, NOW - timedelta(minutes=10)) == 3
    assert store_breaker.live_actions(db, NOW - timedelta(minutes=5)) == 2


def test_of_racing_replicas_exactly_one_opens_the_breaker(db: database.Handle) -> None:
    opened: list[bool] = []
    gate = threading.Barrier(8)

    def contender(n: int) -> None:
        gate.wait()
        opened.append(store_breaker.open_breaker(db, NOW, f"breaker open: replica {n}"))

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(opened) == [False] * 7 + [True]
    [(outcome, message)] = breaker_records(db)
    state = store_breaker.breaker_state(db)
    assert outcome == "open" and message == state.reason and state.open
    assert state.opened_at == NOW


def test_closing_keeps_why_it_opened_and_is_audited_once(db: database.Handle) -> None:
    assert store_breaker.close_breaker(db, NOW, "api (127.0.0.1)") is False  # never opened
    assert store_breaker.open_breaker(db, NOW, "breaker open: 5 live actions") is True
    later = NOW + timedelta(minutes=3)
    assert store_breaker.close_breaker(db, later, "api (127.0.0.1)") is True
    assert store_breaker.close_breaker(db, later, "cli (sre)") is False
    assert store_breaker.breaker_state(db) == store_breaker.BreakerState(
        open=False,
        opened_at=NOW,
        reason="breaker open: 5 live actions",
        closed_at=later,
        closed_by="api (127.0.0.1)",
    )
    assert breaker_records(db) == [
        ("open", "breaker open: 5 live actions"),
        ("closed", "breaker closed by api (127.0.0.1)"),
    ]


async def test_it_admits_exactly_count_then_opens_and_notifies_once(db: database.Handle) -> None:
    acted(db, NOW - timedelta(minutes=4))  # one live action already in the window
    metrics, told = Metrics(), Told()
    breaker = Breaker(limit(count=3), Store(db), metrics, notify=told)
    await breaker.refresh(NOW)
    assert [breaker.admit() for _ in range(5)] == [True, True, False, False, False]
    assert breaker.is_open
    acted(db, NOW)  # the two admitted decisions act
    acted(db, NOW)
    assert breaker.reason() == "breaker open: 3 live actions in the last 10m (max 3)"
    assert gauge(metrics) == 0  # nothing stored before the batch commits
    await breaker.settle(NOW)
    await breaker.settle(NOW)  # nothing more to store
    assert gauge(metrics) == 1
    assert store_breaker.breaker_state(db).open
    assert told.messages == [
        "conea-monitor: breaker open: 3 live actions in the last 10m (max 3). Every decision "
        "that would act is skipped (audit records of kind skip, outcome breaker) until the "
        "last 10m hold fewer than 3 live actions, or an operator resumes automation "
        "(POST /api/v1/resume or `conea-monitor resume`)."
    ]
    assert gauge(metrics, "conea_monitor_breaker_notifications_total", outcome="sent") == 1
    await breaker.refresh(NOW + timedelta(seconds=1))
    assert breaker.admit() is False and breaker.is_open  # open until closed


async def test_of_two_replicas_tripping_together_one_notifies(db: database.Handle) -> None:
    told, metrics = Told(), [Metrics(), Metrics()]
    replicas = [Breaker(limit(count=2), Store(db), m, notify=told) for m in metrics]
    for replica in replicas:
        await replica.refresh(NOW)
        assert [replica.admit() for _ in range(3)] == [True, True, False]
    for replica, m in zip(replicas, metrics, strict=True):
        await replica.settle(NOW)
        assert replica.is_open
        assert gauge(m) == 1
    assert len(told.messages) == 1
    assert [outcome for outcome, _ in breaker_records(db)] == ["open"]


async def test_another_replicas_open_breaker_refuses_here(db: database.Handle) -> None:
    store_breaker.open_breaker(db, NOW, "breaker open: 20 live actions in the last 10m (max 20)")
    metrics = Metrics()
    breaker = Breaker(limit(count=20, reset="manual"), Store(db), metrics)
    await breaker.refresh(NOW)
    assert breaker.admit() is False
    assert breaker.reason() == "breaker open: 20 live actions in the last 10m (max 20)"
    assert gauge(metrics) == 1


async def test_manual_reset_stays_open_and_resume_gives_the_next_count(
    db: database.Handle,
) -> None:
    metrics, told = Metrics(), Told()
    breaker = Breaker(limit(count=2, reset="manual"), Store(db), metrics, notify=told)
    await breaker.refresh(NOW)
    for _ in range(2):
        assert breaker.admit()
        acted(db, NOW)
    assert breaker.admit() is False
    await breaker.settle(NOW)
    # The window has long passed: with reset manual it stays open.
    later = NOW + timedelta(hours=2)
    await breaker.refresh(later)
    assert breaker.is_open and gauge(metrics) == 1
    acted(db, later - timedelta(minutes=1))  # in the window, before the resume
    assert await breaker.close(later, "api (127.0.0.1)") is True
    assert gauge(metrics) == 0 and not breaker.is_open
    await breaker.refresh(later + timedelta(seconds=1))
    assert [breaker.admit() for _ in range(3)] == [True, True, False]
    assert store_breaker.breaker_state(db).closed_by == "api (127.0.0.1)"
    assert await breaker.close(later, "cli (sre)") is True  # tripped, not yet stored
    assert await breaker.close(later, "cli (sre)") is False


async def test_auto_reset_closes_once_the_window_has_room(db: database.Handle) -> None:
    metrics, told = Metrics(), Told()
    breaker = Breaker(limit(count=2, window="10m"), Store(db), metrics, notify=told)
    await breaker.refresh(NOW)
    acted(db, NOW - timedelta(minutes=8))
    acted(db, NOW - timedelta(minutes=2))
    await breaker.refresh(NOW)
    assert breaker.admit() is False  # the window holds 2 already
    await breaker.settle(NOW)
    await breaker.refresh(NOW + timedelta(minutes=1))
    assert breaker.is_open  # still 2 in the last 10m
    await breaker.refresh(NOW + timedelta(minutes=3))  # the older one left the window
    assert not breaker.is_open and gauge(metrics) == 0
    state = store_breaker.breaker_state(db)
    assert (state.open, state.closed_by) == (False, "window")
    assert [outcome for outcome, _ in breaker_records(db)] == ["open", "closed"]
    assert [breaker.admit() for _ in range(3)] == [True, True, False]


async def test_a_failing_notifier_is_logged_and_counted_and_the_breaker_opens(
    db: database.Handle, caplog: pytest.LogCaptureFixture
) -> None:
    metrics, told = Metrics(), Told(fail=True)
    breaker = Breaker(limit(count=1), Store(db), metrics, notify=told)
    await breaker.refresh(NOW)
    assert [breaker.admit(), breaker.admit()] == [True, False]
    await breaker.settle(NOW)  # does not raise
    assert len(told.messages) == 1 and breaker.is_open and gauge(metrics) == 1
    assert gauge(metrics, "conea_monitor_breaker_notifications_total", outcome="failed") == 1
    assert "telling the notifier failed" in caplog.text


class Unreachable(Store):
    def __init__(self) -> None:
        super().__init__(None)  # type: ignore[arg-type]

    async def _call(self, operation: str, fn: Any, *args: Any, **kw: Any) -> Any:
        raise AssertionError(f"the disabled breaker read the store ({operation})")


async def test_disabled_it_admits_everything_without_a_store_read() -> None:
    metrics = Metrics()
    breaker = Breaker(None, Unreachable(), metrics)
    await breaker.refresh(NOW)
    assert all(breaker.admit() for _ in range(1000))
    await breaker.settle(NOW)
    assert not breaker.is_open and gauge(metrics) == 0
