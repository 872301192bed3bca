"""PostgreSQL actions: end stuck sessions, cancel runaway queries, VACUUM ANALYZE.

``postgres.terminate_idle_in_transaction`` and ``postgres.cancel_long_queries`` never
touch superusers' sessions, replication connections (walsenders), background workers,
or the service's own sessions (its backend pid and every session with its
``application_name``, so other replicas are spared too). Users and applications can be
narrowed with anchored regular expressions (``include_*`` / ``exclude_*``). At most
``max_sessions`` are ended per run, oldest first.

``plan`` lists the sessions it would end and changes nothing. ``apply`` selects again
with the same filters and signals each session in a statement that re-checks it is
still the same one in the same state (pid, backend_start and state_change or
query_start unchanged), so a session that committed meanwhile, or a reused pid, is
left alone. Query text is not recorded: it may hold personal data or credentials.

The connection uses the named target from ``ctx.services.postgres`` (a
:class:`monitor.targets.PostgresTarget`); its password is read and its host name looked
up at connect time, in a worker thread of the caller's pool (:func:`monitor.threads.run`:
a diagnostic's own, so a slow resolver holds none of the steps' threads), and psycopg is
given the addresses (``hostaddr``) so that it looks up nothing itself.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar

import psycopg
import re2
from psycopg import errors as pg_errors
from psycopg import rows, sql
from pydantic import Field, field_validator

from monitor import durations, secrets, targets, threads
from monitor.actions import registry
from monitor.errors import ConfigError, PermanentActionError, TemporaryActionError

CONNECT_RETRY_DELAY = 10.0
# Seconds one try of a session action may take beyond the target's connect_timeout: one
# SELECT of pg_stat_activity and a signal per session, each a short statement.
SESSION_MARGIN = 30.0
VACUUM_TIMEOUT = 1800.0  # a VACUUM (ANALYZE) of a large database is slow; jobs set their own


# Patterns come from policies and may be templated from alert labels: RE2, so matching
# is linear in the text whatever the pattern (no backtracking).
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> Any:
    return re2.compile(pattern, _RE2_OPTIONS)


def _check_patterns(value: list[str]) -> list[str]:
    for pattern in value:
        try:
            _compile(pattern)
        except re2.error as exc:
            reason = exc.args[0].decode() if isinstance(exc.args[0], bytes) else exc
            raise ValueError(f"invalid regular expression {pattern!r}: {reason}") from None
    return value


class SessionParams(registry.StrictModel):
    target: str = Field(min_length=1)
    databases: list[str] = Field(min_length=1)
    older_than: durations.Duration
    max_sessions: int = Field(10, ge=1, le=1000)
    include_users: list[str] = []
    exclude_users: list[str] = []
    include_applications: list[str] = []
    exclude_applications: list[str] = []

    _patterns = field_validator(
        "include_users", "exclude_users", "include_applications", "exclude_applications"
    )(_check_patterns)

    @field_validator("older_than")
    @classmethod
    def _positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("older_than must be longer than 0s")
        return value

    def wanted(self, user: str, application: str) -> bool:
        """The include/exclude rules (anchored regexes, as Prometheus matchers are)."""

        def any_match(patterns: list[str], value: str) -> bool:
            return any(_compile(p).fullmatch(value) for p in patterns)

        if self.include_users and not any_match(self.include_users, user):
            return False
        if self.include_applications and not any_match(self.include_applications, application):
            return False
        return not (
            any_match(self.exclude_users, user) or any_match(self.exclude_applications, application)
        )


class VacuumParams(registry.StrictModel):
    target: str = Field(min_length=1)
    database: str | None = None
    tables: list[str] = []  # empty: the whole database

    @field_validator("tables")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?", name):
                raise ValueError(f"invalid table name {name!r}: use table or schema.table")
        return value


def target_of(ctx: registry.ActionContext, name: str) -> targets.PostgresTarget:
    target = ctx.services.postgres.get(name)
    if target is None:
        known = ", ".join(sorted(ctx.services.postgres)) or "none configured"
        raise PermanentActionError(f"unknown postgres target {name!r} (known: {known})")
    return target


Lookup = Callable[[str, int], Sequence[str]]
"""A host name's IP addresses (blocking: a DNS lookup); OSError when it has none."""


