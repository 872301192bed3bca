"""Deciding a batch's (policy, target) groups in memory: steps 2 to 4 of :mod:`.batch`.

Each group's alerts not decided before are coalesced into a decision already waiting,
skipped, deferred together, or left to act; the groups that act are re-checked against
Alertmanager and the breaker's first sieve, and their claims (with the deferral of
their other alerts) added to the batch's :class:`~.pairs.Plan`.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from monitor.engine import guardrails
from monitor.engine.deciding import (
    CONCURRENCY_RETRY,
    DECIDING,
    LOCK_TTL,
    Decider,
    Gate,
    approval_wait,
)
from monitor.engine.pairs import Busy, Pair, Plan, Records
from monitor.engine.parts import Parts
from monitor.store.batch_reads import Inputs
from monitor.store.batches import Birth
from monitor.store.records import Audit, ExecutionKey, Lock
from monitor.store.states import RevertState, State, lock_key

WAITING = (State.DEFERRED.value, State.AWAITING_APPROVAL.value)


class GroupDecider:
    def __init__(
        self, parts: Parts, decider: Decider, *, gate: Gate, busy: Busy, records: Records
    ) -> None:
        self.parts = parts
        self.decider = decider
        self.gate = gate
        self.busy = busy
        self.records = records

    # 2-3. Each (policy, target) ------------------------------------------------------------

    def fresh(
        self, group: list[Pair], inputs: Inputs, seen: set[ExecutionKey], plan: Plan
    ) -> list[Pair]:
        """The group's alerts not decided before and not known resolved (the others get
        their record), oldest first."""
        parts = self.parts
        fresh = []
        for pair in group:
            key = pair.key
            if (key.policy, key.fingerprint, key.starts_at) in inputs.decided or key in seen:
                parts.metrics.skips.labels(key.policy, "duplicate").inc()
                plan.records.append(self.records.duplicate(pair))
                continue
            seen.add(key)
            if pair.alert in inputs.resolved:
                plan.records.append(
                    self.records.skip(
                        pair, "stale", "a resolved notification for this alert was received"
                    )
                )
                continue
            fresh.append(pair)
        fresh.sort(key=lambda p: p.ctx.starts_at)
        return fresh

    def group(
        self, fresh: list[Pair], inputs: Inputs, now: datetime, paused: bool, plan: Plan
    ) -> None:
        parts = self.parts
        first = fresh[0]
        policy, target_key = first.policy, first.target_key
        opened = inputs.open.get((policy.name, target_key), [])
        reverts = [o.id for o in opened if o.revert_state == RevertState.SCHEDULED.value]
        if reverts:
            plan.reverts.append((self.records.attempt(first), reverts))
        waiting = next((o for o in opened if o.step == 0 and o.state in WAITING), None)
        if waiting is not None:
            what = "an approval" if waiting.state == State.AWAITING_APPROVAL else "a decision"
            why = f"{what} on this target is already waiting (#{waiting.id})"
            plan.joins.setdefault(waiting.id, []).extend(self.records.members(fresh, why))
            self.busy.mark(policy.name, target_key)
            return
        rehearsal = parts.rehearsal(policy, 0)
        decision = guardrails.decide(
            policy,
            target=first.target,
            starts_at=first.ctx.starts_at,
            now=now,
            paused=paused,
            rehearsal=rehearsal,
            scope=parts.scope,
            history=inputs.history(target_key, rehearsal, now - policy.budget.window),
            denied=parts.denied.get(policy.name),
        )
        if decision.outcome == "skip":
            for pair in fresh:
                plan.records.append(
                    self.records.skip(pair, decision.guardrail, decision.reason, decision)
                )
            return
        if decision.outcome == "defer":
            self._defer(fresh, decision, now, plan)
            return
        if decision.outcome == "execute" and parts.needs_approval(policy, 0):
            # Asked for when the deferred decision is taken, at once: the plan is made and
            # the request sent there (:mod:`.approval`), for the group's alerts together.
            self._defer(fresh, approval_wait(decision, now), now, plan)
            return
        plan.acting.append((fresh, decision))

    def _defer(
        self,
        fresh: list[Pair],
        decision: guardrails.Decision,
        now: datetime,
        plan: Plan,
        after: ExecutionKey | None = None,
    ) -> None:
        parts = self.parts
        first = fresh[0]
        assert decision.due_at is not None
        attempt = self.records.attempt(first).but(decision=decision)
        record = parts.ledger.note(
            "defer",
            f"{first.policy.name!r}: {decision.guardrail}: {decision.reason}",
            attempt=attempt,
            outcome=decision.guardrail,
            details=decision.as_dict(),
        )
        fields = {
            "state": State.DEFERRED,
            "dry_run": parts.rehearsal(first.policy, 0),
            "reason": decision.reason,
            "due_at": decision.due_at,
            "created_at": now,
            "updated_at": now,
            "owner": parts.owner,
        }
        why = f"{decision.guardrail}: {decision.reason}"
        plan.births.append(
            Birth(
                first.key,
                self.decider.row(attempt, fields),
                record,
                self.records.members(fresh[1:], why),
                after=after,
            )
        )
        plan.born.append((attempt, fresh))

    # 4. Still firing? Within the breaker? ---------------------------------------------------

    async def still_firing(self, plan: Plan) -> None:
        """For each group that is to act, the oldest alert that still fires acts (the
        others are coalesced into its execution); re-checked concurrently."""
        slots = asyncio.Semaphore(DECIDING)

        async def pick(fresh: list[Pair]) -> tuple[Pair | None, str, list[Audit]]:
            stale: list[Audit] = []
            for pair in fresh:
                async with slots:
                    state, evidence = await self.decider.still_firing(pair.ctx)
                if state == "firing":
                    return pair, evidence, stale
                stale.append(self.records.skip(pair, "stale", evidence))
            return None, "", stale

        picks = await asyncio.gather(*(pick(fresh) for fresh, _ in plan.acting))
        for (fresh, decision), (chosen, evidence, stale) in zip(plan.acting, picks, strict=True):
            plan.records.extend(stale)
            if chosen is None:
                continue
            others = fresh[fresh.index(chosen) + 1 :]  # the ones before it were stale
            refused: list[Audit] = []
            if decision.outcome == "execute":
                if not self.gate.admit():
                    for pair in [chosen, *others]:
                        plan.records.append(
                            self.records.skip(pair, "breaker", self.gate.reason(), decision)
                        )
                    continue
                # Should the store refuse it, the same records (the reason is the store's).
                refused = [self.records.refusal(pair, decision) for pair in [chosen, *others]]
            decision.verdicts.append(guardrails.Verdict("stale", True, evidence))
            self._claim(chosen, others, decision, plan, refused)

    def _claim(
        self,
        chosen: Pair,
        others: list[Pair],
        decision: guardrails.Decision,
        plan: Plan,
        refused: list[Audit],
    ) -> None:
        parts = self.parts
        now = parts.clock.now()
        rehearsal = decision.outcome == "rehearse"
        lock = Lock(lock_key(chosen.target_key, rehearsal), parts.owner, now, LOCK_TTL)
        attempt = self.records.attempt(chosen).but(decision=decision, lock=lock)
        fields: dict[str, Any] = {
            "dry_run": rehearsal,
            "reason": decision.reason or None,
            "due_at": None,
            "updated_at": now,
            "created_at": now,
            "owner": parts.owner,
        }
        due = now + CONCURRENCY_RETRY
        busy = parts.ledger.note(
            "defer",
            f"{chosen.target_key} is busy with another execution; "
            f"deciding again at {due.isoformat()}",
            attempt=attempt,
            outcome="concurrency",
        )
        plan.births.append(
            Birth(
                chosen.key,
                self.decider.row(attempt, fields),
                parts.ledger.note(
                    "decision",
                    f"{attempt.where}: {decision.outcome}",
                    attempt=attempt,
                    outcome=decision.outcome,
                    details=decision.as_dict(),
                ),
                lock=lock,
                busy_due=due,
                busy_record=busy,
                seen_at=plan.seen_at,
                refused=refused,
            )
        )
        plan.born.append((attempt, [chosen]))
        if others:
            self._after(chosen, others, now, plan)

    def _after(self, chosen: Pair, others: list[Pair], now: datetime, plan: Plan) -> None:
        """The other alerts of a group that acts wait together, in one deferred decision,
        for the end of the cooldown the action starts (or for the target's lock)."""
        policy = chosen.policy
        due = guardrails.later(now, max(policy.cooldown, CONCURRENCY_RETRY))
        reason = (
            f"step 1 of {policy.name!r} acts on {chosen.target_key} now; "
            f"deciding again at {due.isoformat()} if the alert still fires"
        )
        decision = guardrails.Decision("defer", reason=reason, guardrail="cooldown", due_at=due)
        decision.verdicts.append(guardrails.Verdict("cooldown", False, reason))
        self._defer(others, decision, now, plan, after=chosen.key)
