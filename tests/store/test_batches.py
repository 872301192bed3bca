"""The queue's lease and the 0003 migration, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import bindparam, text

from monitor.alerts import payload
from monitor.store import batches, database, queue
from monitor.store import notifications as store_notifications
from tests.engine.conftest import alert, notification
from tests.support import migrations, service


def store(db: database.Handle, *counts: int) -> list[int]:
    """Notifications of ``count`` alerts each; their ids."""
    now = datetime.now(UTC)
    bodies = [
        notification(*(alert("X", f"{n:04d}{i:04d}") for i in range(count)))
        for n, count in enumerate(counts)
    ]
    stored = store_notifications.write_batch(db, [(b, payload.parse(b), now) for b in bodies])
    return [s.id for s in stored]


def test_a_lease_takes_the_preferred_first_then_the_oldest_and_keeps_others_off(
    db: database.Handle,
) -> None:
    ids = store(db, 40, 40, 40, 40, 1)
    now = datetime.now(UTC)
    until = now + timedelta(minutes=2)
    taken = queue.lease(db, "a", now, until, limit_alerts=100, prefer=[ids[4]])
    assert [t.id for t in taken] == [ids[4], ids[0], ids[1]]  # 81 alerts; a third is over
    assert queue.backlog(db) == (5, 161)
    if db.dialect.name == "sqlite":
        # One replica, one consumer: no lease (and no commit for one); what it decides
        # is marked processed in the batch's own commit.
        again = queue.lease(db, "a", now, until, limit_alerts=1000)
        assert [t.id for t in again] == ids
        batches.commit(db, births=[], joins={}, records=[], processed=ids[:3], at=now)
        rest = queue.lease(db, "a", now, until, limit_alerts=1000)
        assert [t.id for t in rest] == ids[3:]
        return
    other = queue.lease(db, "b", now, until, limit_alerts=1000)
    assert [t.id for t in other] == [ids[2], ids[3]], "leased ones are kept off"
    assert queue.lease(db, "c", now, until, limit_alerts=1000) == []
    # A lease that ran out (its holder died) is taken by the next one.
    later = until + timedelta(seconds=1)
    again = queue.lease(db, "c", later, later + timedelta(minutes=2), limit_alerts=1)
    assert [t.id for t in again] == [ids[0]], "at least one notification, however big"


def test_a_failed_notification_waits_for_its_retry_time(db: database.Handle) -> None:
    [nid] = store(db, 3)
    now = datetime.now(UTC)
    queue.retry_later(db, {nid: (1, "RuntimeError: boom", None)}, now + timedelta(seconds=30))
    assert queue.lease(db, "a", now, now + timedelta(minutes=2), limit_alerts=10) == []
    after = now + timedelta(seconds=31)
    [item] = queue.lease(db, "a", after, after + timedelta(minutes=2), limit_alerts=10)
    assert (item.id, item.attempts) == (nid, 1)


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return service.store_url(request, tmp_path, "conea_migrate")


def test_0003_keeps_one_deferred_first_step_per_target_and_goes_back(url: str) -> None:
    db = database.connect(url)
    migrations.to(db, "0002")
    now = datetime(2026, 11, 29, tzinfo=UTC)
    with db.begin() as conn:
        for n, (state, step, target) in enumerate(
            [
                ("deferred", 0, "Deployment/p/api"),  # older of two: cancelled
                ("deferred", 0, "Deployment/p/api"),  # newest: kept
                ("deferred", 1, "Deployment/p/api"),  # a later step: kept
                ("deferred", 0, "Deployment/p/web"),  # alone on its target: kept
                ("succeeded", 0, "Deployment/p/api"),
            ]
        ):
            conn.execute(
                text(
                    "INSERT INTO executions (policy, step, fingerprint, starts_at, alertname, "
                    "labels, target_key, target, state, dry_run, actions, verify_state, "
                    "revert_state, created_at, updated_at) VALUES ('p', :step, :fp, :at, 'X', "
                    "'{}', :target, '{}', :state, false, '[]', 'none', 'none', :at, :at)"
                ),
                {"step": step, "fp": f"f{n}", "at": now, "target": target, "state": state},
            )
    migrations.to(db, "head")
    with db.connect() as conn:
        states = [r[0] for r in conn.execute(text("SELECT state FROM executions ORDER BY id"))]
        assert conn.execute(text("SELECT count(*) FROM coalesced")).scalar_one() == 0
    assert states == ["cancelled", "deferred", "deferred", "deferred", "succeeded"]
    migrations.to(db, "0002", down=True)
    with db.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM executions")).scalar_one() == 5
    db.dispose()


def test_each_notification_of_a_large_group_commit_gets_its_own_id(db: database.Handle) -> None:
    # 263 notifications are inserted in statements of 200, 50, 10 and 1 rows; each one's id
    # must be the row holding its own alerts (the engine decides them by that id).
    counts = [1 + n % 3 for n in range(263)]
    ids = store(db, *counts)
    assert len(set(ids)) == 263
    with db.connect() as conn:
        rows: dict[int, int] = dict(
            conn.execute(
                text("SELECT id, alert_count FROM notifications WHERE id IN :ids").bindparams(
                    bindparam("ids", expanding=True)
                ),
                {"ids": ids},
            ).all()
        )
        payloads: dict[int, str] = dict(
            conn.execute(text("SELECT id, payload FROM notifications")).all()
        )
    assert [rows[i] for i in ids] == counts
    for n, nid in enumerate(ids):
        assert f'"{n:04d}0000"' in payloads[nid]  # its first alert's fingerprint
