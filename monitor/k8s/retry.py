"""Bounded retries of temporary failures, with exponential backoff.

The Kubernetes client wrapper (:class:`monitor.k8s.client.Kube`) sends every API call
through :func:`call`, so a 429, a 5xx or a timeout is retried a few times within a small
budget before the action sees a :class:`~monitor.errors.TemporaryActionError` (whose
``delay`` tells the engine when to try the whole step again). Conflicts (409) are not
retried here: the same request would fail again; the action re-reads and decides anew.
The engine may reuse :func:`call` for its own retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from monitor import errors

T = TypeVar("T")
log = logging.getLogger("monitor.k8s")


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries in all; waits ``first``, ``first*factor``... capped at ``cap``,
    and never more than ``budget`` seconds of waiting in total."""

    attempts: int = 4
    first: float = 0.2
    factor: float = 2.0
    cap: float = 5.0
    budget: float = 10.0

    def delays(self) -> Iterator[float]:
        """The waits between attempts (``attempts - 1`` of them at most)."""
        spent, delay = 0.0, self.first
        for _ in range(self.attempts - 1):
            delay = min(delay, self.cap, self.budget - spent)
            if delay < 0 or (delay == 0 and spent >= self.budget):
                return
            yield delay
            spent += delay
            delay *= self.factor


NO_RETRY = Backoff(attempts=1)


async def call(
    fn: Callable[[], Awaitable[T]],
    backoff: Backoff = Backoff(),
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    retry_on: tuple[type[BaseException], ...] = (errors.TemporaryActionError,),
    never_on: tuple[type[BaseException], ...] = (),
) -> T:
    """Await ``fn()``; on a ``retry_on`` error wait and try again, within ``backoff``.

    The wait is the error's own ``delay`` when it is longer (e.g. Retry-After). The last
    error is re-raised with ``delay`` set to the next wait the schedule would have used.
    """
    delays = backoff.delays()
    while True:
        try:
            return await fn()
        except retry_on as exc:
            if never_on and isinstance(exc, never_on):
                raise
            wait = next(delays, None)
            if wait is None:
                if isinstance(exc, errors.TemporaryActionError):
                    exc.delay = max(exc.delay, backoff.first)
                raise
            wanted = getattr(exc, "delay", 0.0) or 0.0
            wait = max(wait, min(float(wanted), backoff.cap))
            log.info("retrying in %.2fs after: %s", wait, exc)
            await sleep(wait)
