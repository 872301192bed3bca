"""Writing notifications and their alerts: one grouped transaction for many requests.

Requests hand their parsed notification to :class:`NotificationWriter` and wait. A single
writer thread takes everything queued, writes it in one transaction, commits, and only
then wakes the waiting requests (group commit). A re-delivered alert (same fingerprint,
startsAt and status) bumps ``deliveries`` instead of adding a row, and is reported as a
repeat. A failed group is retried request by request, so that only the requests whose
rows cause the failure get an error.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from monitor.alerts.payload import ZERO_TIME, Alert, Notification
from monitor.errors import StoreError
from monitor.heartbeat import Heartbeat
from monitor.store.database import transaction

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
    # False when nothing would act on it (no policy matches): stored as processed.
    needs_processing: bool = True


@dataclass
class _Request:
    body: bytes
    notification: Notification
    received_at: datetime
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[StoredNotification]
    needs_processing: bool
    result: StoredNotification | BaseException | None = field(default=None)
    abandoned: bool = False  # its sender stopped waiting (write_timeout)


_NOTIFICATION_COLUMNS = (
    "received_at, receiver, status, group_key, truncated_alerts, notification_reason, "
    "alert_count, payload, processed_at"
)
_ALERT_COLUMNS = (
    "fingerprint, starts_at, status, alertname, labels, annotations, ends_at, generator_url, "
    "deliveries, first_notification_id, last_notification_id, first_received_at, "
    "last_received_at"
)
_ALERT_CONFLICT = (
    " ON CONFLICT (fingerprint, starts_at, status) DO UPDATE SET"
    " deliveries = alerts.deliveries + excluded.deliveries,"
    " last_notification_id = excluded.last_notification_id,"
    " last_received_at = excluded.last_received_at,"
    " annotations = excluded.annotations, ends_at = excluded.ends_at"
    " RETURNING id, deliveries, fingerprint, starts_at, status"
)
# Rows per INSERT: a few fixed sizes only. Every distinct statement is prepared and
# cached by the driver (sqlite3 keeps 128 per connection), and one of 1,000 rows of 13
# values is megabytes: with one size per batch remainder the cache grew the service by
# hundreds of MB in a storm.
_STATEMENT_SIZES = (1000, 200, 50, 10, 1)

Key = tuple[str, datetime, str]


class _Driver:
    """The hot path talks to the DB-API cursor: SQLAlchemy's per-row parameter processing
    cost more than the database itself (see bench/webhook.py). Values are converted here
    exactly as the schema's types store them, so SQLAlchemy reads them back unchanged."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.ph = "?" if self.sqlite else "%s"
        self._texts: dict[datetime, str] = {}  # alerts of a group share their times

    def ts(self, value: datetime | None) -> Any:
        if value is None or not self.sqlite:
            return value
        text = self._texts.get(value)
        if text is None:
            text = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
            self._texts[value] = text
        return text

    @staticmethod
    def json(value: Any) -> str:
        return orjson.dumps(value).decode()

    def values(self, columns: int, rows: int) -> str:
        one = "(" + ", ".join([self.ph] * columns) + ")"
        return ", ".join([one] * rows)


def write_batch(
    engine: Engine,
    items: Sequence[tuple[bytes, Notification, datetime]],
    processed: Sequence[tuple[int, datetime]] = (),
    needs_processing: Sequence[bool] | None = None,
) -> list[StoredNotification]:
    """Store notifications and their alerts in one transaction; return what was stored.

    ``processed`` marks earlier notifications as handed to the engine in the same commit;
    a notification whose ``needs_processing`` is False is stored as processed already.
    """
    with transaction(engine) as conn:
        return write_in(conn, items, processed, needs_processing)


def write_in(
    conn: Connection,
    items: Sequence[tuple[bytes, Notification, datetime]],
    processed: Sequence[tuple[int, datetime]] = (),
    needs_processing: Sequence[bool] | None = None,
) -> list[StoredNotification]:
    """:func:`write_batch` within a transaction of the caller's (resume's catch-up is
    written with the switch it follows)."""
    needs = list(needs_processing) if needs_processing is not None else [True] * len(items)
    d = _Driver(conn.dialect.name)
    cur = conn.connection.cursor()
    try:
        if processed:
            cur.executemany(
                f"UPDATE notifications SET processed_at = {d.ph} WHERE id = {d.ph}",
                [(d.ts(at), nid) for nid, at in processed],
            )
        if not items:
            return []
        ids = _insert_notifications(cur, d, items, needs)
        by_key, keyed = _aggregate(d, ids, items)
        stored_ids = _upsert_alerts(cur, d, by_key)
    finally:
        cur.close()
    out = []
    seen: dict[Key, int] = {}
    for nid, keys, (_body, n, received), need in zip(ids, keyed, items, needs, strict=True):
        stored = []
        for key, a in zip(keys, n.alerts, strict=True):
            aid, before = stored_ids[key]
            count = seen.get(key, 0)
            seen[key] = count + 1
            stored.append(StoredAlert(aid, a, repeat=(before + count) > 0))
        out.append(StoredNotification(nid, n, received, stored, need))
    return out


