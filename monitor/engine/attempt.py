"""What one attempt to run one step of one policy for one alert is about: one value the
engine's parts pass to each other instead of seven loose ones."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from monitor import policy as policy_mod
from monitor.alerts.context import AlertContext
from monitor.engine.guardrails import Decision
from monitor.store.records import Execution, ExecutionKey, Lock


@dataclass(frozen=True)
class Attempt:
    """One step of one policy for one alert, as far as it has been decided."""

    policy: policy_mod.Policy
    ctx: AlertContext
    step: int
    target: Mapping[str, str] = dataclasses.field(default_factory=dict)
    target_key: str = ""
    existing: int | None = None  # the deferred execution this attempt decides again
    decision: Decision | None = None
    lock: Lock | None = None
    execution_id: int | None = None
    approved: bool = False  # a person approved this step (approval mode)

    @property
    def dry_run(self) -> bool:
        """Is this a rehearsal (planned and recorded, nothing applied)?"""
        return self.decision is not None and self.decision.outcome == "rehearse"

    @property
    def key(self) -> ExecutionKey:
        return ExecutionKey(self.policy.name, self.step, self.ctx.fingerprint, self.ctx.starts_at)

    @property
    def where(self) -> str:
        """``step 2 of 'scale-out' on production/Deployment/conea-api``, for messages."""
        on = f" on {self.target_key}" if self.target_key else ""
        return f"step {self.step + 1} of {self.policy.name!r}{on}"

    def but(self, **changes: object) -> Attempt:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def context_of(row: Execution, annotations: Mapping[str, str], generator: str) -> AlertContext:
    """The alert a stored execution is about, rebuilt for a timer (deferral, verification,
    revert) that runs without its notification."""
    return AlertContext(
        labels=dict(row.labels),
        annotations=dict(annotations),
        status="firing",
        fingerprint=row.fingerprint,
        starts_at=row.starts_at,
        generator_url=generator,
    )
