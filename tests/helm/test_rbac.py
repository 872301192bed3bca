"""The chart's RBAC grants exactly what the configured actions declare: no more, no less.

The reference is the service itself: ``conea-monitor rbac`` run on the rendered
configuration and policies, and ``monitor.actions.rbac.render_needed`` for chosen action
sets and the workload kinds they act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from monitor import cli, scope, settings
from monitor.actions import default_registry, rbac
from tests.helm import conftest as c

ROLE_KINDS = ("Role", "ClusterRole")


def _roles(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Roles as ``rbac.render`` shapes them (the chart adds Helm's labels; compare the rest)."""
    roles = [o for o in objects if o["kind"] in ROLE_KINDS]
    return sorted(
        (
            {
                "kind": o["kind"],
                "name": o["metadata"]["name"],
                "namespace": o["metadata"].get("namespace"),
                "rules": o["rules"],
            }
            for o in roles
        ),
        key=lambda r: (r["kind"], r["namespace"] or ""),
    )


Uses = list[tuple[list[str], str | None]]
"""Actions and the workload kind they act on (None: every kind)."""


def _expected(uses: Uses, namespaces: list[str] | None) -> list[dict[str, Any]]:
    needed = [(actions, {"kind": kind} if kind else {}) for actions, kind in uses]
    return _roles(rbac.render_needed(default_registry(), needed, namespaces, c.FULLNAME))


