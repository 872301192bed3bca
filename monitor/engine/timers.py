"""APScheduler (3.x) runs the engine's timers; the store is their memory.

Deferred decisions, verification checks and reverts are rows with a due time. Jobs here
are only reminders: a periodic sweep re-reads the store and (re)schedules whatever is
due, so timers survive a restart and a replica picks up what another one left.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

log = logging.getLogger(__name__)


class Timers:
    def __init__(self) -> None:
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def start(self) -> None:
        if not self.scheduler.running:
            self.scheduler.start()

    def shutdown(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def at(
        self,
        job_id: str,
        when: datetime,
        func: Callable[..., Awaitable[Any]],
        *args: Any,
        rearm: bool = False,
    ) -> None:
        """Run ``func(*args)`` at ``when`` (at once if it is past); replaces a same-id job.

        A job of an id still running is skipped when its time comes (one at a time). A job
        that sets itself off again as its last act (a verification check, a deferral put
        off once more) passes ``rearm``: its next run may start while it returns. Else a
        check that took longer than its interval would skip the next one, which would then
        wait for the sweep. The store's claims keep the two from doing the work twice."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self.scheduler.add_job(
            func,
            "date",
            run_date=when,
            args=args,
            id=job_id,
            replace_existing=True,
            max_instances=2 if rearm else 1,
        )

    def soon(self, job_id: str, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``func(*args)`` now, in the background (whatever the engine's clock says)."""
        self.at(job_id, datetime.now(UTC), func, *args)

    def ensure(
        self, job_id: str, when: datetime, func: Callable[..., Awaitable[Any]], *args: Any
    ) -> None:
        """Like ``at``, unless a job with this id is already waiting."""
        if self.scheduler.get_job(job_id) is None:
            self.at(job_id, when, func, *args)

    def every(self, job_id: str, seconds: float, func: Callable[..., Awaitable[Any]]) -> None:
        self.scheduler.add_job(func, "interval", seconds=seconds, id=job_id, replace_existing=True)

    def cancel(self, job_id: str) -> None:
        job = self.scheduler.get_job(job_id)
        if job is not None:
            job.remove()

    def pending(self) -> list[str]:
        return [job.id for job in self.scheduler.get_jobs()]
