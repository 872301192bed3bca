"""Whether a running service uses this store: its heartbeat, and what the store holds.

The service writes a heartbeat row in the ``control`` table (``service``) when it starts,
every ``BEAT_SECONDS`` while it runs, and once more when it stops (``stopped``). The
command line, when it opens a store directly (``--config``/``--store``), asks
:func:`usage` whether that store is empty and when a service last used it (the
heartbeat, or the freshest notification or execution if that is newer), and warns when
it is not the store a running service uses. Only the heartbeat counts as a sign of a
service: the command line itself writes executions and notifications too (approve,
resume's catch-up). With several replicas on one store the row is theirs together: the
freshest beat wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, make_url, select
from sqlalchemy.exc import ArgumentError

from monitor.store import database
from monitor.store.control import set_control
from monitor.store.queue import aware
from monitor.store.schema import control, executions

KEY = "service"  # the heartbeat's row in the control table
BEAT_SECONDS = 20.0
FRESH = timedelta(minutes=1)  # a beat older than this: no service is running on the store


def beat(engine: Engine, at: datetime, who: dict[str, Any], *, stopped: bool = False) -> None:
    """The service's heartbeat (``who``: host, pid, public_url); ``stopped`` at its end."""
    set_control(
        engine, KEY, {**who, "stopped": stopped}, at, str(who.get("host", ""))[:255] or None
    )


@dataclass(frozen=True)
class Usage:
    """What a store holds and who uses it, as the command line reports it."""

    executions: bool  # any execution recorded
    switched: bool  # any switch was ever set (kill switch, breaker, approval key)
    last_seen: datetime | None  # the service's last heartbeat
    stopped: bool  # and it said it stopped
    service: dict[str, Any] | None  # the heartbeat's host, pid, public_url

    @property
    def empty(self) -> bool:
        """Nothing in it: no executions, never paused, never used by a service."""
        return not self.executions and not self.switched and self.last_seen is None

    def running(self, now: datetime) -> bool:
        """Whether a service used it within ``FRESH`` and did not say it stopped."""
        return self.last_seen is not None and not self.stopped and now - self.last_seen < FRESH


def usage(engine: Engine) -> Usage:
    with engine.connect() as conn:
        found = conn.execute(
            select(control.c.value, control.c.updated_at).where(control.c.key == KEY)
        ).first()
        any_execution = conn.execute(select(executions.c.id).limit(1)).first() is not None
        any_switch = conn.execute(select(control.c.key).limit(1)).first() is not None
    service = found.value if found is not None and isinstance(found.value, dict) else None
    return Usage(
        executions=any_execution,
        switched=any_switch,
        last_seen=aware(found.updated_at) if found is not None else None,
        stopped=bool(service and service.get("stopped")),
        service=service,
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
