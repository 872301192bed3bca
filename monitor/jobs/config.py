"""Scheduled maintenance jobs as the config declares them, and their triggers.

::

    jobs:
      - name: nightly-vacuum
        cron: "0 2 * * *"            # 5 fields, in ``timezone`` (default UTC)
        action: postgres.vacuum_analyze
        params: {target: conea-production}
      - name: idle-sessions
        interval: 5m
        action: postgres.terminate_idle_in_transaction
        params: {target: conea-production, databases: [conea_production], older_than: 10m}
        target: {kind: postgres, name: conea-production}

A job runs any registered action: its ``params`` are checked against the action's
model when the config loads (:func:`check_jobs`), not at 2 a.m.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from monitor import durations, targets
from monitor.actions import registry as action_registry
from monitor.errors import ConfigError

Problem = tuple[tuple[int | str, ...], str]


class JobConfig(BaseModel):
    """One scheduled job: when (``cron`` or ``interval``) and what (an action and params)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$")
    cron: str | None = None
    interval: durations.Duration | None = None
    timezone: str = "UTC"
    action: str = Field(min_length=1)
    params: dict[str, Any] = {}
    target: dict[str, str] = {}
    timeout: durations.Duration = timedelta(hours=1)
    enabled: bool = True

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as 'UTC' or 'Asia/Tokyo')"
            ) from None
        return value

    @model_validator(mode="after")
    def _when(self) -> JobConfig:
        if (self.cron is None) == (self.interval is None):
            raise ValueError("set exactly one of cron, interval")
        if self.cron is not None:
            fields = self.cron.split()
            if len(fields) != 5:
                raise ValueError(
                    f"cron {self.cron!r} must have 5 fields "
                    "(minute hour day-of-month month day-of-week)"
                )
            try:
                CronTrigger.from_crontab(self.cron, timezone=self.zone)
            except ValueError as exc:
                raise ValueError(f"invalid cron {self.cron!r}: {exc}") from None
        if self.interval is not None and self.interval < timedelta(seconds=1):
            raise ValueError(f"interval {durations.format(self.interval)} is shorter than 1s")
        if self.timeout <= timedelta(0):
            raise ValueError("timeout must be longer than 0s")
        return self

    @property
    def zone(self) -> tzinfo:
        return UTC if self.timezone == "UTC" else zoneinfo.ZoneInfo(self.timezone)

    def trigger(self, now: datetime | None = None) -> BaseTrigger:
        """The APScheduler trigger; an interval counts from ``now`` (default: real now)."""
        if self.cron is not None:
            return CronTrigger.from_crontab(self.cron, timezone=self.zone)
        assert self.interval is not None
        start = (now or datetime.now(UTC)) + self.interval
        return IntervalTrigger(
            seconds=self.interval.total_seconds(), start_date=start, timezone=self.zone
        )

    def describe(self) -> str:
        when = (
            f"cron {self.cron!r}"
            if self.cron
            else f"every {durations.format(self.interval or timedelta())}"
        )
        return f"job {self.name!r} ({when}): {self.action}"


def check_jobs(
    jobs: Sequence[JobConfig],
    registry: action_registry.Registry,
    defined: Mapping[str, Collection[str]] | None = None,
) -> list[Problem]:
    """Problems with the jobs list, each with its location below ``jobs``.

    ``defined`` maps a setting (``notifiers``, ``postgres_targets``) to the names it
    defines: a job's ``notifier`` or PostgreSQL ``target`` parameter must be one of them
    (:data:`monitor.targets.REFERENCES`). Without it names are not checked.

    ``((0, "params", "older_than"), "invalid duration ...")``: the settings loader turns
    the location into file:line.
    """
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, job in enumerate(jobs):
        if job.name in seen:
            problems.append(((index, "name"), f"duplicate job name {job.name!r}"))
        seen.add(job.name)
        if job.action not in registry:
            known = ", ".join(registry)
            problems.append(((index, "action"), f"unknown action {job.action!r} (known: {known})"))
            continue
        try:
            registry.parse_params(job.action, job.params)
        except ValidationError as exc:
            for error in exc.errors():
                reason = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
                problems.append(((index, "params", *error["loc"]), reason))
            continue
        problems.extend(_references(index, job, defined or {}))
    return problems


def _references(
    index: int, job: JobConfig, defined: Mapping[str, Collection[str]]
) -> list[Problem]:
    found: list[Problem] = []
    for prefix, key, what, setting in targets.REFERENCES:
        names = defined.get(setting)
        value = job.params.get(key)
        if names is None or not job.action.startswith(prefix) or not isinstance(value, str):
            continue
        if value not in names:
            known = ", ".join(sorted(names)) or "none configured"
            found.append(
                (
                    (index, "params", key),
                    f"unknown {what} {value!r} (known: {known}); they are defined under {setting}",
                )
            )
    return found


def ensure_valid(
    jobs: Sequence[JobConfig],
    registry: action_registry.Registry,
    where: str = "jobs",
    defined: Mapping[str, Collection[str]] | None = None,
) -> None:
    """ConfigError listing every problem as ``jobs[0].params.older_than: reason``."""
    problems = check_jobs(jobs, registry, defined)
    if problems:
        lines = []
        for loc, reason in problems:
            index, *rest = loc
            path = f"{where}[{index}]" + "".join(f".{part}" for part in rest)
            lines.append(f"{path}: {reason}")
        raise ConfigError("\n".join(lines))
