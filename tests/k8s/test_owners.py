"""resolve: owner: a Pod (ReplicaSet, Job) target resolved to its workload, in the emulator."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest

from monitor import errors, wiring
from monitor import scope as scope_mod
from monitor.actions import default_registry, rbac
from monitor.k8s import owners
from monitor.policy import loader
from tests.k8s.conftest import context
from tests.support import kube_objects as objs

RESTARTED = "kubectl.kubernetes.io/restartedAt"


def pod_target(name: str = "conea-api-7d9f-x0", kind: str = "Pod") -> dict[str, str]:
    return {"kind": kind, "name": name, "resolve": "owner"}


async def test_a_pod_resolves_through_its_replica_set_to_its_deployment(emulator, kube):
    for obj in objs.deployment_with_pods():
        emulator.add(obj)
    found = await owners.resolve(kube, "Pod", "production", "conea-api-7d9f-x0")
    assert (found.kind, found.name) == ("Deployment", "conea-api")
    assert str(found) == (
        "Pod production/conea-api-7d9f-x0 -> ReplicaSet conea-api-7d9f -> Deployment conea-api"
    )


@pytest.mark.parametrize("kind", ["StatefulSet", "DaemonSet"])
async def test_a_pod_resolves_to_its_stateful_or_daemon_set(emulator, kube, kind):
    owner = emulator.add(objs.workload(kind, "cache"))
    emulator.add(objs.owned_by(objs.pod("cache-0"), owner))
    found = await owners.resolve(kube, "Pod", "production", "cache-0")
    assert str(found) == f"Pod production/cache-0 -> {kind} cache"


async def test_a_job_pod_resolves_through_its_job_to_its_cron_job(emulator, kube):
    cron = emulator.add(objs.workload("CronJob", "nightly"))
    job = emulator.add(objs.owned_by(objs.workload("Job", "nightly-2911"), cron))
    emulator.add(objs.owned_by(objs.pod("nightly-2911-abcde"), job))
    found = await owners.resolve(kube, "Pod", "production", "nightly-2911-abcde")
    assert str(found) == (
        "Pod production/nightly-2911-abcde -> Job nightly-2911 -> CronJob nightly"
    )
    from_job = await owners.resolve(kube, "Job", "production", "nightly-2911")
    assert str(from_job) == "Job production/nightly-2911 -> CronJob nightly"


async def test_a_gone_pod_is_an_action_error_naming_it(emulator, kube, actions):
    emulator.add(objs.deployment())
    action = actions.get("kubernetes.restart")
    ctx = context(kube, **pod_target("conea-api-7d9f-gone"))
    with pytest.raises(errors.PermanentActionError) as caught:
        await action.plan(actions.parse_params("kubernetes.restart", {}), ctx)
    assert str(caught.value) == (
        "cannot resolve the owner of Pod production/conea-api-7d9f-gone: it is gone"
    )


async def test_an_orphan_pod_is_an_action_error_saying_it_has_no_controller(emulator, kube):
    emulator.add(objs.pod("debug-shell"))
    not_controller = emulator.add(objs.workload("StatefulSet", "other"))
    emulator.add(objs.owned_by(objs.pod("adopted"), not_controller, controller=False))
    with pytest.raises(owners.OwnerError) as caught:
        await owners.resolve(kube, "Pod", "production", "debug-shell")
    assert str(caught.value) == (
        "cannot resolve the owner of Pod production/debug-shell: Pod debug-shell has no "
        "controller (ownerReferences with controller: true)"
    )
    with pytest.raises(owners.OwnerError, match="Pod adopted has no controller"):
        await owners.resolve(kube, "Pod", "production", "adopted")


async def test_owners_that_loop_back_are_an_error(emulator, kube):
    a, b = objs.replica_set("rs-a"), objs.replica_set("rs-b")
    objs.owned_by(a, b)
    objs.owned_by(b, a)
    emulator.add(a)
    emulator.add(b)
    emulator.add(objs.owned_by(objs.pod("looping"), a))
    with pytest.raises(owners.OwnerError) as caught:
        await owners.resolve(kube, "Pod", "production", "looping")
    assert str(caught.value) == (
        "cannot resolve the owner of Pod production/looping -> ReplicaSet rs-a -> "
        "ReplicaSet rs-b: the owners loop back"
    )


async def test_a_chain_longer_than_three_owners_is_an_error(emulator, kube):
    chain = [objs.replica_set(f"rs-{i}") for i in range(4)]
    for child, parent in itertools.pairwise(chain):
        objs.owned_by(child, parent)
    objs.owned_by(chain[-1], objs.deployment("far"))
    for obj in chain:
        emulator.add(obj)
    emulator.add(objs.owned_by(objs.pod("deep"), chain[0]))
    with pytest.raises(owners.OwnerError) as caught:
        await owners.resolve(kube, "Pod", "production", "deep")
    assert str(caught.value) == (
        "cannot resolve Pod production/deep -> ReplicaSet rs-0 -> ReplicaSet rs-1 -> "
        "ReplicaSet rs-2: no workload within 3 owners"
    )
    reads = [r for r in emulator if r.method.value == "GET"]
    assert len(reads) == 3  # the pod and two ReplicaSets: bounded


async def test_a_controller_of_an_unknown_kind_is_an_error(emulator, kube):
    rs = objs.owned_by(
        objs.replica_set("canary-5c6d"),
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "Rollout", "metadata": {"name": "canary"}},
    )
    emulator.add(rs)
    emulator.add(objs.owned_by(objs.pod("canary-5c6d-q1"), rs))
    with pytest.raises(owners.OwnerError) as caught:
        await owners.resolve(kube, "Pod", "production", "canary-5c6d-q1")
    assert str(caught.value) == (
        "cannot resolve Pod production/canary-5c6d-q1 -> ReplicaSet canary-5c6d -> "
        "Rollout canary: a Rollout is not a workload conea-monitor acts on "
        "(Deployment, StatefulSet, DaemonSet, CronJob)"
    )


async def test_restart_through_a_pod_restarts_its_deployment_and_the_plan_shows_how(
    emulator, kube, actions
):
    for obj in objs.deployment_with_pods():
        emulator.add(obj)
    action = actions.get("kubernetes.restart")
    params = actions.parse_params("kubernetes.restart", {})
    ctx = context(kube, **pod_target())
    plan = await action.plan(params, ctx)
    assert plan.summary == (
        "restart deployment production/conea-api (rolling, via the "
        f"{RESTARTED} annotation) (target Pod production/conea-api-7d9f-x0 -> "
        "ReplicaSet conea-api-7d9f -> Deployment conea-api)"
    )
    assert plan.details["resolved"].endswith("-> Deployment conea-api")
    outcome = await action.apply(params, ctx, plan)
    assert outcome.summary == "restarted deployment production/conea-api at 2026-11-28T12:00:00Z"
    dep = emulator.read("Deployment", "production", "conea-api")
    assert dep["spec"]["template"]["metadata"]["annotations"][RESTARTED] == "2026-11-28T12:00:00Z"


async def test_scale_through_a_pod_scales_its_deployment(emulator, kube, actions):
    for obj in objs.deployment_with_pods(replicas=2):
        emulator.add(obj)
    action = actions.get("kubernetes.scale")
    params = actions.parse_params("kubernetes.scale", {"by": 1, "max": 5})
    ctx = context(kube, **pod_target("conea-api-7d9f-x1"))
    plan = await action.plan(params, ctx)
    outcome = await action.apply(params, ctx, plan)
    assert outcome.revert_state is not None
    assert outcome.revert_state["kind"] == "Deployment"  # revert needs no pod
    assert emulator.read("Deployment", "production", "conea-api")["spec"]["replicas"] == 3


async def test_delete_pod_through_its_owner_deletes_that_pod_only(emulator, kube, actions):
    for obj in objs.deployment_with_pods():
        emulator.add(obj)
    action = actions.get("kubernetes.delete_pod")
    params = actions.parse_params("kubernetes.delete_pod", {})
    ctx = context(kube, **pod_target("conea-api-7d9f-x1"))
    plan = await action.plan(params, ctx)
    assert plan.summary.startswith("delete pod production/conea-api-7d9f-x1 (target Pod")
    await action.apply(params, ctx, plan)
    with pytest.raises(KeyError):
        emulator.read("Pod", "production", "conea-api-7d9f-x1")
    assert emulator.read("Pod", "production", "conea-api-7d9f-x0")


async def test_a_workload_the_action_does_not_act_on_is_an_error(emulator, kube, actions):
    owner = emulator.add(objs.workload("DaemonSet", "node-agent"))
    emulator.add(objs.owned_by(objs.pod("node-agent-abc"), owner))
    action = actions.get("kubernetes.rollback")
    ctx = context(kube, **pod_target("node-agent-abc"))
    with pytest.raises(errors.PermanentActionError) as caught:
        await action.plan(actions.parse_params("kubernetes.rollback", {}), ctx)
    assert str(caught.value) == (
        "Pod production/node-agent-abc -> DaemonSet node-agent: this action acts on a "
        "Deployment, not a DaemonSet"
    )


async def test_a_daemon_set_pod_crash_looping_restarts_its_daemon_set(emulator, kube, actions):
    """kube-prometheus-stack's KubePodCrashLooping on a node agent's pod (kps-crash-looping)."""
    owner = emulator.add(objs.workload("DaemonSet", "node-agent"))
    emulator.add(objs.owned_by(objs.pod("node-agent-abc"), owner))
    action = actions.get("kubernetes.restart")
    params = actions.parse_params("kubernetes.restart", {"unless_restarted_within": "10m"})
    ctx = context(kube, **pod_target("node-agent-abc"))
    plan = await action.plan(params, ctx)
    assert plan.summary == (
        f"restart daemonset production/node-agent (rolling, via the {RESTARTED} annotation) "
        "(target Pod production/node-agent-abc -> DaemonSet node-agent)"
    )
    await action.apply(params, ctx, plan)
    template = emulator.read("DaemonSet", "production", "node-agent")["spec"]["template"]
    assert template["metadata"]["annotations"][RESTARTED] == "2026-11-28T12:00:00Z"


async def test_resolve_starts_from_a_pod_replica_set_or_job(emulator, kube, actions):
    emulator.add(objs.deployment())
    action = actions.get("kubernetes.restart")
    ctx = context(kube, kind="Deployment", name="conea-api", resolve="owner")
    with pytest.raises(errors.PermanentActionError) as caught:
        await action.plan(actions.parse_params("kubernetes.restart", {}), ctx)
    assert "kind 'Deployment' is not supported here (expected one of Pod, ReplicaSet, Job)" in str(
        caught.value
    )


async def test_a_second_crashing_pod_leaves_a_just_restarted_deployment_alone(
    emulator, kube, actions
):
    for obj in objs.deployment_with_pods():
        emulator.add(obj)
    action = actions.get("kubernetes.restart")
    params = actions.parse_params("kubernetes.restart", {"unless_restarted_within": "15m"})
    first = context(kube, **pod_target("conea-api-7d9f-x0"))
    await action.apply(params, first, await action.plan(params, first))
    version = emulator.read("Deployment", "production", "conea-api")["metadata"]["resourceVersion"]

    later = context(kube, **pod_target("conea-api-7d9f-x1"))
    later.now = lambda: datetime(2026, 11, 28, 12, 0, 40, tzinfo=UTC)
    plan = await action.plan(params, later)
    assert plan.noop
    assert plan.summary.startswith(
        "leave deployment production/conea-api alone: restarted at 2026-11-28T12:00:00Z, "
        "40s ago (unless_restarted_within 15m)"
    )
    outcome = await action.apply(params, later, plan)
    assert outcome.summary.startswith("skipped (not restarted): deployment production/conea-api")
    dep = emulator.read("Deployment", "production", "conea-api")
    assert dep["metadata"]["resourceVersion"] == version  # nothing written

    much_later = context(kube, **pod_target("conea-api-7d9f-x1"))
    much_later.now = lambda: datetime(2026, 11, 28, 12, 15, 0, tzinfo=UTC)
    assert not (await action.plan(params, much_later)).noop


def test_the_permission_check_and_rbac_count_what_resolve_owner_reads(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: crash\n"
        "    match: ['alertname=\"KubePodCrashLooping\"']\n"
        "    target: {kind: Pod, namespace: production, name: '{{ labels.pod }}',"
        " resolve: owner}\n"
        "    steps: [[{action: kubernetes.restart}]]\n"
    )
    registry = default_registry()
    policies = loader.load([tmp_path], registry)
    needs = wiring.permission_needs(policies, registry, scope_mod.Scope(), "monitoring")
    asked = {str(n) for n in needs["crash"]}
    assert {"get pods in production", "get replicasets.apps in production"} <= asked
    assert "get jobs.batch in production" in asked
    role = rbac.rules(registry, ["kubernetes.restart", rbac.RESOLVE_OWNER])
    assert {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]} in role


def test_the_permission_check_asks_only_for_the_workload_kind_a_policy_targets(tmp_path):
    """A Role written for Deployment restarts keeps working after restart learnt DaemonSets:
    a policy is checked for the kind it names, and for all when the kind is not literal."""
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: api\n"
        "    match: ['alertname=\"A\"']\n"
        "    target: {kind: deploy, namespace: production, name: api}\n"
        "    steps: [[{action: kubernetes.restart}]]\n"
        "  - name: agent\n"
        "    match: ['alertname=\"B\"']\n"
        "    target: {kind: DaemonSet, namespace: production, name: agent}\n"
        "    steps: [[{action: kubernetes.restart}]]\n"
        "  - name: any\n"
        "    match: ['alertname=\"C\"']\n"
        "    target: {kind: '{{ labels.kind }}', namespace: production, name: x}\n"
        "    steps: [[{action: kubernetes.restart}]]\n"
        "  - name: scale-api\n"
        "    match: ['alertname=\"D\"']\n"
        "    target: {kind: Deployment, namespace: production, name: api}\n"
        "    steps: [[{action: kubernetes.scale, with: {by: 1}}]]\n"
    )
    registry = default_registry()
    policies = loader.load([tmp_path], registry)
    needs = wiring.permission_needs(policies, registry, scope_mod.Scope(), "monitoring")
    asked = {name: {str(n) for n in found} for name, found in needs.items()}
    assert asked["api"] == {
        "get deployments.apps in production",
        "patch deployments.apps in production",
    }
    assert asked["agent"] == {
        "get daemonsets.apps in production",
        "patch daemonsets.apps in production",
    }
    assert "patch statefulsets.apps in production" in asked["any"]
    assert "patch daemonsets.apps in production" in asked["any"]
    # a subresource of another kind is left out too
    assert "update deployments.apps/scale in production" in asked["scale-api"]
    assert not [n for n in asked["scale-api"] if "statefulsets" in n]


async def test_delete_pod_through_a_daemon_set_deletes_that_pod_only(emulator, kube, actions):
    """kps-container-waiting on a node agent's pod: its DaemonSet recreates it."""
    owner = emulator.add(objs.workload("DaemonSet", "node-agent"))
    for name in ("node-agent-abc", "node-agent-def"):
        emulator.add(objs.owned_by(objs.pod(name, labels={"app": "node-agent"}), owner))
    action = actions.get("kubernetes.delete_pod")
    params = actions.parse_params("kubernetes.delete_pod", {})
    ctx = context(kube, **pod_target("node-agent-abc"))
    plan = await action.plan(params, ctx)
    assert plan.summary.startswith("delete pod production/node-agent-abc (target Pod")
    await action.apply(params, ctx, plan)
    with pytest.raises(KeyError):
        emulator.read("Pod", "production", "node-agent-abc")
    assert emulator.read("Pod", "production", "node-agent-def")
