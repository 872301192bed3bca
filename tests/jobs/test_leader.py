"""Leader election on one real PostgreSQL: a job runs on one replica only."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import IO, Any

import psycopg
import pytest

from monitor import targets
from monitor.jobs import PostgresLeader, conninfo_from_url
from tests.jobs.conftest import vacuum_count
from tests.support import services

pytestmark = pytest.mark.integration
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


async def test_one_leader_at_a_time_and_failover(
    postgres: services.Postgres, jobs_target: targets.PostgresTarget
) -> None:
    first = PostgresLeader(jobs_target, name="test/failover")
    second = PostgresLeader(postgres.dsn("conea_jobs"), name="test/failover")
    other_job_set = PostgresLeader(jobs_target, name="test/another-lock")
    try:
        assert await first.is_leader()
        assert not await second.is_leader()
        assert await first.is_leader()  # still leading: the lock is held, not re-taken
        assert await other_job_set.is_leader()  # another lock name is independent
        # The leader's connection dies (a failover, a network cut): the server drops
        # its lock, the follower takes over, and the old leader knows it lost.
        with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l "
                "WHERE l.locktype = 'advisory' AND l.granted "
                "AND l.classid::bigint = (%(key)s::bigint >> 32) & 4294967295 "
                "AND l.objid::bigint = %(key)s::bigint & 4294967295",
                {"key": first.key},
            )
        assert await eventually(second.is_leader)  # once the server has ended that session
        assert not await first.is_leader()
        await second.close()  # a clean shutdown hands over at once
        assert await first.is_leader()
    finally:
        for election in (first, second, other_job_set):
            await election.close()


def test_conninfo_from_a_store_url() -> None:
    assert (
        conninfo_from_url("postgresql+psycopg://u:p@db:5432/conea")
        == "postgresql://u:p@db:5432/conea"
    )
    with pytest.raises(ValueError, match="not a PostgreSQL URL"):
        conninfo_from_url("sqlite:///data/x.db")


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


class Replica:
    """A separate Python process running the scheduler (tests/jobs/replica.py)."""

    def __init__(self, postgres: services.Postgres, database: str) -> None:
        env = {**os.environ, "PGPASSWORD": postgres.password, "PYTHONPATH": ROOT}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.jobs.replica",
                postgres.host,
                str(postgres.port),
                database,
                postgres.user,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
            text=True,
        )

    @property
    def _stdin(self) -> IO[str]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, f"replica exited with {self.proc.wait(10)}"
        data: dict[str, Any] = json.loads(line)
        return data

    def send(self, command: str) -> None:
        self._stdin.write(command + "\n")
        self._stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.send("exit")
            self.proc.wait(20)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
def replicas(postgres: services.Postgres, jobs_db: str) -> Iterator[list[Replica]]:
    started = [Replica(postgres, jobs_db), Replica(postgres, jobs_db)]
    try:
        yield started
    finally:
        for replica in started:
            replica.stop()


def test_two_service_processes_run_the_job_once(
    postgres: services.Postgres, jobs_db: str, replicas: list[Replica]
) -> None:
    before = vacuum_count(postgres, jobs_db, "replica_runs")
    hello = [replica.read() for replica in replicas]
    assert sorted(h["leader"] for h in hello) == [False, True]
    leader, follower = replicas if hello[0]["leader"] else replicas[::-1]

    for replica in replicas:  # both reach 02:00 at the same time
        replica.send("tick 2026-11-28T02:00:00+00:00")
    assert leader.read() == {"ran": [["nightly-vacuum", "succeeded"]]}
    assert follower.read() == {"ran": []}
    assert vacuum_count(postgres, jobs_db, "replica_runs") == before + 1

    leader.stop()  # the leader goes away; the next night the other replica runs it
    assert leader.proc.returncode == 0
    follower.send("tick 2026-11-29T02:00:00+00:00")
    assert follower.read() == {"ran": [["nightly-vacuum", "succeeded"]]}
    assert vacuum_count(postgres, jobs_db, "replica_runs") == before + 2
