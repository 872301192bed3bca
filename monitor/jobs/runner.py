"""Running one scheduled job: leader check, plan and apply, record, metrics.

Each run that this replica performs is passed to ``record(job_name, started, duration,
outcome, summary, details)`` (the audit trail; sync or async) and sets
``conea_monitor_job_last_run_timestamp_seconds``, ``..._job_last_success`` and
``..._job_last_duration_seconds``. ``outcome`` is one of:

- ``succeeded``: the action applied its plan;
- ``noop``: the plan found nothing to do (counts as success);
- ``dry_run``: automation is in dry-run, the plan was recorded and nothing applied;
- ``skipped``: automation is paused;
- ``failed``: the action raised (or timed out); ``details`` says why and whether
  the failure was temporary.

The plan and the apply go through the action runner (:mod:`monitor.actions.runner`):
temporary failures are retried by the action's retry policy (or the runner's), and the
job's ``timeout`` bounds each try and the whole run, retries and waits included.

A run on a replica that is not the leader does nothing and records nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from monitor import durations
from monitor import metrics as metrics_module
from monitor.actions import registry as action_registry
from monitor.actions import runner as action_runner
from monitor.errors import ActionError, TemporaryActionError
from monitor.jobs import config, leader

Record = Callable[[str, datetime, float, str, str, dict[str, Any]], Awaitable[None] | None]
Clock = Callable[[], datetime]
SUCCESS = frozenset({"succeeded", "noop", "dry_run"})


@dataclass(frozen=True)
class JobRun:
    job: str
    started: datetime
    duration: float
    outcome: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


def _real_now() -> datetime:
    return datetime.now(UTC)


class JobRunner:
    """Runs jobs for the scheduler; everything it touches is injected."""

    def __init__(
        self,
        registry: action_registry.Registry,
        services: action_registry.Services,
        *,
        metrics: metrics_module.Metrics | None = None,
        record: Record | None = None,
        election: leader.Leader | None = None,
        clock: Clock = _real_now,
        paused: Callable[[], bool] = lambda: False,
        dry_run: Callable[[], bool] = lambda: False,
        log: logging.Logger | None = None,
        runner: action_runner.ActionRunner | None = None,
    ) -> None:
        self.registry = registry
        self.runner = runner or action_runner.ActionRunner()
        self.services = services
        self.metrics = metrics
        self.record = record
        self.election = election or leader.AlwaysLeader()
        self.clock = clock
        self.paused = paused
        self.dry_run = dry_run
        self.log = log or logging.getLogger("monitor.jobs")
        self._running: set[str] = set()

    async def run(self, job: config.JobConfig, now: datetime | None = None) -> JobRun | None:
        """Run ``job`` once (``now``: the scheduled time; default the clock's)."""
        if not await self.election.is_leader():
            self.log.debug("jobs: %s not run here: another replica is the leader", job.name)
            return None
        if job.name in self._running:
            self.log.warning("jobs: %s is still running; this run is skipped", job.name)
            return None
        self._running.add(job.name)
        try:
            started = now or self.clock()
            begin = time.perf_counter()
            outcome, summary, details = await self._execute(job)
            duration = time.perf_counter() - begin
        finally:
            self._running.discard(job.name)
        run = JobRun(job.name, started, duration, outcome, summary, details)
        self.log.info("jobs: %s %s in %.3fs: %s", job.name, outcome, duration, summary)
        self._observe(run)
        await self._record(run)
        return run

    async def _execute(self, job: config.JobConfig) -> tuple[str, str, dict[str, Any]]:
        if self.paused():
            return "skipped", "automation is paused", {}
        ctx = action_registry.ActionContext(
            alert=None,
            target=job.target,
            services=self.services,
            policy=f"job:{job.name}",
            dry_run=self.dry_run(),
            now=self.clock,
            log=self.log,
        )
        details: dict[str, Any] = {"action": job.action}
        seconds = job.timeout.total_seconds()
        ends = self.runner.monotonic() + seconds
        try:
            action = self.registry.get(job.action)
            params = action.Params.model_validate(job.params)
            policy = action.retry_policy(params, ctx) or self.runner.retry
            retry = dataclasses.replace(policy, deadline=seconds)
            plan = await self.runner.plan(action, params, ctx, timeout=seconds, retry=retry)
            details["plan"] = plan.model_dump(mode="json")
            if plan.noop:
                return "noop", plan.summary, details
            if ctx.dry_run:
                return "dry_run", f"dry-run: would {plan.summary}", details
            left = ends - self.runner.monotonic()
            if left <= 0:
                raise action_runner.ActionTimeout(f"{job.action}: no time left to apply")
            retry = dataclasses.replace(policy, deadline=left)
            result = await self.runner.apply(action, params, ctx, plan, timeout=left, retry=retry)
            details["outcome"] = result.model_dump(mode="json")
            return "succeeded", result.summary, details
        except action_runner.ActionTimeout:
            summary = f"timed out after {durations.format(job.timeout)}"
            details["error"] = {"type": "timeout"}
        except (KeyError, ValidationError) as exc:  # the config check should have caught it
            summary = f"invalid job: {exc}"
            details["error"] = {"type": "config"}
        except ActionError as exc:
            summary = str(exc)
            details["error"] = {
                "type": type(exc).__name__,
                "temporary": isinstance(exc, TemporaryActionError),
            }
        except Exception as exc:  # a bug must not stop the scheduler
            self.log.exception("jobs: %s crashed", job.name)
            summary = f"{type(exc).__name__}: {exc}"
            details["error"] = {"type": "crash"}
        return "failed", summary, details

    def _observe(self, run: JobRun) -> None:
        if self.metrics is None:
            return
        self.metrics.job_last_run.labels(run.job).set(run.started.timestamp())
        self.metrics.job_last_success.labels(run.job).set(1 if run.outcome in SUCCESS else 0)
        self.metrics.job_duration.labels(run.job).set(run.duration)

    async def _record(self, run: JobRun) -> None:
        if self.record is None:
            return
        try:
            result = self.record(
                run.job, run.started, run.duration, run.outcome, run.summary, run.details
            )
            if inspect.isawaitable(result):
                await result
        except Exception:
            self.log.exception("jobs: cannot record the run of %s", run.job)
