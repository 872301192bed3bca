"""Diagnostics: the evidence a policy's ``diagnose:`` gathers, kept with the execution.

When the first step of a policy runs, its diagnostics start alongside it in a task of
their own (:meth:`Diagnoser.start`): the step never waits for them, and they do not
take the engine's action slots. A step that waits for a person's approval gathers them
when the request is made (:meth:`Diagnoser.gather`, phase ``before``), so the approver
sees the evidence with the plan; once approved, the step does not gather them again
unless they are older than :data:`FRESH`. Approved while that gathering still runs (the
API, the command line), the step waits for it (until its diagnostics' longest timeout
from its start) instead of starting a second one beside it. After a failed verification
(phase ``after_verification``) or a step that failed outright (phase ``after_failure``)
they run again and the escalation waits for them, each bounded by its ``timeout``. Each
result is one evidence row (:meth:`monitor.store.facade.Store.add_evidence`) and counts
in ``conea_monitor_diagnostics_total`` and ``conea_monitor_diagnostic_seconds``; a
diagnostic that fails or times out is recorded as such and never fails the remediation.
Rehearsals gather too: diagnostics only read.

Their blocking calls (the ``kubernetes`` client, Prometheus queries, a PostgreSQL
target's host name lookup, the store's writes) run in a pool of :data:`THREADS` threads
of their own (:func:`monitor.threads.using`), never in asyncio's default pool, where the
steps' calls run: a burst of slow diagnostics cannot delay a step. :meth:`Diagnoser.close`
(the engine's stop) drops what is queued there and does not wait for a call in progress
(each is bounded by the client's request timeout).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pydantic

from monitor import policy as policy_mod
from monitor import threads
from monitor.actions.diagnose import common as diagnose_common
from monitor.actions.registry import ActionContext
from monitor.actions.runner import ActionRunner, ActionTimeout, RetryPolicy
from monitor.alerts.context import AlertContext
from monitor.engine.attempt import Attempt
from monitor.engine.parts import Parts
from monitor.errors import ActionError, PolicyError, StoreError
from monitor.store.records import Evidence

log = logging.getLogger("monitor.engine")

BEFORE = "before"
AFTER_VERIFICATION = "after_verification"
AFTER_FAILURE = "after_failure"
_ERROR_LENGTH = 1000
DEFAULT_TIMEOUT = 10.0  # seconds: a diagnostic without its own timeout
THREADS = 4  # the diagnostics' worker threads (a replica's; each call is short and bounded)
FRESH = timedelta(minutes=10)  # evidence gathered for an approval is not gathered again
OUTCOMES = {"ok": "ok", "failed": "error", "timed_out": "timeout"}  # evidence -> metric


@dataclasses.dataclass(frozen=True)
class _Gathering:
    """A ``before`` gathering in flight: ``done`` once it ended; ``deadline`` (the loop's
    time) when its slowest diagnostic times out."""

    done: asyncio.Future[None]
    deadline: float


class Diagnoser:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        # Tried once, each bounded by its own timeout; no slots: a diagnostic never
        # holds up a step waiting for a slot.
        self.runner = ActionRunner(
            retry=RetryPolicy(attempts=1, deadline=3600.0),
            observe=parts.runner.observe,
            monotonic=parts.runner.monotonic,
        )
        self.pool = ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="diagnose")
        self._tasks: set[asyncio.Task[list[Evidence]]] = set()
        # execution -> its ``before`` gathering in flight (an approval's): ends when done
        self._gathering: dict[int, _Gathering] = {}

    def start(self, attempt: Attempt) -> None:
        """Gather the ``before`` evidence of ``attempt``'s policy in the background (an
        approved step: unless it was gathered for the approval less than FRESH ago)."""
        policy = attempt.policy
        if not policy.diagnostics or attempt.execution_id is None:
            return
        task = asyncio.get_running_loop().create_task(
            self._before(attempt, attempt.execution_id), name=f"diagnose-{attempt.execution_id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self, within: float | None = None) -> None:
        """Wait for the diagnostics started so far (``within`` seconds, then cancel)."""
        tasks = set(self._tasks)
        if not tasks:
            return
        _, late = await asyncio.wait(tasks, timeout=within)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late, timeout=2.0)

    def close(self) -> None:
        """Drop the calls queued for the diagnostics' threads; wait for none (a call in
        progress ends within its request timeout, its result unused)."""
        self.pool.shutdown(wait=False, cancel_futures=True)

    @property
    def running(self) -> int:
        return len(self._tasks)

    async def fresh(self, execution_id: int) -> bool:
        """Has ``execution_id`` ``before`` evidence gathered less than FRESH ago?"""
        since = self.parts.clock.now() - FRESH
        found = await self.parts.store.evidence(execution_id)
        return any(e.phase == BEFORE and e.started_at >= since for e in found)

    async def _before(self, attempt: Attempt, execution_id: int) -> list[Evidence]:
        if attempt.approved and (
            await self._joined(execution_id) or await self.fresh(execution_id)
        ):  # gathered when the approval was asked for: the approver saw it
            return []
        return await self.gather(attempt.policy, attempt.ctx, attempt.target, execution_id, BEFORE)

    async def _joined(self, execution_id: int) -> bool:
        """Was ``execution_id``'s ``before`` evidence being gathered here (the approval's)?
        Then wait for it, until its deadline, without cancelling it."""
        gathering = self._gathering.get(execution_id)
        if gathering is None:
            return False
        try:
            async with asyncio.timeout_at(gathering.deadline):
                await asyncio.shield(gathering.done)
        except TimeoutError:
            log.warning(
                "the diagnostics of execution %s gathered for its approval are still running "
                "past their timeout; the approved step does not gather them again",
                execution_id,
            )
        return True

    async def gather(
        self,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        target: Mapping[str, str],
        execution_id: int,
        phase: str,
    ) -> list[Evidence]:
        """Run every diagnostic of ``policy`` at once and store each result."""
        if not policy.diagnostics:
            return []
        loop = asyncio.get_running_loop()
        longest = max(d.timeout or DEFAULT_TIMEOUT for d in policy.diagnostics)
        gathering = _Gathering(loop.create_future(), loop.time() + longest)
        if phase == BEFORE:  # an approved step joins it rather than gather beside it
            self._gathering.setdefault(execution_id, gathering)
        try:
            with threads.using(self.pool):  # the tasks gather starts inherit the pool
                found = await asyncio.gather(
                    *(
                        self._one(policy, d, ctx, target, execution_id, phase)
                        for d in policy.diagnostics
                    )
                )
        finally:
            if self._gathering.get(execution_id) is gathering:
                del self._gathering[execution_id]
            gathering.done.set_result(None)
        return list(found)

    async def _one(
        self,
        policy: policy_mod.Policy,
        diagnostic: policy_mod.CompiledAction,
        ctx: AlertContext,
        target: Mapping[str, str],
        execution_id: int,
        phase: str,
    ) -> Evidence:
        parts = self.parts
        limit = diagnostic.timeout or DEFAULT_TIMEOUT
        name = diagnostic.label
        started = parts.clock.now()
        began = self.runner.monotonic()
        outcome, error, summary = "ok", None, ""
        result: dict[str, Any] | None = None
        truncated = False
        try:
            async with asyncio.timeout(limit):
                action = parts.registry.get(diagnostic.action)
                params = policy_mod.parse_params(diagnostic, ctx, parts.registry)
                actx = ActionContext(
                    alert=ctx,
                    target=target,
                    services=parts.services,
                    policy=policy.name,
                    execution_id=str(execution_id),
                    now=parts.clock.now,
                    log=log,
                )
                plan = await self.runner.plan(action, params, actx, timeout=limit)
                done = await self.runner.apply(action, params, actx, plan, timeout=limit)
            summary = done.summary
            found = done.details.get("result")
            result = found if isinstance(found, dict) else None
            truncated = bool(done.details.get("truncated"))
        except (TimeoutError, ActionTimeout):
            outcome, error = "timed_out", f"did not finish within {limit:g}s"
        except (ActionError, PolicyError, KeyError, pydantic.ValidationError) as exc:
            outcome = "failed"
            error = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        except Exception as exc:  # a diagnostic's bug must not touch the remediation
            log.exception("diagnostic %s of %s raised", name, policy.name)
            outcome, error = "failed", f"{type(exc).__name__}: {exc}"
        parts.metrics.diagnostics.labels(diagnostic.action, OUTCOMES[outcome]).inc()
        parts.metrics.diagnostic_seconds.labels(diagnostic.action).observe(
            max(self.runner.monotonic() - began, 0.0)
        )
        if error is not None:
            error = diagnose_common.redact(error)[:_ERROR_LENGTH]
            summary = f"{name} {outcome.replace('_', ' ')}: {error}"[:_ERROR_LENGTH]
        item = Evidence(
            id=0,
            execution_id=execution_id,
            phase=phase,
            name=name,
            action=diagnostic.action,
            started_at=started,
            finished_at=parts.clock.now(),
            outcome=outcome,
            error=error,
            summary=summary,
            result=result,
            truncated=truncated,
        )
        try:
            stored = await parts.store.add_evidence(item)
        except StoreError as exc:
            log.warning("cannot store the evidence %s of execution %s: %s", name, execution_id, exc)
            return item
        return dataclasses.replace(item, id=stored)
