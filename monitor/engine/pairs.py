"""What a batch's decisions are built from and into.

The (alert, policy) pairs a batch decides (:class:`Pair`), the plan its one commit
writes (:class:`Plan`), the audit records it notes of them (:class:`Records`), and the
hint of the targets this replica saw work on lately (:class:`Busy`).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from monitor import policy as policy_mod
from monitor.alerts.context import AlertContext
from monitor.engine import guardrails
from monitor.engine.attempt import Attempt
from monitor.engine.parts import Parts
from monitor.store.batches import Birth
from monitor.store.coalescing import Member
from monitor.store.records import Audit, ExecutionKey


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
class Pair:
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
class Plan:
    births: list[Birth] = field(default_factory=list)
    born: list[tuple[Attempt, list[Pair]]] = field(default_factory=list)  # per birth
    joins: dict[int, list[Member]] = field(default_factory=dict)
    records: list[Audit] = field(default_factory=list)
    reverts: list[tuple[Attempt, list[int]]] = field(default_factory=list)
    acting: list[tuple[list[Pair], guardrails.Decision]] = field(default_factory=list)
    processed: list[int] = field(default_factory=list)  # notifications marked in the commit
    seen_at: datetime | None = None  # when the store was read for this batch


class Records:
    """The audit records (and skip metrics) of a batch's pairs, as its decisions note them."""

    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def attempt(self, pair: Pair) -> Attempt:
        return Attempt(pair.policy, pair.ctx, 0, target=pair.target, target_key=pair.target_key)

    def members(self, pairs: Sequence[Pair], why: str) -> list[Member]:
        at = self.parts.clock.now()
        return [Member(pair.key, pair.ctx.labels, why, pair.target_key, at) for pair in pairs]

    def skip(
        self,
        pair: Pair,
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
            attempt=self.attempt(pair),
            outcome=guardrail,
            details=decision.as_dict() if decision is not None else None,
        )

    def refusal(self, pair: Pair, decision: guardrails.Decision) -> Audit:
        """The skip record of a claim the breaker refuses in the store, which completes
        the message with its reason (as :meth:`skip` words it; counted when refused)."""
        return self.parts.ledger.note(
            "skip",
            f"{pair.policy.name!r}: breaker: ",
            attempt=self.attempt(pair),
            outcome="breaker",
            details=decision.as_dict(),
        )

    def duplicate(self, pair: Pair) -> Audit:
        return self.parts.ledger.note(
            "skip",
            f"step 1 of {pair.policy.name!r} for this alert is already claimed "
            "(re-delivery or another replica)",
            attempt=self.attempt(pair),
            outcome="duplicate",
        )
