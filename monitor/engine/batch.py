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
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from monitor import policy as policy_mod
from monitor.alerts.context import AlertContext, alert_context
from monitor.engine import guardrails
from monitor.engine.attempt import Attempt
from monitor.engine.deciding import (
    CONCURRENCY_RETRY,
    DECIDING,
    LOCK_TTL,
    Decider,
    Gate,
    approval_wait,
)
from monitor.engine.parts import Parts
from monitor.errors import PolicyError
from monitor.store.batch_reads import Inputs
from monitor.store.batches import Birth, Born
from monitor.store.coalescing import Member
from monitor.store.notifications import StoredNotification
from monitor.store.records import Audit, ExecutionKey, Lock
from monitor.store.states import RevertState, State, lock_key

log = logging.getLogger("monitor.engine")

CancelReverts = Callable[[Attempt, list[int]], Awaitable[None]]
WAITING = (State.DEFERRED.value, State.AWAITING_APPROVAL.value)
Resolved = Callable[[Sequence[AlertContext]], Awaitable[None]]
Redecide = Callable[[int], Awaitable[None]]


class Busy:
    """(policy, target) pairs this replica saw work on lately: only a hint, for putting
    alerts about targets nobody works on ahead of the queue (never for a decision)."""

    def __init__(self, ttl: float = 120.0, size: int = 50_000) -> None:
        self.ttl = ttl
        self.size = size
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def mark(self, policy: str, target_key: str) -> None:
        key = (policy, target_key)
        self._seen[key] = time.monotonic() + self.ttl
        self._seen.move_to_end(key)
        while len(self._seen) > self.size:
            self._seen.popitem(last=False)

    def __contains__(self, key: tuple[str, str]) -> bool:
        until = self._seen.get(key)
        return until is not None and until > time.monotonic()

    def __len__(self) -> int:
        return len(self._seen)


@dataclass(frozen=True)
class _Pair:
    """One alert and one policy that matches it, with the policy's target rendered."""

    notification_id: int
    ctx: AlertContext
    policy: policy_mod.Policy
    target: Mapping[str, str]
    target_key: str

    @property
    def key(self) -> ExecutionKey:
        return ExecutionKey(self.policy.name, 0, self.ctx.fingerprint, self.ctx.starts_at)

    @property
    def alert(self) -> tuple[str, datetime]:
        return self.ctx.fingerprint, self.ctx.starts_at


@dataclass
class Outcome:
    """What a batch came to: the executions to run now, and the notifications whose
    deciding raised (by id; the others are done)."""

    claimed: list[Attempt] = field(default_factory=list)
    failures: dict[int, BaseException] = field(default_factory=dict)


