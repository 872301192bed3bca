"""kubernetes.restart / set_env / rollback / delete_pod against the emulator."""

from __future__ import annotations

import pytest

from monitor import errors
from monitor.k8s import workloads
from tests.k8s.conftest import context
from tests.support.kube_objects import deployment, workload

RESTARTED = "kubectl.kubernetes.io/restartedAt"


async def run(actions, kube, name, params=None, **target):
    action = actions.get(name)
    parsed = actions.parse_params(name, params or {})
    ctx = context(kube, **target)
    plan = await action.plan(parsed, ctx)
    return action, parsed, ctx, plan, await action.apply(parsed, ctx, plan)


def template(emulator, name="conea-api"):
    return emulator.read("Deployment", "production", name)["spec"]["template"]


def containers(emulator):
    return {c["name"]: c for c in template(emulator)["spec"]["containers"]}


# --- restart ---------------------------------------------------------------------------
async def test_restart_sets_the_restarted_at_annotation(emulator, kube, actions):
    emulator.add(deployment())
    _, _, _, plan, outcome = await run(actions, kube, "kubernetes.restart")
    assert plan.summary.startswith("restart deployment production/conea-api")
    assert template(emulator)["metadata"]["annotations"][RESTARTED] == "2026-11-28T12:00:00Z"
    assert outcome.summary == "restarted deployment production/conea-api at 2026-11-28T12:00:00Z"
    patch = next(r for r in emulator if r.method.value == "PATCH")
    assert patch.headers["Content-Type"] == "application/strategic-merge-patch+json"
    assert patch.data["metadata"]["resourceVersion"]  # guarded by what it read


async def test_restart_refuses_a_paused_deployment(emulator, kube, actions):
    emulator.add(deployment(paused=True))
    with pytest.raises(errors.PermanentActionError, match="is paused"):
        await run(actions, kube, "kubernetes.restart")
    assert RESTARTED not in (template(emulator)["metadata"].get("annotations") or {})


async def test_restart_after_a_race_keeps_the_other_writers_change(emulator, kube, actions):
    emulator.add(deployment())
    emulator.race(
        lambda e: e.modify(
            "Deployment", "production", "conea-api", lambda o: o["spec"].update(replicas=9)
        )
    )
    await run(actions, kube, "kubernetes.restart")
    obj = emulator.read("Deployment", "production", "conea-api")
    assert (
        obj["spec"]["replicas"] == 9
        and RESTARTED in obj["spec"]["template"]["metadata"]["annotations"]
    )


async def restart_agent(actions, kube, kind, params=None):
    """kubernetes.restart of the ``kind`` named node-agent: (plan, outcome)."""
    action = actions.get("kubernetes.restart")
    parsed = actions.parse_params("kubernetes.restart", params or {})
    ctx = context(kube, kind=kind, name="node-agent")
    plan = await action.plan(parsed, ctx)
    return plan, await action.apply(parsed, ctx, plan)


@pytest.mark.parametrize("kind", ["DaemonSet", "StatefulSet"])
async def test_restart_of_a_daemonset_or_statefulset(emulator, kube, actions, kind):
    emulator.add(workload(kind, "node-agent"))
    plan, outcome = await restart_agent(actions, kube, kind.lower())
    assert plan.summary == (
        f"restart {kind.lower()} production/node-agent (rolling, via the {RESTARTED} annotation)"
    )
    obj = emulator.read(kind, "production", "node-agent")
    assert obj["spec"]["template"]["metadata"]["annotations"][RESTARTED] == ("2026-11-28T12:00:00Z")
    assert outcome.summary == (
        f"restarted {kind.lower()} production/node-agent at 2026-11-28T12:00:00Z"
    )


async def test_restart_of_a_daemonset_restarted_moments_ago_is_a_noop(emulator, kube, actions):
    ds = workload("DaemonSet", "node-agent")
    ds["spec"]["template"] = {"metadata": {"annotations": {RESTARTED: "2026-11-28T11:58:00Z"}}}
    emulator.add(ds)
    plan, _ = await restart_agent(actions, kube, "DaemonSet", {"unless_restarted_within": "10m"})
    assert plan.noop and plan.summary.startswith("leave daemonset production/node-agent alone")
    assert not [r for r in emulator if r.method.value == "PATCH"]


