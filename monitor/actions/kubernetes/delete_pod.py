"""``kubernetes.delete_pod``: the pod(s) an alert names, with a cap per run."""

from __future__ import annotations

from pydantic import Field

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


class DeletePodParams(StrictModel):
    max_pods: int = Field(1, ge=1, le=20)
    grace_period_seconds: int | None = Field(None, ge=0)


class DeletePod(Action[DeletePodParams]):
    """Deletes the pod(s) the alert names (``target.pod``, comma-separated), at most
    ``max_pods`` per run; with a workload target, only pods its selector matches."""

    name = "kubernetes.delete_pod"
    Params = DeletePodParams
    timeout = common.WRITE_TIMEOUT
    rbac = (
        RbacRule(("",), ("pods",), ("get", "delete")),
        RbacRule(("apps",), ("daemonsets", "deployments", "statefulsets"), ("get",)),
    )

    async def _decide(
        self, kube: k8s_client.Kube, ctx: ActionContext, params: DeletePodParams
    ) -> tuple[Plan, names.Target, list[str]]:
        t = await common.workload(
            ctx, kube, (*common.WORKLOADS, "DaemonSet", "Pod"), need_name=False
        )
        pods = (t.pod or (t.name if t.kind == "Pod" else "")).split(",")
        if not pods[0]:
            raise names.InvalidTargetError("the target names no pod (label 'pod')")
        chosen, skipped = pods[: params.max_pods], pods[params.max_pods :]
        labels = {}
        if t.kind != "Pod" and t.name:
            labels = workloads.match_labels(await kube.read(t.kind, t.namespace, t.name))
        for pod in chosen:
            got = (await kube.read("Pod", t.namespace, pod))["metadata"].get("labels") or {}
            if labels and any(got.get(k) != v for k, v in labels.items()):
                raise errors.PermanentActionError(
                    f"pod {t.namespace}/{pod} does not belong to {t} "
                    f"(its labels do not match {workloads.selector(labels)}); refusing"
                )
        summary = f"delete pod {', '.join(f'{t.namespace}/{p}' for p in chosen)}"
        if skipped:
            summary += f" ({len(skipped)} more left alone: max_pods={params.max_pods})"
        plan = Plan(
            action=self.name,
            summary=summary,
            details={"skipped": skipped},
            changes=[
                Change(resource=f"Pod/{p}", field="(object)", before="exists", after="deleted")
                for p in chosen
            ],
        )
        return common.shown(plan, t), t, chosen

    async def plan(self, params: DeletePodParams, ctx: ActionContext) -> Plan:
        return (await self._decide(common.kube(ctx), ctx, params))[0]

    async def apply(self, params: DeletePodParams, ctx: ActionContext, plan: Plan) -> Outcome:
        kube = common.kube(ctx)
        fresh, t, chosen = await self._decide(kube, ctx, params)
        for pod in chosen:
            await kube.delete("Pod", t.namespace, pod, params.grace_period_seconds)
        return Outcome(
            summary=fresh.summary.replace("delete", "deleted", 1),
            changes=fresh.changes,
            details=fresh.details,
        )
