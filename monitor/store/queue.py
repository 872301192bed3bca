"""The engine's queue: the notifications stored and not yet decided.

The webhook stores a notification (and answers) before anything is decided; the rows
not yet processed are the engine's queue, durable and shared by replicas. A consumer
takes a batch of them at a time (:func:`lease`): on PostgreSQL the rows are picked with
``FOR UPDATE SKIP LOCKED`` and leased to the replica until ``lease_until`` (another
replica takes them over if it dies); on SQLite, with its one replica and one consumer,
no lease is written. A batch's decisions mark its notifications processed in their own
commit (:func:`monitor.store.batches.commit`); one whose deciding raised waits for its
retry time (:func:`retry_later`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, func, or_, select, update

from monitor.store.database import transaction
from monitor.store.schema import alerts, notifications

MAX_ERROR_CHARS = 2000  # of a failed attempt's error, kept with the notification
CHUNK = 500  # values per IN list
# An IN list is padded (its last value repeated) to one of these lengths: every distinct
# length is another statement the driver prepares and caches on each connection.
PADDED = (10, 50, 100, CHUNK)


def in_chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    """``values`` cut for IN lists of at most ``size``, each padded to a length of
    ``PADDED`` (repeating a value changes nothing in an IN list)."""
    for start in range(0, len(values), size):
        chunk = list(values[start : start + size])
        length = next((n for n in PADDED if n >= len(chunk)), len(chunk))
        yield chunk + [chunk[-1]] * (length - len(chunk))


@dataclass(frozen=True)
class Leased:
    """A notification taken from the queue: its body as received (None when the caller
    said it holds the notification parsed already), and its history."""

    id: int
    body: str | None
    received_at: datetime
    attempts: int


class Taken(list[Leased]):
    """A lease's notifications, in the order to decide them; ``more``: it stopped at its
    limit, so more are waiting."""

    more: bool = False


def _available(now: datetime) -> Any:
    c = notifications.c
    return and_(
        c.processed_at.is_(None),
        c.poisoned_at.is_(None),
        c.payload.is_not(None),
        or_(c.lease_until.is_(None), c.lease_until < now),
    )


def lease(
    engine: Engine,
    owner: str,
    now: datetime,
    until: datetime,
    *,
    limit_alerts: int,
    prefer: Sequence[int] = (),
    held: Collection[int] = (),
) -> Taken:
    """Lease up to ``limit_alerts`` alerts' worth of notifications (at least one): the
    ``prefer``red ids first (alerts for targets nothing works on), then the oldest. The
    bodies of those ``held`` (the caller has them parsed: this process stored them) are
    not read: their ``body`` is None."""
    c = notifications.c
    available = _available(now)
    # Not transaction(): on SQLite this only reads (no lease), and a reader in WAL mode
    # needs no turn among the writers.
    with engine.begin() as conn:
        picked: dict[int, int] = {}
        for chunk in in_chunks(list(dict.fromkeys(prefer))):
            q = select(c.id, c.alert_count).where(available, c.id.in_(chunk)).order_by(c.id)
            picked.update(_rows(conn, q))
        total = sum(picked.values())
        after, full, more = 0, False, total >= limit_alerts
        while total < limit_alerts and not full:
            page = min(500, max(10, (limit_alerts - total) // 4))  # notifications hold alerts
            q = select(c.id, c.alert_count).where(available, c.id > after)
            found = _rows(conn, q.order_by(c.id).limit(page))
            for nid, count in found.items():
                after = nid
                if nid in picked:
                    continue
                if picked and total + count > limit_alerts:
                    full = more = True
                    break
                picked[nid] = count
                total += count
            full = full or len(found) < page
            more = more or (total >= limit_alerts and len(found) == page)
        if not picked:
            return Taken()
        ids = list(picked)
        shared = conn.dialect.name != "sqlite"
        if shared:  # SQLite has one replica: its one consumer needs no lease (nor its fsync)
            for chunk in in_chunks(ids):
                conn.execute(
                    update(notifications)
                    .where(c.id.in_(chunk), available)
                    .values(lease_owner=owner, lease_until=until)
                )
        mine = [c.lease_owner == owner, c.lease_until == until] if shared else []
        known = [nid for nid in ids if nid in held]
        unread = [nid for nid in ids if nid not in held] if known else ids
        got: list[Leased] = []
        for chunk in in_chunks(known):
            q = select(c.id, c.received_at, c.attempts).where(c.id.in_(chunk), *mine)
            got.extend(Leased(int(r[0]), None, r[1], int(r[2])) for r in conn.execute(q))
        for chunk in in_chunks(unread):
            q = select(c.id, c.payload, c.received_at, c.attempts).where(c.id.in_(chunk), *mine)
            got.extend(Leased(int(r[0]), str(r[1]), r[2], int(r[3])) for r in conn.execute(q))
    position = {nid: i for i, nid in enumerate(ids)}  # the preferred first, then the oldest
    got.sort(key=lambda item: position[item.id])
    taken = Taken(got)
    taken.more = more
    return taken


def _rows(conn: Connection, q: Any) -> dict[int, int]:
    if conn.dialect.name == "postgresql":
        q = q.with_for_update(skip_locked=True)
    return {int(r[0]): int(r[1]) for r in conn.execute(q)}


def backlog(engine: Engine) -> tuple[int, int]:
    """Notifications waiting to be decided (not processed, not parked), and their alerts."""
    c = notifications.c
    with engine.connect() as conn:
        count, total = conn.execute(
            select(func.count(), func.coalesce(func.sum(c.alert_count), 0)).where(
                c.processed_at.is_(None), c.poisoned_at.is_(None), c.payload.is_not(None)
            )
        ).one()
    return int(count), int(total)


def retry_later(
    engine: Engine,
    failures: Mapping[int, tuple[int, str, datetime | None]],
    retry_at: datetime,
) -> None:
    """Record failed attempts ``{id: (attempts, error, poisoned_at)}``; a notification not
    parked is leased to no one until ``retry_at``."""
    with transaction(engine) as conn:
        for nid, (attempts, error, poisoned_at) in failures.items():
            conn.execute(
                update(notifications)
                .where(notifications.c.id == nid)
                .values(
                    attempts=attempts,
                    last_error=error[:MAX_ERROR_CHARS],
                    poisoned_at=poisoned_at,
                    lease_owner=None,
                    lease_until=retry_at,
                )
            )


def first_deliveries(
    engine: Engine, fingerprints: Sequence[str]
) -> dict[tuple[str, datetime, str], int]:
    """The notification that first delivered each (fingerprint, startsAt, status): an
    alert in a later notification is a repeat (Alertmanager re-sends whole groups)."""
    out: dict[tuple[str, datetime, str], int] = {}
    c = alerts.c
    with engine.connect() as conn:
        for chunk in in_chunks(list(dict.fromkeys(fingerprints))):
            for fp, starts, status, first in conn.execute(
                select(c.fingerprint, c.starts_at, c.status, c.first_notification_id).where(
                    c.fingerprint.in_(chunk)
                )
            ):
                out[(fp, aware(starts), status)] = int(first)
    return out


def aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
