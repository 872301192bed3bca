"""Job configuration: strict models and the check against the action registry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from monitor.actions import default_registry, registry
from monitor.errors import ConfigError
from monitor.jobs import JobConfig, check_jobs, ensure_valid


def test_cron_and_interval_jobs_parse() -> None:
    nightly = JobConfig.model_validate(
        {
            "name": "nightly-vacuum",
            "cron": "0 2 * * *",
            "timezone": "Asia/Tokyo",
            "action": "postgres.vacuum_analyze",
            "params": {"target": "db"},
        }
    )
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # 21:00 in Tokyo
    fire = nightly.trigger(now).get_next_fire_time(None, now)
    assert fire is not None and fire.astimezone(UTC) == datetime(2026, 11, 28, 17, 0, tzinfo=UTC)
    sessions = JobConfig.model_validate({"name": "idle", "interval": "1h30m", "action": "log"})
    assert sessions.interval == timedelta(minutes=90)
    fire = sessions.trigger(now).get_next_fire_time(None, now)
    assert fire == now + timedelta(minutes=90)
    assert sessions.describe() == "job 'idle' (every 1h30m): log"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"cron": "0 2 * *"}, "cron '0 2 \\* \\*' must have 5 fields"),
        ({"cron": "61 2 * * *"}, "invalid cron '61 2 \\* \\* \\*': .*higher than the maximum"),
        ({"cron": "0 2 * * *", "interval": "1h"}, "set exactly one of cron, interval"),
        ({}, "set exactly one of cron, interval"),
        ({"interval": "500ms"}, "interval 500ms is shorter than 1s"),
        ({"interval": "5 minutes"}, "not a valid duration '5 minutes'"),
        ({"interval": "5m", "timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"interval": "5m", "every": "5m"}, "every\n  Extra inputs are not permitted"),
        ({"interval": "5m", "name": "Nightly Vacuum"}, "name\n  String should match pattern"),
    ],
)
def test_invalid_jobs_say_why(raw: dict[str, object], message: str) -> None:
    job = {"name": "j", "action": "log", **raw}
    with pytest.raises(ValidationError, match=message):
        JobConfig.model_validate(job)


def test_check_jobs_against_the_registry(actions: registry.Registry) -> None:
    jobs = [
        JobConfig(
            name="a",
            interval=timedelta(minutes=5),
            action="postgres.vacuum_analyze",
            params={"target": "db", "table": ["x"]},
        ),
        JobConfig(name="b", interval=timedelta(minutes=5), action="postgres.vacum_analyze"),
        JobConfig(
            name="a",
            cron="0 3 * * *",
            action="postgres.terminate_idle_in_transaction",
            params={"target": "db", "databases": ["app"], "older_than": "ten"},
        ),
        JobConfig(name="ok", cron="0 3 * * *", action="log", params={"message": "hi"}),
    ]
    problems = check_jobs(jobs, actions)
    assert problems[0] == ((0, "params", "table"), "unknown key")
    assert problems[1][0] == (1, "action")
    assert problems[1][1].startswith("unknown action 'postgres.vacum_analyze' (known: log, ")
    assert problems[2] == ((2, "name"), "duplicate job name 'a'")
    assert problems[3][0] == (2, "params", "older_than")
    assert "not a valid duration 'ten'" in problems[3][1]
    assert len(problems) == 4
    with pytest.raises(ConfigError) as info:
        ensure_valid(jobs, actions)
    assert str(info.value).splitlines()[0] == "jobs[0].params.table: unknown key"
    ensure_valid(jobs[3:], actions)


def test_interval_and_timeout_read_the_one_grammar() -> None:
    """A Go form (``1.5h``), seconds as a number and Prometheus' ``1w`` all read in a job."""
    job = JobConfig.model_validate(
        {"name": "j", "interval": "1.5h", "timeout": 90, "action": "log"}
    )
    assert (job.interval, job.timeout) == (timedelta(minutes=90), timedelta(seconds=90))
    weekly = JobConfig.model_validate({"name": "w", "interval": "1w", "action": "log"})
    assert weekly.describe() == "job 'w' (every 1w): log"


def test_a_job_names_only_configured_targets_and_notifiers() -> None:
    """A misspelt PostgreSQL target or notifier is a start-up error, not a 2 a.m. failure."""
    actions = default_registry()
    jobs = [
        JobConfig(
            name="vacuum",
            cron="0 2 * * *",
            action="postgres.vacuum_analyze",
            params={"target": "conea-prodution"},
        ),
        JobConfig(
            name="tell",
            interval=timedelta(hours=1),
            action="notify",
            params={"notifier": "ops", "message": "weekly"},
        ),
        JobConfig(name="fine", cron="0 3 * * *", action="log", params={"message": "hi"}),
    ]
    defined = {"postgres_targets": ["conea-production"], "notifiers": ["oncall"]}
    with pytest.raises(ConfigError) as info:
        ensure_valid(jobs, actions, defined=defined)
    assert str(info.value).splitlines() == [
        "jobs[0].params.target: unknown postgres target 'conea-prodution' "
        "(known: conea-production); they are defined under postgres_targets",
        "jobs[1].params.notifier: unknown notifier 'ops' (known: oncall); "
        "they are defined under notifiers",
    ]
    fixed = [
        jobs[0].model_copy(update={"params": {"target": "conea-production"}}),
        jobs[1].model_copy(update={"params": {"notifier": "oncall", "message": "weekly"}}),
    ]
    ensure_valid(fixed, actions, defined=defined)
    assert check_jobs(jobs, actions) == []  # names unknown here: not checked
