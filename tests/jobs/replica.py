"""One "service replica" for the leader-election test, run as a separate process.

``python -m tests.jobs.replica HOST PORT DBNAME USER`` (password in PGPASSWORD) schedules
the nightly VACUUM ANALYZE job with a PostgreSQL leader lock, then obeys stdin:
``tick <iso time>`` runs the jobs due then and prints a JSON line; ``exit`` stops.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime

from monitor import targets
from monitor.actions import postgres as pg_actions
from monitor.actions import registry
from monitor.jobs import JobConfig, JobRunner, JobScheduler, PostgresLeader

START = datetime(2026, 11, 28, 1, 0, tzinfo=UTC)


def say(**data: object) -> None:
    print(json.dumps(data), flush=True)


async def main(host: str, port: str, dbname: str, user: str) -> None:
    target = targets.PostgresTarget(
        host=host, port=int(port), dbname=dbname, user=user, password_env="PGPASSWORD"
    )
    reg = registry.Registry()
    pg_actions.register(reg)
    job = JobConfig(
        name="nightly-vacuum",
        cron="0 2 * * *",
        action="postgres.vacuum_analyze",
        params={"target": "db", "tables": ["public.replica_runs"]},
    )
    election = PostgresLeader(target, name="conea-monitor-test/jobs")
    runner = JobRunner(
        reg, registry.Services(postgres={"db": target}), election=election, clock=lambda: START
    )
    scheduler = JobScheduler([job], runner)
    say(ready=True, leader=await election.is_leader())
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line.startswith("tick "):
            runs = await scheduler.tick(datetime.fromisoformat(line.split(" ", 1)[1]))
            say(ran=[(run.job, run.outcome) for run in runs])
        else:
            break
    await scheduler.shutdown()
    say(stopped=True)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
