"""Leader election for scheduled jobs: with several replicas only the leader runs them.

The leader holds a session-level PostgreSQL advisory lock (``pg_try_advisory_lock``)
on a dedicated connection for as long as it lives. Before each run the runner asks
:meth:`PostgresLeader.is_leader`, which checks the connection is alive (a dead
connection means the server has already released the lock, so another replica may
hold it now) or, on a follower, tries to take the lock. When the leader's process or
connection dies, the next follower to ask becomes the leader.

A single replica (the SQLite store) needs no election: :class:`AlwaysLeader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from typing import Any, Protocol

import psycopg

from monitor import targets
from monitor.errors import ConfigError

DEFAULT_LOCK_NAME = "conea-monitor/jobs"


class Leader(Protocol):
    async def is_leader(self) -> bool: ...

    async def close(self) -> None: ...


class AlwaysLeader:
    """One replica: it is always the leader."""

    async def is_leader(self) -> bool:
        return True

    async def close(self) -> None:
        return None


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def conninfo_from_url(url: str) -> str:
    """A libpq URI from a SQLAlchemy URL (``postgresql+psycopg://...``)."""
    scheme, sep, rest = url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError("not a PostgreSQL URL")
    return f"postgresql://{rest}"


class PostgresLeader:
    """Holds ``pg_try_advisory_lock(lock_key(name))`` on its own connection while leading."""

    def __init__(
        self,
        conninfo: str | targets.PostgresTarget,
        name: str = DEFAULT_LOCK_NAME,
        log: logging.Logger | None = None,
        application_name: str = "conea-monitor",
    ) -> None:
        self._conninfo = conninfo  # a target's password is read at each (re)connect
        self._application_name = application_name
        self.name = name
        self.key = lock_key(name)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._held = False
        self._lock = asyncio.Lock()
        self._log = log or logging.getLogger("monitor.jobs")

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if isinstance(self._conninfo, str):
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, application_name=self._application_name
            )
        return await psycopg.AsyncConnection.connect(
            **self._conninfo.connect_kwargs(), autocommit=True
        )

    async def is_leader(self) -> bool:
        async with self._lock:
            try:
                if self._conn is None or self._conn.closed:
                    self._held = False
                    self._conn = await self._connect()
                if self._held:
                    await self._conn.execute("SELECT 1")  # alive: the lock is still ours
                    return True
                cursor = await self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
                row = await cursor.fetchone()
                self._held = bool(row and row[0])
                if self._held:
                    self._log.info("jobs: this replica is now the leader (%s)", self.name)
                return self._held
            except (psycopg.Error, ConfigError) as exc:
                if self._held:
                    self._log.warning("jobs: lost leadership: %s", str(exc).strip())
                else:
                    self._log.warning(
                        "jobs: cannot reach PostgreSQL for leader election: %s", str(exc).strip()
                    )
                await self._drop()
                return False

    async def _drop(self) -> None:
        self._held = False
        if self._conn is not None:
            try:
                await self._conn.close()
            finally:
                self._conn = None

    async def close(self) -> None:
        """Give up leadership (unlock) and close the connection."""
        async with self._lock:
            if self._conn is not None and self._held and not self._conn.closed:
                # On failure the connection is going away: the server releases the lock.
                with contextlib.suppress(psycopg.Error):
                    await self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.key,))
            await self._drop()