def _write_rendered(objects: list[dict[str, Any]], tmp_path: Path) -> Path:
    """The rendered conea-monitor.yml and policies, as files the CLI can read."""
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir(exist_ok=True)
    for name, text in c.one(objects, "ConfigMap", f"{c.FULLNAME}-policies")["data"].items():
        (policy_dir / name).write_text(text)
    config = c.service_config(objects)
    config["policies"] = [str(policy_dir)]
    path = tmp_path / "conea-monitor.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cli_rbac(
    objects: list[dict[str, Any]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kinds: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """``conea-monitor rbac`` on the rendered conea-monitor.yml and policies ConfigMap."""
    path = _write_rendered(objects, tmp_path)
    cluster = not c.service_config(objects)["automation"]["namespaces_allow"]
    args = ["rbac", "--config", str(path), "--name", c.FULLNAME]
    args += [f"--kind={kind}" for kind in kinds]
    capsys.readouterr()
    assert cli.main([*args, "--cluster"] if cluster else args) == 0
    return _roles(list(yaml.safe_load_all(capsys.readouterr().out)))


# Value sets whose grants follow from their policies and jobs (not from rbac.actions).
FROM_CONFIG = {k: v for k, v in c.VALUE_SETS.items() if not v.get("rbac", {}).get("actions")}


@pytest.mark.parametrize("values", FROM_CONFIG.values(), ids=FROM_CONFIG.keys())
def test_rendered_rbac_equals_what_conea_monitor_rbac_prints_for_the_rendered_config(
    chart: helm.Chart,
    values: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    objects = c.render(chart, values)
    rendered = _roles(objects)
    assert rendered, "no Role rendered"
    kinds = values.get("rbac", {}).get("workloadKinds", ())
    assert rendered == _cli_rbac(objects, tmp_path, capsys, kinds)


@pytest.mark.parametrize("kinds", [["DaemonSet"], ["StatefulSet", "DaemonSet"]])
def test_rbac_kind_grants_what_rbac_workload_kinds_grants_in_the_chart(
    chart: helm.Chart, kinds: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = c.render(chart, {"rbac": {"workloadKinds": kinds}})
    rendered = _roles(objects)
    resources = {r for role in rendered for rule in role["rules"] for r in rule["resources"]}
    assert "daemonsets" in resources
    assert rendered == _cli_rbac(objects, tmp_path, capsys, kinds)
    assert rendered != _cli_rbac(objects, tmp_path, capsys)  # without --kind: not granted


DEFAULT_ACTIONS = [
    "http.request",
    "kubernetes.events",  # the diagnostics of the default policies read too
    "kubernetes.logs",
    "kubernetes.pods",
    "kubernetes.restart",
    "kubernetes.scale",
    "kubernetes.set_env",
    "log",
    "notify",
    "postgres.activity",
    "postgres.terminate_idle_in_transaction",
    "prometheus.query",
]

# The default policies act on Deployments only: no StatefulSet or DaemonSet is granted.
CASES: dict[str, tuple[dict[str, Any], Uses, list[str] | None]] = {
    "default policies in the release namespace": (
        {},
        [(DEFAULT_ACTIONS, "Deployment")],
        [c.NAMESPACE],
    ),
    "one Role per allowed namespace": (
        {"config": {"automation": {"namespaces_allow": ["staging", "production", "staging"]}}},
        [(DEFAULT_ACTIONS, "Deployment")],
        ["production", "staging"],
    ),
    "kinds listed in rbac.workloadKinds are granted too": (
        {"rbac": {"workloadKinds": ["DaemonSet"]}},
        [(DEFAULT_ACTIONS, "Deployment"), (DEFAULT_ACTIONS, "DaemonSet")],
        [c.NAMESPACE],
    ),
    "explicit actions, cluster-wide: for Deployments unless listed": (
        {
            "rbac": {
                "clusterWide": True,
                "actions": ["kubernetes.delete_pod", "kubernetes.rollback"],
            }
        },
        [(["kubernetes.delete_pod", "kubernetes.rollback"], "Deployment")],
        None,
    ),
    "explicit actions for the kinds listed only": (
        {
            "policies": {"defaults": False},
            "rbac": {
                "actions": ["kubernetes.restart", "kubernetes.scale"],
                "workloadKinds": ["StatefulSet", "DaemonSet"],
            },
        },
        [
            (["kubernetes.restart", "kubernetes.scale"], "StatefulSet"),
            (["kubernetes.restart", "kubernetes.scale"], "DaemonSet"),
        ],
        [c.NAMESPACE],
    ),
    "every action": (
        {"rbac": {"actions": sorted(default_registry())}},
        [(sorted(default_registry()), "Deployment")],
        [c.NAMESPACE],
    ),
    "no Kubernetes action: empty rules": (
        {"rbac": {"actions": ["notify", "log"]}},
        [(["notify"], None)],
        [c.NAMESPACE],
    ),
    "jobs add their actions": (
        {
            "policies": {"defaults": False},
            "rbac": {"actions": ["kubernetes.scale"]},
            "config": {
                "jobs": [
                    {
                        "name": "restart-nightly",
                        "cron": "0 3 * * *",
                        "action": "kubernetes.restart",
                        "params": {"namespace": "production", "deployment": "conea-api"},
                    }
                ]
            },
        },
        # the job names no target kind: every kind its restart handles
        [(["kubernetes.restart"], None), (["kubernetes.scale"], "Deployment")],
        [c.NAMESPACE],
    ),
    "a job acts on the kind its target names": (
        {
            "policies": {"defaults": False},
            "config": {
                "jobs": [
                    {
                        "name": "restart-agent",
                        "cron": "0 3 * * *",
                        "action": "kubernetes.restart",
                        "target": {"kind": "DaemonSet", "namespace": "production", "name": "a"},
                    }
                ]
            },
        },
        [(["kubernetes.restart"], "DaemonSet")],
        [c.NAMESPACE],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rendered_rbac_equals_rbac_render_for_the_same_actions_and_namespaces(
    chart: helm.Chart, case: tuple[dict[str, Any], Uses, list[str] | None]
) -> None:
    values, uses, namespaces = case
    assert _roles(c.render(chart, values)) == _expected(uses, namespaces)


def test_each_role_is_bound_to_the_service_account_in_its_namespace(chart: helm.Chart) -> None:
    values = c.VALUE_SETS["namespaces-and-probes"]
    objects = c.render(chart, values)
    account = c.one(objects, "ServiceAccount")["metadata"]["name"]
    roles = c.by_kind(objects, "Role")
    bindings = c.by_kind(objects, "RoleBinding")
    assert {r["metadata"]["namespace"] for r in roles} == {"production", "staging"}
    assert len(bindings) == len(roles)
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": c.FULLNAME,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": c.NAMESPACE}
        ]
    assert c.service_config(objects)["automation"]["namespaces_allow"] == ["production", "staging"]


def test_cluster_wide_rbac_is_one_cluster_role_and_binding(chart: helm.Chart) -> None:
    objects = c.render(chart, c.VALUE_SETS["cluster-wide"])
    assert c.by_kind(objects, "Role") == [] and c.by_kind(objects, "RoleBinding") == []
    binding = c.one(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == c.one(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"][0]["namespace"] == c.NAMESPACE
    # No allowlist: every namespace but the deny list, as the ClusterRole grants.
    assert c.service_config(objects)["automation"]["namespaces_allow"] == []


def test_namespace_patterns_need_a_cluster_role_and_reach_the_service_as_written(
    chart: helm.Chart, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {
        "rbac": {"clusterWide": True},
        "config": {"automation": {"namespaces_allow": ["team-*", "db-[0-9]"]}},
    }
    objects = c.render(chart, values)
    assert c.by_kind(objects, "Role") == []
    assert c.one(objects, "ClusterRoleBinding")["roleRef"]["kind"] == "ClusterRole"
    config = c.service_config(objects)
    assert config["automation"]["namespaces_allow"] == ["db-[0-9]", "team-*"]
    assert config["automation"]["namespaces_deny"] == ["kube-*"]  # the chart's default
    path = _write_rendered(objects, tmp_path)
    automation = settings.load(path).automation
    service_scope = scope.Scope.of(automation.namespaces_allow, automation.namespaces_deny)
    assert [service_scope.allows(n) for n in ("team-a", "db-1", "other", "kube-flannel")] == [
        True,
        True,
        False,
        False,
    ]
    # `conea-monitor rbac` refuses a pattern as a Role's namespace, and prints the chart's
    # ClusterRole with --cluster.
    args = ["rbac", "--config", str(path), "--name", c.FULLNAME]
    capsys.readouterr()
    assert cli.main(args) == 2
    assert capsys.readouterr().err == (
        "conea-monitor: error: automation.namespaces_allow: 'db-[0-9]' is a pattern and a "
        "Role needs a namespace name: list the namespaces with --namespace, or ask for "
        "--cluster (one ClusterRole; the service still keeps to the patterns)\n"
    )
    assert cli.main([*args, "--namespace", "team-*"]) == 2
    assert "error: --namespace: 'team-*' is a pattern" in capsys.readouterr().err
    assert cli.main([*args, "--cluster"]) == 0
    printed = _roles(list(yaml.safe_load_all(capsys.readouterr().out)))
    assert printed == _roles(objects)


def test_rbac_can_be_left_to_the_cluster_admin(chart: helm.Chart) -> None:
    objects = c.render(chart, {"rbac": {"create": False}})
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}


EXTRA_POLICIES = """
policies:
  - name: delete-crashing-pod
    match: ['alertname="KubePodCrashLooping"']
    target: {kind: Pod, namespace: "{{ labels.namespace }}", name: "{{ labels.pod }}"}
    steps: [[{action: kubernetes.delete_pod}]]
  - name: roll-back-bad-release
    match: ['alertname="HighErrorRate"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}",
             name: "{{ labels.deployment }}"}
    steps:
      - actions: [{action: kubernetes.rollback}]
"""


@pytest.mark.parametrize("defaults", [True, False], ids=["with-defaults", "files-only"])
def test_policies_given_in_values_extend_the_role_as_conea_monitor_rbac_does(
    chart: helm.Chart, defaults: bool, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = {"policies": {"defaults": defaults, "files": {"extra.yaml": EXTRA_POLICIES}}}
    objects = c.render(chart, values)
    rendered = _roles(objects)
    assert rendered == _cli_rbac(objects, tmp_path, capsys)
    granted = {
        (verb, resource)
        for rule in rendered[0]["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert {("delete", "pods"), ("list", "replicasets"), ("patch", "deployments")} <= granted
    if not defaults:
        # the Pod's owner may be any workload kind; the rollback is a Deployment's
        assert rendered == _expected(
            [(["kubernetes.delete_pod"], None), (["kubernetes.rollback"], "Deployment")],
            [c.NAMESPACE],
        )


def test_a_policy_file_in_values_that_is_not_yaml_fails_the_render_naming_it(
    chart: helm.Chart,
) -> None:
    with pytest.raises(helm.HelmError, match=r"policies\.files\.broken\.yaml: not YAML"):
        c.render(chart, {"policies": {"files": {"broken.yaml": "policies: [unclosed"}}})


def _granted(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(verb, resource) of the first Role or ClusterRole rendered."""
    [role, *_] = _roles(objects)
    return {
        (verb, resource)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_default_role_grants_no_daemonsets_unless_rbac_workload_kinds_lists_them(
    chart: helm.Chart,
) -> None:
    default = _granted(c.render(chart))
    assert {("patch", "deployments"), ("update", "deployments/scale")} <= default
    assert {r for _, r in default if r.startswith(("daemonsets", "statefulsets"))} == set()
    listed = _granted(c.render(chart, {"rbac": {"workloadKinds": ["DaemonSet"]}}))
    assert {("get", "daemonsets"), ("patch", "daemonsets")} <= listed
    assert {r for _, r in listed if r.startswith("statefulsets")} == set()
    # with rbac.actions the kinds come from the value alone
    explicit = {
        "policies": {"defaults": False},
        "rbac": {"actions": ["kubernetes.restart"], "workloadKinds": ["DaemonSet"]},
    }
    assert _granted(c.render(chart, explicit)) == {("get", "daemonsets"), ("patch", "daemonsets")}


DAEMONSET_POLICY = """
policies:
  - name: restart-node-agent
    match: ['alertname="NodeAgentStuck"']
    target: {kind: DaemonSet, namespace: production, name: node-agent}
    steps: [[{action: kubernetes.restart}]]
"""


def test_a_policy_restarting_a_daemon_set_adds_daemonsets_as_conea_monitor_rbac_does(
    chart: helm.Chart, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    objects = c.render(chart, {"policies": {"files": {"agent.yaml": DAEMONSET_POLICY}}})
    granted = _granted(objects)
    assert {("get", "daemonsets"), ("patch", "daemonsets")} <= granted
    assert {r for _, r in granted if r.startswith("statefulsets")} == set()
    assert _roles(objects) == _cli_rbac(objects, tmp_path, capsys)
