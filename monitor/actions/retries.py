"""The retry policy of the action runner (:mod:`monitor.actions.runner`), on its own so
that actions can declare theirs (:meth:`monitor.actions.registry.Action.retry_policy`)
without importing the runner."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try.

    ``attempts`` tries in all; the wait before try n+1 is ``first * factor**(n-1)`` or the
    error's ``delay`` hint, whichever is longer, capped at ``cap`` seconds; ``deadline``
    bounds the whole run, tries and waits. ``max_hint``: a delay hint longer than this
    ends the run at once (the server asked for more than we wait); ``None``: a hint is
    capped at ``cap`` like the backoff.
    """

    attempts: int = 3
    first: float = 1.0
    factor: float = 2.0
    cap: float = 30.0
    deadline: float = 300.0
    max_hint: float | None = None

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts!r}")
        for name in ("first", "cap"):
            if not 0 <= getattr(self, name) < float("inf"):
                value = getattr(self, name)
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not 1 <= self.factor < float("inf"):
            raise ValueError(f"factor must be a finite number >= 1, got {self.factor!r}")
        if not 0 < self.deadline < float("inf"):
            raise ValueError(f"deadline must be a finite number > 0, got {self.deadline!r}")
        if self.max_hint is not None and not 0 <= self.max_hint < float("inf"):
            raise ValueError(f"max_hint must be a finite number >= 0, got {self.max_hint!r}")

    def backoff(self, number: int) -> float:
        """The wait after failed try ``number`` (1-based), before any delay hint."""
        return min(self.first * self.factor ** min(number - 1, 64), self.cap)

    def wait(self, number: int, hint: float) -> float | None:
        """The wait after failed try ``number`` with the error's ``hint``; None: stop."""
        if number >= self.attempts:
            return None
        if self.max_hint is not None and hint > self.max_hint:
            return None
        return min(max(self.backoff(number), hint), self.cap)
