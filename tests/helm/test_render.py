"""The chart renders valid Kubernetes 1.30 objects for the defaults and each documented set-up."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from monitor import settings, wiring
from tests.helm import conftest as c

BUILT_IN = {
    ("v1", "ConfigMap"),
    ("v1", "Service"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("apps/v1", "Deployment"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
}
CRDS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "Probe"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")

value_sets = pytest.mark.parametrize("values", c.VALUE_SETS.values(), ids=c.VALUE_SETS.keys())


@value_sets
def test_lint_is_clean_in_strict_mode(values: dict[str, Any]) -> None:
    report = helm.lint(
        c.CHART_DIR, values, strict=True, namespace=c.NAMESPACE, kube_version="v1.30.0"
    )
    assert report["errors"] == []
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert problems == []


@value_sets
def test_every_built_in_object_validates_strictly_for_kubernetes_1_30(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    objects = c.render(chart, values)
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    assert kinds <= BUILT_IN | CRDS, f"unexpected kinds {kinds - BUILT_IN - CRDS}"
    for obj in objects:
        if (obj["apiVersion"], obj["kind"]) in BUILT_IN:
            kubernetes_validate.validate(obj, c.KUBE_VERSION, strict=True)
        name = obj["metadata"]["name"]
        assert DNS1123.match(name) and len(name) <= 63, name


def test_strict_validation_catches_a_misspelt_field() -> None:
    # The check above would be worthless if strict mode let unknown fields through.
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80}], "selectr": {}},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, c.KUBE_VERSION, strict=True)


def _check_monitoring_metadata(obj: dict[str, Any], release: str | None) -> None:
    labels = obj["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == c.RELEASE
    assert labels.get("release") == release


@value_sets
def test_prometheus_operator_objects_have_the_operators_shape(
    chart: helm.Chart, values: dict[str, Any]
) -> None:
    objects = c.render(chart, values)
    release = values.get("monitoringRelease") or None
    service = c.one(objects, "Service")
    for monitor in c.by_kind(objects, "ServiceMonitor"):
        _check_monitoring_metadata(monitor, release)
        spec = monitor["spec"]
        assert set(spec) <= {"jobLabel", "selector", "namespaceSelector", "endpoints"}
        assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert spec["namespaceSelector"] == {"matchNames": [c.NAMESPACE]}
        # job="conea-monitor" whatever the release is called: the rules and dashboards use it.
        assert service["metadata"]["labels"][spec["jobLabel"]] == "conea-monitor"
        port_names = {p["name"] for p in service["spec"]["ports"]}
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] in port_names
            assert endpoint["path"] == "/metrics"
            assert DURATION.match(endpoint["interval"])
            assert DURATION.match(endpoint["scrapeTimeout"])
    for probe in c.by_kind(objects, "Probe"):
        _check_monitoring_metadata(probe, release)
        spec = probe["spec"]
        assert set(spec) <= {"jobName", "module", "interval", "scrapeTimeout", "prober", "targets"}
        assert spec["prober"] == {
            "url": f"{c.FULLNAME}.{c.NAMESPACE}.svc:9115",
            "path": "/probe",
            "scheme": "http",
        }
        assert spec["targets"]["staticConfig"]["static"]
        assert DURATION.match(spec["interval"]) and DURATION.match(spec["scrapeTimeout"])
    for rule in c.by_kind(objects, "PrometheusRule"):
        _check_monitoring_metadata(rule, release)
        assert set(rule["spec"]) == {"groups"}
        for group in rule["spec"]["groups"]:
            assert set(group) <= {"name", "interval", "rules", "limit"}
            for item in group["rules"]:
                assert ("alert" in item) != ("record" in item)
                assert isinstance(item["expr"], str)


@value_sets
def test_the_rendered_service_config_and_policies_load_in_the_service(
    chart: helm.Chart, values: dict[str, Any], tmp_path: Path
) -> None:
    objects = c.render(chart, values)
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    for name, text in c.one(objects, "ConfigMap", f"{c.FULLNAME}-policies")["data"].items():
        (policy_dir / name).write_text(text)
    config = c.service_config(objects)
    config["policies"] = [str(policy_dir)]
    probes = c.one(objects, "ConfigMap", f"{c.FULLNAME}-config")["data"].get("probes.yml")
    if probes is not None:
        (tmp_path / "probes.yml").write_text(probes)
        config["probes_file"] = str(tmp_path / "probes.yml")
    path = tmp_path / "conea-monitor.yml"
    path.write_text(yaml.safe_dump(config))
    loaded = settings.load(path)  # strict: an unknown key or bad value raises ConfigError
    registry = wiring.build_registry(loaded)
    # As the service loads them: the names the policies use (notifiers, PostgreSQL
    # targets) must be defined, or the pod would refuse to start.
    policies = wiring.load_policies(loaded, registry)
    assert loaded.kubernetes.mode == "in-cluster"
    assert str(loaded.data_dir) == "/var/lib/conea-monitor"
    assert len(list(policies)) > 0 or values.get("policies", {}).get("defaults") is False


def test_notes_tell_how_to_add_the_alertmanager_receiver(chart: helm.Chart) -> None:
    values = c.VALUE_SETS["ha-postgres"]
    notes = c.render_files(chart, values)["conea-monitor/templates/NOTES.txt"]
    block = notes[notes.index("   receivers:") :].split("\n\n")[0]
    receiver = yaml.safe_load(textwrap.dedent(block))
    hook = receiver["receivers"][0]["webhook_configs"][0]
    assert hook["url"] == f"http://{c.FULLNAME}.{c.NAMESPACE}.svc:9115/webhook/alertmanager"
    assert hook["http_config"]["authorization"]["credentials_file"] == (
        "/etc/alertmanager/secrets/conea-monitor-webhook/token"
    )
    assert "WARNING" not in notes


def test_notes_warn_when_alertmanager_would_be_refused(chart: helm.Chart) -> None:
    notes = c.render_files(chart, {})["conea-monitor/templates/NOTES.txt"]
    assert "refuses Alertmanager" in notes
    assert "webhook.bearerToken.existingSecret" in notes
