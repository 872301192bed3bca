"""When an alert resolves: cancel what waits, count verifications as recovered, schedule
reverts after the stabilisation delay, and run them (or cancel them when the alert fires
again within the delay). Reverts run through the same action runner as the steps.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence

from monitor import policy as policy_mod
from monitor.actions.registry import ActionContext
from monitor.actions.runner import AttemptReport
from monitor.alerts.context import AlertContext
from monitor.engine import paging
from monitor.engine.attempt import Attempt, context_of
from monitor.engine.parts import Parts
from monitor.store.records import ActionEntry, Execution
from monitor.store.states import RevertState, State, VerifyState

log = logging.getLogger("monitor.engine")

Verified = Callable[[Execution, policy_mod.Policy, AlertContext, VerifyState, str], Awaitable[None]]


WAITING = (State.DEFERRED, State.AWAITING_APPROVAL)
"""Steps that have not acted yet: cancelled when their alert resolves."""


class Resolution:
    def __init__(self, parts: Parts, *, verified: Verified) -> None:
        self.parts = parts
        self.verified = verified

    async def on_resolved(self, ctx: AlertContext) -> None:
        await self.on_resolved_many([ctx])

    async def on_resolved_many(self, ctxs: Sequence[AlertContext]) -> None:
        """Alerts resolved (a batch's worth): their executions read in one go. A deferred
        decision with other alerts coalesced into it waits for its time, when the oldest
        of them still firing is decided (or it is cancelled if none is)."""
        parts = self.parts
        found = await parts.store.for_alerts([(c.fingerprint, c.starts_at) for c in ctxs])
        if not found:
            return
        waiting = [r.id for rows in found.values() for r in rows if r.state in WAITING]
        shared = set((await parts.store.members(waiting)).keys()) if waiting else set()
        for ctx in ctxs:
            rows = found.get((ctx.fingerprint, ctx.starts_at), [])
            for row in rows:
                await self._resolved(row, ctx, row.id in shared)
            await self._end_pages(rows, ctx)

    async def _end_pages(self, rows: Sequence[Execution], ctx: AlertContext) -> None:
        """Resolve the pages of ladders no verification has resolved or is resolving
        (a recovered verification resolves its ladder's pages itself)."""
        parts = self.parts
        if not paging.may_page(parts):
            return
        for name in sorted({row.policy for row in rows}):
            ladder = [row for row in rows if row.policy == name]
            verified = any(
                row.verify_state == VerifyState.RECOVERED
                or (row.verify_state == VerifyState.PENDING and parts.policies.get(name))
                for row in ladder
            )
            if not verified:
                await paging.resolve(parts, ladder, ctx, "the alert resolved")

    async def _resolved(self, row: Execution, ctx: AlertContext, shared: bool) -> None:
        parts = self.parts
        now = parts.clock.now()
        policy = parts.policies.get(row.policy)
        if (
            row.state in WAITING
            and not shared
            and await parts.ledger.move(
                row.id,
                "state",
                row.state,
                State.CANCELLED,
                parts.ledger.note(
                    "cancel",
                    "alert resolved before the deferred step ran"
                    if row.state == State.DEFERRED
                    else "alert resolved while the step awaited approval",
                    policy=row.policy,
                    ctx=ctx,
                    target_key=row.target_key,
                    outcome="cancelled",
                ),
                reason="alert resolved",
                updated_at=now,
            )
        ):
            parts.timers.cancel(f"decide-{row.id}")
            parts.timers.cancel(f"approval-{row.id}")
            if row.state == State.AWAITING_APPROVAL:
                await paging.end(parts, row.id, "the approval request was cancelled")
        if row.verify_state == VerifyState.PENDING and policy is not None:
            parts.timers.cancel(f"verify-{row.id}")
            await self.verified(
                row,
                policy,
                ctx,
                VerifyState.RECOVERED,
                "Alertmanager sent the alert as resolved",
            )
        if (
            row.state == State.SUCCEEDED
            and policy is not None
            and policy.revert.enabled
            and row.revert_state == RevertState.NONE
            and any(entry.revert_state is not None for entry in row.actions)
        ):
            await self._schedule(row, policy, ctx)

    async def _schedule(self, row: Execution, policy: policy_mod.Policy, ctx: AlertContext) -> None:
        parts = self.parts
        at = parts.clock.now() + policy.revert.after
        if await parts.ledger.move(
            row.id,
            "revert_state",
            RevertState.NONE,
            RevertState.SCHEDULED,
            parts.ledger.note(
                "revert",
                f"alert resolved; reverting at {at.isoformat()} unless it fires again",
                policy=row.policy,
                ctx=ctx,
                target_key=row.target_key,
                outcome="scheduled",
            ),
            revert_at=at,
        ):
            parts.timers.at(f"revert-{row.id}", at, self.revert, row.id)

    async def cancel_reverts(self, attempt: Attempt, ids: list[int]) -> None:
        """The alert fires again within the stabilisation delay: the changes stay."""
        parts = self.parts
        for execution_id in ids:
            if await parts.ledger.move(
                execution_id,
                "revert_state",
                RevertState.SCHEDULED,
                RevertState.CANCELLED,
                parts.ledger.note(
                    "revert",
                    "the alert fired again within the stabilisation delay: the change stays",
                    attempt=attempt,
                    outcome="cancelled",
                ),
            ):
                parts.timers.cancel(f"revert-{execution_id}")

    async def revert(self, execution_id: int) -> None:
        parts = self.parts
        row = await parts.store.get(execution_id)
        if row is None or row.revert_state != RevertState.SCHEDULED:
            return
        if not await parts.ledger.move(
            execution_id,
            "revert_state",
            RevertState.SCHEDULED,
            RevertState.RUNNING,
            parts.ledger.note(
                "revert",
                f"reverting step {row.step + 1} of {row.policy!r} on {row.target_key}",
                policy=row.policy,
                fingerprint=row.fingerprint,
                target_key=row.target_key,
                outcome="running",
            ),
        ):
            return
        annotations, generator = await parts.store.alert_annotations(row.fingerprint, row.starts_at)
        ctx = context_of(row, annotations, generator)
        entries = list(row.actions)
        problems = []
        for index in reversed(range(len(entries))):
            entry = entries[index]
            if entry.revert_state is None:
                continue
            done, error = await self._revert_one(row, ctx, entry)
            entries[index] = entry.model_copy(update={"revert": done, "revert_error": error})
            if error is not None:
                problems.append(f"{entry.action}: {error}")
        result = RevertState.FAILED if problems else RevertState.DONE
        await parts.ledger.move(
            execution_id,
            "revert_state",
            RevertState.RUNNING,
            result,
            parts.ledger.note(
                "revert",
                "reverted" if not problems else "revert incomplete: " + "; ".join(problems),
                policy=row.policy,
                ctx=ctx,
                target_key=row.target_key,
                outcome=result,
            ),
            actions=[e.model_dump(mode="json", exclude_none=True) for e in entries],
            updated_at=parts.clock.now(),
        )

    async def _revert_one(
        self, row: Execution, ctx: AlertContext, entry: ActionEntry
    ) -> tuple[dict[str, object] | None, str | None]:
        """Undo one action; its revert outcome, or the error (recorded, the others go on)."""
        parts, name = self.parts, entry.action
        assert entry.revert_state is not None

        async def retrying(report: AttemptReport) -> None:
            if report.retry_in is None:
                return  # the last try: its error is the revert's result, audited below
            await parts.ledger.audit(
                parts.ledger.note(
                    "retry",
                    f"{name} (revert) try {report.number} failed: {report.error}; "
                    f"trying again in {report.retry_in:.1f}s",
                    policy=row.policy,
                    ctx=ctx,
                    target_key=row.target_key,
                    outcome="revert",
                ),
                row.id,
            )

        try:
            action = parts.registry.get(name)
            params = parts.registry.parse_params(name, entry.params or {})
            actx = ActionContext(
                alert=ctx,
                target=row.target,
                services=parts.services,
                policy=row.policy,
                step=row.step,
                execution_id=str(row.id),
                now=parts.clock.now,
                log=log,
            )
            outcome = await parts.runner.revert(
                action, params, actx, entry.revert_state, on_attempt=retrying
            )
        except Exception as exc:  # recorded; the other actions are still reverted
            parts.metrics.reverts.labels(row.policy, name, "failed").inc()
            await parts.ledger.audit(
                parts.ledger.note(
                    "revert",
                    f"reverting {name} failed: {exc}",
                    policy=row.policy,
                    ctx=ctx,
                    target_key=row.target_key,
                    outcome="failed",
                ),
                row.id,
            )
            return None, str(exc)
        done = outcome.model_dump(mode="json")
        parts.metrics.reverts.labels(row.policy, name, "succeeded").inc()
        await parts.ledger.audit(
            parts.ledger.note(
                "revert",
                outcome.summary,
                policy=row.policy,
                ctx=ctx,
                target_key=row.target_key,
                outcome="succeeded",
                details=done,
            ),
            row.id,
        )
        return done, None
