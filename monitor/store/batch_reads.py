"""What deciding a batch reads from the store, each in one go.

The consumer's first-step decisions read everything they need at once (:func:`inputs`:
the targets' histories, what is open on them, which alerts were already decided or
resolved, the kill switch); resolving a batch of alerts reads which were resolved
(:func:`resolved_among`) and their executions (:func:`for_alerts`) the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, or_, select, union_all

from monitor.store.control import PAUSE_KEY
from monitor.store.executions import acted
from monitor.store.queue import aware, in_chunks
from monitor.store.records import TargetHistory
from monitor.store.schema import alerts, coalesced, control, executions
from monitor.store.states import RevertState, State

# What deciding a batch reads -------------------------------------------------------------


@dataclass(frozen=True)
class Open:
    """An execution of a (policy, target) a batch must know of: its first step waiting
    (new alerts are coalesced into it), or a revert waiting for its delay."""

    id: int
    policy: str
    step: int
    state: str
    revert_state: str


@dataclass
class Inputs:
    paused: bool
    # (target_key, rehearsal) -> start times of the executions that acted on it since
    # ``since`` (the longest budget window or cooldown of the batch's policies), newest
    # first: live ones (rehearsal False) and rehearsed ones (True) apart.
    started: dict[tuple[str, bool], list[datetime]] = field(default_factory=dict)
    # (policy, target_key) -> executions not finished with (deferred, running, verifying)
    # and reverts waiting for their delay.
    open: dict[tuple[str, str], list[Open]] = field(default_factory=dict)
    decided: set[tuple[str, str, datetime]] = field(default_factory=set)  # policy, fp, starts
    resolved: set[tuple[str, datetime]] = field(default_factory=set)

    def history(self, target_key: str, rehearsal: bool, window_start: datetime) -> TargetHistory:
        """What cooldown and budget know of a target, in live mode or in rehearsal."""
        times = self.started.get((target_key, rehearsal), [])
        return TargetHistory(
            times[0] if times else None, sum(1 for at in times if at >= window_start)
        )


def inputs(
    engine: Engine,
    *,
    now: datetime,
    since: datetime,
    targets: Sequence[str],
    fingerprints: Sequence[str],
) -> Inputs:
    """Everything a batch's first-step decisions need from the store, in one read.
    ``since`` must reach back the longest budget window and cooldown asked about."""
    ex = executions.c
    out = Inputs(paused=False)
    targets = list(dict.fromkeys(targets))
    fingerprints = list(dict.fromkeys(fingerprints))
    with engine.connect() as conn:
        switch = conn.execute(select(control.c.value).where(control.c.key == PAUSE_KEY)).first()
        out.paused = bool(switch and isinstance(switch[0], dict) and switch[0].get("paused"))
        for chunk in in_chunks(targets):
            started: dict[tuple[str, bool], list[datetime]] = defaultdict(list)
            for key, rehearsed, at in conn.execute(
                select(ex.target_key, ex.dry_run, ex.created_at)
                .where(
                    ex.target_key.in_(chunk),
                    or_(acted(False), acted(True)),
                    ex.created_at >= since,
                )
                .order_by(ex.created_at.desc())
            ):
                started[(key, bool(rehearsed))].append(aware(at))
            out.started.update(started)
            for row in conn.execute(
                select(
                    ex.id,
                    ex.policy,
                    ex.step,
                    ex.target_key,
                    ex.state,
                    ex.revert_state,
                )
                .where(
                    ex.target_key.in_(chunk),
                    or_(
                        and_(
                            ex.state.in_([State.DEFERRED.value, State.AWAITING_APPROVAL.value]),
                            ex.step == 0,
                        ),
                        ex.revert_state == RevertState.SCHEDULED.value,
                    ),
                )
                .order_by(ex.id)
            ):
                one = Open(int(row[0]), row[1], int(row[2]), row[4], row[5])
                out.open.setdefault((row[1], row[3]), []).append(one)
        for chunk in in_chunks(fingerprints):
            decided = union_all(
                *(
                    select(t.c.policy, t.c.fingerprint, t.c.starts_at).where(
                        t.c.step == 0, t.c.fingerprint.in_(chunk)
                    )
                    for t in (executions, coalesced)
                )
            )
            for policy, fp, starts in conn.execute(decided):
                out.decided.add((policy, fp, aware(starts)))
            for fp, starts in conn.execute(
                select(alerts.c.fingerprint, alerts.c.starts_at).where(
                    alerts.c.fingerprint.in_(chunk), alerts.c.status == "resolved"
                )
            ):
                out.resolved.add((fp, aware(starts)))
    return out


# What resolving a batch of alerts reads --------------------------------------------------


def resolved_among(
    engine: Engine, keys: Sequence[tuple[str, datetime]]
) -> set[tuple[str, datetime]]:
    """Which of these alerts (fingerprint, startsAt) a resolved notification was stored for."""
    wanted = set(keys)
    out: set[tuple[str, datetime]] = set()
    with engine.connect() as conn:
        for chunk in in_chunks(sorted({fp for fp, _ in keys})):
            for fp, starts in conn.execute(
                select(alerts.c.fingerprint, alerts.c.starts_at).where(
                    alerts.c.fingerprint.in_(chunk), alerts.c.status == "resolved"
                )
            ):
                if (fp, aware(starts)) in wanted:
                    out.add((fp, aware(starts)))
    return out


def for_alerts(
    engine: Engine, keys: Sequence[tuple[str, datetime]]
) -> dict[tuple[str, datetime], list[dict[str, Any]]]:
    """The executions of each alert (fingerprint, startsAt), by step: for a batch of
    resolved alerts, one read instead of one per alert."""
    wanted = set(keys)
    out: dict[tuple[str, datetime], list[dict[str, Any]]] = {}
    ex = executions.c
    with engine.connect() as conn:
        for chunk in in_chunks(sorted({fp for fp, _ in keys})):
            for row in conn.execute(
                select(executions).where(ex.fingerprint.in_(chunk)).order_by(ex.step, ex.id)
            ):
                mapping = dict(row._mapping)
                key = (mapping["fingerprint"], aware(mapping["starts_at"]))
                if key in wanted:
                    out.setdefault(key, []).append(mapping)
    return out
