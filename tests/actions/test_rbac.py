"""RBAC rendering from the actions' declared rules."""

from __future__ import annotations

import pytest

from monitor import errors
from monitor.actions import builtin, rbac
from monitor.actions import kubernetes as kubernetes_actions
from monitor.actions.registry import Action, RbacRule, Registry, StrictModel


def default_registry() -> Registry:
    """The shipped log + Kubernetes actions (other action modules are not our concern)."""
    registry = Registry()
    builtin.register(registry)
    kubernetes_actions.register(registry)
    return registry


def test_cluster_role_for_the_configured_actions_is_merged_and_minimal():
    registry = default_registry()
    [role] = rbac.render(
        registry, ["kubernetes.restart", "kubernetes.rollback", "log"], None, "conea-monitor"
    )
    assert role["kind"] == "ClusterRole" and role["metadata"]["name"] == "conea-monitor"
    assert role["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets", "deployments", "statefulsets"],
            "verbs": ["get", "patch"],
        },
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": ["list"]},
    ]


def test_roles_per_namespace_and_unused_actions_grant_nothing():
    registry = default_registry()
    roles = rbac.render(registry, ["kubernetes.delete_pod"], ["staging", "production"], "cm")
    assert [(r["kind"], r["metadata"]["namespace"]) for r in roles] == [
        ("Role", "production"),
        ("Role", "staging"),
    ]
    assert roles[0]["rules"] == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["delete", "get"]},
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets", "deployments", "statefulsets"],
            "verbs": ["get"],
        },
    ]
    flat = str(roles)
    assert "horizontalpodautoscalers" not in flat and "update" not in flat


def test_verbs_for_one_resource_are_unioned_across_actions():
    registry = Registry()

    class NoParams(StrictModel):
        pass

    for action_name, verbs in (("a.read", ("get", "list")), ("a.write", ("get", "patch"))):

        class Some(Action[NoParams]):
            name = action_name
            Params = NoParams
            rbac = (RbacRule(("apps",), ("deployments",), verbs),)

            async def plan(self, params, ctx):
                raise NotImplementedError

            async def apply(self, params, ctx, plan):
                raise NotImplementedError

        registry.register(Some)
    assert rbac.rules(registry, ["a.read", "a.write"]) == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "patch"]}
    ]
    assert rbac.rules(registry, ["a.read"]) == [
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list"]}
    ]


def test_every_shipped_kubernetes_action_declares_rules():
    registry = default_registry()
    for name in registry:
        if name.startswith("kubernetes."):
            assert registry.get(name).rbac, name


def test_rendered_roles_are_valid_kubernetes_objects():
    import kubernetes_validate

    registry = default_registry()
    every = [n for n in registry if n.startswith("kubernetes.")]
    for obj in rbac.render(registry, every, None, "conea-monitor") + rbac.render(
        registry, every, ["production"], "conea-monitor"
    ):
        kubernetes_validate.validate(obj, "1.30", strict=True)


def test_unknown_action_and_bad_namespace_are_errors():
    registry = default_registry()
    with pytest.raises(KeyError, match=r"unknown action 'kubernetes\.nuke'"):
        rbac.render(registry, ["kubernetes.nuke"], None, "x")
    with pytest.raises(errors.ConfigError, match="'Prod_1' is not a valid DNS-1123 label"):
        rbac.render(registry, ["kubernetes.restart"], ["Prod_1"], "x")


def test_a_target_narrows_the_grants_to_the_workload_kind_it_names():
    registry = default_registry()
    scale = ["kubernetes.scale"]
    resources = {g[2] for g in rbac.needed(registry, [(scale, {"kind": "sts"})])}
    assert resources == {"statefulsets/scale", "horizontalpodautoscalers"}  # subresources too
    restart = ["kubernetes.restart"]
    assert rbac.needed(
        registry, [(restart, {"kind": "Deployment"}), (restart, {"kind": "DaemonSet"})]
    ) == [
        ("get", "apps", "daemonsets"),
        ("get", "apps", "deployments"),
        ("patch", "apps", "daemonsets"),
        ("patch", "apps", "deployments"),
    ]


@pytest.mark.parametrize(
    "target",
    [
        {"kind": "Pod", "resolve": "owner"},
        {"kind": "Deployment", "resolve": "owner"},
        {"kind": "{{ labels.kind }}"},
        {"kind": "Pod"},
        {},
    ],
    ids=["resolve-owner", "deployment-resolve-owner", "templated", "pod", "no-kind"],
)
def test_a_target_that_may_reach_any_workload_keeps_every_kind(target):
    assert rbac.workload_kinds(target) == {"Deployment", "StatefulSet", "DaemonSet"}
    restart = ["kubernetes.restart"]
    assert rbac.needed(default_registry(), [(restart, target)]) == rbac.grants(
        default_registry(), restart
    )
