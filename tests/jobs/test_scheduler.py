"""Scheduled jobs: injected time, records, metrics, and the real APScheduler wiring."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from monitor import metrics, targets
from monitor.actions import registry
from monitor.actions import runner as action_runner
from monitor.errors import TemporaryActionError
from monitor.jobs import JobConfig, JobRunner, JobScheduler
from tests.actions.conftest import Sleeps
from tests.jobs.conftest import vacuum_count
from tests.support import services

START = datetime(2026, 11, 28, 1, 59, 0, tzinfo=UTC)


class Records(list[tuple[Any, ...]]):
    """The audit-trail callback: keeps what it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.event = asyncio.Event()

    async def __call__(
        self,
        job: str,
        started: datetime,
        duration: float,
        outcome: str,
        summary: str,
        details: dict[str, Any],
    ) -> None:
        self.append((job, started, duration, outcome, summary, details))
        self.event.set()


def sample(m: metrics.Metrics, name: str, job: str) -> float | None:
    return m.registry.get_sample_value(f"conea_monitor_{name}", {"name": job})


@pytest.mark.integration
async def test_nightly_vacuum_runs_at_0200_on_an_injected_clock(
    postgres: services.Postgres,
    jobs_db: str,
    jobs_target: targets.PostgresTarget,
    actions: registry.Registry,
) -> None:
    job = JobConfig(
        name="nightly-vacuum",
        cron="0 2 * * *",
        action="postgres.vacuum_analyze",
        params={"target": "db", "tables": ["nightly"]},
    )
    records, m = Records(), metrics.Metrics()
    runner = JobRunner(
        actions,
        registry.Services(postgres={"db": jobs_target}),
        metrics=m,
        record=records,
        clock=lambda: START,
    )
    scheduler = JobScheduler([job], runner)
    before = vacuum_count(postgres, jobs_db, "nightly")
    assert scheduler.next_fire_time("nightly-vacuum") == START.replace(hour=2, minute=0)

    assert await scheduler.tick(START.replace(minute=59, second=59)) == []
    assert records == [] and vacuum_count(postgres, jobs_db, "nightly") == before

    at_two = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    [run] = await scheduler.tick(at_two)
    assert run.outcome == "succeeded"
    assert vacuum_count(postgres, jobs_db, "nightly") == before + 1
    [(name, started, duration, outcome, summary, details)] = records
    assert (name, started, outcome) == ("nightly-vacuum", at_two, "succeeded")
    assert summary.startswith("VACUUM (ANALYZE) nightly in conea_jobs on 'db' took ")
    assert details["plan"]["action"] == "postgres.vacuum_analyze"
    assert details["outcome"]["details"]["tables"][0]["last_vacuum"] is not None
    assert sample(m, "job_last_run_timestamp_seconds", "nightly-vacuum") == at_two.timestamp()
    assert sample(m, "job_last_success", "nightly-vacuum") == 1
    assert sample(m, "job_last_duration_seconds", "nightly-vacuum") == pytest.approx(duration)

    assert await scheduler.tick(at_two + timedelta(minutes=30)) == []  # once a night
    assert scheduler.next_fire_time("nightly-vacuum") == at_two + timedelta(days=1)
    assert vacuum_count(postgres, jobs_db, "nightly") == before + 1


async def test_missed_interval_runs_coalesce_into_one(actions: registry.Registry) -> None:
    job = JobConfig(name="heartbeat", interval=timedelta(minutes=10), action="log")
    records = Records()
    runner = JobRunner(actions, registry.Services(), record=records, clock=lambda: START)
    scheduler = JobScheduler([job], runner)
    assert scheduler.next_fire_time("heartbeat") == START + timedelta(minutes=10)
    runs = await scheduler.tick(START + timedelta(minutes=35))  # three fires were missed
    assert [(r.job, r.outcome, r.summary) for r in runs] == [
        ("heartbeat", "succeeded", "logged 'remediation requested'")
    ]
    assert scheduler.next_fire_time("heartbeat") == START + timedelta(minutes=40)
    assert len(records) == 1


async def test_a_failing_job_is_recorded_and_reported_in_metrics(
    actions: registry.Registry,
) -> None:
    job = JobConfig(
        name="vacuum-missing",
        interval=timedelta(hours=1),
        action="postgres.vacuum_analyze",
        params={"target": "gone"},
    )
    records, m = Records(), metrics.Metrics()
    runner = JobRunner(actions, registry.Services(), metrics=m, record=records, clock=lambda: START)
    run = await runner.run(job)
    assert run is not None and run.outcome == "failed"
    assert run.summary == "unknown postgres target 'gone' (known: none configured)"
    assert records[0][3] == "failed"
    assert records[0][5]["error"] == {"type": "PermanentActionError", "temporary": False}
    assert sample(m, "job_last_success", "vacuum-missing") == 0
    assert sample(m, "job_last_run_timestamp_seconds", "vacuum-missing") == START.timestamp()


