"""prometheus.query against a real Prometheus and postgres.activity against a real
PostgreSQL: the evidence each returns, its caps, and its redaction."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import psycopg
import pytest

from monitor import errors, targets
from monitor.actions import registry
from monitor.actions.diagnose import common
from monitor.actions.diagnose import postgres as pg_diagnose
from monitor.actions.diagnose import prometheus as prom_diagnose
from monitor.engine import verifier
from tests.support import services

pytestmark = pytest.mark.integration


async def gather(action: type[registry.Action[Any]], ctx: registry.ActionContext, **params: Any):
    diagnostic = action()
    parsed = action.Params.model_validate(params)
    return await diagnostic.apply(parsed, ctx, await diagnostic.plan(parsed, ctx))


@pytest.fixture(scope="module")
def prometheus() -> Iterator[services.Prometheus]:
    with services.prometheus_server("global: {scrape_interval: 1m}\n") as prom:
        yield prom


@pytest.fixture
def prom_ctx(prometheus: services.Prometheus) -> Iterator[registry.ActionContext]:
    v = verifier.Verifier(prometheus.url, timeout=5)
    yield registry.ActionContext(
        alert=None, target={}, services=registry.Services(prometheus=v), now=lambda: NOW
    )
    v.close()


NOW = datetime.now(UTC).replace(microsecond=0)
# Three "pods" and their CPU, as a top-pods-by-CPU query would return them.
PODS = " or ".join(
    f'label_replace(vector({cpu}), "pod", "conea-api-{name}", "", "")'
    for name, cpu in (("a", 0.25), ("b", 1.5), ("c", 0.75))
)


async def test_an_instant_query_is_a_table_highest_first_within_its_limit(
    prom_ctx: registry.ActionContext,
) -> None:
    out = await gather(prom_diagnose.Query, prom_ctx, promql=PODS, limit=2)
    assert out.details["result"] == {
        "kind": "table",
        "columns": ["pod", "value"],
        "rows": [["conea-api-b", 1.5], ["conea-api-c", 0.75]],
    }
    assert out.details["truncated"] is True
    assert out.summary == '3 series, highest {pod="conea-api-b"} = 1.5'
    scalar = await gather(prom_diagnose.Query, prom_ctx, promql="scalar(vector(42))")
    assert scalar.details["result"]["rows"] == [["42"]]


async def test_a_range_query_is_a_series(prom_ctx: registry.ActionContext) -> None:
    out = await gather(prom_diagnose.Query, prom_ctx, promql="vector(3)", range="10m", step="1m")
    result = out.details["result"]
    assert result["kind"] == "series" and result["metric"] == "vector(3)"
    assert [p[1] for p in result["points"]] == [3.0] * 11
    assert result["points"][-1][0] == NOW.timestamp()
    assert out.summary == "vector(3): 11 points, last 3 (min 3, max 3)"


async def test_a_rejected_query_fails_naming_it(prom_ctx: registry.ActionContext) -> None:
    with pytest.raises(errors.PermanentActionError, match=r"query 'sum\(' failed"):
        await gather(prom_diagnose.Query, prom_ctx, promql="sum(")


def test_a_range_query_is_bounded() -> None:
    with pytest.raises(ValueError, match="range/step would be 1440 points; at most 1000"):
        prom_diagnose.QueryParams.model_validate({"promql": "up", "range": "1d", "step": "1m"})
    with pytest.raises(ValueError, match="at most 1d"):
        prom_diagnose.QueryParams.model_validate({"promql": "up", "range": "2d", "step": "1h"})


@pytest.fixture
async def lock_wait(postgres: services.Postgres, actions_db: str) -> AsyncIterator[int]:
    """A session waiting on a row lock another holds; yields the waiting backend's pid."""
    holder = await psycopg.AsyncConnection.connect(postgres.dsn(actions_db))
    waiter = await psycopg.AsyncConnection.connect(postgres.dsn(actions_db), autocommit=True)
    await holder.execute("CREATE TABLE IF NOT EXISTS diag_lock (id int PRIMARY KEY, v text)")
    await holder.execute("INSERT INTO diag_lock VALUES (1, 'x') ON CONFLICT DO NOTHING")
    await holder.commit()
    await holder.execute("UPDATE diag_lock SET v = 'held' WHERE id = 1")
    blocked = asyncio.create_task(
        waiter.execute(
            "UPDATE diag_lock SET v = 'card 4111-1111-1111-1111 for alice' WHERE id = 1 "
            "AND 42 = 42 /* " + "x" * 300 + " */"
        )
    )
    pid = waiter.info.backend_pid
    deadline = time.monotonic() + 20
    async with await psycopg.AsyncConnection.connect(postgres.dsn(), autocommit=True) as probe:
        while True:  # the lock wait shows in pg_stat_activity once the UPDATE blocks
            row = await (
                await probe.execute(
                    "SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)
                )
            ).fetchone()
            if row is not None and row[0] == "Lock":
                break
            assert time.monotonic() < deadline, "the second UPDATE never waited"
            await asyncio.sleep(0.05)
    yield pid
    await holder.rollback()
    await blocked
    await holder.close()
    await waiter.close()


