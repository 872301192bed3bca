"""Executing a claimed step: plan and apply each action through the one action runner,
record what happened, and leave the row in a final state and the target's lock free on
every way out (success, failure, timeout, or the task being cancelled mid-action).

The runner (:mod:`monitor.actions.runner`) owns timeouts, retries and the duration
metric; the target's lock is renewed while it works (:class:`TargetLease`), so the lock
can be short and a crashed replica's target is free again within a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import pydantic

from monitor import policy as policy_mod
from monitor.actions.registry import ActionContext, HistoryEntry, Plan
from monitor.actions.runner import AttemptReport
from monitor.engine import paging
from monitor.engine.attempt import Attempt, context_of
from monitor.engine.parts import Parts
from monitor.errors import ActionError, NotConfigured, PolicyError
from monitor.store.facade import Store
from monitor.store.records import ActionEntry, Audit, Execution, Lock
from monitor.store.states import State, VerifyState

log = logging.getLogger("monitor.engine")

Escalate = Callable[[Attempt, str], Awaitable[None]]
Verify = Callable[[int], Awaitable[None]]
Diagnose = Callable[[Attempt], None]
Investigate = Callable[[Attempt], Awaitable[None]]
REPORTED = (State.SUCCEEDED, State.FAILED, State.REHEARSED, State.SKIPPED)
VERIFIED = (
    VerifyState.PENDING,
    VerifyState.RECOVERED,
    VerifyState.NOT_RECOVERED,
    VerifyState.ERROR,
)


def unplanned(name: str, params: Mapping[str, Any], exc: NotConfigured) -> Plan:
    """A rehearsed action's plan when it cannot be planned against live state (no
    Kubernetes credentials, say): what would run, with which parameters, and why no more."""
    return Plan(
        action=name,
        summary=f"would run {name} with {json.dumps(params, sort_keys=True, default=str)} "
        f"(not planned against live state: {exc})",
        details={"unplanned": str(exc)},
    )


class TargetLease:
    """The target's lock as the runner renews it (every third of its time to live)."""

    def __init__(self, store: Store, lock: Lock) -> None:
        self.store = store
        self.lock = lock
        self.interval = lock.ttl.total_seconds() / 3

    async def renew(self) -> bool:
        return await self.store.renew(self.lock)