@dataclass
class _Plan:
    births: list[Birth] = field(default_factory=list)
    born: list[tuple[Attempt, list[_Pair]]] = field(default_factory=list)  # per birth
    joins: dict[int, list[Member]] = field(default_factory=dict)
    records: list[Audit] = field(default_factory=list)
    reverts: list[tuple[Attempt, list[int]]] = field(default_factory=list)
    acting: list[tuple[list[_Pair], guardrails.Decision]] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)  # notifications marked in the commit
    seen_at: datetime | None = None  # when the store was read for this batch


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

    async def decide(self, notes: Sequence[StoredNotification], mark: bool = False) -> Outcome:
        """Decide the first step of every new alert of ``notes`` (and take their
        resolutions), in one read and one commit; see the module's description. With
        ``mark``, the notifications decided are marked processed in that commit."""
        parts = self.parts
        outcome = Outcome()
        plan = _Plan()
        pairs: list[_Pair] = []
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
        groups: dict[tuple[str, str], list[_Pair]] = {}
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
            fresh = self._fresh(group, inputs, seen, plan)
            if fresh:
                self._group(fresh, inputs, now, paused, plan)
        await self._still_firing(plan)
        return await self._commit(plan, now, outcome)

    # 1. Alerts and their policies --------------------------------------------------------

    def _expand(
        self, note: StoredNotification
    ) -> tuple[list[_Pair], list[AlertContext], list[Audit]]:
        parts = self.parts
        pairs: list[_Pair] = []
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
                pairs.append(_Pair(note.id, ctx, policy, target, key))
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

    # 2-3. Each (policy, target) ------------------------------------------------------------

    def _fresh(
        self, group: list[_Pair], inputs: Inputs, seen: set[ExecutionKey], plan: _Plan
    ) -> list[_Pair]:
        """The group's alerts not decided before and not known resolved (the others get
        their record), oldest first."""
        parts = self.parts
        fresh = []
        for pair in group:
            key = pair.key
            if (key.policy, key.fingerprint, key.starts_at) in inputs.decided or key in seen:
                parts.metrics.skips.labels(key.policy, "duplicate").inc()
                plan.records.append(self._duplicate(pair))
                continue
            seen.add(key)
            if pair.alert in inputs.resolved:
                plan.records.append(
                    self._skip(pair, "stale", "a resolved notification for this alert was received")
                )
                continue
            fresh.append(pair)
        fresh.sort(key=lambda p: p.ctx.starts_at)
        return fresh

    def _group(
        self, fresh: list[_Pair], inputs: Inputs, now: datetime, paused: bool, plan: _Plan
    ) -> None:
        parts = self.parts
        first = fresh[0]
        policy, target_key = first.policy, first.target_key
        opened = inputs.open.get((policy.name, target_key), [])
        reverts = [o.id for o in opened if o.revert_state == RevertState.SCHEDULED.value]
        if reverts:
            plan.reverts.append((self._attempt(first), reverts))
        waiting = next((o for o in opened if o.step == 0 and o.state in WAITING), None)
        if waiting is not None:
            what = "an approval" if waiting.state == State.AWAITING_APPROVAL else "a decision"
            why = f"{what} on this target is already waiting (#{waiting.id})"
            plan.joins.setdefault(waiting.id, []).extend(self._members(fresh, why))
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
                plan.records.append(self._skip(pair, decision.guardrail, decision.reason, decision))
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
        fresh: list[_Pair],
        decision: guardrails.Decision,
        now: datetime,
        plan: _Plan,
        after: ExecutionKey | None = None,
    ) -> None:
        parts = self.parts
        first = fresh[0]
        assert decision.due_at is not None
        attempt = self._attempt(first).but(decision=decision)
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
                self._members(fresh[1:], why),
                after=after,
            )
        )
        plan.born.append((attempt, fresh))

    # 4. Still firing? Within the breaker? ---------------------------------------------------

    async def _still_firing(self, plan: _Plan) -> None:
        """For each group that is to act, the oldest alert that still fires acts (the
        others are coalesced into its execution); re-checked concurrently."""
        slots = asyncio.Semaphore(DECIDING)

        async def pick(fresh: list[_Pair]) -> tuple[_Pair | None, str, list[Audit]]:
            stale: list[Audit] = []
            for pair in fresh:
                async with slots:
                    state, evidence = await self.decider.still_firing(pair.ctx)
                if state == "firing":
                    return pair, evidence, stale
                stale.append(self._skip(pair, "stale", evidence))
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
                            self._skip(pair, "breaker", self.gate.reason(), decision)
                        )
                    continue
                # Should the store refuse it, the same records (the reason is the store's).
                refused = [self._refusal(pair, decision) for pair in [chosen, *others]]
            decision.verdicts.append(guardrails.Verdict("stale", True, evidence))
            self._claim(chosen, others, decision, plan, refused)

    def _claim(
        self,
        chosen: _Pair,
        others: list[_Pair],
        decision: guardrails.Decision,
        plan: _Plan,
        refused: list[Audit],
    ) -> None:
        parts = self.parts
        now = parts.clock.now()
        rehearsal = decision.outcome == "rehearse"
        lock = Lock(lock_key(chosen.target_key, rehearsal), parts.owner, now, LOCK_TTL)
        attempt = self._attempt(chosen).but(decision=decision, lock=lock)
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

    def _after(self, chosen: _Pair, others: list[_Pair], now: datetime, plan: _Plan) -> None:
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

    # 5. One commit, then timers, metrics and the runs ------------------------------------

    async def _commit(self, plan: _Plan, now: datetime, outcome: Outcome) -> Outcome:
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
        pairs: list[_Pair],
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
            late.setdefault(fate.execution_id, []).extend(self._members(pairs, why))
        else:
            parts.metrics.skips.labels(name, "duplicate").inc()
            log.info("duplicate: %s", birth.key)
        for pair in pairs[1:] if fate.fate != "coalesced" else ():
            parts.metrics.decisions.labels(pair.policy.name, "coalesced").inc()

    # Records -------------------------------------------------------------------------------

    def _attempt(self, pair: _Pair) -> Attempt:
        return Attempt(pair.policy, pair.ctx, 0, target=pair.target, target_key=pair.target_key)

    def _members(self, pairs: Sequence[_Pair], why: str) -> list[Member]:
        at = self.parts.clock.now()
        return [Member(pair.key, pair.ctx.labels, why, pair.target_key, at) for pair in pairs]

    def _skip(
        self,
        pair: _Pair,
        guardrail: str,
        reason: str,
        decision: guardrails.Decision | None = None,
    ) -> Audit:
        parts = self.parts
        parts.metrics.skips.labels(pair.policy.name, guardrail).inc()
        parts.metrics.decisions.labels(pair.policy.name, "skip").inc()
        return parts.ledger.note(
            "skip",
            f"{pair.policy.name!r}: {guardrail}: {reason}",
            attempt=self._attempt(pair),
            outcome=guardrail,
            details=decision.as_dict() if decision is not None else None,
        )

    def _refusal(self, pair: _Pair, decision: guardrails.Decision) -> Audit:
        """The skip record of a claim the breaker refuses in the store, which completes
        the message with its reason (as :meth:`_skip` words it; counted when refused)."""
        return self.parts.ledger.note(
            "skip",
            f"{pair.policy.name!r}: breaker: ",
            attempt=self._attempt(pair),
            outcome="breaker",
            details=decision.as_dict(),
        )

    def _duplicate(self, pair: _Pair) -> Audit:
        return self.parts.ledger.note(
            "skip",
            f"step 1 of {pair.policy.name!r} for this alert is already claimed "
            "(re-delivery or another replica)",
            attempt=self._attempt(pair),
            outcome="duplicate",
        )
