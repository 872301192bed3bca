"""Plain records the store returns and pure code takes: no SQLAlchemy, no I/O here, so
the guardrails (a pure function) can name them without importing the store's queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TargetHistory:
    """What the cooldown and budget guardrails need to know about one target."""

    last_started: datetime | None
    attempts_in_window: int
