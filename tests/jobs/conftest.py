"""Fixtures of the job tests: a database with a table to vacuum, a target, a registry."""

from __future__ import annotations

import psycopg
import pytest

from monitor import targets
from monitor.actions import builtin, registry
from monitor.actions import postgres as pg_actions
from tests.support import services


@pytest.fixture(scope="session")
def jobs_db(postgres: services.Postgres) -> str:
    name = postgres.create_database("conea_jobs")
    with psycopg.connect(postgres.dsn(name), autocommit=True) as conn:
        for table in ("replica_runs", "nightly"):
            conn.execute(f"CREATE TABLE {table} (id int) WITH (autovacuum_enabled = off)")
            conn.execute(f"INSERT INTO {table} SELECT generate_series(1, 100)")
    return name


@pytest.fixture
def jobs_target(
    postgres: services.Postgres, jobs_db: str, monkeypatch: pytest.MonkeyPatch
) -> targets.PostgresTarget:
    monkeypatch.setenv("PGPASSWORD", postgres.password)
    return targets.PostgresTarget(
        host=postgres.host,
        port=postgres.port,
        dbname=jobs_db,
        user=postgres.user,
        password_env="PGPASSWORD",
    )


@pytest.fixture
def actions() -> registry.Registry:
    reg = registry.Registry()
    builtin.register(reg)
    pg_actions.register(reg)
    return reg


def vacuum_count(postgres: services.Postgres, database: str, table: str) -> int:
    with psycopg.connect(postgres.dsn(database)) as conn:
        row = conn.execute(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s", (table,)
        ).fetchone()
    assert row is not None
    return int(row[0])