@pytest.mark.parametrize("kind", ["DaemonSet", "StatefulSet"])
async def test_restart_refuses_a_workload_that_replaces_pods_only_on_delete(
    emulator, kube, actions, kind
):
    obj = workload(kind, "node-agent")
    obj["spec"]["updateStrategy"] = {"type": "OnDelete"}
    emulator.add(obj)
    with pytest.raises(errors.PermanentActionError) as caught:
        await restart_agent(actions, kube, kind)
    assert str(caught.value) == (
        f"{kind.lower()} production/node-agent replaces its pods only when they are deleted "
        "(updateStrategy OnDelete): a restart would change its template and no pod; refusing"
    )
    assert not [r for r in emulator if r.method.value == "PATCH"]


# --- set_env ---------------------------------------------------------------------------
async def test_set_env_on_a_named_container_and_revert(emulator, kube, actions):
    emulator.add(deployment())
    params = {"env": {"RATE_LIMIT_PER_MINUTE": "100", "LOG_LEVEL": "debug"}, "containers": ["api"]}
    action, parsed, ctx, plan, outcome = await run(actions, kube, "kubernetes.set_env", params)
    assert plan.summary == (
        "set env on deployment production/conea-api: "
        "api.env.RATE_LIMIT_PER_MINUTE None -> '100', "
        "api.env.LOG_LEVEL 'info' -> 'debug'"
    )
    api, sidecar = containers(emulator)["api"], containers(emulator)["sidecar"]
    assert api["env"] == [
        {"name": "LOG_LEVEL", "value": "debug"},
        {"name": "RATE_LIMIT_PER_MINUTE", "value": "100"},
    ]
    assert "env" not in sidecar or not sidecar["env"]
    await action.revert(parsed, ctx, outcome.revert_state)
    assert containers(emulator)["api"]["env"] == [{"name": "LOG_LEVEL", "value": "info"}]


async def test_set_env_on_all_containers(emulator, kube, actions):
    emulator.add(deployment())
    await run(actions, kube, "kubernetes.set_env", {"env": {"RATE": "5"}})
    assert all({"name": "RATE", "value": "5"} in c["env"] for c in containers(emulator).values())


async def test_set_env_restores_a_value_from_a_secret(emulator, kube, actions):
    obj = deployment()
    secret = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}
    obj["spec"]["template"]["spec"]["containers"][0]["env"].append(secret)
    emulator.add(obj)
    action, parsed, ctx, _, outcome = await run(
        actions, kube, "kubernetes.set_env", {"env": {"TOKEN": "x"}, "containers": ["api"]}
    )
    assert {"name": "TOKEN", "value": "x"} in containers(emulator)["api"]["env"]
    await action.revert(parsed, ctx, outcome.revert_state)
    assert secret in containers(emulator)["api"]["env"]


async def test_set_env_already_set_is_a_noop(emulator, kube, actions):
    emulator.add(deployment())
    _, _, _, plan, outcome = await run(
        actions, kube, "kubernetes.set_env", {"env": {"LOG_LEVEL": "info"}, "containers": ["api"]}
    )
    assert plan.noop and outcome.revert_state is None
    assert not [r for r in emulator if r.method.value == "PUT"]


async def test_set_env_unknown_container_is_refused(emulator, kube, actions):
    emulator.add(deployment())
    with pytest.raises(errors.PermanentActionError, match=r"has no container 'web'.*'api'"):
        await run(actions, kube, "kubernetes.set_env", {"env": {"A": "1"}, "containers": ["web"]})


