"""Whether a running service uses this store: its heartbeat, and what the store holds.

Each replica of the service writes its own heartbeat row in the ``control`` table
(``service/<digest of host and pid>``) when it starts, every ``BEAT_SECONDS`` while it
runs, and once more when it stops (``stopped``). The
command line, when it opens a store directly (``--config``/``--store``), asks
:func:`usage` whether that store is empty and when a service last used it (the
heartbeat, or the freshest notification or execution if that is newer), and warns when
it is not the store a running service uses. Only the heartbeat counts as a sign of a
service: the command line itself writes executions and notifications too (approve,
resume's catch-up). With several replicas on one store, the store is in use while any
replica's beat is fresh and not a stop: one replica stopping says nothing of the others.
A beat also removes the rows of replicas gone for more than a day, in the same commit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, delete, make_url, or_, select
from sqlalchemy.exc import ArgumentError

from monitor.store import control as switches
from monitor.store import database
from monitor.store.queue import aware
from monitor.store.schema import control, executions

KEY = "service"  # the heartbeats' rows in the control table: KEY/<replica>
BEAT_SECONDS = 20.0
FRESH = timedelta(minutes=1)  # a beat older than this: that replica is not running
GONE = timedelta(days=1)  # a replica's row older than this is removed by the next beat


def key(who: dict[str, Any]) -> str:
    """The row of the replica ``who`` (its host and pid), within the table's 64 characters."""
    digest = hashlib.sha256(f"{who.get('host', '')}:{who.get('pid', '')}".encode()).hexdigest()
    return f"{KEY}/{digest[:32]}"


def _rows() -> Any:
    return or_(control.c.key == KEY, control.c.key.startswith(f"{KEY}/"))


def beat(engine: Engine, at: datetime, who: dict[str, Any], *, stopped: bool = False) -> None:
    """A replica's heartbeat (``who``: host, pid, public_url); ``stopped`` at its end.
    Its row and the removal of the rows of replicas gone for ``GONE`` are one commit."""
    by = str(who.get("host", ""))[:255] or None
    with database.transaction(engine) as conn:
        switches.put(conn, key(who), {**who, "stopped": stopped}, at, by)
        conn.execute(delete(control).where(_rows(), control.c.updated_at < at - GONE))


@dataclass(frozen=True)
class Usage:
    """What a store holds and who uses it, as the command line reports it."""

    executions: bool  # any execution recorded
    switched: bool  # any switch was ever set (kill switch, breaker, approval key)
    last_seen: datetime | None  # the chosen heartbeat: the freshest, unless it is a stop
    stopped: bool  # and another replica beat within FRESH of it; and whether it said so
    service: dict[str, Any] | None  # its host, pid, public_url

    @property
    def empty(self) -> bool:
        """Nothing in it: no executions, never paused, never used by a service."""
        return not self.executions and not self.switched and self.last_seen is None

    def running(self, now: datetime) -> bool:
        """Whether a service used it within ``FRESH`` and did not say it stopped."""
        return self.last_seen is not None and not self.stopped and now - self.last_seen < FRESH


def usage(engine: Engine) -> Usage:
    with engine.connect() as conn:
        beats = [
            (aware(at), value if isinstance(value, dict) else {})
            for value, at in conn.execute(
                select(control.c.value, control.c.updated_at).where(_rows())
            )
        ]
        any_execution = conn.execute(select(executions.c.id).limit(1)).first() is not None
        any_switch = conn.execute(select(control.c.key).limit(1)).first() is not None
    beats.sort(key=lambda b: b[0], reverse=True)
    # The freshest beat, unless it is a stop and another replica beat as recently.
    running = [b for b in beats if not b[1].get("stopped") and b[0] >= beats[0][0] - FRESH]
    chosen = running[0] if running else beats[0] if beats else None
    return Usage(
        executions=any_execution,
        switched=any_switch,
        last_seen=chosen[0] if chosen else None,
        stopped=bool(chosen and chosen[1].get("stopped")),
        service=chosen[1] if chosen else None,
    )


def where(url: str) -> tuple[str, Path | None]:
    """``url`` as it may be shown (no password) and, for SQLite, its file (None in
    memory or on a server). ValueError when it is not a database URL."""
    try:
        parsed = make_url(database.normalise_url(url))
        backend = parsed.get_backend_name()
    except (ArgumentError, ValueError):
        raise ValueError("not a database URL such as sqlite:///data/conea-monitor.db") from None
    if backend not in ("sqlite", "postgresql"):
        raise ValueError(f"{backend!r} is not a store: sqlite:///PATH or postgresql://...")
    shown = parsed.render_as_string(hide_password=True)
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        return shown, Path(parsed.database)
    return shown, None
