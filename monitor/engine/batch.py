"""Deciding a batch of notifications at once: one read, decisions in memory, one commit.

A storm is thousands of alerts about a few targets. The first step of every (alert,
policy) pair in a batch is decided together:

1. each alert is matched and its policies' targets rendered; pairs are grouped by
   (policy, target);
2. one read of the store (:func:`monitor.store.batch_reads.inputs`) answers for the whole
   batch: the targets' histories (cooldown, budget), what is in flight or waiting on
   them, their locks, which alerts were already decided or resolved, the kill switch;
3. per group, in memory: alerts already decided are duplicates; if a decision for the
   policy and target is waiting (deferred), every alert of the group is **coalesced**
   into it ("coalesced into #N", with the reason). Otherwise the guardrails decide for
   the group's oldest alert: skipped, each alert is skipped; deferred, the others are
   coalesced into its deferred execution; acting, the others wait together in one
   deferred decision due when the cooldown the action starts ends. One deferred
   decision and one timer per (policy, target), whatever the number of alerts; when it
   comes due, the oldest of its alerts still firing is decided (:mod:`.deciding`);
4. the groups that are to act are re-checked against Alertmanager ("still firing?"),
   then the blast-radius breaker admits them or not (in memory, a first sieve);
5. one transaction writes every claim (with the target's lock), deferral, coalesced
   alert and skip (:func:`monitor.store.batches.commit`); the breaker admits each live
   claim again there, by its count locked in that transaction, so that replicas
   together never pass it.

The claimed executions are then run by the caller. Later steps (escalations) and
deferred decisions that come due are decided one at a time by :mod:`.deciding`.
Steps 2 to 4 are :class:`.groups.GroupDecider`'s; the pairs, the plan and the records
they build are :mod:`.pairs`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor import policy as policy_mod
from monitor.alerts.context import AlertContext, alert_context
from monitor.engine.attempt import Attempt
from monitor.engine.deciding import Decider, Gate
from monitor.engine.groups import GroupDecider
from monitor.engine.pairs import Busy, Pair, Plan, Records
from monitor.engine.parts import Parts
from monitor.errors import PolicyError
from monitor.store.batches import Birth, Born
from monitor.store.coalescing import Member
from monitor.store.notifications import StoredNotification
from monitor.store.records import Audit, ExecutionKey

log = logging.getLogger("monitor.engine")

CancelReverts = Callable[[Attempt, list[int]], Awaitable[None]]
Resolved = Callable[[Sequence[AlertContext]], Awaitable[None]]
Redecide = Callable[[int], Awaitable[None]]


@dataclass
class Outcome:
    """What a batch came to: the executions to run now, and the notifications whose
    deciding raised (by id; the others are done)."""

    claimed: list[Attempt] = field(default_factory=list)
    failures: dict[int, BaseException] = field(default_factory=dict)


class BatchDecider:
    def __init__(
        self,
        parts: Parts,
        decider: Decider,
        *,
        gate: Gate,
        busy: Busy,
        cancel_reverts: CancelReverts,
        resolved: Resolved,
        redecide: Redecide,
    ) -> None:
        self.parts = parts
        self.decider = decider
        self.gate = gate
        self.busy = busy
        self.cancel_reverts = cancel_reverts
        self.resolved = resolved
        self.redecide = redecide
        self.targets = policy_mod.Targets()
        self.records = Records(parts)
        self.groups = GroupDecider(parts, decider, gate=gate, busy=busy, records=self.records)

    async def decide(self, notes: Sequence[StoredNotification], mark: bool = False) -> Outcome:
        """Decide the first step of every new alert of ``notes`` (and take their
        resolutions), in one read and one commit; see the module's description. With
        ``mark``, the notifications decided are marked processed in that commit."""
        parts = self.parts
        outcome = Outcome()
        plan = Plan()
        pairs: list[Pair] = []
        resolved: list[AlertContext] = []
        for note in notes:
            try:
                found, gone, skipped = self._expand(note)
            except Exception as exc:  # a bug on one notification: the others go on
                log.exception("deciding notification %d failed", note.id)
                outcome.failures[note.id] = exc
                continue
            pairs.extend(found)
            resolved.extend(gone)
            plan.records.extend(skipped)
        if mark:
            plan.processed = [n.id for n in notes if n.id not in outcome.failures]
        if resolved:
            await self.resolved(resolved)
        if not pairs:
            if plan.records or plan.processed:
                at = parts.clock.now()
                await parts.store.commit_batch([], {}, plan.records, plan.processed, at)
            return outcome
        now = parts.clock.now()
        groups: dict[tuple[str, str], list[Pair]] = {}
        for pair in pairs:
            groups.setdefault((pair.policy.name, pair.target_key), []).append(pair)
        since = now - max(
            max(group[0].policy.budget.window, group[0].policy.cooldown)
            for group in groups.values()
        )
        plan.seen_at = now
        inputs = await parts.store.batch_inputs(
            now=now,
            since=since,
            targets=[key for _, key in groups],
            fingerprints=[pair.ctx.fingerprint for pair in pairs],
        )
        paused = parts.automation.paused or inputs.paused
        self.decider.paused_cached = paused
        await self.gate.refresh(now)
        seen: set[ExecutionKey] = set()
        for group in groups.values():
            fresh = self.groups.fresh(group, inputs, seen, plan)
            if fresh:
                self.groups.group(fresh, inputs, now, paused, plan)
        await self.groups.still_firing(plan)
        return await self._commit(plan, now, outcome)

    # 1. Alerts and their policies --------------------------------------------------------

    def _expand(
        self, note: StoredNotification
    ) -> tuple[list[Pair], list[AlertContext], list[Audit]]:
        parts = self.parts
        pairs: list[Pair] = []
        resolved: list[AlertContext] = []
        skipped: list[Audit] = []
        for item in note.alerts:
            if item.repeat:
                continue  # Alertmanager re-sends whole groups; the first delivery decided
            ctx = alert_context(item.alert)
            if item.alert.status == "resolved":
                resolved.append(ctx)
                continue
            for policy in parts.policies.match(ctx.labels):
                try:
                    target = self.targets.render(policy, ctx)
                except PolicyError as exc:
                    parts.metrics.skips.labels(policy.name, "target").inc()
                    parts.metrics.decisions.labels(policy.name, "skip").inc()
                    skipped.append(
                        parts.ledger.note(
                            "skip",
                            f"{policy.name!r}: target: {exc}",
                            policy=policy.name,
                            ctx=ctx,
                            outcome="target",
                        )
                    )
                    continue
                key = policy_mod.target_key(target)
                pairs.append(Pair(note.id, ctx, policy, target, key))
        return pairs, resolved, skipped

    def urgent(self, note: StoredNotification) -> bool:
        """Is any new firing alert of ``note`` about a (policy, target) that this replica
        has not seen work on lately? Such notifications are decided ahead of the queue."""
        parts = self.parts
        for item in note.alerts:
            if item.repeat or item.alert.status != "firing":
                continue
            ctx: AlertContext | None = None
            for policy in parts.policies.match(item.alert.labels):
                key = self.targets.key_for(policy, item.alert.labels)
                if key is None:
                    ctx = ctx or alert_context(item.alert)
                    try:
                        key = policy_mod.target_key(self.targets.render(policy, ctx))
                    except PolicyError:
                        continue
                if (policy.name, key) not in self.busy:
                    return True
        return False

    # 5. One commit, then timers, metrics and the runs ------------------------------------

    async def _commit(self, plan: Plan, now: datetime, outcome: Outcome) -> Outcome:
        parts = self.parts
        fates = await parts.store.commit_batch(
            plan.births, plan.joins, plan.records, plan.processed, now, self.gate.limit(now)
        )
        await self.gate.settle(now)
        for fate in fates:
            if fate.refusal is not None:
                await self.gate.refused(now, fate.refusal)
        for into, members in plan.joins.items():
            for member in members:
                parts.metrics.decisions.labels(member.key.policy, "coalesced").inc()
            log.debug("%d alert(s) coalesced into execution %d", len(members), into)
        late: dict[int, list[Member]] = {}
        for (attempt, pairs), birth, fate in zip(plan.born, plan.births, fates, strict=True):
            self._born(attempt, pairs, birth, fate, outcome, late)
        if late:  # another replica created the deferred row a moment before
            await parts.store.commit_batch([], late, [])
        for attempt, ids in plan.reverts:
            await self.cancel_reverts(attempt, ids)
        return outcome

    def _born(
        self,
        attempt: Attempt,
        pairs: list[Pair],
        birth: Birth,
        fate: Born,
        outcome: Outcome,
        late: dict[int, list[Member]],
    ) -> None:
        parts = self.parts
        name = attempt.policy.name
        self.busy.mark(name, attempt.target_key)
        if fate.fate == "claimed":
            assert fate.execution_id is not None and attempt.decision is not None
            log.info("decision: %s", birth.record.message)
            parts.metrics.decisions.labels(name, attempt.decision.outcome).inc()
            outcome.claimed.append(attempt.but(execution_id=fate.execution_id))
        elif fate.fate in ("deferred", "busy"):
            assert fate.execution_id is not None
            due = birth.busy_due if fate.fate == "busy" else birth.row["due_at"]
            assert isinstance(due, datetime)
            if fate.fate == "busy":
                parts.metrics.skips.labels(name, "concurrency").inc()
            else:
                assert attempt.decision is not None
                parts.metrics.skips.labels(name, attempt.decision.guardrail).inc()
                parts.metrics.decisions.labels(name, "defer").inc()
            log.info("defer: %s", (birth.busy_record or birth.record).message)
            parts.timers.at(f"decide-{fate.execution_id}", due, self.redecide, fate.execution_id)
        elif fate.fate == "refused":
            if fate.refusal is not None:  # the claim; its records name its group's alerts
                for _ in birth.refused:
                    parts.metrics.skips.labels(name, "breaker").inc()
                    parts.metrics.decisions.labels(name, "skip").inc()
                log.info("skip: %s: %s", birth.key, fate.refusal.reason)
            return  # a deferral of its group's other alerts: not written
        elif fate.fate == "coalesced":
            assert fate.execution_id is not None
            why = "a decision on this target is already waiting"
            late.setdefault(fate.execution_id, []).extend(self.records.members(pairs, why))
        else:
            parts.metrics.skips.labels(name, "duplicate").inc()
            log.info("duplicate: %s", birth.key)
        for pair in pairs[1:] if fate.fate != "coalesced" else ():
            parts.metrics.decisions.labels(pair.policy.name, "coalesced").inc()
