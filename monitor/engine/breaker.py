"""The blast-radius breaker: at most ``automation.max_actions.count`` live actions across
all targets in ``window``; past it, every decision that would act is skipped.

The batch decider uses it in three beats. :meth:`Breaker.refresh` reads the stored state
and the live actions of the window once per batch (and, with ``reset: auto``, closes an
open breaker whose window now holds fewer than ``count``). :meth:`Breaker.admit` is asked,
in memory, for each decision that would act for real; the admission that would exceed
``count`` trips it. :meth:`Breaker.settle`, after the batch's commit, opens a tripped
breaker in the store (a compare-and-set: of two replicas exactly one opens it) and the
one that opened it tells the configured notifier, once.

The in-memory count is a first sieve; the store has the last word. Each claim the
sieve lets through is admitted again in its own commit (:meth:`Breaker.limit`, and
:class:`monitor.store.breaker.Admission`), by the count locked there, so replicas
deciding at once never pass ``count`` together. A claim refused there is skipped like
one refused here, and the commit that refused first opened the breaker:
:meth:`Breaker.refused` then tells the notifier.

Counting starts at the window or at the last close, whichever is later, so a resume
gives the next ``count`` actions.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from monitor import durations
from monitor.metrics import Metrics
from monitor.settings import MaxActions
from monitor.store import breaker as store_breaker
from monitor.store.breaker import BreakerState
from monitor.store.facade import Store

log = logging.getLogger("monitor.engine")

Notify = Callable[[str], Awaitable[None]]

CLOSED_BY_WINDOW = "window"  # closed_by of a close by ``reset: auto``


def describe(settings: MaxActions, actions: int) -> str:
    """The reason a tripped breaker gives, e.g. ``breaker open: 5 live actions in the
    last 10m (max 5)``."""
    return store_breaker.describe(settings.count, settings.window, actions)


def notifier_message(settings: MaxActions, reason: str) -> str:
    """What the notifier is told when the breaker opens: why, and how it closes."""
    window = durations.format(settings.window)
    how = "an operator resumes automation (POST /api/v1/resume or `conea-monitor resume`)"
    if settings.reset == "auto":
        how = f"the last {window} hold fewer than {settings.count} live actions, or {how}"
    return (
        f"conea-monitor: {reason}. Every decision that would act is skipped (audit records "
        f"of kind skip, outcome breaker) until {how}."
    )


class Breaker:
    """The breaker of one engine (``settings`` None: disabled, admits everything)."""

    def __init__(
        self,
        settings: MaxActions | None,
        store: Store,
        metrics: Metrics,
        notify: Notify | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._metrics = metrics
        self._notify = notify
        self._state = BreakerState()
        self._live = 0  # live actions counted at the last refresh
        self._admitted = 0  # admissions since the last refresh
        self._tripped = False  # admit() refused for the count; open until settled or closed
        self._trip_reason = ""
        metrics.breaker_open.set(0)

    @property
    def enabled(self) -> bool:
        return self.settings is not None

    @property
    def is_open(self) -> bool:
        return self.settings is not None and (self._state.open or self._tripped)

    @property
    def state(self) -> BreakerState:
        """The state as last read or changed here."""
        return self._state

    def reason(self) -> str:
        """Why decisions are skipped (the stored reason when another replica opened it)."""
        if self._tripped:
            return self._trip_reason
        if self._state.open:
            return self._state.reason or "breaker open"
        return "breaker closed"

    async def refresh(self, now: datetime) -> None:
        """Read the stored state and the window's live actions (one read per batch)."""
        if self.settings is not None:
            self._admitted = 0
            await self._follow(now)

    async def watch(self, now: datetime) -> None:
        """Between batches (the engine's sweep): follow the stored state, so an idle
        replica's metric shows what another replica opened or closed, and close it by
        itself when its window has room (``reset: auto``). Leaves the batch's count and a
        trip not yet settled alone."""
        if self.settings is not None and not self._tripped:
            await self._follow(now)

    async def _follow(self, now: datetime) -> None:
        settings = self.settings
        assert settings is not None
        state, live = await self._store.breaker_reading(now, settings.window)
        self._state, self._live = state, live
        if state.open and settings.reset == "auto" and live < settings.count:
            await self.close(now, CLOSED_BY_WINDOW)
            return
        self._metrics.breaker_open.set(1 if self.is_open else 0)

    def admit(self) -> bool:
        """May one more decision act for real? Counted in memory until the next refresh;
        the one that would exceed ``count`` trips the breaker (open until closed)."""
        settings = self.settings
        if settings is None:
            return True
        if self.is_open:
            return False
        counted = self._live + self._admitted
        if counted >= settings.count:
            self._tripped = True
            self._trip_reason = describe(settings, counted)
            return False
        self._admitted += 1
        return True

    async def settle(self, now: datetime) -> None:
        """After the batch's commit: store a trip (opening the breaker and its audit
        record), and if this call opened it tell the notifier, once."""
        settings = self.settings
        if settings is None or not self._tripped:
            return
        reason = self._trip_reason
        opened = await self._store.open_breaker(now, reason)
        self._tripped = False
        if opened:
            self._state = BreakerState(True, now, reason, self._state.closed_at, None)
            log.warning("%s: automation stops acting until the breaker closes", reason)
        else:  # another replica opened it first; it notifies
            self._state = await self._store.breaker_state()
        self._metrics.breaker_open.set(1 if self.is_open else 0)
        if opened and self._notify is not None:
            await self._tell(self._notify, notifier_message(settings, reason))

    def limit(self, now: datetime) -> store_breaker.Limit | None:
        """What a live claim made at ``now`` is admitted by in the store (None: disabled)."""
        settings = self.settings
        if settings is None:
            return None
        return store_breaker.Limit(settings.count, settings.window, now)

    async def refused(self, now: datetime, refusal: store_breaker.Refusal) -> None:
        """The store refused a claim (another replica's actions filled the count since
        the last refresh): open here too, and if that commit opened it tell the
        notifier, once."""
        settings = self.settings
        if settings is None:
            return
        if refusal.opened:
            before = self._state
            self._state = BreakerState(
                True, now, refusal.reason, before.closed_at, before.closed_by
            )
            log.warning("%s: automation stops acting until the breaker closes", refusal.reason)
        elif not self._state.open:
            self._state = await self._store.breaker_state()
        self._metrics.breaker_open.set(1 if self.is_open else 0)
        if refusal.opened and self._notify is not None:
            await self._tell(self._notify, notifier_message(settings, refusal.reason))

    async def _tell(self, notify: Notify, message: str) -> None:
        try:
            await notify(message)
        except Exception:
            log.exception("the breaker opened, but telling the notifier failed")
            self._metrics.breaker_notifications.labels("failed").inc()
        else:
            self._metrics.breaker_notifications.labels("sent").inc()

    async def close(self, now: datetime, by: str) -> bool:
        """Close it (resume, or ``reset: auto``): True if it was open. Counting starts
        afresh at ``now``."""
        closed = await self._store.close_breaker(now, by)
        was_open = closed or self._tripped
        self._tripped = False
        if closed:
            self._state = BreakerState(False, self._state.opened_at, self._state.reason, now, by)
            self._live = self._admitted = 0
            log.info("breaker closed by %s", by)
        elif self._state.open:  # closed in the store by someone else since the last read
            self._state = await self._store.breaker_state()
        self._metrics.breaker_open.set(1 if self.is_open else 0)
        return was_open
