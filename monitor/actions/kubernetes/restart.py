"""``kubernetes.restart``: ``kubectl rollout restart`` of a Deployment, StatefulSet or
DaemonSet."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from monitor import durations, errors
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

KINDS = (*common.WORKLOADS, "DaemonSet")


class RestartParams(StrictModel):
    # Leave a workload alone that was restarted this recently (its restartedAt): with
    # resolve: owner, two crashing pods of one Deployment are two targets (docs/kubernetes.md).
    unless_restarted_within: durations.Duration | None = None


class Restart(Action[RestartParams]):
    """``kubectl rollout restart`` of a Deployment, StatefulSet or DaemonSet: a new
    restartedAt annotation on the pod template."""

    name = "kubernetes.restart"
    Params = RestartParams
    timeout = common.WRITE_TIMEOUT
    rbac = (RbacRule(("apps",), ("daemonsets", "deployments", "statefulsets"), ("get", "patch")),)

    async def _read(self, kube: k8s_client.Kube, t: names.Target) -> dict[str, Any]:
        obj = await kube.read(t.kind, t.namespace, t.name)
        if workloads.paused(obj):
            raise errors.PermanentActionError(
                f"{t} is paused: a restart would not roll out until it is resumed "
                "(kubectl rollout resume); refusing"
            )
        if workloads.on_delete(obj):
            raise errors.PermanentActionError(
                f"{t} replaces its pods only when they are deleted (updateStrategy "
                "OnDelete): a restart would change its template and no pod; refusing"
            )
        return obj

    async def plan(self, params: RestartParams, ctx: ActionContext) -> Plan:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube, KINDS)
        obj = await self._read(kube, t)
        recent = _recent(obj, params.unless_restarted_within, ctx.now())
        if recent:
            return common.shown(
                Plan(action=self.name, noop=True, summary=f"leave {t} alone: {recent}"), t
            )
        change = Change(
            resource=f"{t.kind}/{t.name}",
            before=_annotation(obj),
            after="now",
            field=f"spec.template.metadata.annotations[{workloads.RESTARTED_AT}]",
        )
        summary = f"restart {t} (rolling, via the {workloads.RESTARTED_AT} annotation)"
        return common.shown(Plan(action=self.name, summary=summary, changes=[change]), t)

    async def apply(self, params: RestartParams, ctx: ActionContext, plan: Plan) -> Outcome:
        kube = common.kube(ctx)
        t = await common.workload(ctx, kube, KINDS)
        stamp = ctx.now().strftime("%Y-%m-%dT%H:%M:%SZ")

        async def attempt() -> Outcome:
            obj = await self._read(kube, t)
            recent = _recent(obj, params.unless_restarted_within, ctx.now())
            if recent:
                return Outcome(summary=f"skipped (not restarted): {t} {recent}")
            patch = {
                "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                "spec": {
                    "template": {"metadata": {"annotations": {workloads.RESTARTED_AT: stamp}}}
                },
            }
            await kube.patch(t.kind, t.namespace, t.name, patch, "strategic")
            change = Change(
                resource=f"{t.kind}/{t.name}",
                before=_annotation(obj),
                after=stamp,
                field=f"spec.template.metadata.annotations[{workloads.RESTARTED_AT}]",
            )
            return Outcome(summary=f"restarted {t} at {stamp}", changes=[change])

        return await common.fresh(attempt)


def _recent(obj: dict[str, Any], within: timedelta | None, now: datetime) -> str | None:
    """Why ``obj`` counts as just restarted (its restartedAt within ``within``), or None."""
    stamp = _annotation(obj)
    if within is None or not isinstance(stamp, str):
        return None
    try:
        at = datetime.fromisoformat(stamp)
    except ValueError:
        return None
    if at.tzinfo is None or now - at >= within:
        return None
    ago = durations.format(max(now - at, timedelta(0)))
    return f"restarted at {stamp}, {ago} ago (unless_restarted_within {durations.format(within)})"


def _annotation(obj: dict[str, Any]) -> str | None:
    meta = obj.get("spec", {}).get("template", {}).get("metadata") or {}
    return (meta.get("annotations") or {}).get(workloads.RESTARTED_AT)
