"""Run policies over past episodes with a simulated clock, as the live engine would have.

Events are taken in time order (at one instant: reverts, verifications, decisions, then
new firings). Every decision is :func:`monitor.engine.guardrails.decide` with the
target's simulated history, so the same code says yes or no as in live mode:

* a firing episode is matched against the policies; each match renders the target
  (:func:`monitor.policy.render_target`, memoised as the engine does) and decides step
  1, unless a decision of that policy on that target is waiting (deferred): then the
  alert is *coalesced* into it (counted, not a separate action), as the engine's
  batches do. An alert on a target acted on moments ago waits for the cooldown;
* a waiting decision (``for_at_least``, ``cooldown``, ``time_interval``) is decided
  again when due, for the oldest of its alerts still firing; if none is, that guardrail
  stopped it. A skip (``scope``, ``budget``) stops it at once;
* a step that acts is verified after ``verify.window``: the episode ended by then means
  recovered (the alert's own history decides: replay cannot know what the action would
  have changed); otherwise the next step is decided, until the ladder ends;
* with ``revert.enabled`` a revert is due at the episode's end + ``revert.after``,
  cancelled when the policy's alert fires again on the target before then.

Cooldown and budget count what acted on the target, by any policy, except the alert's
own ladder (as the store's ``decision_inputs`` does). Nothing here does I/O.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from monitor import policy as policy_mod
from monitor import scope as scope_mod
from monitor.alerts.context import AlertContext
from monitor.engine import guardrails
from monitor.errors import PolicyError
from monitor.replay.history import Episode
from monitor.store.records import TargetHistory

_TICK = timedelta(microseconds=1)
ACTIVE_MEMO = 200_000  # (policy, time) -> inside its active time? (rechecks share times)
GUARDRAILS = ("scope", "time_interval", "for_at_least", "cooldown", "budget", "target")
# Order of events at one instant.
_REVERT, _VERIFY, _DECIDE, _FIRE = range(4)


@dataclass
class Tally:
    """What happened for one policy on one target."""

    alerts: int = 0
    executions: int = 0
    steps: dict[int, int] = field(default_factory=dict)
    recovered: int = 0
    escalated: int = 0
    ladder_exhausted: int = 0
    stopped: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GUARDRAILS, 0))
    deferred: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GUARDRAILS, 0))
    budget_exhausted: int = 0
    budget_first: datetime | None = None
    coalesced: int = 0
    reverts_done: int = 0
    reverts_cancelled: int = 0
    reverts_pending: int = 0


@dataclass
class Ladder:
    """One policy's ladder for one alert (and the alerts coalesced into it)."""

    id: int
    policy: policy_mod.Policy
    target: dict[str, str]
    key: str
    members: list[Episode]
    step: int = 0
    acted: bool = False
    acts: list[datetime] = field(default_factory=list)  # when its steps acted
    deferred_by: set[str] = field(default_factory=set)
    waiting: str = ""  # the guardrail the decision waits for

    @property
    def episode(self) -> Episode:
        return self.members[0]


@dataclass
class Revert:
    ladder: Ladder
    at: datetime
    state: str = "pending"  # done, cancelled


@dataclass
class Outcome:
    """The simulation's result, for :mod:`.report`."""

    since: datetime
    until: datetime
    episodes: int
    alerts: int
    decisions: int
    tallies: dict[tuple[str, str], Tally]
    in_effect: list[tuple[datetime, datetime]]
    actions: list[datetime]
    never_matched: list[str]