async def test_set_env_revert_leaves_a_value_changed_since(emulator, kube, actions):
    emulator.add(deployment())
    action, parsed, ctx, _, outcome = await run(
        actions, kube, "kubernetes.set_env", {"env": {"LOG_LEVEL": "debug"}, "containers": ["api"]}
    )

    def edit(obj):
        obj["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "warn"

    emulator.modify("Deployment", "production", "conea-api", edit)
    back = await action.revert(parsed, ctx, outcome.revert_state)
    assert "api.LOG_LEVEL left as is" in back.summary
    assert containers(emulator)["api"]["env"][0]["value"] == "warn"


async def test_set_env_conflict_is_retried_with_a_fresh_read(emulator, kube, actions):
    emulator.add(deployment())
    emulator.race(
        lambda e: e.modify(
            "Deployment", "production", "conea-api", lambda o: o["spec"].update(replicas=7)
        )
    )
    await run(actions, kube, "kubernetes.set_env", {"env": {"A": "1"}, "containers": ["api"]})
    obj = emulator.read("Deployment", "production", "conea-api")
    assert obj["spec"]["replicas"] == 7
    assert {"name": "A", "value": "1"} in obj["spec"]["template"]["spec"]["containers"][0]["env"]


def test_set_env_rejects_bad_variable_names(actions):
    with pytest.raises(ValueError, match="not a valid environment variable name"):
        actions.parse_params("kubernetes.set_env", {"env": {"1 BAD": "x"}})


# --- rollback --------------------------------------------------------------------------
def replica_set(owner, revision, image, name=None):
    template = {
        "metadata": {"labels": {"app": "conea-api", "pod-template-hash": f"h{revision}"}},
        "spec": {"containers": [{"name": "api", "image": image}]},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": name or f"conea-api-h{revision}",
            "namespace": "production",
            "labels": {"app": "conea-api", "pod-template-hash": f"h{revision}"},
            "annotations": {workloads.REVISION: str(revision)},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "Deployment",
                    "name": "conea-api",
                    "uid": owner["metadata"]["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "conea-api"}},
            "template": template,
        },
    }


def with_history(emulator, current=3, **spec):
    obj = deployment(image=f"conea/api:1.{current}.0", **spec)
    obj["metadata"]["annotations"][workloads.REVISION] = str(current)
    obj["spec"]["template"]["spec"]["containers"] = [
        {"name": "api", "image": f"conea/api:1.{current}.0"}
    ]
    obj = emulator.add(obj)
    for revision in range(1, current + 1):
        emulator.add(replica_set(obj, revision, f"conea/api:1.{revision}.0"))
    return obj


async def test_rollback_picks_the_previous_revision(emulator, kube, actions):
    owner = with_history(emulator, current=3)
    # Revision 5 of another deployment with the same labels must not be picked.
    stranger = dict(owner, metadata={**owner["metadata"], "uid": "someone-else"})
    emulator.add(replica_set(stranger, 5, "evil:latest", name="other-h5"))
    _, _, _, plan, _ = await run(actions, kube, "kubernetes.rollback")
    assert plan.summary == (
        "roll back production/conea-api from revision 3 to revision 2 "
        "(api=conea/api:1.3.0 -> api=conea/api:1.2.0)"
    )
    tmpl = template(emulator)
    assert tmpl["spec"]["containers"][0]["image"] == "conea/api:1.2.0"
    assert "pod-template-hash" not in tmpl["metadata"]["labels"]
    patch = next(r for r in emulator if r.method.value == "PATCH")
    assert patch.headers["Content-Type"] == "application/json-patch+json"
    lists = [r for r in emulator if r.method.value == "GET" and r.name is None]
    assert lists[0].params["labelSelector"] == "app=conea-api"


async def test_rollback_refuses_without_a_previous_revision(emulator, kube, actions):
    with_history(emulator, current=1)
    with pytest.raises(errors.PermanentActionError, match="no previous revision"):
        await run(actions, kube, "kubernetes.rollback")


async def test_rollback_refuses_a_paused_deployment(emulator, kube, actions):
    with_history(emulator, current=3, paused=True)
    with pytest.raises(errors.PermanentActionError, match="is paused"):
        await run(actions, kube, "kubernetes.rollback")
    assert template(emulator)["spec"]["containers"][0]["image"] == "conea/api:1.3.0"


async def test_rollback_race_decides_again(emulator, kube, actions):
    with_history(emulator, current=3)

    def new_rollout(e):  # someone rolls out revision 4 while we decide
        owner = e.read("Deployment", "production", "conea-api")
        e.add(replica_set(owner, 4, "conea/api:1.4.0"))

        def bump(obj):
            obj["metadata"]["annotations"][workloads.REVISION] = "4"
            obj["spec"]["template"]["spec"]["containers"][0]["image"] = "conea/api:1.4.0"

        e.modify("Deployment", "production", "conea-api", bump)

    emulator.race(new_rollout)
    _, _, _, _, outcome = await run(actions, kube, "kubernetes.rollback")
    assert outcome.details["to_revision"] == 3
    assert template(emulator)["spec"]["containers"][0]["image"] == "conea/api:1.3.0"


async def test_rollback_refuses_a_statefulset_target(emulator, kube, actions):
    with pytest.raises(errors.PermanentActionError, match="kind 'StatefulSet' is not supported"):
        await run(actions, kube, "kubernetes.rollback", kind="StatefulSet")


# --- delete_pod ------------------------------------------------------------------------
def pod(name, app="conea-api", namespace="production"):
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": app}},
        "spec": {"containers": [{"name": "api", "image": "conea/api:1.2.0"}]},
    }


