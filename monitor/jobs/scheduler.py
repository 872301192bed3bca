"""The scheduler of maintenance jobs: APScheduler in the service, a tick for tests.

:meth:`JobScheduler.start` adds each job to an APScheduler 3.x ``AsyncIOScheduler``
with the job's trigger (coalesced, one instance at a time, a misfire grace time), and
APScheduler calls the runner on real time.

APScheduler reads the wall clock itself, so it cannot be driven by a fake one. For an
injected clock, :meth:`JobScheduler.tick` does the same decision by hand with the same
trigger objects: every job whose next fire time (from the trigger) is at or before
``now`` runs once (missed fires coalesce into one run, as with APScheduler's
``coalesce=True``), then its next fire time is computed after ``now``. Tests call
``tick(datetime(..., 2, 0))`` to run the 02:00 job without sleeping; a service may also
drive ``tick`` from its own loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from monitor.jobs import config, runner

MISFIRE_GRACE_SECONDS = 300


class JobScheduler:
    def __init__(
        self,
        jobs: Sequence[config.JobConfig],
        job_runner: runner.JobRunner,
        *,
        misfire_grace_time: int = MISFIRE_GRACE_SECONDS,
        log: logging.Logger | None = None,
    ) -> None:
        self.runner = job_runner
        self.jobs = {job.name: job for job in jobs if job.enabled}
        self.misfire_grace_time = misfire_grace_time
        self.log = log or logging.getLogger("monitor.jobs")
        now = job_runner.clock()
        self._triggers: dict[str, BaseTrigger] = {
            name: job.trigger(now) for name, job in self.jobs.items()
        }
        self._next: dict[str, datetime | None] = {
            name: trigger.get_next_fire_time(None, now) for name, trigger in self._triggers.items()
        }
        self._aps: AsyncIOScheduler | None = None

    # The service: APScheduler on real time.

    def start(self) -> None:
        """Start APScheduler on the running event loop."""
        self._aps = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": self.misfire_grace_time,
            },
        )
        for name, job in self.jobs.items():
            self._aps.add_job(
                self._fire, trigger=job.trigger(), args=[name], id=name, name=job.describe()
            )
            self.log.info("jobs: scheduled %s", job.describe())
        self._aps.start()

    async def shutdown(self) -> None:
        if self._aps is not None and self._aps.running:
            self._aps.shutdown(wait=False)
            await asyncio.sleep(0)  # let APScheduler's shutdown callback run
        self._aps = None
        await self.runner.election.close()

    def run_now(self, name: str) -> None:
        """Make APScheduler fire ``name`` at once (an operator's "run now")."""
        if self._aps is None:
            raise RuntimeError("the scheduler is not started")
        if name not in self.jobs:
            raise KeyError(f"unknown job {name!r}")
        self._aps.modify_job(name, next_run_time=datetime.now(UTC))

    def scheduled(self) -> dict[str, datetime | None]:
        """Next fire time of each job as APScheduler holds it (``None`` when stopped)."""
        if self._aps is None:
            return dict.fromkeys(self.jobs)
        return {job.id: job.next_run_time for job in self._aps.get_jobs()}

    async def _fire(self, name: str) -> None:
        await self.runner.run(self.jobs[name])

    # Injected time: the same triggers, decided by hand.

    def next_fire_time(self, name: str) -> datetime | None:
        return self._next[name]

    async def tick(self, now: datetime | None = None) -> list[runner.JobRun]:
        """Run every job due at ``now`` (default: the runner's clock) once."""
        now = now or self.runner.clock()
        due = [name for name, when in self._next.items() if when is not None and when <= now]
        for name in due:
            self._next[name] = self._triggers[name].get_next_fire_time(
                None, now + timedelta(microseconds=1)
            )
        runs = await asyncio.gather(*(self.runner.run(self.jobs[name], now) for name in due))
        return [run for run in runs if run is not None]
