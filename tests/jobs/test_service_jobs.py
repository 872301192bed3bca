"""A scheduled job configured in the service's settings runs and lands in the audit trail."""

from __future__ import annotations

from pathlib import Path

import psycopg

from tests.engine.conftest import wait_for
from tests.support import service as svc
from tests.support.services import Postgres


def test_configured_vacuum_job_runs_and_is_audited(tmp_path: Path, postgres: Postgres) -> None:
    database = postgres.create_database("conea_jobs_service")
    with psycopg.connect(postgres.dsn(database), autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id int)")
    password = tmp_path / "pg-password"
    password.write_text(postgres.password)
    config = svc.write_config(
        tmp_path,
        postgres_targets={
            "conea-db": {
                "host": postgres.host,
                "port": postgres.port,
                "dbname": database,
                "user": postgres.user,
                "password_file": str(password),
                "sslmode": "disable",
            }
        },
        jobs=[
            {
                "name": "vacuum-orders",
                "interval": "1s",
                "action": "postgres.vacuum_analyze",
                "params": {"target": "conea-db", "tables": ["orders"]},
            }
        ],
        automation={"dry_run": False},
    )
    with svc.running(config) as service:
        records = wait_for(
            lambda: [
                a
                for a in service.get("/api/v1/audit", params={"kind": "job"}).json()["items"]
                if a["outcome"] == "succeeded"
            ],
            20,
            "a job run in the audit trail",
        )
        assert records[0]["message"].startswith("job 'vacuum-orders': ")
        assert records[0]["details"]["duration_seconds"] >= 0
        metrics = service.get("/metrics").text
        assert 'conea_monitor_job_last_success{name="vacuum-orders"} 1.0' in metrics
    with psycopg.connect(postgres.dsn(database)) as conn:
        row = conn.execute(
            "SELECT vacuum_count, analyze_count FROM pg_stat_user_tables WHERE relname = 'orders'"
        ).fetchone()
    assert row is not None and row[0] >= 1 and row[1] >= 1
