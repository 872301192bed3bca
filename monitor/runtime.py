"""What one running service holds: settings, store, writer, metrics, auth and the hand-off
from the webhook to the engine. Built by ``monitor.app.create_app``; tests build their own.

A notification whose processing raises is tried again after a backoff (doubling), up to
``max_attempts`` times in all, counting attempts made before a restart; then it is parked
as poisoned (``notifications.poisoned_at``, an audit record of kind ``poison``,
``conea_monitor_notifications_poisoned_total``) and never taken up again, so it blocks
nothing. At start-up :meth:`Runtime.resume` pages through every unprocessed notification
that is not poisoned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.alerts import payload
from monitor.alerts.payload import Notification
from monitor.auth import Authenticator
from monitor.heartbeat import Heartbeat
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.store import database
from monitor.store import notifications as store_notifications
from monitor.store.facade import Store
from monitor.store.notifications import NotificationWriter, StoredAlert, StoredNotification
from monitor.store.records import Audit

log = logging.getLogger(__name__)

Handler = Callable[[StoredNotification], Awaitable[None]]

MAX_ATTEMPTS = 3
RETRY_BACKOFF = 5.0  # seconds before the second attempt; doubled before each next one
RESUME_PAGE = 500  # unprocessed notifications read (and processed) at a time at start-up
STALL_AFTER = 300.0  # seconds one attempt may run before the consumer counts as stuck


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    db: database.Handle
    writer: NotificationWriter
    auth: Authenticator
    handler: Handler | None = None
    matcher: Callable[[Mapping[str, str]], Any] | None = None
    config_loaded: bool = True
    extras: dict[str, Any] = field(default_factory=dict)
    max_attempts: int = MAX_ATTEMPTS
    stall_after: float = STALL_AFTER
    retry_backoff: float = RETRY_BACKOFF
    # Worker threads whose progress /readyz and /metrics report (the store writer, ...).
    heartbeats: list[Heartbeat] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _busy: dict[int, float] = field(default_factory=dict)  # id -> loop time attempt began
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

    def dispatch(self, stored: StoredNotification, attempts: int = 0) -> asyncio.Task[None] | None:
        """Hand a committed notification to the engine, after the webhook has answered;
        ``attempts`` is how many earlier attempts failed (before a restart)."""
        if not stored.needs_processing:
            return None
        task = asyncio.get_running_loop().create_task(self._process(stored, attempts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _process(self, stored: StoredNotification, attempts: int) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            self._busy[stored.id] = loop.time()
            try:
                if self.handler is not None:
                    await self.handler(stored)
            except Exception as exc:
                attempts += 1
                log.exception("processing notification %d failed (attempt %d)", stored.id, attempts)
                if await self._failed(stored.id, attempts, exc):
                    return
                delay = self.retry_backoff * 2 ** (attempts - 1)
                if await self._stopped_within(delay):
                    return  # left unprocessed: taken up again at the next start
                continue
            finally:
                self._busy.pop(stored.id, None)
            self.writer.mark_processed(stored.id, datetime.now(UTC))
            return

    async def _failed(self, notification_id: int, attempts: int, exc: BaseException) -> bool:
        """Record a failed attempt; park the notification after the last. True if parked."""
        error = f"{type(exc).__name__}: {exc}"
        poisoned = attempts >= self.max_attempts
        now = datetime.now(UTC)
        try:
            await self.store.record_failure(
                notification_id, attempts, error, now if poisoned else None
            )
            if poisoned:
                await self.store.record(
                    Audit(
                        now,
                        "poison",
                        f"notification {notification_id} failed {attempts} times and is "
                        f"parked; last error: {error}"[:2000],
                        outcome="poisoned",
                        details={
                            "notification_id": notification_id,
                            "attempts": attempts,
                            "error": error[: store_notifications.MAX_ERROR_CHARS],
                        },
                    )
                )
        except Exception as store_exc:  # the store is down: retried, or taken up at start
            self.metrics.store_errors.labels("notification_failure").inc()
            log.error("recording the failure of notification %d: %s", notification_id, store_exc)
        if poisoned:
            self.metrics.notifications_poisoned.inc()
            log.error("notification %d parked as poisoned: %s", notification_id, error)
        return poisoned

    async def _stopped_within(self, seconds: float) -> bool:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def start_resuming(self) -> None:
        """Run :meth:`resume` in the background (shutdown waits for it like the rest)."""
        task = asyncio.get_running_loop().create_task(self._resume())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self) -> None:
        try:
            await self.resume()
        except Exception:  # the store is down: taken up at the next start
            self.metrics.store_errors.labels("resume").inc()
            log.exception("resuming unprocessed notifications failed")

    async def resume(self, page: int = RESUME_PAGE) -> int:
        """Process every notification answered 200 but not processed before a stop (or a
        crash), a page at a time, oldest first; poisoned ones are left parked."""
        after, total = 0, 0
        while not self._stopping.is_set():
            pending = await self.store.unprocessed(after, page)
            if not pending:
                break
            tasks = []
            for item in pending:
                after = item.id
                try:
                    notification = payload.parse(item.body.encode("utf-8"))
                except Exception as exc:  # stored bodies were valid; be safe anyway
                    await self._failed(item.id, max(item.attempts + 1, self.max_attempts), exc)
                    continue
                alerts = [StoredAlert(0, a, repeat=False) for a in notification.alerts]
                stored = StoredNotification(item.id, notification, item.received_at, alerts)
                task = self.dispatch(stored, item.attempts)
                if task is not None:
                    tasks.append(task)
            total += len(pending)
            if tasks:
                await asyncio.wait(tasks)  # one page in flight: memory stays bounded
        if total:
            log.info("resumed %d notification(s) stored before the last stop", total)
        return total

    def consumer_stalled(self, after: float | None = None) -> str | None:
        """Why the engine's consumer looks stuck (an attempt running for over ``after``
        seconds, by default ``stall_after``), or None. For /readyz; waiting between
        attempts is not being stuck."""
        if after is None:
            after = self.stall_after
        if not self._busy:
            return None
        nid, began = min(self._busy.items(), key=lambda item: item[1])
        running = asyncio.get_running_loop().time() - began
        if running < after:
            return None
        return f"notification {nid} has been processing for {running:.0f}s"

    async def drain(self, within: float = 10.0) -> None:
        """Wait for in-flight processing (shutdown, tests); backoff waits end at once."""
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
