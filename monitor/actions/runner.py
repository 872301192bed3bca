"""The one action runner: timeouts, retries, concurrency slots and the lock's lease.

Every place that runs an action (the engine's steps, reverts, ``explain``'s plans,
scheduled jobs) goes through :class:`ActionRunner`; nothing below it retries (the
Kubernetes and HTTP clients make one call and raise a typed error)::

    runner = ActionRunner(slots=asyncio.Semaphore(4), observe=metric.observe)
    plan = await runner.plan(action, params, ctx, lease=lock)
    outcome = await runner.apply(action, params, ctx, plan, lease=lock, on_attempt=audit)

The rules of one run:

- **Timeout of one try**: the ``timeout`` argument (a policy step's ``timeout:``), else
  the action's own (:meth:`~monitor.actions.registry.Action.attempt_timeout`, by default
  its ``timeout`` class variable). A try that exceeds it is cancelled and counts as a
  temporary failure (:class:`ActionTimeout`, "timed out after 30s").
- **Retries**: the ``retry`` argument, else the action's
  :meth:`~monitor.actions.registry.Action.retry_policy`, else the runner's
  :class:`RetryPolicy`. A :class:`~monitor.errors.TemporaryActionError` is tried again
  after ``max(backoff_n, error.delay)`` capped at ``cap``; a
  :class:`~monitor.errors.PermanentActionError`, or any other exception, is not. No try
  starts, and no wait begins, that would end past the run's ``deadline``: the last error
  is raised instead.
- **Slots**: ``slots`` (the engine's concurrency limit) is held during a try only, never
  while waiting to retry.
- **Lease**: while a run holds the target's lock, a background task renews it every
  ``lease.interval`` seconds (tries and waits alike). A refused or failed renewal cancels
  the try and fails the run with :class:`LeaseLost`. The task never outlives the call.

``observe(action name, seconds)`` is called after every try (the duration metric);
``on_attempt(report)`` is awaited after every failed try (the audit of retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from monitor.actions import registry
from monitor.actions.retries import RetryPolicy
from monitor.errors import ActionError, PermanentActionError, TemporaryActionError

__all__ = [
    "ActionRunner",
    "ActionTimeout",
    "AttemptReport",
    "Lease",
    "LeaseLost",
    "RetryPolicy",
]

T = TypeVar("T")
_log = logging.getLogger("monitor.actions")
Phase = Literal["plan", "apply", "revert"]


class ActionTimeout(TemporaryActionError):
    """A try ran longer than its timeout and was cancelled."""


class LeaseLost(PermanentActionError):
    """The target's lock could not be renewed: the run was stopped."""


@dataclass(frozen=True)
class AttemptReport:
    """One failed try, for the audit trail."""

    action: str
    phase: Phase
    number: int  # 1 for the first try
    duration: float  # seconds
    error: str | None
    temporary: bool
    retry_in: float | None  # seconds until the next try; None: no further try


class Lease(Protocol):
    """The target's lock, renewed while a run holds it."""

    interval: float  # seconds between renewals

    async def renew(self) -> bool:
        """Extend the lock; False when it was lost (another replica holds it)."""
        ...


OnAttempt = Callable[[AttemptReport], Awaitable[None]]


def _seconds(value: float) -> str:
    return f"{value:.3g}s" if value < 1 else f"{round(value, 1):g}s"


