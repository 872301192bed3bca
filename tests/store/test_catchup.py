"""Resume's catch-up in the store: which alerts skipped during the pause are queued again,
as what, in which transaction; on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from monitor.alerts import payload
from monitor.store import batches, catchup, control, database, executions, queue, records
from monitor.store import notifications as store_notifications
from monitor.store.schema import audit, notifications
from tests.engine.conftest import alert, notification

T0 = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
STARTS = "2026-11-29T07:55:00.250Z"


def receive(db: database.Handle, at: datetime, *alerts: dict[str, Any]) -> None:
    """A webhook's notification, stored as decided already."""
    body = notification(*alerts)
    store_notifications.write_batch(db, [(body, payload.parse(body), at)], (), [False])


def skipped(db: database.Handle, at: datetime, fingerprint: str, outcome: str = "paused") -> None:
    """The audit record the decider writes for an alert skipped by a guardrail."""
    with db.begin() as conn:
        conn.execute(
            insert(audit),
            [
                {
                    "at": at,
                    "kind": "skip",
                    "policy": "restart",
                    "fingerprint": fingerprint,
                    "outcome": outcome,
                    "message": f"'restart': {outcome}: automation is paused",
                }
            ],
        )


def queued(db: database.Handle) -> list[payload.Notification]:
    """The notifications waiting in the queue, taken (and marked decided)."""
    now = datetime.now(UTC)
    taken = queue.lease(db, "t", now, now + timedelta(minutes=2), limit_alerts=100_000)
    ids = [t.id for t in taken]
    batches.commit(db, births=[], joins={}, records=[], processed=ids, at=now)  # decided
    return [payload.parse((t.body or "").encode()) for t in taken]  # none held: all read


def resume_records(db: database.Handle) -> list[tuple[str, Any]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(audit.c.message, audit.c.details).where(audit.c.kind == "resume")
        ).all()
    return [(r[0], r[1]) for r in rows]


def test_resume_queues_the_alerts_skipped_during_the_pause_that_still_fire(
    db: database.Handle,
) -> None:
    firing = [
        alert("ApiDown", "aa01", starts=STARTS, deployment="conea-api", team="web"),
        alert("ApiDown", "bb02", starts=STARTS, deployment="billing"),
        alert("ApiDown", "cc03", starts=STARTS, deployment="worker"),
        alert("ApiDown", "dd04", starts=STARTS, deployment="search"),
    ]
    receive(db, T0, *firing)
    skipped(db, T0 + timedelta(seconds=1), "dd04")  # before the pause: not the pause's
    control.set_paused(db, True, "oncall", "incident 42", T0 + timedelta(minutes=1))
    for fp in ("aa01", "bb02", "cc03"):
        skipped(db, T0 + timedelta(minutes=2), fp)
        skipped(db, T0 + timedelta(minutes=2), fp)  # a second policy: one alert all the same
    skipped(db, T0 + timedelta(minutes=2), "dd04", outcome="scope")  # another guardrail
    gone = alert("ApiDown", "bb02", status="resolved", starts=STARTS)
    receive(db, T0 + timedelta(minutes=3), gone)

    resumed = control.resume(db, "oncall", "", T0 + timedelta(minutes=4))

    assert (resumed.caught_up, resumed.left_out) == (2, 0)
    assert resumed.summary == (
        "automation resumed; 2 alerts skipped during the pause are decided again"
    )
    assert not control.is_paused(db)
    [again] = queued(db)
    assert again.receiver == catchup.RECEIVER and catchup.is_catch_up(again)
    assert [(a.fingerprint, a.status) for a in again.alerts] == [
        ("aa01", "firing"),
        ("cc03", "firing"),
    ]
    original = payload.parse(notification(firing[0])).alerts[0]
    assert again.alerts[0].labels == original.labels  # team="web" and all
    assert again.alerts[0].annotations == original.annotations
    assert again.alerts[0].starts_at == original.starts_at
    assert again.alerts[0].generator_url == original.generator_url
    [(message, details)] = resume_records(db)
    assert message == (
        "automation resumed by oncall; 2 alerts skipped during the pause are decided again"
    )
    assert details == {
        "caught_up": 2,
        "passed_over": 0,
        "left_out": 0,
        "notification_id": resumed.notification_id,
    }

    # Nothing paused: a second resume queues nothing.
    second = control.resume(db, "oncall", "", T0 + timedelta(minutes=5))
    assert (second.was_paused, second.caught_up, second.summary) == (
        False,
        0,
        "automation resumed",
    )
    assert queued(db) == []


