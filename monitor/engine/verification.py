"""Verification and escalation: did the step work? If not, the next step of the ladder.

A pending verification is a row with a due time (``verify_at``); each check is taken by
one replica only (compare-and-set on ``verify_at``). Recovered when the policy's PromQL
returns no series, or by default when the alert itself is no longer firing (a resolved
notification, Alertmanager, or Prometheus's ``ALERTS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from monitor import policy as policy_mod
from monitor.alerts.context import AlertContext
from monitor.engine import paging
from monitor.engine.attempt import Attempt, context_of
from monitor.engine.parts import Parts
from monitor.engine.verifier import QueryError
from monitor.errors import PolicyError
from monitor.store.records import Execution
from monitor.store.states import VerifyState

Decide = Callable[[policy_mod.Policy, AlertContext, int], Awaitable[None]]
Investigate = Callable[[Execution, policy_mod.Policy, AlertContext], Awaitable[object]]


class Verification:
    def __init__(
        self, parts: Parts, *, decide: Decide, investigate: Investigate | None = None
    ) -> None:
        self.parts = parts
        self.decide = decide
        # gathers the policy's diagnostics again after a failed verification, before
        # escalating (each bounded by its timeout)
        self.investigate = investigate

    async def verify(self, execution_id: int) -> None:
        parts = self.parts
        row = await parts.store.get(execution_id)
        if row is None or row.verify_state != VerifyState.PENDING:
            return
        policy = parts.policies.get(row.policy)
        if policy is None:
            await parts.ledger.move(
                execution_id,
                "verify_state",
                VerifyState.PENDING,
                VerifyState.ERROR,
                parts.ledger.note(
                    "verify",
                    "cannot verify: the policy no longer exists",
                    policy=row.policy,
                    fingerprint=row.fingerprint,
                    target_key=row.target_key,
                    outcome=VerifyState.ERROR,
                ),
                verify_detail="policy no longer exists",
                verify_at=None,
            )
            return
        now = parts.clock.now()
        # Claim this check so only one replica evaluates it.
        next_at = now + policy.verify.interval
        if not await parts.store.claim_verify_tick(execution_id, row.verify_at, next_at):
            return
        annotations, generator = await parts.store.alert_annotations(row.fingerprint, row.starts_at)
        ctx = context_of(row, annotations, generator)
        recovered, evidence = await self._recovered(policy, ctx)
        assert row.finished_at is not None
        deadline = row.finished_at + policy.verify.window
        if recovered:
            await self.verified(row, policy, ctx, VerifyState.RECOVERED, evidence)
        elif now >= deadline:
            await self.verified(row, policy, ctx, VerifyState.NOT_RECOVERED, evidence)
            if self.investigate is not None:
                await self.investigate(row, policy, ctx)
            await self.escalate(
                Attempt(
                    policy,
                    ctx,
                    row.step,
                    target_key=row.target_key,
                    execution_id=execution_id,
                ),
                f"not recovered within {policy.verify.window}: {evidence}",
            )
        else:
            parts.timers.at(
                f"verify-{execution_id}", next_at, self.verify, execution_id, rearm=True
            )

    async def _recovered(self, policy: policy_mod.Policy, ctx: AlertContext) -> tuple[bool, str]:
        parts = self.parts
        if await parts.store.alert_resolved(ctx.fingerprint, ctx.starts_at):
            return True, "Alertmanager sent the alert as resolved"
        try:
            promql = policy_mod.render_promql(policy, ctx)
        except PolicyError as exc:
            return False, str(exc)
        if promql is not None:
            if parts.verifier is None:
                return False, "no prometheus_url configured to evaluate the verify query"
            try:
                holds = await parts.verifier.holds(promql)
            except QueryError as exc:
                return False, str(exc)
            if holds:
                return False, f"{promql} still returns series"
            return True, f"{promql} returns no series"
        state, evidence = await parts.firing.state(ctx)
        return state == "not_firing", evidence

    async def verified(
        self,
        row: Execution,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        result: VerifyState,
        evidence: str,
    ) -> None:
        parts = self.parts
        moved = await parts.ledger.move(
            row.id,
            "verify_state",
            VerifyState.PENDING,
            result,
            parts.ledger.note(
                "verify",
                f"{result.replace('_', ' ')}: {evidence}",
                policy=policy.name,
                ctx=ctx,
                target_key=row.target_key,
                outcome=result,
            ),
            verify_detail=evidence,
            verify_at=None,
        )
        if not moved or row.dry_run:  # a rehearsal's verdict is recorded, not counted
            return
        parts.metrics.verifications.labels(policy.name, result).inc()
        if result == VerifyState.RECOVERED:
            parts.metrics.time_to_recover.labels(policy.name).observe(
                max(0.0, (parts.clock.now() - ctx.starts_at).total_seconds())
            )
            if paging.may_page(parts):  # the ladder's pages (this step's and earlier) end
                ladder = await parts.store.for_alert(ctx.fingerprint, ctx.starts_at, policy.name)
                await paging.resolve(
                    parts,
                    [r for r in ladder if r.step <= row.step],
                    ctx,
                    f"step {row.step + 1} verified: {evidence}",
                )

    async def escalate(self, attempt: Attempt, why: str) -> None:
        """The step failed or did not help: the ladder's next step, or a person."""
        parts, policy = self.parts, attempt.policy
        following = attempt.step + 1
        rehearsal = parts.rehearsal(policy, attempt.step)
        if following >= len(policy.steps):
            person = "a person would have to" if rehearsal else "a person must"
            await parts.ledger.audit(
                parts.ledger.note(
                    "escalate",
                    f"{why}; no step left after step {attempt.step + 1} of "
                    f"{policy.name!r}: {person} take over",
                    policy=policy.name,
                    ctx=attempt.ctx,
                    outcome="exhausted",
                ),
                attempt.execution_id,
            )
            return
        if not rehearsal:
            parts.metrics.escalations.labels(policy.name).inc()
        verb = "would escalate" if rehearsal else "escalating"
        await parts.ledger.audit(
            parts.ledger.note(
                "escalate",
                f"{why}; {verb} to step {following + 1} of {policy.name!r}",
                policy=policy.name,
                ctx=attempt.ctx,
                outcome=f"step {following + 1}",
            ),
            attempt.execution_id,
        )
        await self.decide(policy, attempt.ctx, following)
