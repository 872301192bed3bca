"""What the chart ships is what the repository holds: rules, dashboards, policies, RBAC."""

from __future__ import annotations

import json

import helm_python as helm
import pytest
import yaml

from monitor.actions import rbac
from scripts import build_chart, build_prometheusrule
from tests.helm import conftest as c

DASHBOARDS = sorted((c.ROOT / "dashboards").glob("*.json"))
POLICIES = sorted((c.ROOT / "remediations").glob("*.yaml"))


def test_chart_files_are_up_to_date() -> None:
    assert build_chart.stale() == [], "run: .venv/bin/python scripts/build_chart.py"


def test_check_mode_names_a_stale_copy_and_an_orphan(capsys: pytest.CaptureFixture[str]) -> None:
    files = build_chart.expected()
    dashboard = build_chart.FILES / "dashboards" / DASHBOARDS[0].name
    files[dashboard] = b"{}"
    orphan = build_chart.FILES / "rules" / "conea-api.yml"
    del files[orphan]
    problems = build_chart.stale(files)
    assert f"helm/conea-monitor/files/dashboards/{DASHBOARDS[0].name}" in problems
    assert "helm/conea-monitor/files/rules/conea-api.yml (no longer has a source)" in problems
    assert build_chart.main(["--check"]) == 0
    assert capsys.readouterr().err == ""


def test_the_prometheus_rule_holds_the_same_groups_as_rules(chart: helm.Chart) -> None:
    rule = c.one(c.render(chart), "PrometheusRule")
    expected = build_prometheusrule.load_rule_groups()
    assert [g["name"] for g in rule["spec"]["groups"]] == [g["name"] for g in expected]
    assert rule["spec"]["groups"] == expected


def test_the_prometheus_rule_carries_the_kube_prometheus_stack_release_label(
    chart: helm.Chart,
) -> None:
    values = {"monitoringRelease": "kps", "prometheusRule": {"labels": {"team": "sre"}}}
    labels = c.one(c.render(chart, values), "PrometheusRule")["metadata"]["labels"]
    assert labels["release"] == "kps"
    assert labels["team"] == "sre"
    assert "release" not in c.one(c.render(chart), "PrometheusRule")["metadata"]["labels"]


def test_every_dashboard_is_shipped_as_a_grafana_sidecar_configmap(chart: helm.Chart) -> None:
    objects = c.render(chart)
    shipped = {}
    for cm in c.by_kind(objects, "ConfigMap"):
        if cm["metadata"]["labels"].get("grafana_dashboard") == "1":
            assert cm["metadata"]["namespace"] == c.NAMESPACE
            ((key, text),) = cm["data"].items()
            shipped[key] = json.loads(text)
    assert shipped == {path.name: json.loads(path.read_text()) for path in DASHBOARDS}
    assert len(DASHBOARDS) >= 6


def test_dashboards_can_go_to_grafanas_namespace_with_another_label(chart: helm.Chart) -> None:
    values = {
        "dashboards": {
            "namespace": "monitoring",
            "label": "grafana_dashboard_conea",
            "labelValue": "yes",
            "annotations": {"grafana_folder": "Conea"},
        }
    }
    configmaps = [
        cm
        for cm in c.by_kind(c.render(chart, values), "ConfigMap")
        if cm["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboard"
    ]
    assert len(configmaps) == len(DASHBOARDS)
    for cm in configmaps:
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["labels"]["grafana_dashboard_conea"] == "yes"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Conea"}
    assert not [
        o
        for o in c.render(chart, {"dashboards": {"enabled": False}})
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "dashboard"
    ]


def test_the_default_policies_are_the_repositorys(chart: helm.Chart) -> None:
    data = c.one(c.render(chart), "ConfigMap", f"{c.FULLNAME}-policies")["data"]
    assert data == {path.name: path.read_text() for path in POLICIES}


def test_policy_files_from_values_replace_or_add_to_the_defaults(chart: helm.Chart) -> None:
    mine = "policies: []\n"
    values = {"policies": {"files": {"restart-api.yaml": mine, "extra.yml": mine}}}
    data = c.one(c.render(chart, values), "ConfigMap", f"{c.FULLNAME}-policies")["data"]
    assert data["restart-api.yaml"] == mine and data["extra.yml"] == mine
    assert set(data) == {p.name for p in POLICIES} | {"extra.yml"}
    only = c.render(chart, {"policies": {"defaults": False, "files": {"extra.yml": mine}}})
    assert c.one(only, "ConfigMap", f"{c.FULLNAME}-policies")["data"] == {"extra.yml": mine}


def test_the_rbac_catalogue_matches_the_registry() -> None:
    catalogue = yaml.safe_load((build_chart.RBAC_RULES).read_text())
    registry = build_chart.default_registry()
    assert sorted(catalogue["actions"]) == sorted([*registry, rbac.RESOLVE_OWNER])
    owner = catalogue["actions"][rbac.RESOLVE_OWNER]
    assert [tuple(r["resources"]) for r in owner] == [r.resources for r in rbac.OWNER_READS]
    scale = catalogue["actions"]["kubernetes.scale"]
    declared = registry.get("kubernetes.scale").rbac
    assert [tuple(r["verbs"]) for r in scale] == [tuple(r.verbs) for r in declared]