class ActionRunner:
    """Runs an action's plan, apply or revert under the rules of the module docstring."""

    def __init__(
        self,
        *,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen dataclass
        slots: asyncio.Semaphore | None = None,
        observe: Callable[[str, float], None] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.retry = retry
        self.slots = slots
        self.observe = observe
        self.sleep = sleep
        self.monotonic = monotonic

    async def plan(
        self,
        action: registry.Action[Any],
        params: BaseModel,
        ctx: registry.ActionContext,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a policy step's override
        retry: RetryPolicy | None = None,
        lease: Lease | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> registry.Plan:
        return await self._run(
            action,
            "plan",
            lambda: action.plan(params, ctx),
            params,
            ctx,
            timeout=timeout,
            retry=retry,
            lease=lease,
            on_attempt=on_attempt,
        )

    async def apply(
        self,
        action: registry.Action[Any],
        params: BaseModel,
        ctx: registry.ActionContext,
        plan: registry.Plan,
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a policy step's override
        retry: RetryPolicy | None = None,
        lease: Lease | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> registry.Outcome:
        return await self._run(
            action,
            "apply",
            lambda: action.apply(params, ctx, plan),
            params,
            ctx,
            timeout=timeout,
            retry=retry,
            lease=lease,
            on_attempt=on_attempt,
        )

    async def revert(
        self,
        action: registry.Action[Any],
        params: BaseModel,
        ctx: registry.ActionContext,
        state: dict[str, Any],
        *,
        timeout: float | None = None,  # noqa: ASYNC109 - a policy step's override
        retry: RetryPolicy | None = None,
        lease: Lease | None = None,
        on_attempt: OnAttempt | None = None,
    ) -> registry.Outcome:
        return await self._run(
            action,
            "revert",
            lambda: action.revert(params, ctx, state),
            params,
            ctx,
            timeout=timeout,
            retry=retry,
            lease=lease,
            on_attempt=on_attempt,
        )

    async def _run(
        self,
        action: registry.Action[Any],
        phase: Phase,
        call: Callable[[], Awaitable[T]],
        params: BaseModel,
        ctx: registry.ActionContext,
        *,
        timeout: float | None,  # noqa: ASYNC109 - applied per try below
        retry: RetryPolicy | None,
        lease: Lease | None,
        on_attempt: OnAttempt | None,
    ) -> T:
        policy = retry or action.retry_policy(params, ctx) or self.retry
        limit = timeout if timeout is not None else action.attempt_timeout(params, ctx)
        tries = self._tries(action.name, phase, call, limit, policy, on_attempt)
        if lease is None:
            return await tries
        return await _leased(tries, lease)

    async def _tries(
        self,
        name: str,
        phase: Phase,
        call: Callable[[], Awaitable[T]],
        limit: float,
        policy: RetryPolicy,
        on_attempt: OnAttempt | None,
    ) -> T:
        ends = self.monotonic() + policy.deadline
        number = 0
        while True:
            number += 1
            try:
                return await self._try(name, phase, call, min(limit, ends - self.monotonic()))
            except _Failed as failed:
                exc, duration = failed.exc, failed.duration
            temporary = isinstance(exc, TemporaryActionError)
            wait = None
            if isinstance(exc, TemporaryActionError):
                wait = policy.wait(number, float(exc.delay))
                if wait is not None and self.monotonic() + wait >= ends:
                    wait = None  # the next try would start past the deadline
            message = str(exc) if isinstance(exc, ActionError) else f"{type(exc).__name__}: {exc}"
            if on_attempt is not None:
                await on_attempt(
                    AttemptReport(name, phase, number, duration, message, temporary, wait)
                )
            if wait is None:
                raise exc
            _log.warning(
                "%s %s: try %d failed (%s); next try in %s",
                name,
                phase,
                number,
                message,
                _seconds(wait),
            )
            await self.sleep(wait)

    async def _try(
        self, name: str, phase: Phase, call: Callable[[], Awaitable[T]], limit: float
    ) -> T:
        async with self.slots if self.slots is not None else contextlib.nullcontext():
            started = self.monotonic()
            try:
                async with asyncio.timeout(max(limit, 0.0)) as scope:
                    return await call()
            except TimeoutError as exc:
                if scope.expired():
                    timed_out = ActionTimeout(
                        f"{name} {phase}: timed out after {_seconds(limit)}", delay=0.0
                    )
                    raise _Failed(timed_out, self.monotonic() - started) from exc
                raise _Failed(exc, self.monotonic() - started) from exc
            except Exception as exc:
                raise _Failed(exc, self.monotonic() - started) from exc
            finally:
                if self.observe is not None:
                    self.observe(name, self.monotonic() - started)


class _Failed(Exception):
    """A try's exception and how long the try took (internal to the runner)."""

    def __init__(self, exc: BaseException, duration: float) -> None:
        super().__init__(str(exc))
        self.exc = exc
        self.duration = duration


async def _leased(work: Awaitable[T], lease: Lease) -> T:
    """Await ``work`` in this task while renewing ``lease`` every ``lease.interval``;
    LeaseLost (work cancelled) if it is lost. A timer, not a task, waits for each
    renewal (a run costs no extra task until a renewal is due)."""
    current = asyncio.current_task()
    assert current is not None
    loop = asyncio.get_running_loop()
    lost: list[LeaseLost] = []
    renewals: set[asyncio.Task[None]] = set()
    timer: asyncio.TimerHandle | None = None

    def schedule() -> None:
        nonlocal timer
        timer = loop.call_later(lease.interval, due)

    def due() -> None:
        renewal = loop.create_task(_renew(lease))
        renewals.add(renewal)
        renewal.add_done_callback(renewed)

    def renewed(renewal: asyncio.Task[None]) -> None:
        renewals.discard(renewal)
        if renewal.cancelled():
            return
        problem = renewal.exception()
        if problem is None:
            schedule()
            return
        lost.append(
            problem
            if isinstance(problem, LeaseLost)
            else LeaseLost(f"lost the target's lock: {problem}")
        )
        current.cancel()

    schedule()
    try:
        return await work
    except asyncio.CancelledError:
        # Our own cancel (the lease was lost) becomes LeaseLost; anyone else's stands.
        if lost and current.uncancel() == 0:
            raise lost[0] from None
        raise
    finally:
        if timer is not None:
            timer.cancel()
        for renewal in list(renewals):
            renewal.cancel()
        if renewals:
            await asyncio.gather(*renewals, return_exceptions=True)


async def _renew(lease: Lease) -> None:
    """One renewal; LeaseLost when it is refused or fails."""
    try:
        kept = await lease.renew()
    except Exception as exc:
        raise LeaseLost(
            f"lost the target's lock: renewing it failed ({type(exc).__name__}: {exc}); "
            "the action was stopped"
        ) from exc
    if not kept:
        raise LeaseLost("lost the target's lock: another holder has it now; the action was stopped")