def pods(emulator):
    return sorted(
        name
        for (res, _, name), obj in emulator.objects.items()
        if res.plural == "pods" and not obj.deleted
    )


async def test_delete_pod_named_by_the_alert(emulator, kube, actions):
    emulator.add(deployment())
    emulator.add(pod("conea-api-1"))
    emulator.add(pod("conea-api-2"))
    _, _, _, plan, outcome = await run(actions, kube, "kubernetes.delete_pod", pod="conea-api-1")
    assert plan.summary == "delete pod production/conea-api-1"
    assert outcome.summary == "deleted pod production/conea-api-1"
    assert pods(emulator) == ["conea-api-2"]


async def test_delete_pod_respects_the_cap_per_run(emulator, kube, actions):
    emulator.add(deployment())
    for i in range(3):
        emulator.add(pod(f"conea-api-{i}"))
    _, _, _, plan, _ = await run(
        actions,
        kube,
        "kubernetes.delete_pod",
        {"max_pods": 2},
        pod="conea-api-0,conea-api-1,conea-api-2",
    )
    assert plan.summary.endswith("(1 more left alone: max_pods=2)")
    assert pods(emulator) == ["conea-api-2"]


async def test_delete_pod_refuses_a_pod_of_another_workload(emulator, kube, actions):
    emulator.add(deployment())
    emulator.add(pod("postgres-0", app="postgres"))
    with pytest.raises(errors.PermanentActionError, match="does not belong to deployment"):
        await run(actions, kube, "kubernetes.delete_pod", pod="postgres-0")
    assert pods(emulator) == ["postgres-0"]


async def test_delete_pod_with_an_invalid_pod_label(emulator, kube, actions):
    with pytest.raises(
        errors.PermanentActionError, match=r"pod name '\.\./secrets' is not a valid DNS-1123"
    ):
        await run(actions, kube, "kubernetes.delete_pod", pod="../secrets")


async def test_delete_pod_forbidden_says_what_is_missing(emulator, kube, actions):
    emulator.add(deployment())
    emulator.add(pod("conea-api-1"))
    emulator.fail(403, method="DELETE", plural="pods", message="pods is forbidden")
    with pytest.raises(
        errors.PermanentActionError,
        match="may not 'delete' resource 'pods' in namespace 'production'",
    ):
        await run(actions, kube, "kubernetes.delete_pod", pod="conea-api-1")
    assert pods(emulator) == ["conea-api-1"]


async def test_actions_recover_from_500s_and_timeouts_through_the_runner(
    emulator, kube, actions, runner, sleeps
):
    emulator.add(deployment())
    emulator.fail(500, method="PATCH", retry_after=2)
    emulator.stall(0.6, method="GET")  # the client's read timeout is 0.3 s
    action = actions.get("kubernetes.restart")
    params = actions.parse_params("kubernetes.restart", {})
    ctx = context(kube)
    plan = await runner.plan(action, params, ctx)  # a timeout, then the read
    await runner.apply(action, params, ctx, plan)  # a 500 (Retry-After: 2), then the patch
    assert RESTARTED in template(emulator)["metadata"]["annotations"]
    patches = [r for r in emulator if r.method.value == "PATCH"]
    assert len(patches) == 2
    assert sleeps == [1.0, 2.0]  # the client's default delay, then the server's Retry-After


async def test_without_credentials_the_action_says_so(actions):
    from monitor.actions.registry import ActionContext, Services

    ctx = ActionContext(
        alert=None, target={"namespace": "production", "name": "x"}, services=Services()
    )
    with pytest.raises(errors.PermanentActionError, match="no Kubernetes credentials"):
        await actions.get("kubernetes.restart").plan(
            actions.parse_params("kubernetes.restart", {}), ctx
        )