def test_resume_without_catch_up_queues_nothing_and_says_so(db: database.Handle) -> None:
    receive(db, T0, alert("ApiDown", "aa01", starts=STARTS))
    control.set_paused(db, True, "oncall", "", T0 + timedelta(minutes=1))
    skipped(db, T0 + timedelta(minutes=2), "aa01")
    resumed = control.resume(db, "oncall", "", T0 + timedelta(minutes=3), catch_up=False)
    assert resumed.summary == (
        "automation resumed; 1 alert skipped during the pause is not decided again (catch-up off)"
    )
    assert queued(db) == []
    assert resume_records(db)[0][0].endswith("is not decided again (catch-up off)")


def test_a_second_pause_keeps_the_time_the_pause_began(db: database.Handle) -> None:
    receive(db, T0, alert("ApiDown", "aa01", starts=STARTS))
    control.set_paused(db, True, "oncall", "", T0 + timedelta(minutes=1))
    skipped(db, T0 + timedelta(minutes=2), "aa01")
    control.set_paused(db, True, "someone else", "again", T0 + timedelta(minutes=3))
    assert control.resume(db, "oncall", "", T0 + timedelta(minutes=4)).caught_up == 1


def test_the_episode_skipped_is_the_one_caught_up(db: database.Handle) -> None:
    # An older episode of the same alert never had its resolved notification: only the
    # one the skip was about (received by then, latest startsAt) is decided again.
    receive(db, T0 - timedelta(days=1), alert("ApiDown", "aa01", starts="2026-11-28T07:00:00Z"))
    receive(db, T0, alert("ApiDown", "aa01", starts=STARTS))
    control.set_paused(db, True, "oncall", "", T0 + timedelta(minutes=1))
    skipped(db, T0 + timedelta(minutes=2), "aa01")
    control.resume(db, "oncall", "", T0 + timedelta(minutes=3))
    [again] = queued(db)
    assert [a.starts_at for a in again.alerts] == [
        datetime(2026, 11, 29, 7, 55, 0, 250000, tzinfo=UTC)
    ]


def test_over_the_limit_the_rest_is_counted_and_left_out(db: database.Handle) -> None:
    fps = [f"ff{i:02d}" for i in range(5)]
    receive(db, T0, *(alert("ApiDown", fp, starts=STARTS, deployment=fp) for fp in fps))
    control.set_paused(db, True, "oncall", "", T0 + timedelta(minutes=1))
    for i, fp in enumerate(fps):
        skipped(db, T0 + timedelta(minutes=2, seconds=i), fp)
    resumed = control.resume(db, "oncall", "", T0 + timedelta(minutes=3), limit=2)
    assert (resumed.caught_up, resumed.left_out) == (2, 3)
    assert resumed.summary == (
        "automation resumed; 2 alerts skipped during the pause are decided again; "
        "3 more are left out (at most 2 are decided again)"
    )
    [again] = queued(db)
    assert sorted(a.fingerprint for a in again.alerts) == ["ff03", "ff04"]  # the latest


def test_of_two_resumes_at_once_one_writes_the_catch_up(db: database.Handle) -> None:
    receive(db, T0, alert("ApiDown", "aa01", starts=STARTS))
    control.set_paused(db, True, "oncall", "", T0 + timedelta(minutes=1))
    skipped(db, T0 + timedelta(minutes=2), "aa01")
    results: list[control.Resumed] = []
    gate = threading.Barrier(2)

    def replica(name: str) -> None:
        gate.wait()
        results.append(control.resume(db, name, "", T0 + timedelta(minutes=3)))

    threads = [threading.Thread(target=replica, args=(f"replica-{i}",)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.caught_up for r in results) == [0, 1]
    assert sorted(r.was_paused for r in results) == [False, True]
    with db.connect() as conn:
        receivers = conn.execute(select(notifications.c.receiver)).scalars().all()
    assert receivers.count(catchup.RECEIVER) == 1


def test_an_alert_whose_first_step_was_decided_is_not_caught_up(db: database.Handle) -> None:
    # Its first step acted before the pause; the pause skipped its escalation (step 2):
    # deciding its first step again would only find it taken.
    receive(
        db, T0, alert("ApiDown", "aa01", starts=STARTS), alert("ApiDown", "bb02", starts=STARTS)
    )
    starts = payload.parse(notification(alert("X", "aa01", starts=STARTS))).alerts[0].starts_at
    row = {
        "alertname": "ApiDown",
        "labels": {},
        "target_key": "Deployment/production/conea-api",
        "target": {},
        "state": "running",
        "dry_run": False,
        "actions": [],
        "created_at": T0,
        "updated_at": T0,
    }
    executions.claim(db, records.ExecutionKey("restart", 0, "aa01", starts), row)
    control.set_paused(db, True, "oncall", "", T0 + timedelta(minutes=1))
    skipped(db, T0 + timedelta(minutes=2), "aa01")
    skipped(db, T0 + timedelta(minutes=2), "bb02")
    resumed = control.resume(db, "oncall", "", T0 + timedelta(minutes=3))
    assert resumed.caught_up == 1
    [again] = queued(db)
    assert [a.fingerprint for a in again.alerts] == ["bb02"]
