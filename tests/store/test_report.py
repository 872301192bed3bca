"""Reading one incident for its record, on SQLite and PostgreSQL: the ladder of one alert
under one policy, its audit records, the alert's records without an execution, and the
kill switch's moves while the incident was open, and nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.store import control, database, report
from monitor.store import executions as store
from monitor.store.records import Audit, ExecutionKey
from monitor.store.states import State

T0 = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


def _step(
    db: database.Handle, policy: str, step: int, fingerprint: str, at: datetime, **row: object
) -> int:
    return store.claim(
        db,
        ExecutionKey(policy, step, fingerprint, T0),
        {
            "alertname": "ErrorsHigh",
            "labels": {"alertname": "ErrorsHigh"},
            "target_key": "Deployment/production/conea-api",
            "target": {},
            "state": State.RUNNING,
            "dry_run": False,
            "actions": [],
            "created_at": at,
            "updated_at": at,
            **row,
        },
    )


def _note(
    db: database.Handle,
    at: datetime,
    kind: str,
    message: str,
    execution_id: int | None = None,
    *,
    policy: str = "api-errors",
    fingerprint: str = "aa",
) -> None:
    store.write(db, Audit(at, kind, message, policy, fingerprint), execution_id)


def _fail(db: database.Handle, execution_id: int, at: datetime) -> None:
    record = Audit(at, "finish", f"#{execution_id} failed", "api-errors", "aa")
    assert store.move(db, execution_id, "state", State.RUNNING, State.FAILED, record)


def _minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def test_an_incident_is_its_ladder_its_alert_and_the_pauses_meanwhile(
    db: database.Handle,
) -> None:
    control.set_paused(db, True, "early", "", _minutes(-10))  # before it: left out
    control.resume(db, "early", "", _minutes(-9), catch_up=False)
    first = _step(db, "api-errors", 0, "aa", _minutes(1))
    second = _step(db, "api-errors", 1, "aa", _minutes(6))
    other_policy = _step(db, "page-oncall", 0, "aa", _minutes(1))
    other_alert = _step(db, "api-errors", 0, "bb", _minutes(1))
    _note(db, _minutes(1), "decision", "step 1", first)
    _note(db, _minutes(2), "skip", "cooldown for another replica's claim")  # no execution
    _note(db, _minutes(2), "skip", "someone else's", fingerprint="bb")
    _note(db, _minutes(2), "decision", "another policy", other_policy, policy="page-oncall")
    _note(db, _minutes(2), "decision", "another alert", other_alert, fingerprint="bb")
    control.set_paused(db, True, "alice", "looking", _minutes(3))
    control.resume(db, "alice", "done", _minutes(4), catch_up=False)
    _fail(db, first, _minutes(5))
    _fail(db, second, _minutes(8))
    control.set_paused(db, True, "late", "", _minutes(30))  # after its last record

    found = report.incident(db, second)
    assert found is not None
    assert [(e.id, e.step) for e in found.executions] == [(first, 0), (second, 1)]
    assert [(a["kind"], a["message"]) for a in found.audit] == [
        ("decision", "step 1"),
        ("skip", "cooldown for another replica's claim"),
        ("pause", "automation paused by alice: looking"),
        (
            "resume",
            "automation resumed by alice: done; 0 alerts skipped during the pause are not "
            "decided again (catch-up off)",
        ),
        ("finish", f"#{first} failed"),
        ("finish", f"#{second} failed"),
    ]
    assert (found.open, found.truncated, found.alert, found.evidence) == (False, False, None, [])
    again = report.incident(db, first)
    assert again is not None and again.audit == found.audit
    assert report.incident(db, 999_999) is None


def test_while_a_step_runs_the_incident_is_open_and_so_is_its_window(
    db: database.Handle,
) -> None:
    first = _step(db, "api-errors", 0, "aa", _minutes(1))  # running: more is to come
    _note(db, _minutes(1), "decision", "step 1", first)
    control.set_paused(db, True, "bob", "", _minutes(45))
    found = report.incident(db, first)
    assert found is not None and found.open
    assert [a["kind"] for a in found.audit] == ["decision", "pause"]