def addresses(host: str, port: int) -> list[str]:
    """``host``'s addresses, in the resolver's order (as psycopg would look them up)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class _Unresolved(Exception):
    """None of the target's host names could be looked up."""


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolved(
    target: targets.PostgresTarget,
    dbname: str | None,
    redactor: secrets.Redactor,
    lookup: Lookup,
) -> dict[str, Any]:
    """The connection's keyword arguments, the password read and each host name looked
    up (``hostaddr``: one entry per address, "" for a socket directory or an IP address,
    which need none). Blocking: run in a worker thread."""
    kwargs = target.connect_kwargs(dbname, redactor)
    hosts: list[str] = []
    found: list[str] = []
    failure = ""
    for host in str(kwargs["host"]).split(","):
        if not host or host.startswith("/") or _is_address(host):
            hosts.append(host)
            found.append("")
            continue
        try:
            each = list(lookup(host, target.port))
        except OSError as exc:
            failure = f"failed to resolve host {host!r}: {exc}"
            continue
        hosts += [host] * len(each)
        found += each
    if not hosts:
        raise _Unresolved(failure or f"failed to resolve host {target.host!r}")
    if any(found):
        kwargs.update(host=",".join(hosts), hostaddr=",".join(found))
    return kwargs


@contextlib.asynccontextmanager
async def connect(
    ctx: registry.ActionContext, name: str, dbname: str | None = None, *, lookup: Lookup = addresses
) -> AsyncIterator[psycopg.AsyncConnection[dict[str, Any]]]:
    """An autocommit connection to target ``name``; connection failures are temporary.
    The password and the host's addresses (``lookup``) are read in a worker thread of
    the caller's pool (:func:`monitor.threads.run`), psycopg looks up nothing."""
    target = target_of(ctx, name)
    redactor = secrets.Redactor()
    try:
        kwargs = await threads.run(_resolved, target, dbname, redactor, lookup)
    except ConfigError as exc:
        raise PermanentActionError(f"postgres target {name!r}: {exc}") from None
    except _Unresolved as exc:
        raise TemporaryActionError(
            f"postgres target {name!r} ({target.describe(dbname)}): cannot connect: {exc}",
            delay=CONNECT_RETRY_DELAY,
        ) from None
    try:
        conn = await psycopg.AsyncConnection.connect(
            **kwargs, autocommit=True, row_factory=rows.dict_row
        )
    except psycopg.Error as exc:
        reason = redactor.text(str(exc).strip())
        raise TemporaryActionError(
            f"postgres target {name!r} ({target.describe(dbname)}): cannot connect: {reason}",
            delay=CONNECT_RETRY_DELAY,
        ) from None
    try:
        yield conn
    except pg_errors.InsufficientPrivilege as exc:
        raise PermanentActionError(
            f"postgres target {name!r}: permission denied: {redactor.text(str(exc).strip())} "
            "(the role needs pg_signal_backend and pg_read_all_stats)"
        ) from None
    except psycopg.OperationalError as exc:
        raise TemporaryActionError(
            f"postgres target {name!r}: {redactor.text(str(exc))}", delay=CONNECT_RETRY_DELAY
        ) from None
    except psycopg.Error as exc:
        raise PermanentActionError(
            f"postgres target {name!r}: {redactor.text(str(exc).strip())}"
        ) from None
    finally:
        await conn.close()


_SELECT = """
SELECT a.pid, a.usename AS "user", coalesce(a.application_name, '') AS application,
       a.datname AS database, host(a.client_addr) AS client, a.state,
       a.backend_start, a.state_change, a.query_start,
       extract(epoch FROM now() - {since})::float8 AS age_seconds
FROM pg_stat_activity a
JOIN pg_roles r ON r.oid = a.usesysid
WHERE a.backend_type = 'client backend'
  AND a.pid <> pg_backend_pid()
  AND NOT r.rolsuper
  AND a.application_name IS DISTINCT FROM %(own_application)s
  AND a.datname = ANY(%(databases)s)
  AND {condition}
  AND {since} < now() - make_interval(secs => %(older_than)s)
ORDER BY {since}, a.pid
"""


