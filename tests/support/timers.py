"""Watch an engine's timer jobs to their end, not only out of the schedule.

A job leaves ``Timers.pending()`` when APScheduler starts it, and what it committed is
visible before its coroutine returns. Until it returns, a job of the same id is skipped
(``max_instances=1``): a test that moves its clock on as soon as it sees the commit can
lose the next job. :class:`Jobs` counts the jobs started and ended (from the scheduler's
events) so a test can wait for them to have returned, and records any skipped.

A stopped scheduler cancels the jobs still running: :meth:`Jobs.quiet` waits for every
job that has started or is due to return, so a test's end does not cut one off halfway.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

from apscheduler.events import (
    EVENT_ALL,
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_SUBMITTED,
    SchedulerEvent,
)

from monitor.engine.timers import Timers


class Jobs:
    """The jobs of one engine's timers that started, returned, or were skipped."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self.started: Counter[str] = Counter()
        self.ended: Counter[str] = Counter()
        self.skipped: list[str] = []
        self.changed = asyncio.Event()  # set by every event of the scheduler (its loop's)
        timers.scheduler.add_listener(self._event, EVENT_ALL)

    def _event(self, event: SchedulerEvent) -> None:
        job = str(getattr(event, "job_id", ""))  # a job's event names its job
        if event.code == EVENT_JOB_SUBMITTED:
            self.started[job] += 1
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.skipped.append(job)
        elif event.code in (EVENT_JOB_EXECUTED, EVENT_JOB_ERROR):
            self.ended[job] += 1
        self.changed.set()

    def running(self) -> list[str]:
        """The jobs started and not yet returned."""
        return [job for job, n in self.started.items() if n > self.ended[job]]

    def due(self) -> list[str]:
        """The jobs whose time has come that have not started yet (none once stopped)."""
        if not self.timers.scheduler.running:
            return []
        now = datetime.now(UTC)
        jobs = self.timers.scheduler.get_jobs()
        return [job.id for job in jobs if job.next_run_time and job.next_run_time <= now]

    def busy(self, prefix: str) -> list[str]:
        """The jobs of ``prefix`` scheduled or running."""
        return [job for job in self.timers.pending() + self.running() if job.startswith(prefix)]

    async def idle(self, prefix: str) -> None:
        """Until no job of ``prefix`` is scheduled or running (each one has returned)."""
        while self.busy(prefix):
            self.changed.clear()
            await self.changed.wait()

    async def quiet(self) -> None:
        """Until no job runs and none is due: each one set off has returned (a job due
        later, such as a verification a minute on, is left to the scheduler)."""
        while self.running() or self.due():
            self.changed.clear()
            await self.changed.wait()
