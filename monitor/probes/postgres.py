"""The ``postgres`` prober: connect with psycopg 3 and read the health of the server.

Names follow postgres_exporter where it has them: ``pg_up``,
``pg_settings_max_connections``, ``pg_stat_activity_count{datname,state}``,
``pg_stat_activity_max_tx_duration{datname,state}`` (the oldest open transaction per
state, so ``state="idle in transaction"`` is the oldest idle-in-transaction session),
``pg_database_size_bytes{datname}``, ``pg_locks_count{datname,mode}``,
``pg_stat_database_*{datname}`` (commits, rollbacks, blocks, tuples, deadlocks, temp
files), ``pg_replication_is_replica`` and ``pg_replication_lag_seconds``.
``pg_stat_activity_waiting_on_lock_count{datname}`` (sessions waiting on a lock) is
ours. The password comes from the module (``password_env`` or ``password_file``) and
never appears in output, the trace or the log. An unset ``password_env`` connects without
a password. Why a probe failed is logged at INFO (and traced for ``debug=true``).
"""

from __future__ import annotations

import math

import psycopg
from psycopg import conninfo

from monitor.probes import config, context

STATES = (
    "active",
    "idle",
    "idle in transaction",
    "idle in transaction (aborted)",
    "fastpath function call",
    "disabled",
)

ACTIVITY = """
SELECT d.datname, s.state, count(a.pid)::float8,
       COALESCE(max(EXTRACT(EPOCH FROM now() - a.xact_start)), 0)::float8
FROM pg_database d
CROSS JOIN unnest(%s::text[]) AS s(state)
LEFT JOIN pg_stat_activity a ON a.datname = d.datname AND a.state = s.state
WHERE NOT d.datistemplate
GROUP BY d.datname, s.state
"""
LOCK_WAITS = """
SELECT d.datname, count(a.pid)::float8
FROM pg_database d
LEFT JOIN pg_stat_activity a ON a.datname = d.datname AND a.wait_event_type = 'Lock'
WHERE NOT d.datistemplate
GROUP BY d.datname
"""
LOCK_MODES = (
    "accesssharelock",
    "rowsharelock",
    "rowexclusivelock",
    "shareupdateexclusivelock",
    "sharelock",
    "sharerowexclusivelock",
    "exclusivelock",
    "accessexclusivelock",
    "sireadlock",
)
LOCKS = """
SELECT d.datname, m.mode, count(l.locktype)::float8
FROM pg_database d
CROSS JOIN unnest(%s::text[]) AS m(mode)
LEFT JOIN pg_locks l ON l.database = d.oid AND lower(l.mode) = m.mode
WHERE NOT d.datistemplate
GROUP BY d.datname, m.mode
"""
DATABASE_COLUMNS = (
    "xact_commit",
    "xact_rollback",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "conflicts",
    "temp_files",
    "temp_bytes",
    "deadlocks",
)
DATABASE_STATS = f"""
SELECT datname, {", ".join(f"{c}::float8" for c in DATABASE_COLUMNS)}
FROM pg_stat_database WHERE datname IS NOT NULL
"""
SIZES = """
SELECT datname, pg_database_size(datname)::float8 FROM pg_database
WHERE NOT datistemplate AND datallowconn
"""
REPLICATION = """
SELECT pg_is_in_recovery(),
       CASE WHEN NOT pg_is_in_recovery() THEN 0
            WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
            ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()), 0)
       END::float8
"""


async def probe(p: context.Probe) -> bool:
    cfg: config.PostgresConfig = p.module.section()
    _up(p, False)  # until proven otherwise, also when the deadline cancels the probe
    try:
        password, source = cfg.password_or_none()
    except LookupError as exc:
        return _failed(p, f"no password: {exc}")
    params = conninfo.make_conninfo(
        host=p.target.host,
        port=str(p.target.port),
        dbname=p.target.path or cfg.database,
        user=cfg.user,
        sslmode=cfg.sslmode,
        application_name="conea-monitor-probe",
        connect_timeout=str(max(1, math.ceil(p.remaining()))),
    )
    p.trace(f"connecting to {p.target.host}:{p.target.port} as {cfg.user!r} ({source})")
    try:
        conn = await psycopg.AsyncConnection.connect(params, password=password, autocommit=True)
    except psycopg.Error as exc:
        return _failed(p, f"connection failed: {_redact(str(exc), password)} ({source})")
    try:
        async with conn:
            await _collect(p, conn)
    except psycopg.Error as exc:
        return _failed(p, f"query failed: {_redact(str(exc), password)}")
    _up(p, True)
    return True


def _failed(p: context.Probe, reason: str) -> bool:
    p.failed(reason)
    _up(p, False)
    return False


def _up(p: context.Probe, up: bool) -> None:
    p.out.gauge(
        "pg_up",
        "Whether the last scrape of metrics from PostgreSQL was able to connect "
        "to the server (1 for yes, 0 for no).",
        up,
    )


def _redact(message: str, password: str | None) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    return first.replace(password, "***") if password else first


async def _collect(p: context.Probe, conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    out = p.out
    async with conn.cursor() as cur:
        await cur.execute("SELECT setting::float8 FROM pg_settings WHERE name = 'max_connections'")
        row = await cur.fetchone()
        if row is not None:
            out.gauge(
                "pg_settings_max_connections", "Server Parameter: max_connections", _num(row[0])
            )
        await cur.execute(ACTIVITY, (list(STATES),))
        for datname, state, count, max_tx in await cur.fetchall():
            labels = {"datname": str(datname), "state": str(state)}
            out.labelled(
                "pg_stat_activity_count", "number of connections in this state", labels, _num(count)
            )
            out.labelled(
                "pg_stat_activity_max_tx_duration",
                "max duration in seconds any active transaction has been running",
                labels,
                _num(max_tx),
            )
        await cur.execute(LOCK_WAITS)
        for datname, count in await cur.fetchall():
            out.labelled(
                "pg_stat_activity_waiting_on_lock_count",
                "Sessions waiting to acquire a lock",
                {"datname": str(datname)},
                _num(count),
            )
        await cur.execute(LOCKS, (list(LOCK_MODES),))
        for datname, mode, count in await cur.fetchall():
            out.labelled(
                "pg_locks_count",
                "Number of locks",
                {"datname": str(datname), "mode": str(mode)},
                _num(count),
            )
        await cur.execute(DATABASE_STATS)
        for row in await cur.fetchall():
            for column, value in zip(DATABASE_COLUMNS, row[1:], strict=True):
                out.labelled(
                    f"pg_stat_database_{column}",
                    f"pg_stat_database.{column} (a counter since the last stats reset)",
                    {"datname": str(row[0])},
                    _num(value),
                )
        await cur.execute(SIZES)
        for datname, size in await cur.fetchall():
            out.labelled(
                "pg_database_size_bytes",
                "Disk space used by the database",
                {"datname": str(datname)},
                _num(size),
            )
        await cur.execute(REPLICATION)
        row = await cur.fetchone()
        if row is not None:
            out.gauge(
                "pg_replication_is_replica", "Indicates if the server is a replica", bool(row[0])
            )
            out.gauge(
                "pg_replication_lag_seconds",
                "Replication lag behind primary in seconds",
                _num(row[1]),
            )
    p.trace("collected pg_stat_activity, locks, database sizes and replication state")


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else math.nan
