"""The engine's timers run one job of an id at a time: a job leaves the schedule when it
starts, and a job of the same id set off before it returns is skipped, never run. What
tests wait on (:class:`tests.support.timers.Jobs`) sees the running one."""

from __future__ import annotations

import asyncio

from monitor.engine.timers import Timers
from tests.support.timers import Jobs


async def test_a_job_of_an_id_still_running_is_skipped_and_quiet_waits_for_its_end() -> None:
    timers = Timers()
    jobs = Jobs(timers)
    started, go = asyncio.Event(), asyncio.Event()
    runs: list[str] = []
    returned: list[str] = []

    async def job(name: str) -> None:
        runs.append(name)
        started.set()
        await go.wait()
        returned.append(name)

    timers.start()
    try:
        timers.soon("page-1", job, "first")
        await asyncio.wait_for(started.wait(), 10)
        assert timers.pending() == []  # none waiting ...
        assert jobs.running() == ["page-1"] and jobs.busy("page-") == ["page-1"]  # ... one runs

        timers.soon("page-1", job, "second")
        while not jobs.skipped:
            jobs.changed.clear()
            await asyncio.wait_for(jobs.changed.wait(), 10)
        assert jobs.skipped == ["page-1"] and timers.pending() == []

        go.set()
        await asyncio.wait_for(jobs.quiet(), 10)
        assert returned == ["first"] and runs == ["first"]  # the second never ran
        assert jobs.running() == [] and jobs.due() == []
    finally:
        timers.shutdown()
