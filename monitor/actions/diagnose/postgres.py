"""``postgres.activity``: the operations manual's connection and lock-wait queries.

Connections are counted by state; the sessions waiting on something (the manual's
``wait_event_type IS NOT NULL``, client backends only, lock waits first) are listed with
their pid, user, state, wait event and query. Query text is cut to ``query_length``
characters and, unless ``redact: false``, its string and numeric literals are replaced
by ``?`` (they may hold personal data or credentials). The connection is the named
``postgres_targets`` entry's (:mod:`monitor.actions.postgres`); its host name is looked
up in the diagnostics' threads, so a slow resolver is the diagnostic's timeout, nothing
else's.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from monitor.actions import postgres, registry
from monitor.actions.diagnose import common

_COUNTS = """
SELECT coalesce(state, 'unknown') AS state, count(*) AS n
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1 ORDER BY 2 DESC, 1
"""
_WAITING = """
SELECT pid, usename, coalesce(state, '') AS state, wait_event_type, wait_event, query
FROM pg_stat_activity
WHERE wait_event_type IS NOT NULL AND backend_type = 'client backend'
  AND pid <> pg_backend_pid()
ORDER BY wait_event_type = 'Lock' DESC, query_start NULLS LAST, pid
LIMIT %s
"""
_LITERALS = re.compile(
    r"""(?x)
      (?:[eEbBxXuU]&?)?'(?:[^']|'')*'?      # 'string' (E'', B'', X'', U&'')
    | \$([A-Za-z_][A-Za-z0-9_]*)?\$.*?(?:\$\1\$|$)   # $$dollar quoted$$
    | (?<![\w$.])[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?\b  # 42, 3.14, 1e9
    """,
    re.DOTALL,
)


def redact_query(text: str) -> str:
    """``text`` with its string and numeric literals replaced by ``?``."""
    return _LITERALS.sub("?", text)


class ActivityParams(registry.StrictModel):
    target: str = Field(min_length=1, description="a postgres_targets name")
    database: str | None = Field(None, min_length=1, description="default: the target's")
    limit: int = Field(20, ge=1, le=common.MAX_ROWS, description="sessions listed")
    query_length: int = Field(200, ge=0, le=2000, description="characters of query text")
    redact: bool = Field(True, description="replace literals in query text with ?")


class Activity(common.Diagnostic[ActivityParams]):
    """``postgres.activity``: see the module docstring."""

    name = "postgres.activity"
    Params = ActivityParams
    COLUMNS = ["pid", "user", "state", "wait_event_type", "wait_event", "query"]

    def lookup(self, host: str, port: int) -> list[str]:
        """The target host's addresses: a blocking DNS lookup, run in a worker thread of
        the diagnostics' own pool, within the diagnostic's timeout."""
        return postgres.addresses(host, port)

    async def gather(self, params: ActivityParams, ctx: registry.ActionContext) -> common.Found:
        async with postgres.connect(
            ctx, params.target, params.database, lookup=self.lookup
        ) as conn:
            counts = await (await conn.execute(_COUNTS)).fetchall()
            waiting = await (await conn.execute(_WAITING, (params.limit + 1,))).fetchall()
        truncated = len(waiting) > params.limit
        rows: list[list[Any]] = []
        for row in waiting[: params.limit]:
            query = " ".join(str(row["query"] or "").split())
            if params.redact:
                query = redact_query(query)
            query, cut = common.clip(query, params.query_length)
            truncated = truncated or (cut and params.query_length > 0)
            rows.append(
                [
                    row["pid"],
                    row["usename"] or "",
                    row["state"],
                    row["wait_event_type"],
                    row["wait_event"] or "",
                    query,
                ]
            )
        total = sum(int(c["n"]) for c in counts)
        by_state = ", ".join(f"{int(c['n'])} {c['state']}" for c in counts)
        locks = sum(1 for r in waiting if r["wait_event_type"] == "Lock")
        summary = f"{total} connections" + (f" ({by_state})" if by_state else "")
        summary += f"; {locks} waiting on locks" if locks else "; none waiting on locks"
        return common.table(self.COLUMNS, rows, summary, truncated)


DIAGNOSTICS: tuple[type[registry.Action[Any]], ...] = (Activity,)