async def test_activity_counts_connections_and_shows_the_lock_wait_redacted(
    pg_ctx: registry.ActionContext, lock_wait: int
) -> None:
    out = await gather(pg_diagnose.Activity, pg_ctx, target="db")
    result = out.details["result"]
    assert result["columns"] == pg_diagnose.Activity.COLUMNS
    [row] = [r for r in result["rows"] if r[0] == lock_wait]
    assert row[2:5] == ["active", "Lock", "transactionid"]
    assert row[5].startswith("UPDATE diag_lock SET v = ? WHERE id = ? AND ? = ? /* xxx")
    assert len(row[5]) == 200 and row[5].endswith(common.CUT)
    assert out.details["truncated"] is True
    assert "4111" not in str(result) and "alice" not in str(result)
    assert "1 waiting on locks" in out.summary and " active" in out.summary

    kept = await gather(pg_diagnose.Activity, pg_ctx, target="db", redact=False, query_length=80)
    [row] = [r for r in kept.details["result"]["rows"] if r[0] == lock_wait]
    assert row[5] == (
        "UPDATE diag_lock SET v = 'card 4111-1111-1111-1111 for alice' WHERE id = 1 AND …"
    )


def test_literals_are_replaced_in_query_text() -> None:
    assert (
        pg_diagnose.redact_query(
            "SELECT * FROM users WHERE email = 'a@b.c' AND id IN (1, 2.5, -3e2) AND t1.c = $$x$$"
        )
        == "SELECT * FROM users WHERE email = ? AND id IN (?, ?, ?) AND t1.c = ?"
    )


class Looked(pg_diagnose.Activity):
    """postgres.activity with a resolver of the test's: one name, the test server's."""

    names: ClassVar[dict[str, list[str]]] = {}

    def lookup(self, host: str, port: int) -> list[str]:
        if host not in self.names:
            raise OSError("no such name")
        return self.names[host]


async def test_activity_connects_to_the_address_its_lookup_gave(
    postgres: services.Postgres, pg_target: targets.PostgresTarget, actions_db: str
) -> None:
    Looked.names = {"db.conea.test": [postgres.host]}
    named = pg_target.model_copy(update={"host": "db.conea.test"})  # resolves nowhere else
    ctx = registry.ActionContext(
        alert=None, target={}, services=registry.Services(postgres={"db": named})
    )
    out = await gather(Looked, ctx, target="db")
    assert out.summary.endswith("none waiting on locks")
    unknown = pg_target.model_copy(update={"host": "nowhere.conea.test"})
    ctx.services.postgres = {"db": unknown}
    with pytest.raises(errors.TemporaryActionError) as raised:
        await gather(Looked, ctx, target="db")
    assert str(raised.value) == (
        f"postgres target 'db' ({postgres.user}@nowhere.conea.test:{postgres.port}/"
        f"{actions_db}): cannot connect: failed to resolve host 'nowhere.conea.test': "
        "no such name"
    )
