"""Guardrails: may this policy act on this alert now? A pure function of what is known.

Each guardrail gives a verdict; the first that says no decides the outcome:

=============== ===========================================================
paused          the kill switch is on (config or ``POST /api/v1/pause``)
scope           the target's namespace is out of scope (:mod:`monitor.scope`)
permission      the cluster denies a permission the policy's actions need
                (:mod:`monitor.k8s.access`, checked at start-up and on reload)
time_interval   outside the policy's active time intervals (re-checked later)
for_at_least    the alert has not fired long enough yet (deferred until it has)
cooldown        the target was acted on too recently (deferred until it cools)
budget          the target's attempts budget for the window is spent
=============== ===========================================================

The "still firing?" re-check and the per-target lock need I/O and are applied by the
engine right before acting (``stale`` and ``concurrency``). Rehearsal is not a stop: the
step is planned, recorded and verified, nothing is applied; its cooldown and budget are
the rehearsal's own (``history`` holds rehearsed executions only), never live mode's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from monitor import policy as policy_mod
from monitor import scope as scope_mod
from monitor.store.records import TargetHistory

Outcome = Literal["execute", "rehearse", "defer", "skip"]
TIME_INTERVAL_RECHECK = timedelta(minutes=5)


@dataclass(frozen=True)
class Verdict:
    guardrail: str
    passed: bool
    reason: str


@dataclass
class Decision:
    outcome: Outcome
    verdicts: list[Verdict] = field(default_factory=list)
    reason: str = ""
    guardrail: str = ""
    due_at: datetime | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "guardrail": self.guardrail,
            "due_at": self.due_at.isoformat() if self.due_at else None,
            "verdicts": [
                {"guardrail": v.guardrail, "passed": v.passed, "reason": v.reason}
                for v in self.verdicts
            ],
        }


LATEST = datetime.max.replace(tzinfo=UTC)


def later(at: datetime, delta: timedelta) -> datetime:
    """``at + delta``, clamped to the latest time there is: a stored far-future
    ``startsAt`` must not raise OverflowError on every decision (and every restart)."""
    try:
        return at + delta
    except OverflowError:
        return LATEST if delta >= timedelta(0) else datetime.min.replace(tzinfo=UTC)


def decide(
    policy: policy_mod.Policy,
    *,
    target: Mapping[str, str],
    starts_at: datetime,
    now: datetime,
    paused: bool,
    rehearsal: bool,
    scope: scope_mod.Scope,
    history: TargetHistory,
    denied: str | None = None,
) -> Decision:
    """The guardrails' verdicts for acting now on ``target`` for an alert that started at
    ``starts_at``; ``history`` is the target's past executions (cooldown and budget), of
    the same mode: rehearsed ones when ``rehearsal``, live ones otherwise; ``denied`` is
    why the policy lacks a permission, if it does."""
    d = Decision("execute")

    def stop(
        guardrail: str, reason: str, outcome: Outcome = "skip", due: datetime | None = None
    ) -> Decision:
        d.verdicts.append(Verdict(guardrail, False, reason))
        d.outcome, d.guardrail, d.reason, d.due_at = outcome, guardrail, reason, due
        return d

    def ok(guardrail: str, reason: str) -> None:
        d.verdicts.append(Verdict(guardrail, True, reason))

    if paused:
        return stop("paused", "automation is paused")
    ok("paused", "automation is running")
    namespace = target.get("namespace", "")
    problem = scope.denied(namespace) if namespace else None
    if problem:
        return stop("scope", problem)
    ok("scope", "target namespace allowed")
    if denied:
        return stop("permission", denied)
    if not policy_mod.active(policy, now):
        return stop(
            "time_interval",
            "outside the policy's active time intervals",
            "defer",
            now + TIME_INTERVAL_RECHECK,
        )
    ok("time_interval", "inside the policy's active time")
    ready = later(starts_at, policy.for_at_least)
    if now < ready:
        wait = (ready - now).total_seconds()
        return stop(
            "for_at_least",
            f"alert has fired {(now - starts_at).total_seconds():.0f}s of the "
            f"{policy.for_at_least.total_seconds():.0f}s required; "
            f"deciding again in {wait:.0f}s",
            "defer",
            ready,
        )
    ok("for_at_least", "alert has fired long enough")
    if history.last_started is not None and policy.cooldown:
        cool = history.last_started + policy.cooldown
        if now < cool:
            return stop(
                "cooldown",
                f"target was acted on at {history.last_started.isoformat()}; cooldown "
                f"{policy.cooldown.total_seconds():.0f}s ends at {cool.isoformat()}",
                "defer",
                cool,
            )
    ok("cooldown", "target not acted on within the cooldown")
    budget = policy.budget
    if history.attempts_in_window >= budget.attempts:
        return stop(
            "budget",
            f"budget spent: {history.attempts_in_window} of {budget.attempts} attempts "
            f"on this target in the last {budget.window.total_seconds():.0f}s",
        )
    ok("budget", f"{history.attempts_in_window} of {budget.attempts} attempts used")
    if rehearsal:
        d.outcome = "rehearse"
        d.reason = "the step is planned, recorded and verified; nothing is applied"
        ok("rehearsal", d.reason)
    return d
