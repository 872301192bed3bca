"""The engine's timers run one job of an id at a time: a job leaves the schedule when it
starts, and a job of the same id set off before it returns is skipped, never run. What
tests wait on (:class:`tests.support.timers.Jobs`) sees the running one."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

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


async def test_a_job_that_rearms_itself_as_its_last_act_runs_again_not_skipped() -> None:
    # A verification check that took longer than its interval sets its next check off for
    # a time already past, while it is still running: that run must not be skipped.
    timers = Timers()
    jobs = Jobs(timers)
    runs: list[int] = []
    done = asyncio.Event()

    async def check(n: int) -> None:
        runs.append(n)
        if n < 3:
            past = datetime.now(UTC) - timedelta(seconds=1)
            timers.at("verify-1", past, check, n + 1, rearm=True)
        else:
            done.set()

    timers.start()
    try:
        timers.soon("verify-1", check, 1)
        await asyncio.wait_for(done.wait(), 10)
        await asyncio.wait_for(jobs.quiet(), 10)
        assert runs == [1, 2, 3]
        assert jobs.skipped == []
    finally:
        timers.shutdown()