def _insert_notifications(
    cur: Any,
    d: _Driver,
    items: Sequence[tuple[bytes, Notification, datetime]],
    needs: Sequence[bool],
) -> list[int]:
    def sql(count: int) -> str:
        return (
            f"INSERT INTO notifications ({_NOTIFICATION_COLUMNS}) "
            f"VALUES {d.values(9, count)} RETURNING id"
        )

    rows = [
        (
            d.ts(received),
            n.receiver,
            n.status,
            n.group_key,
            n.truncated_alerts,
            n.notification_reason,
            len(n.alerts),
            body.decode("utf-8") if need else None,
            None if need else d.ts(received),
        )
        for (body, n, received), need in zip(items, needs, strict=True)
    ]
    ids: list[int] = []
    if d.sqlite:
        # One statement per chunk. Within it the rows get their ids in VALUES order (each
        # new row's id is the largest so far plus one, and this transaction is the only
        # writer), whatever order RETURNING lists them in: checked, not assumed.
        for chunk in _chunks(rows):
            cur.execute(sql(len(chunk)), list(itertools.chain.from_iterable(chunk)))
            got = sorted(int(r[0]) for r in cur.fetchall())
            if len(got) != len(chunk) or got[-1] - got[0] != len(chunk) - 1:
                raise StoreError("the store gave notification ids out of order")
            ids.extend(got)
        return ids
    cur.executemany(sql(1), rows, returning=True)  # psycopg 3: pipelined, results in order
    while True:
        ids.append(int(cur.fetchone()[0]))
        if not cur.nextset():
            break
    return ids


def _aggregate(
    d: _Driver, ids: list[int], items: Sequence[tuple[bytes, Notification, datetime]]
) -> tuple[dict[Key, list[Any]], list[list[Key]]]:
    """One row per dedupe key (a key may occur in several notifications of the batch),
    and each notification's alerts' keys. Every alert of a storm passes here: the
    attribute reads and conversions are done once per alert, in locals."""
    by_key: dict[Key, list[Any]] = {}
    keyed: list[list[Key]] = []
    ts, dumps = d.ts, orjson.dumps
    for nid, (_body, n, received) in zip(ids, items, strict=True):
        at = ts(received)
        keys: list[Key] = []
        for a in n.alerts:
            fingerprint, starts_at, status = key = (a.fingerprint, a.starts_at, a.status)
            keys.append(key)
            row = by_key.get(key)
            if row is None:
                labels = a.labels
                ends = a.ends_at_raw
                by_key[key] = [
                    fingerprint,
                    ts(starts_at),
                    status,
                    labels.get("alertname", ""),  # Alert.alertname
                    dumps(labels).decode(),
                    dumps(a.annotations).decode(),
                    None if ends <= ZERO_TIME else ts(ends),  # Alert.ends_at
                    a.generator_url,
                    1,
                    nid,
                    nid,
                    at,
                    at,
                ]
            else:
                row[8] += 1
                row[10] = nid
                row[12] = at
                row[5] = dumps(a.annotations).decode()
        keyed.append(keys)
    return by_key, keyed


def _chunks(keys: list[Any]) -> list[list[Any]]:
    """``keys`` cut into chunks of the fixed statement sizes, largest first."""
    out = []
    start = 0
    for size in _STATEMENT_SIZES:
        while len(keys) - start >= size:
            out.append(keys[start : start + size])
            start += size
    return out


def _upsert_alerts(
    cur: Any, d: _Driver, by_key: dict[Key, list[Any]]
) -> dict[Key, tuple[int, int]]:
    """Insert or bump alerts; returns id and deliveries before this batch, per key."""
    keys = list(by_key)
    bound = {(r[0], r[1], r[2]): k for k, r in by_key.items()}
    out: dict[Key, tuple[int, int]] = {}
    for chunk in _chunks(keys):
        sql = (
            f"INSERT INTO alerts ({_ALERT_COLUMNS}) VALUES {d.values(13, len(chunk))}"
            + _ALERT_CONFLICT
        )
        cur.execute(sql, list(itertools.chain.from_iterable(map(by_key.__getitem__, chunk))))
        for aid, deliveries, fingerprint, starts_at, status in cur.fetchall():
            key = bound[(fingerprint, starts_at, status)]
            out[key] = (int(aid), int(deliveries) - by_key[key][8])
    return out


