"""What the engine's parts share: built once by the :class:`~.core.Engine` facade (the
policies are swapped in place on reload, so every part sees a reload at once)."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor import policy as policy_mod
from monitor import scope as scope_mod
from monitor.actions.registry import ActionContext, Registry, Services
from monitor.actions.runner import ActionRunner
from monitor.engine.clock import Clock
from monitor.engine.firing import FiringCheck
from monitor.engine.ledger import Ledger
from monitor.engine.timers import Timers
from monitor.engine.verifier import Verifier
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store.facade import Store


@dataclass
class Parts:
    store: Store
    ledger: Ledger
    runner: ActionRunner
    policies: policy_mod.PolicySet
    registry: Registry
    services: Services
    metrics: Metrics
    automation: AutomationSettings
    firing: FiringCheck
    verifier: Verifier | None
    clock: Clock
    timers: Timers
    owner: str
    scope: scope_mod.Scope
    dry_run: bool  # automation is in rehearsal mode (every step is rehearsed)
    # policy -> why it cannot act: a permission the cluster denies (set by the wiring
    # after the permission check, :mod:`monitor.k8s.access`; the guardrail "permission")
    denied: dict[str, str] = field(default_factory=dict)

    async def tell(
        self,
        notifier: str,
        ctx: ActionContext,
        message: str,
        title: str | None = None,
        dedup_key: str | None = None,
    ) -> None:
        """Send ``message`` to a notifier through the ``notify`` action and the action
        runner (its timeout and retries bound the wait); raises what the action raises.
        ``dedup_key``: the incident's key, if the notifier is a PagerDuty one."""
        action = self.registry.get("notify")
        params = action.Params.model_validate(
            {"notifier": notifier, "message": message, "title": title, "dedup_key": dedup_key}
        )
        retry = action.retry_policy(params, ctx)
        plan = await self.runner.plan(action, params, ctx, retry=retry)
        await self.runner.apply(action, params, ctx, plan, retry=retry)

    def rehearsal(self, policy: policy_mod.Policy, step: int) -> bool:
        """Is this step of this policy rehearsed (mode, policy or step ``dry_run``)?"""
        return self.dry_run or policy.rehearsed(step)

    def needs_approval(self, policy: policy_mod.Policy, step: int) -> bool:
        """Must a person approve this step before it acts? The step's or the policy's
        ``approval``; else, in approval mode, every step that changes something (a step
        of notifications and log lines only is not asked about). Never a rehearsal."""
        if self.rehearsal(policy, step) or not 0 <= step < len(policy.steps):
            return False
        said = policy.spec.step_approval(step)
        if said is not None:
            return said == "required"
        if self.automation.mode != "approval":
            return False
        return any(a.action not in UNASKED for a in policy.steps[step])


UNASKED = frozenset({"notify", "log"})
"""Actions that change nothing: approval mode does not ask before a step of them only."""
