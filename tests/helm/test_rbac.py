"""The chart's RBAC grants exactly what the configured actions declare: no more, no less.

The reference is the service itself: ``conea-monitor rbac`` run on the rendered
configuration and policies, and ``monitor.actions.rbac.render`` for chosen action sets.
"""

from __future__ import annotations

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


def _expected(actions: list[str], namespaces: list[str] | None) -> list[dict[str, Any]]:
    return _roles(rbac.render(default_registry(), actions, namespaces, c.FULLNAME))


def _write_rendered(objects: list[dict[str, Any]], tmp_path: Path) -> Path:
    """The rendered conea-monitor.yml and policies, as files the CLI can read."""
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    for name, text in c.one(objects, "ConfigMap", f"{c.FULLNAME}-policies")["data"].items():
        (policy_dir / name).write_text(text)
    config = c.service_config(objects)
    config["policies"] = [str(policy_dir)]
    path = tmp_path / "conea-monitor.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def _cli_rbac(
    objects: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> list[dict[str, Any]]:
    """``conea-monitor rbac`` on the rendered conea-monitor.yml and policies ConfigMap."""
    path = _write_rendered(objects, tmp_path)
    cluster = not c.service_config(objects)["automation"]["namespaces_allow"]
    args = ["rbac", "--config", str(path), "--name", c.FULLNAME]
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
    assert rendered == _cli_rbac(objects, tmp_path, capsys)


CASES: dict[str, tuple[dict[str, Any], list[str], list[str] | None]] = {
    "default policies in the release namespace": (
        {},
        [
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
        ],
        [c.NAMESPACE],
    ),
    "one Role per allowed namespace": (
        {"config": {"automation": {"namespaces_allow": ["staging", "production", "staging"]}}},
        [
            "kubernetes.events",
            "kubernetes.logs",
            "kubernetes.pods",
            "kubernetes.restart",
            "kubernetes.scale",
            "kubernetes.set_env",
        ],
        ["production", "staging"],
    ),
    "explicit actions, cluster-wide": (
        {
            "rbac": {
                "clusterWide": True,
                "actions": ["kubernetes.delete_pod", "kubernetes.rollback"],
            }
        },
        ["kubernetes.delete_pod", "kubernetes.rollback"],
        None,
    ),
    "every action": (
        {"rbac": {"actions": sorted(default_registry())}},
        sorted(default_registry()),
        [c.NAMESPACE],
    ),
    "no Kubernetes action: empty rules": (
        {"rbac": {"actions": ["notify", "log"]}},
        ["notify"],
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
        ["kubernetes.restart", "kubernetes.scale"],
        [c.NAMESPACE],
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rendered_rbac_equals_rbac_render_for_the_same_actions_and_namespaces(
    chart: helm.Chart, case: tuple[dict[str, Any], list[str], list[str] | None]
) -> None:
    values, actions, namespaces = case
    assert _roles(c.render(chart, values)) == _expected(actions, namespaces)


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
        assert rendered == _expected(
            ["kubernetes.delete_pod", "kubernetes.rollback"], [c.NAMESPACE]
        )


def test_a_policy_file_in_values_that_is_not_yaml_fails_the_render_naming_it(
    chart: helm.Chart,
) -> None:
    with pytest.raises(helm.HelmError, match=r"policies\.files\.broken\.yaml: not YAML"):
        c.render(chart, {"policies": {"files": {"broken.yaml": "policies: [unclosed"}}})
