"""``kubernetes.rollback``: ``kubectl rollout undo`` to the previous revision."""

from __future__ import annotations

from typing import Any

from monitor import errors
from monitor.actions.kubernetes import common
from monitor.actions.registry import (
    Action,
    ActionContext,
    Change,
    Outcome,
    Plan,
    RbacRule,
    StrictModel,
)
from monitor.k8s import client as k8s_client
from monitor.k8s import names, workloads


class RollbackParams(StrictModel):
    pass


class Rollback(Action[RollbackParams]):
    """``kubectl rollout undo``: the previous revision's pod template, by JSON patch."""

    name = "kubernetes.rollback"
    Params = RollbackParams
    timeout = common.WRITE_TIMEOUT
    rbac = (
        RbacRule(("apps",), ("deployments",), ("get", "patch")),
        RbacRule(("apps",), ("replicasets",), ("list",)),
    )

    async def _decide(
        self, kube: k8s_client.Kube, t: names.Target
    ) -> tuple[Plan, dict[str, Any], dict[str, Any]]:
        obj = await kube.read(t.kind, t.namespace, t.name)
        if workloads.paused(obj):
            raise errors.PermanentActionError(
                f"{t} is paused: kubectl refuses to roll back a paused deployment; "
                "resume it first (kubectl rollout resume)"
            )
        sets = await kube.list(
            "ReplicaSet", t.namespace, workloads.selector(workloads.match_labels(obj))
        )
        previous = workloads.previous_replica_set(obj, sets)
        if previous is None:
            raise errors.PermanentActionError(
                f"{t} has no previous revision to roll back to "
                f"(current revision {workloads.revision(obj)})"
            )
        template = workloads.template_of(previous)
        current = obj["spec"]["template"]
        rev, prev = workloads.revision(obj), workloads.revision(previous)
        same = template == current
        change = Change(
            resource=f"{t.kind}/{t.name}",
            field="spec.template",
            before=workloads.images(current),
            after=workloads.images(template),
        )
        plan = Plan(
            action=self.name,
            noop=same,
            changes=[] if same else [change],
            summary=(
                f"roll back {t.namespace}/{t.name} from revision {rev} to "
                f"revision {prev} ({change.before} -> {change.after})"
            ),
            details={
                "from_revision": rev,
                "to_revision": prev,
                "replica_set": previous["metadata"]["name"],
            },
        )
        return plan, obj, template

    async def plan(self, params: RollbackParams, ctx: ActionContext) -> Plan:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube, ("Deployment",))
        return common.shown((await self._decide(kube, t))[0], t)

    async def apply(self, params: RollbackParams, ctx: ActionContext, plan: Plan) -> Outcome:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube, ("Deployment",))

        async def attempt() -> Outcome:
            fresh, obj, template = await self._decide(kube, t)
            if not fresh.noop:
                ops = [
                    common.guard(obj),
                    {"op": "replace", "path": "/spec/template", "value": template},
                ]
                await kube.patch(t.kind, t.namespace, t.name, ops, "json")
            done = "skipped (already at that template): " if fresh.noop else ""
            return Outcome(
                summary=done + fresh.summary, changes=fresh.changes, details=fresh.details
            )

        return await common.fresh(attempt)
