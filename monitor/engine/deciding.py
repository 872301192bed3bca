"""Deciding: may this step of this policy act on this alert now? And claiming it if so.

The guardrails (:mod:`.guardrails`) give the decision from what the store knows; a
decision to act is re-checked against Alertmanager ("still firing?"), then claimed in
one commit with its audit record and the target's lock (:meth:`Store.start`). A step
deferred by a guardrail is a row with a due time that :meth:`Decider.redecide` takes up
again (on whichever replica's timer fires first).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, Protocol

from monitor import policy as policy_mod
from monitor.alerts.context import AlertContext
from monitor.engine import guardrails
from monitor.engine.attempt import Attempt
from monitor.engine.parts import Parts
from monitor.errors import PolicyError
from monitor.store.breaker import Limit, Refusal, Refused
from monitor.store.records import AlreadyClaimed, Audit, Execution, Lock
from monitor.store.states import State, lock_key

log = logging.getLogger("monitor.engine")

LOCK_TTL = timedelta(minutes=1)  # renewed while the runner works (see executing.Lease)
CONCURRENCY_RETRY = timedelta(seconds=30)
DECIDING = 16  # decisions in flight at once (guardrails, store reads, the firing re-check)

Run = Callable[[Attempt], Awaitable[None]]
CancelReverts = Callable[[Attempt, list[int]], Awaitable[None]]
Request = Callable[[Attempt], Awaitable[None]]


def approval_wait(decision: guardrails.Decision, now: datetime) -> guardrails.Decision:
    """A decision to act that a person must approve first: deferred until now, when the
    deferred decision is taken and the approval asked for (:mod:`.approval`)."""
    reason = "a person must approve this step: asking"
    wait = guardrails.Decision(
        "defer", [*decision.verdicts], reason=reason, guardrail="approval", due_at=now
    )
    wait.verdicts.append(guardrails.Verdict("approval", False, reason))
    return wait


class Gate(Protocol):
    """The blast-radius breaker as the deciders use it (:mod:`.breaker`): ``refresh``
    reads its state once per batch, ``admit`` counts one live action in memory, and
    ``settle`` records (and tells) that it opened, after the commit. ``limit`` is what
    the store admits each live claim by, in the claim's commit; ``refused`` hears of a
    claim it refused."""

    async def refresh(self, now: datetime) -> None: ...
    def admit(self) -> bool: ...
    def reason(self) -> str: ...
    async def settle(self, now: datetime) -> None: ...
    def limit(self, now: datetime) -> Limit | None: ...
    async def refused(self, now: datetime, refusal: Refusal) -> None: ...


class NoGate:
    """No breaker configured: every live action is admitted."""

    async def refresh(self, now: datetime) -> None:
        return None

    def admit(self) -> bool:
        return True

    def reason(self) -> str:
        return ""

    async def settle(self, now: datetime) -> None:
        return None

    def limit(self, now: datetime) -> Limit | None:
        return None

    async def refused(self, now: datetime, refusal: Refusal) -> None:
        return None


def identity(attempt: Attempt, fields: dict[str, Any]) -> dict[str, Any]:
    """A deferred execution decided again takes the identity of the alert decided (one
    coalesced into it when its own has resolved)."""
    ctx = attempt.ctx
    return {
        **fields,
        "fingerprint": ctx.fingerprint,
        "starts_at": ctx.starts_at,
        "labels": dict(ctx.labels),
        "alertname": ctx.labels.get("alertname", ""),
    }


class Decider:
    def __init__(
        self,
        parts: Parts,
        *,
        run: Run,
        cancel_reverts: CancelReverts,
        gate: Gate | None = None,
        request: Request | None = None,
    ) -> None:
        self.parts = parts
        self.run = run
        self.cancel_reverts = cancel_reverts
        self.gate: Gate = gate or NoGate()
        self.request = request
        self.paused_cached = parts.automation.paused
        self._deciding = asyncio.Semaphore(DECIDING)

    async def decide(
        self,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        step: int,
        existing: int | None = None,
        approved: bool = False,
    ) -> None:
        """Decide one step of one policy for one alert, and act on the decision. Deciding
        takes one of ``DECIDING`` slots; acting (and waiting to retry) does not."""
        attempt = Attempt(policy, ctx, step, existing=existing, approved=approved)
        async with self._deciding:
            claimed = await self._decide(attempt)
        if claimed is not None:
            await self.run(claimed)

    async def _decide(self, attempt: Attempt) -> Attempt | None:
        """The decision, recorded; the claimed attempt when it is to act (else None)."""
        parts, policy, ctx = self.parts, attempt.policy, attempt.ctx
        try:
            target = policy_mod.render_target(policy, ctx)
        except PolicyError as exc:
            await self._skip(attempt, "target", str(exc))
            return None
        attempt = attempt.but(target=target, target_key=policy_mod.target_key(target))
        now = parts.clock.now()
        first = attempt.step == 0 and attempt.existing is None
        rehearsal = parts.rehearsal(policy, attempt.step)
        inputs = await parts.store.decision_inputs(
            attempt.target_key,
            now - policy.budget.window,
            (ctx.fingerprint, ctx.starts_at),
            policy.name if first else None,
            rehearsal,
        )
        if inputs.scheduled_reverts:
            await self.cancel_reverts(attempt, inputs.scheduled_reverts)
        self.paused_cached = parts.automation.paused or inputs.paused
        decision = guardrails.decide(
            policy,
            target=target,
            starts_at=ctx.starts_at,
            now=now,
            paused=self.paused_cached,
            rehearsal=rehearsal,
            scope=parts.scope,
            history=inputs.history,
            denied=parts.denied.get(policy.name),
        )
        attempt = attempt.but(decision=decision)
        if decision.outcome == "skip":
            await self._skip(attempt, decision.guardrail, decision.reason)
            return None
        if decision.outcome == "defer":
            await self._defer(attempt)
            return None
        if inputs.resolved:
            state, evidence = "not_firing", "a resolved notification for this alert was received"
        else:
            state, evidence = await self.still_firing(ctx)
        if state != "firing":
            await self._skip(attempt, "stale", evidence)
            return None
        if (
            decision.outcome == "execute"
            and not attempt.approved
            and self.request is not None
            and parts.needs_approval(policy, attempt.step)
        ):
            if attempt.existing is None:  # a row first, then the request (as a batch does)
                await self._defer(attempt.but(decision=approval_wait(decision, now)))
            else:
                await self.request(attempt.but(decision=decision))
            return None
        if decision.outcome == "execute":
            await self.gate.refresh(now)
            if not self.gate.admit():
                await self._skip(attempt, "breaker", self.gate.reason())
                await self.gate.settle(now)
                return None
        decision.verdicts.append(guardrails.Verdict("stale", True, evidence))
        key = lock_key(attempt.target_key, rehearsal)
        attempt = attempt.but(lock=Lock(key, parts.owner, now, LOCK_TTL))
        claimed = await self._claim(attempt)
        await self.gate.settle(now)
        if claimed is None:
            return None
        attempt, locked = claimed
        if not locked:
            await self._busy(attempt)
            return None
        return attempt

    async def redecide(self, execution_id: int) -> None:
        """A deferred decision is due: take it (only one replica can) and decide again,
        for the alerts coalesced into it too: the oldest still firing is the one decided
        (the execution takes its identity when it is not the first alert's)."""
        parts = self.parts
        row = await parts.store.get(execution_id)
        if row is None or row.state != State.DEFERRED:
            return
        policy = parts.policies.get(row.policy)
        alive: tuple[str, datetime, dict[str, str]] | None = None
        if policy is None:
            why = "policy no longer exists"
        else:
            alive, why = await self._alive(row)
        if policy is None or alive is None:
            await parts.ledger.move(
                execution_id,
                "state",
                State.DEFERRED,
                State.CANCELLED,
                parts.ledger.note(
                    "cancel",
                    f"step {row.step + 1} of {row.policy!r} not taken: {why}",
                    policy=row.policy,
                    fingerprint=row.fingerprint,
                    target_key=row.target_key,
                    outcome="cancelled",
                ),
                reason=why,
                due_at=None,
                updated_at=parts.clock.now(),
            )
            return
        fingerprint, starts_at, labels = alive
        annotations, generator = await parts.store.alert_annotations(fingerprint, starts_at)
        ctx = AlertContext(labels, annotations, "firing", fingerprint, starts_at, generator)
        approved = row.approved_by is not None
        await self.decide(policy, ctx, row.step, existing=execution_id, approved=approved)

    async def _alive(
        self, row: Execution
    ) -> tuple[tuple[str, datetime, dict[str, str]] | None, str]:
        """The oldest alert of a deferred execution (its own, then those coalesced into
        it) that has not resolved; else None and why."""
        store = self.parts.store
        members = (await store.members([row.id])).get(row.id, [])
        alerts = [(row.fingerprint, row.starts_at, dict(row.labels))]
        alerts += [(m.fingerprint, m.starts_at, m.labels) for m in members]
        gone = await store.resolved_among([(fp, starts) for fp, starts, _ in alerts])
        alive = [a for a in alerts if (a[0], a[1]) not in gone]
        if alive:
            return alive[0], ""
        return None, "alert resolved" if len(alerts) == 1 else f"all {len(alerts)} alerts resolved"

    # Claiming -----------------------------------------------------------------------------

    async def _claim(self, attempt: Attempt) -> tuple[Attempt, bool] | None:
        """Claim the execution, record the decision and try the target's lock (one commit)."""
        parts, policy, decision = self.parts, attempt.policy, attempt.decision
        assert decision is not None and attempt.lock is not None
        now = parts.clock.now()
        fields: dict[str, Any] = {
            "state": State.RUNNING,
            "dry_run": decision.outcome == "rehearse",
            "reason": decision.reason or None,
            "due_at": None,
            "updated_at": now,
            "created_at": now,
            "owner": parts.owner,
        }
        message = f"{attempt.where}: {decision.outcome}"
        record = parts.ledger.note(
            "decision",
            message,
            attempt=attempt,
            outcome=decision.outcome,
            details=decision.as_dict(),
        )
        row = self._identity(attempt, fields) if attempt.existing is not None else None
        row = row or self.row(attempt, fields)
        live = decision.outcome == "execute"
        try:
            claimed = await parts.store.start(
                attempt.key,
                row,
                record,
                attempt.lock,
                attempt.existing,
                limit=self.gate.limit(now) if live else None,
                refused=self._refusal(attempt) if live else None,
            )
        except Refused as refused:  # the store's count was full: skipped there
            parts.metrics.skips.labels(policy.name, "breaker").inc()
            parts.metrics.decisions.labels(policy.name, "skip").inc()
            await self.gate.refused(now, refused.refusal)
            return None
        except AlreadyClaimed:
            parts.metrics.skips.labels(policy.name, "duplicate").inc()
            await parts.ledger.audit(
                parts.ledger.note(
                    "skip",
                    f"step {attempt.step + 1} of {policy.name!r} for this alert "
                    "is already claimed (re-delivery or another replica)",
                    attempt=attempt,
                    outcome="duplicate",
                )
            )
            return None
        if claimed is None:
            return None  # another replica took the deferred execution
        log.info("decision: %s", message)
        parts.metrics.decisions.labels(policy.name, decision.outcome).inc()
        execution_id, locked = claimed
        return attempt.but(execution_id=execution_id), locked

    def _refusal(self, attempt: Attempt) -> Audit:
        """The skip record of a claim the breaker refuses in the store, which completes
        the message with its reason (as :meth:`_skip` words it)."""
        decision = attempt.decision
        return self.parts.ledger.note(
            "skip",
            f"{attempt.policy.name!r}: breaker: ",
            attempt=attempt,
            outcome="breaker",
            details=decision.as_dict() if decision is not None else None,
        )

    async def _busy(self, attempt: Attempt) -> None:
        """The target is locked by another execution: decide again a little later."""
        parts = self.parts
        assert attempt.execution_id is not None
        due = parts.clock.now() + CONCURRENCY_RETRY
        await parts.ledger.move(
            attempt.execution_id,
            "state",
            State.RUNNING,
            State.DEFERRED,
            parts.ledger.note(
                "defer",
                f"{attempt.target_key} is busy with another execution; "
                f"deciding again at {due.isoformat()}",
                attempt=attempt,
                outcome="concurrency",
            ),
            due_at=due,
            reason="another execution is acting on the target",
        )
        parts.metrics.skips.labels(attempt.policy.name, "concurrency").inc()
        parts.timers.at(f"decide-{attempt.execution_id}", due, self.redecide, attempt.execution_id)

    @staticmethod
    def _identity(attempt: Attempt, fields: dict[str, Any]) -> dict[str, Any]:
        return identity(attempt, fields)

    def row(self, attempt: Attempt, fields: dict[str, Any]) -> dict[str, Any]:
        return {
            "alertname": attempt.ctx.labels.get("alertname", ""),
            "labels": dict(attempt.ctx.labels),
            "target_key": attempt.target_key,
            "target": dict(attempt.target),
            "actions": [],
            **fields,
        }

    # Not now ------------------------------------------------------------------------------

    async def _skip(self, attempt: Attempt, guardrail: str, reason: str) -> None:
        parts, policy, decision = self.parts, attempt.policy, attempt.decision
        parts.metrics.skips.labels(policy.name, guardrail).inc()
        parts.metrics.decisions.labels(policy.name, "skip").inc()
        record = parts.ledger.note(
            "skip",
            f"{policy.name!r}: {guardrail}: {reason}",
            attempt=attempt,
            outcome=guardrail,
            details=decision.as_dict() if decision is not None else None,
        )
        if attempt.existing is None:
            await parts.ledger.audit(record)
            return
        await parts.ledger.move(
            attempt.existing,
            "state",
            State.DEFERRED,
            State.SKIPPED,
            record,
            reason=f"{guardrail}: {reason}",
            due_at=None,
            updated_at=parts.clock.now(),
        )

    async def _defer(self, attempt: Attempt) -> None:
        parts, policy, decision = self.parts, attempt.policy, attempt.decision
        assert decision is not None and decision.due_at is not None
        due, now = decision.due_at, parts.clock.now()
        parts.metrics.skips.labels(policy.name, decision.guardrail).inc()
        record = parts.ledger.note(
            "defer",
            f"{policy.name!r}: {decision.guardrail}: {decision.reason}",
            attempt=attempt,
            outcome=decision.guardrail,
            details=decision.as_dict(),
        )
        if attempt.existing is not None:
            execution_id = attempt.existing
            await parts.ledger.move(
                execution_id,
                "state",
                State.DEFERRED,
                State.DEFERRED,
                record,
                **self._identity(attempt, {"due_at": due, "reason": decision.reason}),
                updated_at=now,
            )
        else:
            fields = {
                "state": State.DEFERRED,
                "dry_run": parts.rehearsal(attempt.policy, attempt.step),
                "reason": decision.reason,
                "due_at": due,
                "created_at": now,
                "updated_at": now,
                "owner": parts.owner,
            }
            try:
                execution_id = await parts.store.defer(
                    attempt.key, self.row(attempt, fields), record
                )
            except AlreadyClaimed:
                return
            log.info("defer: %s", record.message)
            parts.metrics.decisions.labels(policy.name, "defer").inc()
        # Also redecide's last act when the target still waits: it re-arms its own job.
        parts.timers.at(f"decide-{execution_id}", due, self.redecide, execution_id, rearm=True)

    async def still_firing(self, ctx: AlertContext) -> tuple[str, str]:
        """Ask Alertmanager (or Prometheus); the store's own answer came with the inputs."""
        firing = self.parts.firing
        if not firing.configured:
            return "firing", "no Alertmanager/Prometheus to re-check; trusting the webhook"
        state, evidence = await firing.state(ctx)
        if state == "unknown":
            return "unknown", f"cannot confirm the alert still fires ({evidence})"
        return state, evidence
