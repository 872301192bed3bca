"""What the Kubernetes actions share: the client, target validation, conflict retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from monitor import errors
from monitor.actions.registry import ActionContext, Plan
from monitor.k8s import client as k8s_client
from monitor.k8s import errors as k8s_errors
from monitor.k8s import names, owners

CONFLICT_ATTEMPTS = 3
# Seconds one try of a Kubernetes action may take: a few requests of at most (3 s, 10 s)
# each (monitor.k8s.client), and the re-reads of a conflict.
WRITE_TIMEOUT = 30.0
WORKLOADS = ("Deployment", "StatefulSet")
T = TypeVar("T")


def kube(ctx: ActionContext) -> k8s_client.Kube:
    found = ctx.services.kube
    if not isinstance(found, k8s_client.Kube):
        raise errors.NotConfigured(
            "no Kubernetes credentials: set a kubeconfig or run in a cluster"
        )
    return found


async def fresh(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run read-decide-write ``attempt`` again while the write meets a conflict."""
    for _ in range(CONFLICT_ATTEMPTS - 1):
        try:
            return await attempt()
        except k8s_errors.ConflictError:
            continue
    return await attempt()


def target(
    ctx: ActionContext,
    kube: k8s_client.Kube,
    kinds: tuple[str, ...] = WORKLOADS,
    need_name: bool = True,
) -> names.Target:
    return names.target(ctx.target, kube.scope, kinds, need_name)


async def workload(
    ctx: ActionContext,
    kube: k8s_client.Kube,
    kinds: tuple[str, ...] = WORKLOADS,
    need_name: bool = True,
) -> names.Target:
    """The validated target; with ``resolve: owner``, the workload controlling the
    rendered Pod, ReplicaSet or Job (:mod:`monitor.k8s.owners`), the chain in ``via``."""
    how = ctx.target.get("resolve")
    if not how:
        return target(ctx, kube, kinds, need_name)
    if how != "owner":
        raise names.InvalidTargetError(f"resolve {how!r} is not known (resolve: owner)")
    start = names.target(ctx.target, kube.scope, owners.FOLLOWED)
    resolution = await owners.resolve(kube, start.kind, start.namespace, start.name)
    if resolution.kind not in kinds:
        raise errors.PermanentActionError(
            f"{resolution}: this action acts on a {' or '.join(kinds)}, not a {resolution.kind}"
        )
    pod = start.pod or (start.name if start.kind == "Pod" else None)
    return names.Target(resolution.kind, start.namespace, resolution.name, pod, str(resolution))


def shown(plan: Plan, t: names.Target) -> Plan:
    """``plan`` saying how its target was resolved (``resolve: owner``), if it was."""
    if not t.via:
        return plan
    return plan.model_copy(
        update={
            "summary": f"{plan.summary} (target {t.via})",
            "details": {**plan.details, "resolved": t.via},
        }
    )


def guard(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON patch operation making the patch fail (409) if ``obj`` changed since read."""
    version = obj["metadata"]["resourceVersion"]
    return {"op": "replace", "path": "/metadata/resourceVersion", "value": version}
