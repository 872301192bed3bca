"""What one running service holds: settings, store, writer, metrics, auth and the hand-off
from the webhook to the engine. Built by ``monitor.app.create_app``; tests build their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from monitor.alerts.payload import Notification
from monitor.auth import Authenticator
from monitor.heartbeat import Heartbeat
from monitor.metrics import Metrics
from monitor.settings import Settings
from monitor.store.notifications import NotificationWriter, StoredNotification

log = logging.getLogger(__name__)

Handler = Callable[[StoredNotification], Awaitable[None]]


@dataclass
class Runtime:
    settings: Settings
    metrics: Metrics
    db: Engine
    writer: NotificationWriter
    auth: Authenticator
    handler: Handler | None = None
    matcher: Callable[[Mapping[str, str]], Any] | None = None
    config_loaded: bool = True
    extras: dict[str, Any] = field(default_factory=dict)
    # Worker threads whose progress /readyz and /metrics report (the store writer, ...).
    heartbeats: list[Heartbeat] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def needs_processing(self, notification: Notification) -> bool:
        """Would the engine do anything with it? Not when no policy matches any alert:
        then it is stored as processed and never dispatched (saving a write per request)."""
        if self.matcher is None:
            return True
        return any(self.matcher(alert.labels) for alert in notification.alerts)

    def dispatch(self, stored: StoredNotification) -> None:
        """Hand a committed notification to the engine, after the webhook has answered."""
        if not stored.needs_processing:
            return
        task = asyncio.get_running_loop().create_task(self._process(stored))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _process(self, stored: StoredNotification) -> None:
        try:
            if self.handler is not None:
                await self.handler(stored)
        except Exception:
            # Left unprocessed: taken up again at the next start.
            log.exception("processing notification %d failed", stored.id)
            return
        self.writer.mark_processed(stored.id, datetime.now(UTC))

    async def drain(self, within: float = 10.0) -> None:
        """Wait for in-flight processing (shutdown, tests)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)
