"""What one running service holds: settings, store, writer, metrics, auth and the hand-off
from the webhook to the engine. Built by ``monitor.app.create_app``; tests build their own.

The engine's queue is the store: every notification the webhook answered 200 for and
that a policy could act on waits there, unprocessed, until it is decided. One consumer
task per replica (:meth:`Runtime.start`) leases a batch of them (up to
``BATCH_ALERTS`` alerts; replicas share the queue through the lease), hands the batch
to the engine, and marks it processed. The webhook only wakes the consumer, and puts
notifications about targets nothing works on ahead of the queue (``prefer``). What this
process stored is decided as the webhook parsed it (no body read back, no parse), up to the
backlog backpressure allows; memory holds only that copy: a restart, a stop or another
replica finds the backlog in the store, and reads and parses it.

A notification whose deciding raises is tried again after a backoff (doubling), up to
``max_attempts`` times in all, counting attempts made before a restart; then it is parked
as poisoned (``notifications.poisoned_at``, an audit record of kind ``poison``,
``conea_monitor_notifications_poisoned_total``) and never taken up again, so it blocks
nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from monitor.alerts import payload
from monitor.alerts.payload import Notification
from monitor.auth import Authenticator
from monitor.heartbeat import Heartbeat
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.store import catchup, database, queue
from monitor.store.facade import Store
from monitor.store.notifications import NotificationWriter, StoredAlert, StoredNotification
from monitor.store.queue import Leased
from monitor.store.records import Audit

log = logging.getLogger(__name__)

# Decides a batch; returns the notifications whose deciding raised (the others are done).
Handler = Callable[[list[StoredNotification]], Awaitable[Mapping[int, BaseException]]]

MAX_ATTEMPTS = 3
RETRY_BACKOFF = 5.0  # seconds before the second attempt; doubled before each next one
STALL_AFTER = 300.0  # seconds one batch may run before the consumer counts as stuck
BATCH_ALERTS = 500  # alerts decided per batch (at least one notification)
LEASE = timedelta(minutes=2)  # other replicas keep off a leased batch this long
IDLE_POLL = 1.0  # seconds between looks at the store when nothing woke the consumer
PREFERRED = 10_000  # notification ids remembered as "ahead of the queue"
HANDED_BATCHES = 2  # batches' worth of handed-over notifications kept parsed, at least
HANDED_MAX = 20_000  # alerts kept parsed, at most (a few kB each)
MARKING = 10_000  # notifications remembered as decided while the writer marks them
BACKLOG_READ = 2.0  # seconds between readings of the queue's length while busy


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    db: database.Handle
    writer: NotificationWriter
    auth: Authenticator
    handler: Handler | None = None
    handler_marks: bool = False  # the handler marks what it decided processed, in its commit
    matcher: Callable[[Mapping[str, str]], Any] | None = None
    # Is this notification about a target nothing works on? Then it goes ahead.
    prefer: Callable[[StoredNotification], bool] | None = None
    config_loaded: bool = True
    extras: dict[str, Any] = field(default_factory=dict)
    max_attempts: int = MAX_ATTEMPTS
    stall_after: float = STALL_AFTER
    retry_backoff: float = RETRY_BACKOFF
    batch_alerts: int = BATCH_ALERTS
    idle_poll: float = IDLE_POLL
    owner: str = field(default_factory=lambda: f"conea-monitor-{uuid.uuid4().hex[:8]}")
    # Worker threads whose progress /readyz and /metrics report (the store writer, ...).
    heartbeats: list[Heartbeat] = field(default_factory=list)
    _consumer: asyncio.Task[None] | None = None
    _busy: tuple[list[int], float] | None = None  # the batch in hand, and since when
    _preferred: deque[int] = field(default_factory=lambda: deque(maxlen=PREFERRED))
    _backlog: int = 0  # alerts waiting, as last read
    _full: bool = False  # the last batch was full: more may be waiting
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _decided: asyncio.Event = field(default_factory=asyncio.Event)  # set after each batch
    # The last notifications the webhook handed over, parsed and with their repeats marked
    # (the backlog backpressure allows: a storm's backlog needs no store read and no parse).
    _handed: dict[int, StoredNotification] = field(default_factory=dict)
    _handed_alerts: int = 0
    # Notifications decided here and handed to the writer to be marked processed: until
    # the writer has written the mark, the queue still holds them; never decided twice.
    _marking: deque[int] = field(default_factory=lambda: deque(maxlen=MARKING))
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def store(self) -> Store:
        """The store as async code uses it (the thread hop and StoreError in one place)."""
        return Store(self.db)

    def needs_processing(self, notification: Notification) -> bool:
        """Would the engine do anything with it? Not when no policy matches any alert:
        then it is stored as processed and never dispatched (saving a write per request)."""
        if self.matcher is None:
            return True
        return any(self.matcher(alert.labels) for alert in notification.alerts)

    def dispatch(self, stored: StoredNotification) -> None:
        """A notification was committed (and answered): wake the consumer. When there
        is a backlog, one about a target nothing works on is put ahead of it."""
        if not stored.needs_processing:
            return
        self._backlog += len(stored.alerts)
        self._handed[stored.id] = stored  # decided as it is if this replica takes it soon
        self._handed_alerts += len(stored.alerts)
        while self._handed_alerts > self._handover_alerts():  # oldest out
            oldest = self._handed.pop(next(iter(self._handed)))
            self._handed_alerts -= len(oldest.alerts)
        if self.prefer is not None and self._backlog > self.batch_alerts and self.prefer(stored):
            self._preferred.append(stored.id)
        self._wake.set()

    def _handover_alerts(self) -> int:
        """How many alerts' worth of handed-over notifications are kept parsed: the
        backlog backpressure allows, and a batch, so that a storm's backlog is decided
        without reading back what this process stored (bounded by ``HANDED_MAX``)."""
        backlog = self.settings.webhook.backpressure_alerts + self.batch_alerts
        return min(HANDED_MAX, max(self.batch_alerts * HANDED_BATCHES, backlog))

    async def hold(self) -> float:
        """Backpressure for the webhook: while more alerts than
        ``webhook.backpressure_alerts`` wait to be decided, wait for batches to be
        decided (at most ``backpressure_hold_seconds``) before answering. Returns the
        seconds held."""
        limit = self.settings.webhook.backpressure_alerts
        if not limit or self._backlog <= limit or self._consumer is None:
            return 0.0
        loop = asyncio.get_running_loop()
        began = loop.time()
        deadline = began + self.settings.webhook.backpressure_hold_seconds
        while self._backlog > limit and not self._stopping.is_set():
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._decided.wait(), left)
        held = loop.time() - began
        self.metrics.webhook_held.observe(held)
        return held

    def start(self) -> None:
        """Start the consumer: it takes up what the store holds (notifications answered
        before a stop or a crash first) and then whatever arrives."""
        if self._consumer is None:
            self._stopping.clear()
            self._consumer = asyncio.get_running_loop().create_task(self._consume())

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        waiting = await self._read_backlog()
        read_at = loop.time()
        if waiting:
            log.info("%d notification(s) waiting to be decided", waiting)
        resumed = 0
        while not self._stopping.is_set():
            try:
                done = await self.take_batch()
            except Exception as exc:  # the store is down: tried again shortly
                self.metrics.store_errors.labels("queue").inc()
                log.error("taking a batch from the queue failed: %s", exc)
                done = 0
            if done:
                resumed += done
                if loop.time() - read_at > BACKLOG_READ:  # the other replicas' intake too
                    read_at = loop.time()
                    await self._read_backlog()
                if self._full:
                    continue
                # A partial batch: the queue was empty behind it. Wait for the webhook
                # (or another replica's intake, at the next look) instead of asking now.
            if waiting and resumed:
                log.info("resumed %d notification(s) stored before the last stop", resumed)
                waiting = 0
            if not done:
                await self._read_backlog()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.idle_poll)
            self._wake.clear()

    async def _read_backlog(self) -> int:
        try:
            notifications, alerts = await self.store.backlog()
        except Exception as exc:
            self.metrics.store_errors.labels("queue").inc()
            log.warning("reading the queue's length failed: %s", exc)
            return 0
        self._backlog = alerts
        self.metrics.backlog_notifications.set(notifications)
        self.metrics.backlog_alerts.set(alerts)
        return notifications

    async def take_batch(self) -> int:
        """Lease one batch from the queue, decide it and mark it processed; returns how
        many notifications it held (0: the queue is empty)."""
        now = datetime.now(UTC)
        preferred = list(self._preferred)
        self._preferred.clear()
        held = dict(self._handed)  # as they are now: the webhook may push some out meanwhile
        leased = await self.store.lease(
            self.owner,
            now,
            now + LEASE,
            limit_alerts=self.batch_alerts,
            prefer=preferred,
            held=held.keys(),
        )
        self._full = False
        if self._marking and leased:  # decided already; the writer's mark is on its way
            marking = set(self._marking)
            kept = queue.Taken(i for i in leased if i.id not in marking)
            kept.more = leased.more
            leased = kept
        if not leased:
            return 0
        loop = asyncio.get_running_loop()
        started = loop.time()
        self._busy = ([item.id for item in leased], started)
        try:
            notes, failures = await self._read(leased, held)
            if failures:  # bodies that no longer parse are parked before the rest is decided
                await self._failed({i.id: i.attempts for i in leased}, failures)
                leased = queue.Taken(item for item in leased if item.id not in failures)
                failures = {}
            if notes and self.handler is not None:
                try:
                    failures.update(await self.handler(notes))
                except Exception as exc:  # the store or a bug: every one is tried again
                    log.exception("deciding a batch of %d notification(s) failed", len(notes))
                    failures.update({note.id: exc for note in notes})
        finally:
            self._busy = None
        at = datetime.now(UTC)
        for item in () if self.handler_marks else leased:
            if item.id not in failures:
                self.writer.mark_processed(item.id, at)
                self._marking.append(item.id)
        if failures:
            await self._failed({i.id: i.attempts for i in leased}, failures)
        decided, self._decided = self._decided, asyncio.Event()
        decided.set()  # webhooks held for backpressure look again
        self.metrics.decision_batches.inc()
        self.metrics.decision_batch_seconds.observe(loop.time() - started)
        alerts = sum(len(n.alerts) for n in notes)
        self._full = leased.more
        self._backlog = max(0, self._backlog - alerts)
        return len(leased)

    async def _read(
        self, leased: list[Leased], held: Mapping[int, StoredNotification]
    ) -> tuple[list[StoredNotification], dict[int, BaseException]]:
        """The leased notifications as the engine takes them: those this process stored
        and ``held`` as the webhook parsed them (no body read, no parse); the others'
        bodies parsed, each alert marked as a repeat when an earlier notification
        delivered it first (never in resume's catch-up, which re-delivers alerts skipped
        during the pause to have them decided again)."""
        parsed: list[tuple[Leased, Notification]] = []
        failures: dict[int, BaseException] = {}
        handed: dict[int, StoredNotification] = {}
        for item in leased:
            note = held.get(item.id)
            if note is not None:
                if self._handed.pop(item.id, None) is not None:
                    self._handed_alerts -= len(note.alerts)
                handed[item.id] = note
                continue
            if item.body is None:  # cannot be: the lease skips only the bodies held
                failures[item.id] = LookupError("its body was not read; read again later")
                continue
            try:
                parsed.append((item, payload.parse(item.body.encode("utf-8"))))
            except Exception as exc:  # stored bodies were valid; park it at once
                failures[item.id] = _Unreadable(f"{type(exc).__name__}: {exc}")
        fingerprints = [a.fingerprint for _, n in parsed for a in n.alerts]
        first = await self.store.first_deliveries(fingerprints) if fingerprints else {}
        made: dict[int, StoredNotification] = {}
        for item, notification in parsed:
            again = catchup.is_catch_up(notification)  # resume's: delivered before, on purpose
            alerts = [
                StoredAlert(
                    0,
                    a,
                    repeat=not again
                    and first.get((a.fingerprint, a.starts_at, a.status), item.id) < item.id,
                )
                for a in notification.alerts
            ]
            made[item.id] = StoredNotification(item.id, notification, item.received_at, alerts)
        notes = [handed.get(i.id) or made[i.id] for i in leased if i.id not in failures]
        return notes, failures

    async def _failed(
        self, attempts: Mapping[int, int], failures: Mapping[int, BaseException]
    ) -> None:
        """Record failed attempts; park a notification after its last. The others wait
        for their backoff before a consumer takes them again."""
        now = datetime.now(UTC)
        writes: dict[int, tuple[int, str, datetime | None]] = {}
        parked: list[Audit] = []
        longest = 0.0
        for nid, exc in failures.items():
            tries = attempts.get(nid, 0) + 1
            if isinstance(exc, _Unreadable):
                tries = max(tries, self.max_attempts)
            error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, _Unreadable) else str(exc)
            log.error("deciding notification %d failed (attempt %d): %s", nid, tries, error)
            poisoned = tries >= self.max_attempts
            writes[nid] = (tries, error, now if poisoned else None)
            if poisoned:
                parked.append(
                    Audit(
                        now,
                        "poison",
                        f"notification {nid} failed {tries} times and is parked; "
                        f"last error: {error}"[:2000],
                        outcome="poisoned",
                        details={
                            "notification_id": nid,
                            "attempts": tries,
                            "error": error[: queue.MAX_ERROR_CHARS],
                        },
                    )
                )
            else:
                longest = max(longest, self.retry_backoff * 2 ** (tries - 1))
        try:
            await self.store.retry_later(writes, now + timedelta(seconds=longest))
            for record in parked:
                await self.store.record(record)
        except Exception as store_exc:  # the store is down: the lease runs out, tried again
            self.metrics.store_errors.labels("notification_failure").inc()
            log.error("recording failed notifications: %s", store_exc)
        for record in parked:
            self.metrics.notifications_poisoned.inc()
            log.error("%s", record.message)
        if not parked or len(parked) < len(failures):
            self._wake.set()

    def consumer_stalled(self, after: float | None = None) -> str | None:
        """Why the engine's consumer looks stuck (a batch in hand for over ``after``
        seconds, by default ``stall_after``), or None. For /readyz; waiting for work or
        for a backoff is not being stuck."""
        if after is None:
            after = self.stall_after
        if self._busy is None:
            return None
        ids, began = self._busy
        running = asyncio.get_running_loop().time() - began
        if running < after:
            return None
        more = f" (and {len(ids) - 1} more)" if len(ids) > 1 else ""
        return f"notification {ids[0]}{more} has been processing for {running:.0f}s"

    async def drain(self, within: float = 5.0) -> None:
        """Stop taking work (shutdown, tests): the batch in hand gets ``within`` seconds
        to be committed, else it is abandoned (its lease runs out; it is decided again
        after the next start). What was not taken stays in the store."""
        self._stopping.set()
        self._wake.set()
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        _, late = await asyncio.wait({consumer}, timeout=within)
        if late:
            consumer.cancel()
            await asyncio.wait({consumer}, timeout=1.0)


class _Unreadable(Exception):
    """A stored body that no longer parses: parked at once, retrying cannot help."""
