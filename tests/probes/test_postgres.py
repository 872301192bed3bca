"""The postgres prober against a real PostgreSQL (the session ``postgres`` fixture)."""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Iterator

import psycopg
import pytest

from tests.probes import servers
from tests.support import services

pytestmark = pytest.mark.integration

PASSWORD_ENV = "CONEA_TEST_PROBE_PG_PASSWORD"
WRONG_ENV = "CONEA_TEST_PROBE_PG_WRONG"
WRONG = "not-the-password-9f3a"


@pytest.fixture(scope="module")
def pg_service(
    postgres: services.Postgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[servers.Service]:
    secret = tmp_path_factory.mktemp("secret") / "pg-password"
    secret.write_text(postgres.password + "\n")
    config = f"""
allow: {{cidrs: [127.0.0.0/8]}}
modules:
  postgres:
    prober: postgres
    timeout: 5s
    postgres: {{user: {postgres.user}, password_env: {PASSWORD_ENV}}}
  postgres_file:
    prober: postgres
    postgres: {{user: {postgres.user}, password_file: "{secret}"}}
  postgres_wrong:
    prober: postgres
    postgres: {{user: {postgres.user}, password_env: {WRONG_ENV}}}
  postgres_unset:
    prober: postgres
    postgres: {{user: {postgres.user}, password_env: CONEA_TEST_PROBE_PG_UNSET}}
  postgres_missing_file:
    prober: postgres
    postgres: {{user: {postgres.user}, password_file: "{secret}.missing"}}
"""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(PASSWORD_ENV, postgres.password)
        mp.setenv(WRONG_ENV, WRONG)
        mp.delenv("CONEA_TEST_PROBE_PG_UNSET", raising=False)
        with servers.service(config) as running:
            yield running


def target(pg: services.Postgres) -> str:
    return f"{pg.host}:{pg.port}"


def test_up_with_connections_settings_and_sizes(
    pg_service: servers.Service, postgres: services.Postgres
) -> None:
    result = pg_service.probe("postgres", target(postgres))
    assert result.success
    assert result.value("pg_up") == 1
    assert result.value("pg_settings_max_connections") == 200
    # the probe's own session is active in the postgres database
    assert result.value("pg_stat_activity_count", datname="postgres", state="active") >= 1
    assert result.value("pg_database_size_bytes", datname="postgres") > 1_000_000
    assert result.value("pg_stat_database_xact_commit", datname="postgres") > 0
    assert result.value("pg_locks_count", datname="postgres", mode="accesssharelock") >= 1
    assert result.value("pg_replication_is_replica") == 0
    assert result.value("pg_replication_lag_seconds") == 0


def test_session_idle_in_transaction_is_seen(
    pg_service: servers.Service, postgres: services.Postgres
) -> None:
    database = postgres.create_database("probe_idle")
    labels = {"datname": database, "state": "idle in transaction"}
    before = pg_service.probe("postgres", target(postgres))
    assert before.value("pg_stat_activity_count", **labels) == 0
    with psycopg.connect(postgres.dsn(database)) as held:
        held.execute("SELECT 1")  # opens a transaction and leaves it idle
        time.sleep(1.2)
        during = pg_service.probe("postgres", target(postgres))
        assert during.value("pg_stat_activity_count", **labels) == 1
        assert during.value("pg_stat_activity_max_tx_duration", **labels) >= 1.0
        held.rollback()


def test_session_waiting_on_a_lock_is_seen(
    pg_service: servers.Service, postgres: services.Postgres
) -> None:
    database = postgres.create_database("probe_locks")
    with psycopg.connect(postgres.dsn(database), autocommit=True) as setup:
        setup.execute("CREATE TABLE t (id int)")
    with (
        psycopg.connect(postgres.dsn(database)) as holder,
        psycopg.connect(postgres.dsn(database), autocommit=True) as waiter,
    ):
        holder.execute("LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
        waiter.execute("SET statement_timeout = '4s'")
        waiter.pgconn.send_query(b"SELECT * FROM t")  # blocks on the lock, asynchronously
        services.wait_for(
            lambda: (
                pg_service.probe("postgres", target(postgres)).value(
                    "pg_stat_activity_waiting_on_lock_count", datname=database
                )
                == 1
            ),
            5,
            "a lock waiter in the probe",
        )
        held = pg_service.probe("postgres", target(postgres))
        assert held.value("pg_locks_count", datname=database, mode="accessexclusivelock") == 1
        holder.rollback()  # the waiter gets its lock and finishes
        while waiter.pgconn.get_result() is not None:
            pass


def test_password_file(pg_service: servers.Service, postgres: services.Postgres) -> None:
    assert pg_service.probe("postgres_file", target(postgres)).success


def test_failure_names_the_reason_but_never_the_password(
    pg_service: servers.Service, postgres: services.Postgres
) -> None:
    # The test cluster trusts local connections, so a wrong password would still get in;
    # a missing database fails the same code path after the password has been sent.
    response = pg_service.get(
        "postgres_wrong", f"postgresql://{target(postgres)}/no_such_db", debug="true"
    )
    assert response.status_code == 200
    assert "pg_up 0.0" in response.text and "probe_success 0.0" in response.text
    assert 'database "no_such_db" does not exist' in response.text
    assert WRONG not in response.text
    assert WRONG_ENV in response.text  # the module config names the variable, not the value
    ok = pg_service.get("postgres", target(postgres), debug="true")
    assert "probe_success 1.0" in ok.text
    assert postgres.password not in ok.text


def test_unset_password_variable_connects_without_a_password(
    pg_service: servers.Service, postgres: services.Postgres
) -> None:
    # The test cluster needs no password (trust): an unset variable is no password, and
    # the trace says so.
    response = pg_service.get("postgres_unset", target(postgres), debug="true")
    assert (
        "environment variable 'CONEA_TEST_PROBE_PG_UNSET' is not set: connecting without a "
        "password" in response.text
    )
    assert "pg_up 1.0" in response.text and "probe_success 1.0" in response.text


def test_failure_is_logged_at_info_without_debug(
    pg_service: servers.Service, postgres: services.Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.probes.postgres")
    result = pg_service.probe("postgres_unset", f"postgresql://{target(postgres)}/no_such_db")
    assert not result.success
    [record] = [r for r in caplog.records if r.name == "monitor.probes.postgres"]
    assert record.levelno == logging.INFO
    message = record.getMessage()
    assert message.startswith(f"probe failed: module postgres_unset, target {target(postgres)}: ")
    assert 'database "no_such_db" does not exist' in message
    assert "'CONEA_TEST_PROBE_PG_UNSET' is not set: connecting without a password" in message


def test_unreadable_password_file_is_named(
    pg_service: servers.Service, postgres: services.Postgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="monitor.probes.postgres")
    result = pg_service.probe("postgres_missing_file", target(postgres))
    assert not result.success and result.value("pg_up") == 0
    assert "cannot read password file" in caplog.text and "No such file" in caplog.text


def test_nothing_listening_is_down(pg_service: servers.Service) -> None:
    result = pg_service.probe("postgres", f"127.0.0.1:{services.free_port()}")
    assert not result.success
    assert result.value("pg_up") == 0


def test_database_from_url_target(
    pg_service: servers.Service, postgres: services.Postgres, tmp_path: pathlib.Path
) -> None:
    database = postgres.create_database("probe_url")
    result = pg_service.probe("postgres", f"postgresql://{target(postgres)}/{database}")
    assert result.success
    assert result.value("pg_stat_activity_count", datname=database, state="active") == 1


def test_silent_server_is_down_at_the_deadline(
    pg_service: servers.Service, targets: servers.Targets
) -> None:
    result = pg_service.probe("postgres", f"127.0.0.1:{targets.silent_port}", timeout=1.5)
    assert not result.success
    assert result.value("pg_up") == 0
    assert 0.95 <= result.value("probe_duration_seconds") < 1.4
