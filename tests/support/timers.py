"""Watch an engine's timer jobs to their end, not only out of the schedule.

A job leaves ``Timers.pending()`` when APScheduler starts it, and what it committed is
visible before its coroutine returns. Until it returns, a job of the same id is skipped
(``max_instances=1``): a test that moves its clock on as soon as it sees the commit can
lose the next job. :class:`Jobs` counts the jobs started and ended (from the scheduler's
events) so a test can wait for them to have returned, and records any skipped.
"""

from __future__ import annotations

import asyncio
from collections import Counter

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_EXECUTED,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_SUBMITTED,
    JobEvent,
    JobSubmissionEvent,
)

from monitor.engine.timers import Timers


class Jobs:
    """The jobs of one engine's timers that started, returned, or were skipped."""

    def __init__(self, timers: Timers) -> None:
        self.timers = timers
        self.started: Counter[str] = Counter()
        self.ended: Counter[str] = Counter()
        self.skipped: list[str] = []
        timers.scheduler.add_listener(
            self._event,
            EVENT_JOB_SUBMITTED | EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MAX_INSTANCES,
        )

    def _event(self, event: JobEvent | JobSubmissionEvent) -> None:
        if event.code == EVENT_JOB_SUBMITTED:
            self.started[event.job_id] += 1
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            self.skipped.append(event.job_id)
        else:
            self.ended[event.job_id] += 1

    def busy(self, prefix: str) -> list[str]:
        """The jobs of ``prefix`` scheduled or running."""
        running = [job for job, n in self.started.items() if n > self.ended[job]]
        return [job for job in self.timers.pending() + running if job.startswith(prefix)]

    async def idle(self, prefix: str) -> None:
        """Until no job of ``prefix`` is scheduled or running (each one has returned)."""
        while self.busy(prefix):
            await asyncio.sleep(0.01)
