"""The breaker admits a live claim in the claim's own transaction, by the count locked
there: racing claims never pass ``count``, the first refusal opens it (once), and a
refused claim writes its skip instead (single decisions and batches alike)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from monitor.store import batches, database
from monitor.store import breaker as store_breaker
from monitor.store import executions as store
from monitor.store.records import Audit, ExecutionKey, Lock
from monitor.store.schema import audit, executions
from monitor.store.states import State

NOW = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
LIMIT = store_breaker.Limit(3, timedelta(minutes=10), NOW)
REASON = "breaker open: 3 live actions in the last 10m (max 3)"


def row(
    target: str, *, state: str = "running", dry_run: bool = False, at: datetime = NOW
) -> dict[str, Any]:
    return {
        "alertname": "Storm",
        "labels": {},
        "target_key": target,
        "target": {},
        "state": state,
        "dry_run": dry_run,
        "actions": [],
        "created_at": at,
        "updated_at": at,
        "owner": "replica",
    }


def decision(n: int) -> Audit:
    return Audit(NOW, "decision", f"claim {n}", "p", f"f{n}", f"t{n}", "execute")


def refused(n: int) -> Audit:
    return Audit(NOW, "skip", "'p': breaker: ", "p", f"f{n}", f"t{n}", "breaker")


def lock(n: int, owner: str = "replica") -> Lock:
    return Lock(f"t{n}", owner, NOW, timedelta(minutes=1))


def start(db: database.Handle, n: int, **kw: Any) -> tuple[int, bool] | None:
    key = ExecutionKey("p", 0, f"f{n}", NOW)
    return store.start(
        db, key, row(f"t{n}"), decision(n), lock(n), limit=LIMIT, refused=refused(n), **kw
    )


def records(db: database.Handle, kind: str) -> list[tuple[str | None, str, int | None]]:
    with db.connect() as conn:
        found = conn.execute(
            select(audit.c.outcome, audit.c.message, audit.c.execution_id)
            .where(audit.c.kind == kind)
            .order_by(audit.c.id)
        )
        return [(o, m, e) for o, m, e in found]


def live(db: database.Handle) -> int:
    return store_breaker.live_actions(db, NOW - timedelta(minutes=10))


def test_racing_single_claims_admit_exactly_count_and_one_opens_it(db: database.Handle) -> None:
    claimed: list[int] = []
    refusals: list[store_breaker.Refusal] = []
    gate = threading.Barrier(8)

    def contender(n: int) -> None:
        gate.wait()
        try:
            started = start(db, n)
        except store_breaker.Refused as exc:
            refusals.append(exc.refusal)
        else:
            assert started is not None and started[1]
            claimed.append(started[0])

    threads = [threading.Thread(target=contender, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == 3 and live(db) == 3
    assert sorted(r.opened for r in refusals) == [False] * 4 + [True]
    assert {r.reason for r in refusals} == {REASON}
    assert records(db, "breaker") == [("open", REASON, None)]
    assert records(db, "skip") == [("breaker", f"'p': breaker: {REASON}", None)] * 5
    state = store_breaker.breaker_state(db)
    assert state.open and state.reason == REASON and state.opened_at == NOW


def test_a_refused_deferred_execution_is_skipped_with_the_reason(db: database.Handle) -> None:
    store_breaker.open_breaker(db, NOW, "breaker open: 9 live actions in the last 10m (max 9)")
    deferred = {**row("t1", state=State.DEFERRED.value), "due_at": NOW}
    waiting = store.claim(db, ExecutionKey("p", 0, "f1", NOW), deferred)
    with pytest.raises(store_breaker.Refused) as refusal:
        start(db, 1, existing=waiting)
    assert refusal.value.refusal == store_breaker.Refusal(
        "breaker open: 9 live actions in the last 10m (max 9)", False
    )
    got = store.get(db, waiting)
    assert got is not None and got["state"] == "skipped" and got["due_at"] is None
    assert got["reason"] == "breaker: breaker open: 9 live actions in the last 10m (max 9)"
    [(outcome, message, execution_id)] = records(db, "skip")
    assert (outcome, execution_id) == ("breaker", waiting)
    assert message == "'p': breaker: breaker open: 9 live actions in the last 10m (max 9)"
    assert records(db, "breaker") == [("open", got["reason"][len("breaker: ") :], None)]


def test_a_claim_without_a_limit_or_a_rehearsal_is_not_counted(db: database.Handle) -> None:
    for n in range(3):
        assert start(db, n) is not None
    key = ExecutionKey("p", 0, "f9", NOW)
    assert store.start(db, key, row("t9"), decision(9), lock(9)) is not None  # no breaker
    assert live(db) == 4
    rehearsed = batches.Birth(
        ExecutionKey("p", 0, "f8", NOW), row("t8", dry_run=True), decision(8), lock=lock(8)
    )
    [fate] = batches.commit(db, births=[rehearsed], joins={}, records=[], limit=LIMIT)
    assert fate.fate == "claimed" and not store_breaker.breaker_state(db).open


def test_a_batch_claims_up_to_count_and_drops_a_refused_claims_deferral(
    db: database.Handle,
) -> None:
    assert start(db, 0) is not None  # another replica's action, in the window
    births = []
    for n in (1, 2, 3):
        key = ExecutionKey("p", 0, f"f{n}", NOW)
        births.append(
            batches.Birth(
                key,
                row(f"t{n}"),
                decision(n),
                lock=lock(n),
                busy_due=NOW,
                busy_record=decision(n),
                refused=[refused(n), refused(10 + n)],
            )
        )
        # The other alert of the group waits for the cooldown the claim starts.
        births.append(
            batches.Birth(
                ExecutionKey("p", 0, f"f{10 + n}", NOW),
                {**row(f"t{n}", state="deferred"), "due_at": NOW},
                decision(10 + n),
                after=key,
            )
        )
    fates = batches.commit(db, births=births, joins={}, records=[], limit=LIMIT)
    assert [f.fate for f in fates] == ["claimed", "deferred"] * 2 + ["refused"] * 2
    assert fates[4].refusal == store_breaker.Refusal(REASON, True)
    assert fates[5].refusal is None  # the deferral that followed it
    assert live(db) == 3
    with db.connect() as conn:
        written = {fp for (fp,) in conn.execute(select(executions.c.fingerprint))}
    assert written == {"f0", "f1", "f11", "f2", "f12"}
    assert [m for _, m, _ in records(db, "skip")] == [f"'p': breaker: {REASON}"] * 2
    assert [o for o, _, _ in records(db, "breaker")] == ["open"]
    # A resume: counting starts at the close, so the next batch gets the next 3.
    later = NOW + timedelta(minutes=1)
    assert store_breaker.close_breaker(db, later, "api (127.0.0.1)")
    again = [
        batches.Birth(
            ExecutionKey("p", 0, f"g{n}", later),
            row(f"u{n}", at=later),
            decision(n),
            lock=Lock(f"u{n}", "replica", later, timedelta(minutes=1)),
            refused=[refused(n)],
        )
        for n in range(4)
    ]
    limit = store_breaker.Limit(3, timedelta(minutes=10), later)
    fates = batches.commit(db, births=again, joins={}, records=[], limit=limit)
    assert [f.fate for f in fates] == ["claimed"] * 3 + ["refused"]
    assert [o for o, _, _ in records(db, "breaker")] == ["open", "closed", "open"]
