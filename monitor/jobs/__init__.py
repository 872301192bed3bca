"""Scheduled maintenance jobs: config, leader election, runner and scheduler."""

from __future__ import annotations

from monitor.jobs.config import JobConfig, check_jobs, ensure_valid
from monitor.jobs.leader import AlwaysLeader, Leader, PostgresLeader, conninfo_from_url
from monitor.jobs.runner import JobRun, JobRunner
from monitor.jobs.scheduler import JobScheduler

__all__ = [
    "AlwaysLeader",
    "JobConfig",
    "JobRun",
    "JobRunner",
    "JobScheduler",
    "Leader",
    "PostgresLeader",
    "check_jobs",
    "conninfo_from_url",
    "ensure_valid",
]