class Executor:
    def __init__(
        self,
        parts: Parts,
        *,
        verify: Verify,
        escalate: Escalate,
        diagnose: Diagnose | None = None,
        investigate: Investigate | None = None,
    ) -> None:
        self.parts = parts
        self.verify = verify
        self.escalate = escalate
        self.diagnose = diagnose  # starts the policy's diagnostics beside the first step
        self.investigate = investigate  # gathers them again after a step that failed

    async def run(self, attempt: Attempt) -> None:
        """Run the step's actions in order, stopping at the first that fails."""
        parts = self.parts
        assert attempt.execution_id is not None and attempt.lock is not None
        lease = TargetLease(parts.store, attempt.lock)
        entries: list[ActionEntry] = []
        results: list[Audit] = []  # the last action's result, committed with the finish
        failed: str | None = None
        finished = False
        if attempt.step == 0 and self.diagnose is not None:
            self.diagnose(attempt)  # alongside, not in front: the step does not wait
        parts.metrics.executions_in_flight.inc()
        try:
            for compiled in attempt.policy.steps[attempt.step]:
                if results:  # an earlier action's result is written before the next acts
                    await parts.ledger.audit(results.pop(), attempt.execution_id)
                entry, failed, result = await self._one_action(attempt, compiled, lease)
                entries.append(entry)
                results.extend([result] if result is not None else [])
                if failed:
                    break
            state = await self._finish(attempt, entries, failed, results)
            finished = True
        finally:
            parts.metrics.executions_in_flight.dec()
            if not finished:
                # Cancelled or broken mid-action: never leave the row running and the
                # target locked behind us.
                await asyncio.shield(self._abandon(attempt, entries, results))
        if failed and state in (State.FAILED, State.REHEARSED):
            why = "rehearsal: the step would fail" if attempt.dry_run else "step failed"
            if self.investigate is not None:
                await self.investigate(attempt)  # the page that follows carries the evidence
            await self.escalate(attempt, f"{why}: {failed}")

    async def _one_action(
        self, attempt: Attempt, compiled: policy_mod.CompiledAction, lease: TargetLease
    ) -> tuple[ActionEntry, str | None, Audit | None]:
        """Plan, then (unless dry-run) apply one action: its entry, its error (or None) and
        the audit record of its result, for the caller to write."""
        parts, policy, name = self.parts, attempt.policy, compiled.action
        entry = ActionEntry(action=name)
        tries = {"count": 0}

        async def retrying(report: AttemptReport) -> None:
            tries["count"] += 1
            if report.retry_in is None:
                return  # the last try: its error is the action's result, audited below
            await parts.ledger.audit(
                parts.ledger.note(
                    "retry",
                    f"{name} ({report.phase}) try {report.number} failed: {report.error}; "
                    f"trying again in {report.retry_in:.1f}s",
                    attempt=attempt,
                    outcome=report.phase,
                ),
                attempt.execution_id,
            )

        try:
            action = parts.registry.get(name)
            params = policy_mod.parse_params(compiled, attempt.ctx, parts.registry)
            entry.params = params.model_dump(mode="json")
            actx = ActionContext(
                alert=attempt.ctx,
                target=attempt.target,
                services=parts.services,
                policy=policy.name,
                step=attempt.step,
                execution_id=str(attempt.execution_id),
                dry_run=attempt.dry_run,
                now=parts.clock.now,
                log=log,
            )
            if action.reads_history or action.reads_evidence:
                ladder = await self._ladder(attempt)
                if action.reads_history:
                    actx.history = _history(ladder, attempt.step)
                if action.reads_evidence:
                    actx.evidence = await paging.evidence(parts, ladder)
            retry = None
            if compiled.retries is not None:  # the step's count, the action's own waits
                base = action.retry_policy(params, actx) or parts.runner.retry
                retry = dataclasses.replace(base, attempts=compiled.retries + 1)
            how: dict[str, Any] = {
                "timeout": compiled.timeout,
                "retry": retry,
                "lease": lease,
                "on_attempt": retrying,
            }
            try:
                plan = await parts.runner.plan(action, params, actx, **how)
            except NotConfigured as exc:
                if not attempt.dry_run:
                    raise
                plan = unplanned(name, entry.params, exc)
            entry.plan = plan.model_dump(mode="json")
            await parts.ledger.audit(
                parts.ledger.note(
                    "plan", plan.summary, attempt=attempt, outcome=name, details=entry.plan
                ),
                attempt.execution_id,
            )
            if attempt.dry_run:
                parts.metrics.executions.labels(policy.name, name, "rehearsed").inc()
                return entry, None, None
            tries["count"] = 0
            outcome = await parts.runner.apply(action, params, actx, plan, **how)
            entry.outcome = outcome.model_dump(mode="json")
            entry.attempts = tries["count"] + 1
            if attempt.execution_id is not None:  # the page it opened, if any, recorded
                await paging.opened(parts, attempt.execution_id, name, entry.outcome)
            parts.metrics.executions.labels(policy.name, name, "succeeded").inc()
            done = parts.ledger.note(
                "execute",
                outcome.summary,
                attempt=attempt,
                outcome="succeeded",
                details=entry.outcome,
            )
            return entry, None, done
        except (ActionError, PolicyError, KeyError, pydantic.ValidationError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        except Exception as exc:  # an action's bug must not take the engine down
            log.exception("action %s raised", name)
            message = f"{type(exc).__name__}: {exc}"
        entry.error = message
        entry.attempts = tries["count"]
        if attempt.dry_run:  # a rehearsal that could not plan: it would have failed
            parts.metrics.executions.labels(policy.name, name, "rehearsed").inc()
            failure = parts.ledger.note(
                "plan", f"rehearsal: {name} would fail: {message}", attempt=attempt, outcome=name
            )
            return entry, f"{name}: {message}", failure
        parts.metrics.executions.labels(policy.name, name, "failed").inc()
        failure = parts.ledger.note(
            "execute", f"{name} failed: {message}", attempt=attempt, outcome="failed"
        )
        return entry, f"{name}: {message}", failure

    async def _finish(
        self,
        attempt: Attempt,
        entries: list[ActionEntry],
        failed: str | None,
        results: list[Audit],
    ) -> State:
        parts, policy = self.parts, attempt.policy
        assert attempt.execution_id is not None
        now = parts.clock.now()
        live = State.FAILED if failed else State.SUCCEEDED
        state = State.REHEARSED if attempt.dry_run else live
        fields: dict[str, Any] = {
            "actions": [e.model_dump(mode="json", exclude_none=True) for e in entries],
            "finished_at": now,
            "updated_at": now,
            "error": failed,
        }
        message = f"{attempt.where}: {state}"
        verifying = state == State.SUCCEEDED or (state == State.REHEARSED and not failed)
        if state == State.SUCCEEDED:
            # Counted once applied: a target named by an alert but not there adds no series.
            parts.metrics.target_remediated(policy.name, attempt.target_key)
        if verifying:
            # A rehearsal is verified too: it says whether the step would have been enough.
            fields.update(verify_state=VerifyState.PENDING, verify_at=now + policy.verify.interval)
            message += f"; verifying from {fields['verify_at'].isoformat()}"
        elif failed:
            message += f": {'would fail: ' if attempt.dry_run else ''}{failed}"
        moved = await parts.ledger.move(
            attempt.execution_id,
            "state",
            State.RUNNING,
            state,
            parts.ledger.note("finish", message, attempt=attempt, outcome=state),
            release=attempt.lock,
            before=results,
            **fields,
        )
        if not moved:  # taken from us (the sweep failed it): what happened is still said
            for result in results:
                await parts.ledger.audit(result, attempt.execution_id)
            return State.RUNNING
        if verifying:
            parts.timers.at(
                f"verify-{attempt.execution_id}",
                fields["verify_at"],
                self.verify,
                attempt.execution_id,
            )
        return state

    async def _abandon(
        self, attempt: Attempt, entries: list[ActionEntry], results: list[Audit]
    ) -> None:
        """The step stopped mid-action (cancelled, or the store failed): failed, unlocked."""
        parts = self.parts
        assert attempt.execution_id is not None
        now = parts.clock.now()
        why = "interrupted while acting (cancelled or the service stopping)"
        try:
            await parts.ledger.move(
                attempt.execution_id,
                "state",
                State.RUNNING,
                State.FAILED,
                parts.ledger.note(
                    "finish", f"{attempt.where}: failed: {why}", attempt=attempt, outcome="failed"
                ),
                release=attempt.lock,
                before=results,
                actions=[e.model_dump(mode="json", exclude_none=True) for e in entries],
                finished_at=now,
                updated_at=now,
                error=why,
            )
        except Exception:  # the store is down too: the lock expires on its own
            log.exception("cannot record that execution %s was interrupted", attempt.execution_id)
            if attempt.lock is not None:
                with contextlib.suppress(Exception):
                    await parts.store.release(attempt.lock)

    async def reap(self, row: Execution) -> None:
        """A step left ``running`` by a replica that stopped mid-action (its lock expired):
        failed, and the ladder goes on as for any failed step."""
        parts = self.parts
        why = "abandoned: the replica acting on it stopped (its lock on the target expired)"
        now = parts.clock.now()
        moved = await parts.ledger.move(
            row.id,
            "state",
            State.RUNNING,
            State.FAILED,
            parts.ledger.note(
                "finish",
                f"step {row.step + 1} of {row.policy!r} on {row.target_key}: failed: {why}",
                policy=row.policy,
                fingerprint=row.fingerprint,
                target_key=row.target_key,
                outcome="failed",
            ),
            finished_at=now,
            updated_at=now,
            error=why,
        )
        policy = parts.policies.get(row.policy)
        if not moved or policy is None:
            return
        annotations, generator = await parts.store.alert_annotations(row.fingerprint, row.starts_at)
        ctx = context_of(row, annotations, generator)
        attempt = Attempt(
            policy, ctx, row.step, target=row.target, target_key=row.target_key, execution_id=row.id
        )
        if self.investigate is not None:
            await self.investigate(attempt)
        await self.escalate(attempt, f"step failed: {why}")

    async def _ladder(self, attempt: Attempt) -> list[Execution]:
        """This alert's executions of the policy up to this step (this one included)."""
        rows = await self.parts.store.for_alert(
            attempt.ctx.fingerprint, attempt.ctx.starts_at, attempt.policy.name
        )
        return [row for row in rows if row.step <= attempt.step]


def _history(rows: list[Execution], step: int) -> tuple[HistoryEntry, ...]:
    """The earlier steps of the ladder, for actions that report them."""
    return tuple(entry for row in rows if row.step < step for entry in _history_of(row))


def _history_of(row: Execution) -> list[HistoryEntry]:
    status = str(row.state) if row.state in REPORTED else "planned"
    verification = str(row.verify_state) if row.verify_state in VERIFIED else None
    history = []
    for entry in row.actions:
        plan = entry.plan or {}
        outcome = entry.outcome or {}
        history.append(
            HistoryEntry.model_validate(
                {
                    "step": row.step + 1,  # as people read it
                    "action": entry.action,
                    "status": status,
                    "summary": plan.get("summary", ""),
                    "changes": plan.get("changes", []),
                    "result": outcome.get("summary") or entry.error,
                    "verification": verification,
                    "verification_detail": row.verify_detail,
                    "at": row.finished_at,
                    "execution_id": str(row.id),
                }
            )
        )
    return history
