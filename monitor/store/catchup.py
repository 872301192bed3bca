"""Resume's catch-up: the alerts skipped while automation was paused, queued again.

A skip because of the pause (an audit record of kind ``skip``, outcome ``paused``) writes
no execution row, so nothing would ever decide that alert again: only its next firing
episode would be. On resume (:func:`monitor.store.control.resume`) the alerts skipped
since the pause began whose latest status in the store is still firing are written as
one new notification (receiver :data:`RECEIVER`), in the resume's own transaction. It
waits in the queue like any webhook's, and the batch decider decides it: guardrails,
coalescing, and the "still firing?" check against Alertmanager before anything acts.

At most :data:`LIMIT` alerts are caught up (one notification's worth); the ones
beyond are counted and left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, select

from monitor.alerts import payload
from monitor.alerts.payload import Notification
from monitor.errors import StoreError
from monitor.store import notifications as notes
from monitor.store.queue import aware, in_chunks
from monitor.store.schema import alerts, audit, coalesced, executions

RECEIVER = "conea-monitor/catch-up"  # the notification's receiver: says where it came from
LIMIT = payload.MAX_ALERTS  # alerts caught up at most (one notification)
PAGE = 500  # skipped fingerprints read at a time


@dataclass
class Found:
    """The alerts to decide again (Alertmanager's form, oldest first), and how many
    fingerprints skipped during the pause were left out over the limit."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    left_out: int = 0


def is_catch_up(notification: Notification) -> bool:
    """Was this notification written by a resume (not sent by Alertmanager)? Its alerts
    were delivered before, and are to be decided again all the same."""
    return notification.receiver == RECEIVER


def find(conn: Connection, since: datetime, limit: int = LIMIT) -> Found:
    """The alerts skipped because of the pause since ``since`` that the store still
    knows as firing: per fingerprint, the episode (startsAt) the last skip was about,
    unless a resolved notification for it was received. The most recently skipped
    first, up to ``limit``."""
    a = audit.c
    last = func.max(a.at).label("last")
    paused = (
        a.kind == "skip",
        a.outcome == "paused",
        a.at >= since,
        a.execution_id.is_(None),
        a.fingerprint.is_not(None),
    )
    skipped = select(a.fingerprint, last).where(*paused).group_by(a.fingerprint)
    found = Found()
    offset = looked = 0
    while len(found.alerts) < limit:
        page = [
            (str(fp), aware(at))
            for fp, at in conn.execute(
                skipped.order_by(last.desc(), a.fingerprint).limit(PAGE).offset(offset)
            )
        ]
        offset += len(page)
        picked, examined = _firing(conn, page, paused, limit - len(found.alerts))
        found.alerts.extend(picked)
        looked += examined
        if len(page) < PAGE:
            break
    if len(found.alerts) >= limit:
        total = conn.execute(select(func.count()).select_from(skipped.subquery())).scalar_one()
        found.left_out = max(0, int(total) - looked)
    found.alerts.sort(key=lambda item: (item["startsAt"], item["fingerprint"]))
    return found


def _firing(
    conn: Connection, skipped: Sequence[tuple[str, datetime]], paused: Any, room: int
) -> tuple[list[dict[str, Any]], int]:
    """For each (fingerprint, time of its last skip), the episode received by then with
    the latest startsAt, if no resolved notification for it was received and a policy
    that skipped it has not decided its first step since (a later step skipped, say);
    at most ``room`` of them, with the number of fingerprints looked at."""
    c = alerts.c
    rows: dict[str, list[Any]] = {}
    resolved: set[tuple[str, datetime]] = set()
    policies: dict[str, set[str]] = {}  # fingerprint -> the policies that skipped it
    decided: set[tuple[str, str, datetime]] = set()
    for chunk in in_chunks([fp for fp, _ in skipped]):
        for fp, policy in conn.execute(
            select(audit.c.fingerprint, audit.c.policy)
            .where(*paused, audit.c.fingerprint.in_(chunk))
            .distinct()
        ):
            policies.setdefault(fp, set()).add(str(policy))
        for t in (executions, coalesced):
            for policy, fp, starts in conn.execute(
                select(t.c.policy, t.c.fingerprint, t.c.starts_at).where(
                    t.c.step == 0, t.c.fingerprint.in_(chunk)
                )
            ):
                decided.add((policy, fp, aware(starts)))
        for row in conn.execute(
            select(
                c.fingerprint,
                c.starts_at,
                c.status,
                c.labels,
                c.annotations,
                c.generator_url,
                c.first_received_at,
            ).where(c.fingerprint.in_(chunk))
        ):
            if row.status == "resolved":
                resolved.add((row.fingerprint, aware(row.starts_at)))
            else:
                rows.setdefault(row.fingerprint, []).append(row)
    out: list[dict[str, Any]] = []
    looked = 0
    for fp, at in skipped:
        if len(out) >= room:
            break
        looked += 1
        episodes = rows.get(fp, [])
        before = [r for r in episodes if aware(r.first_received_at) <= at] or episodes
        if not before:
            continue
        row = max(before, key=lambda r: aware(r.starts_at))
        starts = aware(row.starts_at)
        if (fp, starts) in resolved:
            continue
        if all((policy, fp, starts) in decided for policy in policies.get(fp, ())):
            continue  # nothing left to decide
        out.append(
            {
                "status": "firing",
                "labels": dict(row.labels),
                "annotations": dict(row.annotations),
                "startsAt": starts.isoformat(timespec="microseconds"),
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": row.generator_url,
                "fingerprint": fp,
            }
        )
    return out, looked


def write(conn: Connection, found: Sequence[dict[str, Any]], at: datetime) -> int:
    """Queue ``found`` as one notification, as if Alertmanager had sent the alerts again
    (their deliveries count one more); returns its id."""
    body = orjson.dumps(
        {
            "version": "4",
            "groupKey": f"{RECEIVER}:{at.isoformat()}",
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": RECEIVER,
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": list(found),
        }
    )
    try:
        notification = payload.parse(body)
    except payload.PayloadError as exc:  # stored alerts were valid when received
        raise StoreError(f"the catch-up notification is not valid: {exc.message}") from exc
    [stored] = notes.write_in(conn, [(body, notification, at)])
    return stored.id
