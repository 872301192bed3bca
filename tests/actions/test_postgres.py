"""The postgres.* actions against a real PostgreSQL with real sessions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
import pytest
from psycopg import errors as pg_errors

from monitor import durations, targets
from monitor.actions import postgres as pg_actions
from monitor.actions import registry
from monitor.errors import PermanentActionError, TemporaryActionError
from tests.actions.conftest import APP_ROLE, PROTECTED_ROLE, ROLE_PASSWORD
from tests.support import services

pytestmark = pytest.mark.integration

Opener = Callable[..., Any]


@pytest.fixture
async def open_session(postgres: services.Postgres, actions_db: str) -> AsyncIterator[Opener]:
    """Opens connections as a role and application; closes them all at the end."""
    opened: list[psycopg.AsyncConnection[Any]] = []

    async def opener(
        role: str, application: str, database: str = actions_db
    ) -> psycopg.AsyncConnection[Any]:
        superuser = role == postgres.user
        conn = await psycopg.AsyncConnection.connect(
            postgres.dsn(
                database, user=role, password=postgres.password if superuser else ROLE_PASSWORD
            ),
            application_name=application,
        )
        opened.append(conn)
        return conn

    yield opener
    for conn in opened:
        await conn.close()


async def idle_in_transaction(conn: psycopg.AsyncConnection[Any]) -> int:
    """Start a transaction and leave it open; returns the backend pid."""
    await conn.execute("SELECT 1")
    return conn.info.backend_pid


async def state_of(postgres: services.Postgres, pid: int) -> str | None:
    async with await psycopg.AsyncConnection.connect(postgres.dsn(), autocommit=True) as conn:
        cursor = await conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", (pid,))
        row = await cursor.fetchone()
        return None if row is None else row[0]


async def still_works(conn: psycopg.AsyncConnection[Any]) -> bool:
    cursor = await conn.execute("SELECT 41 + 1")
    row = await cursor.fetchone()
    await conn.commit()
    return row is not None and row[0] == 42


async def test_terminate_idle_in_transaction_ends_only_old_unprotected_sessions(
    postgres: services.Postgres, pg_ctx: registry.ActionContext, open_session: Opener
) -> None:
    old = await open_session(APP_ROLE, "conea-api")
    protected = await open_session(PROTECTED_ROLE, "nightly-batch")
    superuser = await open_session(postgres.user, "psql")
    own = await open_session(APP_ROLE, "conea-monitor")  # the service's application_name
    elsewhere = await open_session(APP_ROLE, "conea-api", database="postgres")
    pids = {
        name: await idle_in_transaction(conn)
        for name, conn in [
            ("old", old),
            ("protected", protected),
            ("superuser", superuser),
            ("own", own),
            ("elsewhere", elsewhere),
        ]
    }
    await asyncio.sleep(2.5)
    young = await open_session(APP_ROLE, "conea-api")
    pids["young"] = await idle_in_transaction(young)

    action = pg_actions.TerminateIdleInTransaction()
    params = pg_actions.SessionParams.model_validate(
        {
            "target": "db",
            "databases": ["conea_actions"],
            "older_than": "2s",
            "exclude_users": ["conea_batch_.*"],
        }
    )
    plan = await action.plan(params, pg_ctx)
    assert [s["pid"] for s in plan.details["sessions"]] == [pids["old"]]
    planned = plan.details["sessions"][0]
    assert planned["user"] == APP_ROLE and planned["application"] == "conea-api"
    assert planned["database"] == "conea_actions" and planned["age_seconds"] >= 2
    assert "terminate 1 sessions idle in transaction older than 2s" in plan.summary
    assert await state_of(postgres, pids["old"]) == "idle in transaction"  # plan changed nothing

    outcome = await action.apply(params, pg_ctx, plan)
    assert [s["pid"] for s in outcome.details["terminated"]] == [pids["old"]]
    assert outcome.changes[0].after == "terminated"
    with pytest.raises(psycopg.OperationalError):
        await old.execute("SELECT 1")
    for name in ("protected", "superuser", "own", "elsewhere", "young"):
        conn = {
            "protected": protected,
            "superuser": superuser,
            "own": own,
            "elsewhere": elsewhere,
            "young": young,
        }[name]
        assert await still_works(conn), name


async def test_terminate_respects_max_sessions_oldest_first(
    pg_ctx: registry.ActionContext, open_session: Opener
) -> None:
    conns = []
    for _ in range(3):
        conn = await open_session(APP_ROLE, "worker")
        await idle_in_transaction(conn)
        conns.append(conn)
        await asyncio.sleep(0.3)
    await asyncio.sleep(1.2)
    action = pg_actions.TerminateIdleInTransaction()
    params = pg_actions.SessionParams(
        target="db",
        databases=["conea_actions"],
        older_than=durations.parse("1s"),
        max_sessions=2,
        include_applications=["work.*"],
    )
    plan = await action.plan(params, pg_ctx)
    assert plan.details["left_over_max_sessions"] == 1
    assert "1 more left: max_sessions=2" in plan.summary
    outcome = await action.apply(params, pg_ctx, plan)
    ended = [s["pid"] for s in outcome.details["terminated"]]
    assert ended == [conns[0].info.backend_pid, conns[1].info.backend_pid]
    assert await still_works(conns[2])


async def test_terminate_skips_a_session_that_committed_after_the_plan(
    pg_ctx: registry.ActionContext, open_session: Opener
) -> None:
    conn = await open_session(APP_ROLE, "conea-api")
    await idle_in_transaction(conn)
    await asyncio.sleep(1.2)
    action = pg_actions.TerminateIdleInTransaction()
    params = pg_actions.SessionParams.model_validate(
        {"target": "db", "databases": ["conea_actions"], "older_than": "1s"}
    )
    plan = await action.plan(params, pg_ctx)
    assert len(plan.details["sessions"]) == 1
    await conn.commit()  # the application finished its transaction meanwhile
    outcome = await action.apply(params, pg_ctx, plan)
    assert outcome.details["terminated"] == []
    assert await still_works(conn)


async def test_cancel_long_queries_with_include_and_exclude_patterns(
    postgres: services.Postgres, pg_ctx: registry.ActionContext, open_session: Opener
) -> None:
    report = await open_session(APP_ROLE, "report-builder")
    batch = await open_session(APP_ROLE, "batch-export")
    other_user = await open_session(PROTECTED_ROLE, "report-builder")
    for conn in (report, batch, other_user):
        await conn.set_autocommit(True)
    tasks = {
        name: asyncio.create_task(conn.execute("SELECT pg_sleep(30)"))
        for name, conn in [("report", report), ("batch", batch), ("other", other_user)]
    }
    try:
        await asyncio.sleep(1.5)
        action = pg_actions.CancelLongQueries()
        params = pg_actions.SessionParams.model_validate(
            {
                "target": "db",
                "databases": ["conea_actions"],
                "older_than": "1s",
                "include_users": [APP_ROLE],
                "exclude_applications": ["batch-.*"],
            }
        )
        plan = await action.plan(params, pg_ctx)
        assert [s["pid"] for s in plan.details["sessions"]] == [report.info.backend_pid]
        outcome = await action.apply(params, pg_ctx, plan)
        assert [s["pid"] for s in outcome.details["cancelled"]] == [report.info.backend_pid]
        with pytest.raises(pg_errors.QueryCanceled):
            await asyncio.wait_for(tasks["report"], 10)
        assert await still_works(report)  # cancelled the query, not the session
        assert not tasks["batch"].done() and not tasks["other"].done()
        assert await state_of(postgres, batch.info.backend_pid) == "active"
    finally:
        for conn in (batch, other_user):
            await conn.cancel_safe()
        for task in tasks.values():
            with contextlib.suppress(pg_errors.QueryCanceled):
                await task


async def test_vacuum_analyze_tables_outside_a_transaction(
    postgres: services.Postgres, pg_ctx: registry.ActionContext
) -> None:
    async with await psycopg.AsyncConnection.connect(
        postgres.dsn("conea_actions"), autocommit=True
    ) as conn:
        await conn.execute("DROP TABLE IF EXISTS events")
        await conn.execute("CREATE TABLE events (id int) WITH (autovacuum_enabled = off)")
        await conn.execute("INSERT INTO events SELECT generate_series(1, 2000)")
        await conn.execute("DELETE FROM events WHERE id % 2 = 0")
    action = pg_actions.VacuumAnalyze()
    params = pg_actions.VacuumParams(target="db", tables=["public.events"])
    plan = await action.plan(params, pg_ctx)
    assert plan.summary == "VACUUM (ANALYZE) public.events in conea_actions on 'db'"
    assert [t["table"] for t in plan.details["tables"]] == ["public.events"]
    assert plan.details["tables"][0]["last_vacuum"] is None
    outcome = await action.apply(params, pg_ctx, plan)
    assert set(outcome.details["duration_seconds"]) == {"public.events"}
    after = outcome.details["tables"][0]
    assert after["last_vacuum"] is not None and after["last_analyze"] is not None
    assert after["dead_tuples"] == 0 and after["live_tuples"] == 1000


async def test_vacuum_analyze_finds_a_table_as_postgresql_finds_an_unquoted_name(
    postgres: services.Postgres, pg_ctx: registry.ActionContext
) -> None:
    async with await psycopg.AsyncConnection.connect(
        postgres.dsn("conea_actions"), autocommit=True
    ) as conn:
        await conn.execute("DROP TABLE IF EXISTS orders")
        await conn.execute("CREATE TABLE orders (id int)")
    action = pg_actions.VacuumAnalyze()
    params = pg_actions.VacuumParams(target="db", tables=["Public.Orders"])
    outcome = await action.apply(params, pg_ctx, await action.plan(params, pg_ctx))
    assert set(outcome.details["duration_seconds"]) == {"Public.Orders"}
    [stats] = outcome.details["tables"]
    assert stats["table"] == "public.orders" and stats["last_vacuum"] is not None


async def test_label_values_with_sql_quotes_stay_values(
    postgres: services.Postgres, pg_ctx: registry.ActionContext
) -> None:
    async with await psycopg.AsyncConnection.connect(
        postgres.dsn("conea_actions"), autocommit=True
    ) as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS canary (id int)")
    reg = registry.Registry()
    pg_actions.register(reg)
    hostile = "x'; DROP TABLE canary; --"
    params = reg.parse_params(
        "postgres.terminate_idle_in_transaction",
        {"target": "db", "databases": [hostile], "older_than": "1s"},
    )
    assert isinstance(params, pg_actions.SessionParams)
    plan = await pg_actions.TerminateIdleInTransaction().plan(params, pg_ctx)
    assert plan.noop and plan.summary.startswith("no sessions idle in transaction")
    with pytest.raises(ValueError, match=r"tables\n[\s\S]*invalid table name"):
        reg.parse_params("postgres.vacuum_analyze", {"target": "db", "tables": [hostile]})
    async with await psycopg.AsyncConnection.connect(
        postgres.dsn("conea_actions"), autocommit=True
    ) as conn:
        cursor = await conn.execute("SELECT to_regclass('canary') IS NOT NULL")
        assert await cursor.fetchone() == (True,)


async def test_vacuum_analyze_refuses_an_unknown_table(pg_ctx: registry.ActionContext) -> None:
    params = pg_actions.VacuumParams(target="db", tables=["no_such_table"])
    with pytest.raises(PermanentActionError, match="no table 'no_such_table'"):
        await pg_actions.VacuumAnalyze().plan(params, pg_ctx)


async def test_unknown_target_is_a_permanent_error(pg_ctx: registry.ActionContext) -> None:
    params = pg_actions.SessionParams.model_validate(
        {"target": "nope", "databases": ["x"], "older_than": "10m"}
    )
    with pytest.raises(PermanentActionError, match=r"unknown postgres target 'nope' \(known: db\)"):
        await pg_actions.TerminateIdleInTransaction().plan(params, pg_ctx)


async def test_unreachable_server_is_temporary_and_hides_the_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PG_SECRET", "s3cret-password-value")
    target = targets.PostgresTarget(
        host="127.0.0.1",
        port=services.free_port(),
        user="conea",
        password_env="PG_SECRET",
        connect_timeout=2,
    )
    ctx = registry.ActionContext(
        alert=None, target={}, services=registry.Services(postgres={"db": target})
    )
    params = pg_actions.VacuumParams(target="db")
    with pytest.raises(TemporaryActionError, match="cannot connect") as info:
        await pg_actions.VacuumAnalyze().plan(params, ctx)
    assert "s3cret-password-value" not in str(info.value)
    assert "conea@127.0.0.1" in str(info.value)


async def test_missing_password_env_names_the_variable(
    pg_target: targets.PostgresTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONEA_TEST_PG_PASSWORD")
    ctx = registry.ActionContext(
        alert=None, target={}, services=registry.Services(postgres={"db": pg_target})
    )
    with pytest.raises(
        PermanentActionError, match="environment variable 'CONEA_TEST_PG_PASSWORD' is not set"
    ):
        await pg_actions.VacuumAnalyze().plan(pg_actions.VacuumParams(target="db"), ctx)


def test_bad_params_name_the_field() -> None:
    reg = registry.Registry()
    pg_actions.register(reg)
    with pytest.raises(ValueError, match="older_than") as info:
        reg.parse_params(
            "postgres.cancel_long_queries",
            {"target": "db", "databases": ["x"], "older_than": "ten minutes"},
        )
    assert "not a valid duration 'ten minutes' (use e.g. '30s', '5m', '1h30m')" in str(info.value)
    with pytest.raises(ValueError, match="invalid regular expression"):
        reg.parse_params(
            "postgres.cancel_long_queries",
            {"target": "db", "databases": ["x"], "older_than": "1m", "exclude_users": ["("]},
        )
    with pytest.raises(ValueError, match="invalid table name"):
        reg.parse_params("postgres.vacuum_analyze", {"target": "db", "tables": ["x; DROP"]})


def test_older_than_reads_the_one_grammar() -> None:
    """``older_than`` takes what a policy's durations take: Go's ``1.5m``, Prometheus' ``1d``."""
    reg = registry.Registry()
    pg_actions.register(reg)
    olders = []
    for value in ("1.5m", 600, "1d", "1h30m"):
        params = reg.parse_params(
            "postgres.terminate_idle_in_transaction",
            {"target": "db", "databases": ["x"], "older_than": value},
        )
        assert isinstance(params, pg_actions.SessionParams)
        olders.append(params.older_than.total_seconds())
    assert olders == [90, 600, 86400, 5400]
    with pytest.raises(ValueError, match="older_than must be longer than 0s"):
        reg.parse_params(
            "postgres.terminate_idle_in_transaction",
            {"target": "db", "databases": ["x"], "older_than": "0"},
        )


@pytest.mark.timeout(30)
def test_session_patterns_run_in_linear_time() -> None:
    """A pattern from a policy (or a label templated into one) cannot backtrack: with
    Python's re, `(a+)+b` against this user name would not finish in a lifetime."""
    reg = registry.Registry()
    pg_actions.register(reg)
    params = reg.parse_params(
        "postgres.cancel_long_queries",
        {"target": "db", "databases": ["x"], "older_than": "1m", "include_users": ["(a+)+b"]},
    )
    assert isinstance(params, pg_actions.SessionParams)
    assert not params.wanted("a" * 5000, "psql")
    assert params.wanted("aaab", "psql")
    with pytest.raises(ValueError, match="invalid regular expression '\\(\\?=x\\)'"):
        reg.parse_params(
            "postgres.cancel_long_queries",
            {"target": "db", "databases": ["x"], "older_than": "1m", "include_users": ["(?=x)"]},
        )