class SlowParams(registry.StrictModel):
    seconds: float = 30
    fail_temporarily: bool = False


class Slow(registry.Action[SlowParams]):
    name = "test.slow"
    Params = SlowParams

    async def plan(self, params: SlowParams, ctx: registry.ActionContext) -> registry.Plan:
        return registry.Plan(action=self.name, summary=f"sleep {params.seconds}s")

    async def apply(
        self, params: SlowParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        if params.fail_temporarily:
            raise TemporaryActionError("try later", delay=5)
        await asyncio.sleep(params.seconds)
        return registry.Outcome(summary="slept")


async def test_timeout_paused_and_dry_run(actions: registry.Registry) -> None:
    actions.register(Slow)
    records = Records()
    state = {"paused": False, "dry_run": False}
    runner = JobRunner(
        actions,
        registry.Services(),
        record=records,
        clock=lambda: START,
        paused=lambda: state["paused"],
        dry_run=lambda: state["dry_run"],
    )
    slow = JobConfig(
        name="slow",
        interval=timedelta(hours=1),
        action="test.slow",
        timeout=timedelta(milliseconds=100),
    )
    run = await runner.run(slow)
    assert run is not None and (run.outcome, run.summary) == ("failed", "timed out after 100ms")

    state["dry_run"] = True
    run = await runner.run(slow)
    assert run is not None and (run.outcome, run.summary) == ("dry_run", "dry-run: would sleep 30s")
    state["paused"] = True
    run = await runner.run(slow)
    assert run is not None and (run.outcome, run.summary) == ("skipped", "automation is paused")
    assert [r[3] for r in records] == ["failed", "dry_run", "skipped"]

    state.update(paused=False, dry_run=False)
    flaky = JobConfig(
        name="flaky",
        interval=timedelta(hours=1),
        action="test.slow",
        params={"fail_temporarily": True},
    )
    runner.runner.sleep = waits = Sleeps()
    run = await runner.run(flaky)
    assert run is not None and run.outcome == "failed"
    assert run.details["error"] == {"type": "TemporaryActionError", "temporary": True}
    assert waits == [5.0, 5.0]  # the action runner tried 3 times, waiting the error's delay


async def test_a_job_retries_a_temporary_failure_within_its_timeout(
    actions: registry.Registry,
) -> None:
    actions.register(Flaky)
    records, waits = Records(), Sleeps()
    runner = JobRunner(
        actions,
        registry.Services(),
        record=records,
        clock=lambda: START,
        runner=action_runner.ActionRunner(sleep=waits),
    )
    job = JobConfig(name="flaky", interval=timedelta(hours=1), action="test.flaky")
    run = await runner.run(job)
    assert run is not None and (run.outcome, run.summary) == ("succeeded", "worked on try 2")
    assert waits == [3.0]

    short = JobConfig(
        name="short", interval=timedelta(hours=1), action="test.flaky", timeout=timedelta(seconds=2)
    )
    run = await runner.run(short)  # the 3s wait would pass the job's 2s timeout
    assert run is not None and (run.outcome, run.summary) == ("failed", "not yet")
    assert waits == [3.0]


class FlakyParams(registry.StrictModel):
    pass


class Flaky(registry.Action[FlakyParams]):
    """Fails temporarily on every odd try."""

    name = "test.flaky"
    Params = FlakyParams
    tries = 0

    async def plan(self, params: FlakyParams, ctx: registry.ActionContext) -> registry.Plan:
        return registry.Plan(action=self.name, summary="try")

    async def apply(
        self, params: FlakyParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        self.tries += 1
        if self.tries % 2:
            raise TemporaryActionError("not yet", delay=3)
        return registry.Outcome(summary=f"worked on try {self.tries}")


async def test_apscheduler_runs_the_job_through_the_runner(actions: registry.Registry) -> None:
    records = Records()
    runner = JobRunner(actions, registry.Services(), record=records)
    job = JobConfig(
        name="hourly", interval=timedelta(hours=1), action="log", params={"message": "hourly check"}
    )
    scheduler = JobScheduler([job], runner)
    scheduler.start()
    try:
        [(name, next_run)] = scheduler.scheduled().items()
        assert name == "hourly" and next_run is not None
        assert next_run - datetime.now(UTC) > timedelta(minutes=59)
        scheduler.run_now("hourly")
        await asyncio.wait_for(records.event.wait(), 10)
        assert records[0][0] == "hourly" and records[0][3] == "succeeded"
        assert records[0][4] == "logged 'hourly check'"
        with pytest.raises(KeyError, match="unknown job 'daily'"):
            scheduler.run_now("daily")
    finally:
        await scheduler.shutdown()