class Simulation:
    def __init__(
        self,
        policies: policy_mod.PolicySet,
        scope: scope_mod.Scope,
        since: datetime,
        until: datetime,
    ) -> None:
        self.policies = policies
        self.scope = scope
        self.since, self.until = since, until
        self._events: list[tuple[datetime, int, int, Any]] = []
        self._seq = itertools.count()
        self._ids = itertools.count(1)
        self.tallies: dict[tuple[str, str], Tally] = {}
        self.history: dict[str, list[datetime]] = defaultdict(list)
        self.holders: dict[tuple[str, str], Ladder] = {}
        self.reverts: dict[tuple[str, str], list[Revert]] = defaultdict(list)
        self.acts: list[tuple[Ladder, datetime]] = []
        self.all_reverts: list[Revert] = []
        self.targets = policy_mod.Targets()  # the engine's memo of rendered targets
        self._active_memo: dict[tuple[int, datetime], bool] = {}
        self.matched: set[str] = set()
        self.decisions = 0

    # Events ---------------------------------------------------------------------------

    def _push(self, at: datetime, kind: int, data: Any) -> None:
        if at <= self.until:
            heapq.heappush(self._events, (at, kind, next(self._seq), data))

    def run(self, episodes: Sequence[Episode]) -> Outcome:
        for ep in episodes:
            if self.since <= ep.starts_at <= self.until:
                self._push(ep.starts_at, _FIRE, ep)
        handlers: dict[int, Callable[[Any, datetime], None]] = {
            _FIRE: self._fire,
            _DECIDE: self._decide,
            _VERIFY: self._verify,
            _REVERT: self._revert,
        }
        while self._events:
            at, kind, _, data = heapq.heappop(self._events)
            handlers[kind](data, at)
        return self._outcome(episodes)

    def _tally(self, policy: str, key: str) -> Tally:
        found = self.tallies.get((policy, key))
        if found is None:
            found = self.tallies[(policy, key)] = Tally()
        return found

    def _fire(self, ep: Episode, now: datetime) -> None:
        ctx = AlertContext(
            ep.labels, ep.annotations or {}, "firing", ep.fingerprint, ep.starts_at, "", None
        )
        for policy in self.policies.match(ep.labels):
            self.matched.add(policy.name)
            try:
                target = dict(self.targets.render(policy, ctx))
            except PolicyError:
                tally = self._tally(policy.name, "-")
                tally.alerts += 1
                tally.stopped["target"] += 1
                continue
            key = policy_mod.target_key(target)
            tally = self._tally(policy.name, key)
            tally.alerts += 1
            for revert in self.reverts.pop((policy.name, key), []):
                if revert.state == "pending" and now < revert.at:
                    revert.state = "cancelled"
                    tally.reverts_cancelled += 1
            holder = self.holders.get((policy.name, key))
            if holder is not None:
                tally.coalesced += 1
                holder.members.append(ep)
                continue
            ladder = Ladder(next(self._ids), policy, target, key, [ep])
            self._decide(ladder, now)

    def _target_history(self, ladder: Ladder, now: datetime) -> TargetHistory:
        """Cooldown and budget history of the target at ``now``, without the ladder's own
        steps (acts are appended in time order, so the window is a bisection)."""
        times = self.history.get(ladder.key)
        if not times:
            return TargetHistory(None, 0)
        own = ladder.acts
        since = now - ladder.policy.budget.window
        attempts = len(times) - bisect.bisect_left(times, since)
        attempts -= sum(1 for at in own if at >= since)
        last = None
        mine = len(own)
        for at in reversed(times):
            if mine and at in own:
                mine -= 1
                continue
            last = at
            break
        return TargetHistory(last, attempts)

    def _decide(self, ladder: Ladder, now: datetime) -> None:
        policy, tally = ladder.policy, self._tally(ladder.policy.name, ladder.key)
        alive = [m for m in ladder.members if not m.ended_by(now)]
        if not alive:
            # Every alert of the decision resolved while a guardrail held it back.
            self._stop(ladder, tally, ladder.waiting)
            return
        ladder.members = alive
        self.decisions += 1
        decision = guardrails.decide(
            policy,
            target=ladder.target,
            starts_at=ladder.episode.starts_at,
            now=now,
            paused=False,
            rehearsal=False,
            scope=self.scope,
            history=self._target_history(ladder, now),
        )
        if decision.outcome == "skip":
            if decision.guardrail == "budget":
                tally.budget_exhausted += 1
                if tally.budget_first is None:
                    tally.budget_first = now
            self._stop(ladder, tally, decision.guardrail)
            return
        if decision.outcome == "defer":
            guard = decision.guardrail
            if guard not in ladder.deferred_by:
                ladder.deferred_by.add(guard)
                tally.deferred[guard] += 1
            ladder.waiting = guard
            if ladder.step == 0:
                self.holders[(policy.name, ladder.key)] = ladder
            due = decision.due_at or now
            if guard == "time_interval":
                due = self._next_active(ladder, due)
            if due > self.until:
                self._release(ladder)
                return
            self._push(due, _DECIDE, ladder)
            return
        self._act(ladder, tally, now)

    def _next_active(self, ladder: Ladder, due: datetime) -> datetime:
        """Where the engine's rechecks of a time interval (every 5 minutes from ``due``)
        stop deferring: the first inside the policy's active time, or the first after its
        alerts all ended. The rechecks in between (time_interval is checked before
        for_at_least, cooldown and budget, so each would defer again) are counted as
        decisions without being made one by one: a weekend is 576 of them per alert."""
        policy = ladder.policy
        ends = [m.ends_at for m in ladder.members]
        # A recheck is a decision while one of the alerts still fires (and in the window).
        last = self.until + _TICK if None in ends else max(e for e in ends if e is not None)
        while due < last and not self._active(policy, due):
            self.decisions += 1
            due += guardrails.TIME_INTERVAL_RECHECK
        return due

    def _active(self, policy: policy_mod.Policy, at: datetime) -> bool:
        key = (id(policy), at)
        found = self._active_memo.get(key)
        if found is None:
            if len(self._active_memo) >= ACTIVE_MEMO:
                self._active_memo.clear()
            found = self._active_memo[key] = policy_mod.active(policy, at)
        return found

    def _stop(self, ladder: Ladder, tally: Tally, guard: str) -> None:
        tally.stopped[guard] = tally.stopped.get(guard, 0) + 1
        ladder.waiting = ""
        self._release(ladder)
        if ladder.acted:
            self._schedule_revert(ladder)

    def _release(self, ladder: Ladder) -> None:
        if self.holders.get((ladder.policy.name, ladder.key)) is ladder:
            del self.holders[(ladder.policy.name, ladder.key)]

    def _act(self, ladder: Ladder, tally: Tally, now: datetime) -> None:
        ladder.waiting = ""
        ladder.acted = True
        tally.executions += 1
        tally.steps[ladder.step + 1] = tally.steps.get(ladder.step + 1, 0) + 1
        self.history[ladder.key].append(now)
        ladder.acts.append(now)
        self.acts.append((ladder, now))
        self._release(ladder)
        self._push(now + ladder.policy.verify.window, _VERIFY, ladder)

    def _verify(self, ladder: Ladder, now: datetime) -> None:
        tally = self._tally(ladder.policy.name, ladder.key)
        if ladder.episode.ended_by(now):
            tally.recovered += 1
        elif ladder.step + 1 < len(ladder.policy.steps):
            tally.escalated += 1
            ladder.step += 1
            self._decide(ladder, now)
            return
        else:
            tally.ladder_exhausted += 1
        self._schedule_revert(ladder)

    def _schedule_revert(self, ladder: Ladder) -> None:
        revert = ladder.policy.revert
        ends = ladder.episode.ends_at
        if not (revert.enabled and ladder.acted) or ends is None:
            return
        item = Revert(ladder, guardrails.later(ends, revert.after))
        self.reverts[(ladder.policy.name, ladder.key)].append(item)
        self.all_reverts.append(item)
        self._push(item.at, _REVERT, item)  # past the window: left pending

    def _revert(self, item: Revert, now: datetime) -> None:
        if item.state != "pending":
            return
        item.state = "done"
        self._tally(item.ladder.policy.name, item.ladder.key).reverts_done += 1

    # Result ---------------------------------------------------------------------------

    def _outcome(self, episodes: Sequence[Episode]) -> Outcome:
        reverted = {r.ladder.id: r.at for r in self.all_reverts if r.state == "done"}
        for r in self.all_reverts:
            if r.state == "pending":
                self._tally(r.ladder.policy.name, r.ladder.key).reverts_pending += 1
        in_effect = []
        for ladder, at in self.acts:
            if ladder.policy.revert.enabled:
                end = reverted.get(ladder.id, self.until)
            else:
                end = ladder.episode.ends_at or self.until
            in_effect.append((at, max(at, min(end, self.until))))
        return Outcome(
            since=self.since,
            until=self.until,
            episodes=sum(1 for e in episodes if self.since <= e.starts_at <= self.until),
            alerts=len(
                {e.fingerprint for e in episodes if self.since <= e.starts_at <= self.until}
            ),
            decisions=self.decisions,
            tallies=self.tallies,
            in_effect=in_effect,
            actions=[at for _, at in self.acts],
            never_matched=sorted(p.name for p in self.policies if p.name not in self.matched),
        )


def simulate(
    policies: policy_mod.PolicySet,
    episodes: Sequence[Episode],
    *,
    since: datetime,
    until: datetime,
    scope: scope_mod.Scope,
) -> Outcome:
    """What ``policies`` would have done with ``episodes`` between ``since`` and ``until``."""
    return Simulation(policies, scope, since, until).run(episodes)
