"""Every change of state goes through one guarded move: refused when the table says no,
one winner when replicas race, its audit record in the same transaction."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor.store import database, locks, queries
from monitor.store import executions as store
from monitor.store.records import Audit, ExecutionKey, Lock
from monitor.store.states import IllegalTransition, RevertState, State, VerifyState

NOW = datetime(2026, 11, 29, 5, 0, tzinfo=UTC)


def _row(**fields: Any) -> dict[str, Any]:
    return {
        "alertname": "PodCrashLooping",
        "labels": {"alertname": "PodCrashLooping", "namespace": "shop"},
        "target_key": "Deployment/shop/api",
        "target": {"kind": "Deployment", "namespace": "shop", "name": "api"},
        "dry_run": False,
        "actions": [],
        "created_at": NOW,
        "updated_at": NOW,
        **fields,
    }


def _audit(kind: str = "decision", **details: Any) -> Audit:
    return Audit(NOW, kind, f"a {kind}", "restart", "fp1", "Deployment/shop/api", kind, details)


def _deferred(db: database.Handle, step: int = 0) -> int:
    key = ExecutionKey("restart", step, "fp1", NOW)
    return store.defer(db, key, _row(due_at=NOW), _audit("defer", guardrail="cooldown"))


def _audits(db: database.Handle, execution_id: int) -> list[dict[str, Any]]:
    return queries.list_audit(db, queries.Filters(limit=100), execution_id).items


def test_a_birth_writes_its_audit_with_the_move_in_one_commit(db: database.Handle) -> None:
    execution_id = _deferred(db)
    row = store.get(db, execution_id)
    assert row is not None and row["state"] == "deferred"
    assert row["verify_state"] == "none" and row["revert_state"] == "none"
    [record] = _audits(db, execution_id)
    assert record["kind"] == "defer"
    assert record["details"] == {
        "guardrail": "cooldown",
        "machine": "state",
        "from": None,
        "to": "deferred",
    }
    with pytest.raises(store.AlreadyClaimed):
        _deferred(db)
    assert queries.count(db, "audit") == 1


def test_a_forbidden_move_is_refused_and_changes_nothing(db: database.Handle) -> None:
    execution_id = _deferred(db)
    assert store.move(db, execution_id, "state", State.DEFERRED, State.RUNNING, _audit())
    assert store.move(db, execution_id, "state", State.RUNNING, State.SUCCEEDED, _audit())
    before = store.get(db, execution_id)
    audits = queries.count(db, "audit")

    with pytest.raises(IllegalTransition, match="'succeeded' -> 'running' is not allowed"):
        store.move(db, execution_id, "state", State.SUCCEEDED, State.RUNNING, _audit())
    with pytest.raises(IllegalTransition, match="verify_state 'recovered' -> 'pending'"):
        store.move(
            db, execution_id, "verify_state", VerifyState.RECOVERED, VerifyState.PENDING, _audit()
        )
    with pytest.raises(IllegalTransition, match="revert_state 'none' -> 'done'"):
        store.move(db, execution_id, "revert_state", RevertState.NONE, RevertState.DONE, _audit())
    with pytest.raises(
        IllegalTransition, match="verify_state -> 'none' is not allowed: no state moves there"
    ):
        # a field may move another machine, but only to a state it can reach
        store.move(
            db, execution_id, "state", State.RUNNING, State.FAILED, _audit(), verify_state="none"
        )

    assert store.get(db, execution_id) == before
    assert queries.count(db, "audit") == audits


def test_a_birth_into_a_final_state_is_refused_before_any_write(db: database.Handle) -> None:
    key = ExecutionKey("restart", 0, "fp1", NOW)
    lock = Lock("Deployment/shop/api", "replica-a", NOW, timedelta(minutes=10))
    with pytest.raises(IllegalTransition, match="state birth -> 'succeeded'"):
        store.start(db, key, _row(state="succeeded"), _audit(), lock)
    with pytest.raises(IllegalTransition, match="state birth -> 'succeeded'"):
        store.claim(db, key, _row(state="succeeded"))
    with pytest.raises(IllegalTransition, match="verify_state birth -> 'recovered'"):
        store.claim(db, key, _row(state="running", verify_state="recovered"))
    with pytest.raises(
        IllegalTransition,
        match="state -> 'bogus' is not allowed: not a state; one of deferred, running",
    ):
        store.claim(db, key, _row(state="bogus"))
    assert queries.count(db, "executions") == 0
    assert queries.count(db, "audit") == 0
    assert locks.take(db, lock)  # the refused start did not take the target's lock


def test_racing_moves_of_one_deferred_row_have_one_winner_and_one_audit(
    db: database.Handle,
) -> None:
    execution_id = _deferred(db)
    won: list[bool] = []
    gate = threading.Barrier(10)

    def replica(n: int) -> None:
        gate.wait()
        audit = _audit("decision", replica=n)
        won.append(store.move(db, execution_id, "state", State.DEFERRED, State.RUNNING, audit))

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 9 + [True]
    moves = [a for a in _audits(db, execution_id) if a["kind"] == "decision"]
    assert len(moves) == 1
    assert moves[0]["details"]["from"] == "deferred" and moves[0]["details"]["to"] == "running"


def test_a_move_that_loses_writes_no_audit_and_a_failed_audit_undoes_the_move(
    db: database.Handle,
) -> None:
    execution_id = _deferred(db)
    assert not store.move(db, execution_id, "state", State.RUNNING, State.FAILED, _audit("x"))
    assert [a["kind"] for a in _audits(db, execution_id)] == ["defer"]

    unwritable = Audit(NOW, "decision", "m", details={"not json": object()})
    with pytest.raises(Exception):  # noqa: B017 - whatever the JSON encoder raises
        store.move(db, execution_id, "state", State.DEFERRED, State.RUNNING, unwritable)
    row = store.get(db, execution_id)
    assert row is not None and row["state"] == "deferred"  # rolled back with the audit


def test_a_move_from_several_states_records_which_one_it_left(db: database.Handle) -> None:
    execution_id = _deferred(db)
    assert store.move(db, execution_id, "state", State.DEFERRED, State.RUNNING, _audit())
    later = NOW + timedelta(seconds=30)
    moved = store.move(
        db,
        execution_id,
        "state",
        [State.DEFERRED, State.RUNNING],
        State.DEFERRED,
        _audit("defer"),
        due_at=later,
        reason="another execution is acting on the target",
    )
    assert moved
    row = store.get(db, execution_id)
    assert row is not None and row["state"] == "deferred" and row["due_at"] == later
    last = _audits(db, execution_id)[0]  # newest first
    assert (last["details"]["from"], last["details"]["to"]) == ("running", "deferred")
    assert not store.move(
        db, execution_id, "state", [State.RUNNING], State.SUCCEEDED, _audit("execute")
    )


def test_finishing_moves_verification_along_and_releases_the_lock(db: database.Handle) -> None:
    key = ExecutionKey("restart", 0, "fp1", NOW)
    lock = Lock("Deployment/shop/api", "replica-a", NOW, timedelta(minutes=10))
    started = store.start(db, key, _row(state=State.RUNNING), _audit(), lock)
    assert started is not None
    execution_id, locked = started
    assert locked
    other = Lock("Deployment/shop/api", "replica-b", NOW, timedelta(minutes=10))
    assert not locks.take(db, other)
    assert store.move(
        db,
        execution_id,
        "state",
        State.RUNNING,
        State.SUCCEEDED,
        _audit("finish"),
        release=lock,
        verify_state=VerifyState.PENDING,
        verify_at=NOW + timedelta(minutes=1),
        finished_at=NOW,
    )
    row = store.get(db, execution_id)
    assert row is not None
    assert (row["state"], row["verify_state"]) == ("succeeded", "pending")
    assert locks.take(db, other)  # released in the move's transaction
    # verification moves once: a second "pending" would need verify_state 'none'
    assert not store.move(
        db,
        execution_id,
        "revert_state",
        RevertState.NONE,
        RevertState.SCHEDULED,
        _audit(),
        verify_state=VerifyState.PENDING,
    )


def test_a_lock_is_renewed_while_ours_and_left_alone_once_another_owner_has_it(
    db: database.Handle,
) -> None:
    ttl = timedelta(seconds=60)
    ours = Lock("Deployment/shop/api", "replica-a", NOW, ttl)
    assert locks.take(db, ours)
    assert locks.renew(db, ours, at=NOW + timedelta(seconds=50))  # now held until +110s
    theirs = Lock("Deployment/shop/api", "replica-b", NOW + timedelta(seconds=90), ttl)
    assert not locks.take(db, theirs)  # without the renewal it expired at +60s

    late = Lock("Deployment/shop/api", "replica-b", NOW + timedelta(seconds=200), ttl)
    assert locks.take(db, late)  # ours expired unrenewed: another owner took it
    assert not locks.renew(db, ours, at=NOW + timedelta(seconds=201))
    locks.release(db, ours)  # not ours any more: nothing happens
    third = Lock("Deployment/shop/api", "replica-c", NOW + timedelta(seconds=210), ttl)
    assert not locks.take(db, third)
    locks.release(db, late)
    assert locks.take(db, third)


def test_records_of_what_led_to_a_move_share_its_commit(db: database.Handle) -> None:
    """A step's last action's result is written with the finish, ahead of it, and only
    when the row moved (a move that loses writes neither, so nothing is written twice)."""
    execution_id = _deferred(db)
    assert store.move(db, execution_id, "state", State.DEFERRED, State.RUNNING, _audit())
    result = _audit("execute")
    assert store.move(
        db, execution_id, "state", State.RUNNING, State.SUCCEEDED, _audit("finish"), before=[result]
    )
    kinds = [a["kind"] for a in reversed(_audits(db, execution_id))]
    assert kinds == ["defer", "decision", "execute", "finish"]

    count = queries.count(db, "audit")
    assert not store.move(
        db, execution_id, "state", State.RUNNING, State.FAILED, _audit("finish"), before=[result]
    )
    assert queries.count(db, "audit") == count