class NotificationWriter:
    """The single writer thread behind the webhook (group commit).

    It cannot die of a bad batch: when a grouped transaction fails, each request of it is
    written alone and only those that fail again get an error. A request waits at most
    ``write_timeout`` seconds (then StoreError, which the webhook answers with 503), and
    ``heartbeat`` shows whether the thread is making progress (``/readyz``).
    """

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_alerts: int = 5000,
        write_timeout: float = 10.0,
        on_error: Any = None,
    ) -> None:
        self.engine = engine
        self.max_batch_alerts = max_batch_alerts
        self.write_timeout = write_timeout
        self.on_error = on_error
        self.heartbeat = Heartbeat("store writer", write_timeout)
        self._queue: queue.SimpleQueue[_Request | tuple[int, datetime] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)
        self.heartbeat.attach(self._thread)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    async def submit(
        self,
        body: bytes,
        notification: Notification,
        received_at: datetime,
        needs_processing: bool = True,
    ) -> StoredNotification:
        """Queue a notification; return once it is committed (raises StoreError if not,
        or if it is not committed within ``write_timeout`` seconds)."""
        if self._thread is None:
            raise StoreError("the store writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredNotification] = loop.create_future()
        request = _Request(body, notification, received_at, loop, future, needs_processing)
        self.heartbeat.waiting()
        self._queue.put(request)
        timer = loop.call_later(self.write_timeout, _expire, request, self.write_timeout)
        try:
            return await future
        finally:
            timer.cancel()

    def mark_processed(self, notification_id: int, at: datetime) -> None:
        """Record (with the next commit) that the engine has taken a notification."""
        self.heartbeat.waiting()
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
            try:
                self._write(batch, processed)
            except Exception:  # the loop outlives anything; a request never waits forever
                log.exception("the store writer failed on a batch")
                for request in batch:
                    if request.result is None:
                        request.result = StoreError("the store writer failed; see its log")
            finally:
                self._answer(batch)
                self.heartbeat.done(len(batch) + len(processed))

    def _write(self, batch: list[_Request], processed: list[tuple[int, datetime]]) -> None:
        live = [r for r in batch if not r.abandoned]  # timed out: the sender has its 503
        try:
            self._store(live, processed)
            return
        except Exception as exc:
            if len(live) + bool(processed) <= 1:
                self._fail(live, exc)
                return
            log.warning(
                "a grouped write of %d notification(s) failed (%s): writing each alone",
                len(live),
                _first_line(exc),
            )
        # One bad request must not fail the others grouped with it.
        if processed:
            try:
                self._store([], processed)
            except Exception as exc:  # they stay unprocessed: taken up at the next start
                self._fail([], exc)
        for request in live:
            try:
                self._store([request], ())
            except Exception as exc:
                self._fail([request], exc)

    def _store(self, batch: list[_Request], processed: Sequence[tuple[int, datetime]]) -> None:
        stored = write_batch(
            self.engine,
            [(r.body, r.notification, r.received_at) for r in batch],
            processed,
            [r.needs_processing for r in batch],
        )
        for request, result in zip(batch, stored, strict=True):
            request.result = result

    def _fail(self, requests: list[_Request], exc: Exception) -> None:
        log.error("storing %d notification(s) failed: %s", len(requests), exc)
        if self.on_error is not None:
            self.on_error(exc)
        error = StoreError(f"the store could not commit the notification: {_first_line(exc)}")
        for request in requests:
            request.result = error

    @staticmethod
    def _answer(batch: list[_Request]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Request]] = {}
        for request in batch:
            by_loop.setdefault(request.loop, []).append(request)
        for loop, requests in by_loop.items():
            # A closed loop means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, requests)


def _first_line(exc: BaseException) -> str:
    """The error without SQLAlchemy's appended statement and parameters."""
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _expire(request: _Request, after: float) -> None:
    if not request.future.done():
        request.abandoned = True
        request.future.set_exception(
            StoreError(f"the store did not commit the notification within {after:g} s")
        )


def _resolve(requests: list[_Request]) -> None:
    for request in requests:
        if request.future.done():
            continue
        if isinstance(request.result, BaseException):
            request.future.set_exception(request.result)
        elif request.result is not None:
            request.future.set_result(request.result)
