"""Writing notifications and their alerts: one grouped transaction for many requests.

Requests hand their parsed notification to :class:`NotificationWriter` and wait. A single
writer thread takes everything queued, writes it in one transaction, commits, and only
then wakes the waiting requests (group commit). A re-delivered alert (same fingerprint,
startsAt and status) bumps ``deliveries`` instead of adding a row, and is reported as a
repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from monitor.alerts.payload import Alert, Notification
from monitor.errors import StoreError
from monitor.store.schema import alerts, notifications

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredAlert:
    id: int
    alert: Alert
    repeat: bool


@dataclass(frozen=True)
class StoredNotification:
    id: int
    notification: Notification
    received_at: datetime
    alerts: list[StoredAlert]


@dataclass
class _Request:
    body: bytes
    notification: Notification
    received_at: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoredNotification]
    result: StoredNotification | BaseException | None = field(default=None)


def _upsert(engine: Engine) -> Any:
    if engine.dialect.name == "postgresql":
        return postgresql.insert(alerts)
    return sqlite.insert(alerts)


def write_batch(
    engine: Engine,
    items: Sequence[tuple[bytes, Notification, datetime]],
    processed: Sequence[tuple[int, datetime]] = (),
) -> list[StoredNotification]:
    """Store notifications and their alerts in one transaction; return what was stored.

    ``processed`` marks earlier notifications as handed to the engine in the same commit.
    """
    with engine.begin() as conn:
        if processed:
            conn.execute(
                update(notifications)
                .where(notifications.c.id == bindparam("nid"))
                .values(processed_at=bindparam("at")),
                [{"nid": nid, "at": at} for nid, at in processed],
            )
        if not items:
            return []
        rows = [
            {
                "received_at": received,
                "receiver": n.receiver,
                "status": n.status,
                "group_key": n.group_key,
                "truncated_alerts": n.truncated_alerts,
                "notification_reason": n.notification_reason,
                "alert_count": len(n.alerts),
                "payload": body.decode("utf-8"),
            }
            for body, n, received in items
        ]
        result = conn.execute(
            insert(notifications).returning(notifications.c.id, sort_by_parameter_order=True),
            rows,
        )
        ids = [row[0] for row in result]
        # Aggregate alerts by dedupe key: a key may occur in several notifications.
        by_key: dict[tuple[str, datetime, str], dict[str, Any]] = {}
        for nid, (_body, n, received) in zip(ids, items, strict=True):
            for a in n.alerts:
                row = by_key.get(a.key)
                if row is None:
                    by_key[a.key] = {
                        "fingerprint": a.fingerprint,
                        "starts_at": a.starts_at,
                        "status": a.status,
                        "alertname": a.alertname,
                        "labels": dict(a.labels),
                        "annotations": dict(a.annotations),
                        "ends_at": a.ends_at,
                        "generator_url": a.generator_url,
                        "deliveries": 1,
                        "first_notification_id": nid,
                        "last_notification_id": nid,
                        "first_received_at": received,
                        "last_received_at": received,
                    }
                else:
                    row["deliveries"] += 1
                    row["last_notification_id"] = nid
                    row["last_received_at"] = received
                    row["annotations"] = dict(a.annotations)
        stored_ids: dict[tuple[str, datetime, str], tuple[int, int]] = {}
        if by_key:
            stmt = _upsert(engine)
            stmt = stmt.on_conflict_do_update(
                index_elements=[alerts.c.fingerprint, alerts.c.starts_at, alerts.c.status],
                set_={
                    "deliveries": alerts.c.deliveries + stmt.excluded.deliveries,
                    "last_notification_id": stmt.excluded.last_notification_id,
                    "last_received_at": stmt.excluded.last_received_at,
                    "annotations": stmt.excluded.annotations,
                    "ends_at": stmt.excluded.ends_at,
                },
            ).returning(alerts.c.id, alerts.c.deliveries, sort_by_parameter_order=True)
            keys = list(by_key)
            returned = conn.execute(stmt, [by_key[k] for k in keys]).all()
            for key, (aid, deliveries) in zip(keys, returned, strict=True):
                # Occurrences before this batch = deliveries - occurrences in this batch.
                stored_ids[key] = (aid, deliveries - by_key[key]["deliveries"])
    out = []
    seen: dict[tuple[str, datetime, str], int] = {}
    for nid, (_body, n, received) in zip(ids, items, strict=True):
        stored = []
        for a in n.alerts:
            aid, before = stored_ids[a.key]
            count = seen.get(a.key, 0)
            seen[a.key] = count + 1
            stored.append(StoredAlert(aid, a, repeat=(before + count) > 0))
        out.append(StoredNotification(nid, n, received, stored))
    return out


def unprocessed(engine: Engine, limit: int = 1000) -> list[tuple[int, str, datetime]]:
    """Notifications stored but not yet handed to the engine (e.g. before a crash)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(notifications.c.id, notifications.c.payload, notifications.c.received_at)
            .where(notifications.c.processed_at.is_(None))
            .order_by(notifications.c.id)
            .limit(limit)
        ).all()
    return [(int(r[0]), str(r[1]), r[2]) for r in rows]


class NotificationWriter:
    """The single writer thread behind the webhook (group commit)."""

    def __init__(
        self, engine: Engine, *, max_batch_alerts: int = 5000, on_error: Any = None
    ) -> None:
        self.engine = engine
        self.max_batch_alerts = max_batch_alerts
        self.on_error = on_error
        self._queue: queue.SimpleQueue[_Request | tuple[int, datetime] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def submit(
        self, body: bytes, notification: Notification, received_at: datetime
    ) -> StoredNotification:
        """Queue a notification; return once it is committed (raises StoreError if not)."""
        if self._thread is None:
            raise StoreError("the store writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredNotification] = loop.create_future()
        self._queue.put(_Request(body, notification, received_at, loop, future))
        return await future

    def mark_processed(self, notification_id: int, at: datetime) -> None:
        """Record (with the next commit) that the engine has taken a notification."""
        self._queue.put((notification_id, at))

    def _run(self) -> None:
        stopping = False
        while not stopping:
            item = self._queue.get()
            if item is None:
                break
            batch: list[_Request] = []
            processed: list[tuple[int, datetime]] = []
            alerts_in_batch = 0
            while True:
                if isinstance(item, _Request):
                    batch.append(item)
                    alerts_in_batch += len(item.notification.alerts)
                else:
                    processed.append(item)
                if alerts_in_batch >= self.max_batch_alerts:
                    break
                try:
                    next_item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if next_item is None:
                    stopping = True
                    break
                item = next_item
            self._write(batch, processed)

    def _write(self, batch: list[_Request], processed: list[tuple[int, datetime]]) -> None:
        try:
            stored = write_batch(
                self.engine, [(r.body, r.notification, r.received_at) for r in batch], processed
            )
            for request, result in zip(batch, stored, strict=True):
                request.result = result
        except (SQLAlchemyError, OSError) as exc:
            log.error("storing %d notification(s) failed: %s", len(batch), exc)
            if self.on_error is not None:
                self.on_error(exc)
            error = StoreError(f"the store could not commit the notification: {exc}")
            for request in batch:
                request.result = error
        by_loop: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        for request in batch:
            by_loop.setdefault(request.loop, []).append(request)
        for loop, requests in by_loop.items():
            # A closed loop means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, requests)


def _resolve(requests: list[_Request]) -> None:
    for request in requests:
        if request.future.done():
            continue
        if isinstance(request.result, BaseException):
            request.future.set_exception(request.result)
        elif request.result is not None:
            request.future.set_result(request.result)