class SessionAction(registry.Action[SessionParams]):
    """Shared selection and signalling of the two session actions."""

    name: ClassVar[str]
    Params = SessionParams
    since: ClassVar[str]  # the column the age is counted from
    condition: ClassVar[str]  # the state the session must be in
    function: ClassVar[str]  # pg_terminate_backend / pg_cancel_backend
    verb: ClassVar[str]  # terminate / cancel
    done: ClassVar[str]  # terminated / cancelled
    what: ClassVar[str]  # "sessions idle in transaction" / "active queries"
    timeout = targets.PostgresTarget.model_fields["connect_timeout"].default + SESSION_MARGIN

    def attempt_timeout(self, params: SessionParams, ctx: registry.ActionContext) -> float:
        target = ctx.services.postgres.get(params.target)
        return self.timeout if target is None else target.connect_timeout + SESSION_MARGIN

    async def _select(
        self,
        conn: psycopg.AsyncConnection[dict[str, Any]],
        params: SessionParams,
        own_application: str,
    ) -> list[dict[str, Any]]:
        query = _SELECT.format(since=self.since, condition=self.condition)
        cursor = await conn.execute(
            query.encode(),
            {
                "own_application": own_application,
                "databases": params.databases,
                "older_than": params.older_than.total_seconds(),
            },
        )
        found = await cursor.fetchall()
        return [row for row in found if params.wanted(row["user"] or "", row["application"])]

    @staticmethod
    def _show(row: dict[str, Any]) -> dict[str, Any]:
        return {
            "pid": row["pid"],
            "user": row["user"],
            "application": row["application"],
            "database": row["database"],
            "client": row["client"],
            "age_seconds": round(row["age_seconds"], 1),
        }

    def _describe(self, params: SessionParams) -> str:
        return (
            f"{self.what} older than {durations.format(params.older_than)} "
            f"in {', '.join(params.databases)} on {params.target!r}"
        )

    async def plan(self, params: SessionParams, ctx: registry.ActionContext) -> registry.Plan:
        own = target_of(ctx, params.target).application_name
        async with connect(ctx, params.target) as conn:
            found = await self._select(conn, params, own)
        chosen, left = found[: params.max_sessions], found[params.max_sessions :]
        if not chosen:
            return registry.Plan(
                action=self.name, noop=True, summary=f"no {self._describe(params)}"
            )
        summary = f"{self.verb} {len(chosen)} {self._describe(params)}"
        if left:
            summary += f" ({len(left)} more left: max_sessions={params.max_sessions})"
        return registry.Plan(
            action=self.name,
            summary=summary,
            changes=[self._change(params, row, "planned") for row in chosen],
            details={
                "sessions": [self._show(row) for row in chosen],
                "left_over_max_sessions": len(left),
            },
        )

    def _change(self, params: SessionParams, row: dict[str, Any], after: str) -> registry.Change:
        return registry.Change(
            resource=f"postgres/{params.target}/{row['database']}/pid/{row['pid']}",
            field="session",
            before=f"{row['state']} {row['age_seconds']:.0f}s ({row['user']}, "
            f"{row['application'] or '-'})",
            after=after,
        )

    async def apply(
        self, params: SessionParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        own = target_of(ctx, params.target).application_name
        ended: list[dict[str, Any]] = []
        gone: list[dict[str, Any]] = []
        async with connect(ctx, params.target) as conn:
            found = await self._select(conn, params, own)
            for row in found[: params.max_sessions]:
                if await self._signal(conn, row):
                    ended.append(row)
                    ctx.log.info(
                        "postgres %s: %s pid %d (%s, %s, %s, %.0fs)",
                        params.target,
                        self.done,
                        row["pid"],
                        row["user"],
                        row["application"],
                        row["database"],
                        row["age_seconds"],
                    )
                else:
                    gone.append(row)
        summary = f"{self.done} {len(ended)} {self._describe(params)}"
        if gone:
            summary += f"; {len(gone)} had moved on meanwhile"
        return registry.Outcome(
            summary=summary,
            changes=[self._change(params, row, self.done) for row in ended],
            details={
                self.done: [self._show(row) for row in ended],
                "skipped_changed_state": [self._show(row) for row in gone],
                "left_over_max_sessions": max(0, len(found) - params.max_sessions),
            },
        )

    async def _signal(
        self, conn: psycopg.AsyncConnection[dict[str, Any]], row: dict[str, Any]
    ) -> bool:
        """Signal the session if it is still the same one in the same state."""
        query = (
            f"SELECT {self.function}(a.pid) AS ok FROM pg_stat_activity a "
            f"WHERE a.pid = %(pid)s AND a.backend_start = %(backend_start)s "
            f"AND {self.since} = %(since)s AND {self.condition}"
        )
        since_column = self.since.removeprefix("a.")
        cursor = await conn.execute(
            query.encode(),
            {"pid": row["pid"], "backend_start": row["backend_start"], "since": row[since_column]},
        )
        result = await cursor.fetchone()
        return bool(result and result["ok"])


class TerminateIdleInTransaction(SessionAction):
    name = "postgres.terminate_idle_in_transaction"
    since = "a.state_change"
    condition = "a.state IN ('idle in transaction', 'idle in transaction (aborted)')"
    function = "pg_terminate_backend"
    verb = "terminate"
    done = "terminated"
    what = "sessions idle in transaction"


class CancelLongQueries(SessionAction):
    name = "postgres.cancel_long_queries"
    since = "a.query_start"
    condition = "a.state = 'active'"
    function = "pg_cancel_backend"
    verb = "cancel"
    done = "cancelled"
    what = "active queries"


class VacuumAnalyze(registry.Action[VacuumParams]):
    """``VACUUM (ANALYZE)`` of a database or of named tables (autocommit: no transaction)."""

    name = "postgres.vacuum_analyze"
    Params = VacuumParams
    timeout = VACUUM_TIMEOUT

    async def _stats(
        self, conn: psycopg.AsyncConnection[dict[str, Any]], tables: list[str]
    ) -> list[dict[str, Any]]:
        cursor = await conn.execute(
            b"SELECT schemaname || '.' || relname AS \"table\", n_dead_tup AS dead_tuples, "
            b"n_live_tup AS live_tuples, last_vacuum, last_autovacuum, last_analyze "
            b"FROM pg_stat_user_tables "
            b"WHERE cardinality(%(tables)s::regclass[]) = 0 OR relid = ANY(%(tables)s::regclass[]) "
            b"ORDER BY n_dead_tup DESC, 1 LIMIT 50",
            {"tables": tables},
        )
        return [
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in row.items()}
            for row in await cursor.fetchall()
        ]

    async def _check_tables(
        self, conn: psycopg.AsyncConnection[dict[str, Any]], params: VacuumParams
    ) -> list[tuple[str, sql.Identifier]]:
        """Each table as written and as the server names it (schema, name), found as
        PostgreSQL finds an unquoted name (``Events`` is ``public.events``)."""
        found: list[tuple[str, sql.Identifier]] = []
        for table in params.tables:
            cursor = await conn.execute(
                b"SELECT n.nspname AS schema, c.relname AS name FROM pg_class c "
                b"JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass(%s)",
                (table,),
            )
            row = await cursor.fetchone()
            if row is None:
                raise PermanentActionError(
                    f"postgres target {params.target!r}: no table {table!r} in database "
                    f"{params.database or 'of the target'}"
                )
            found.append((table, sql.Identifier(row["schema"], row["name"])))
        return found

    def _scope(self, params: VacuumParams, ctx: registry.ActionContext) -> str:
        database = params.database or target_of(ctx, params.target).dbname
        what = ", ".join(params.tables) if params.tables else "every table"
        return f"{what} in {database} on {params.target!r}"

    async def plan(self, params: VacuumParams, ctx: registry.ActionContext) -> registry.Plan:
        async with connect(ctx, params.target, params.database) as conn:
            await self._check_tables(conn, params)
            stats = await self._stats(conn, params.tables)
        return registry.Plan(
            action=self.name,
            summary=f"VACUUM (ANALYZE) {self._scope(params, ctx)}",
            details={"tables": stats},
        )

    async def apply(
        self, params: VacuumParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        durations: dict[str, float] = {}
        async with connect(ctx, params.target, params.database) as conn:
            found = await self._check_tables(conn, params)
            statements: list[tuple[str, sql.Composed | sql.SQL]] = []
            if params.tables:
                for table, ident in found:
                    statements.append((table, sql.SQL("VACUUM (ANALYZE) {}").format(ident)))
            else:
                statements.append(("*", sql.SQL("VACUUM (ANALYZE)")))
            for label, statement in statements:
                started = time.perf_counter()
                await conn.execute(statement)
                durations[label] = round(time.perf_counter() - started, 3)
            stats = await self._stats(conn, params.tables)
        total = sum(durations.values())
        return registry.Outcome(
            summary=f"VACUUM (ANALYZE) {self._scope(params, ctx)} took {total:.1f}s",
            details={"duration_seconds": durations, "tables": stats},
        )


def register(reg: registry.Registry) -> None:
    reg.register(TerminateIdleInTransaction)
    reg.register(CancelLongQueries)
    reg.register(VacuumAnalyze)
