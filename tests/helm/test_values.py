"""Bad values are refused before anything reaches the cluster, with a message naming the key."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from monitor import settings
from tests.helm import conftest as c

# (values, error class, text the message must contain)
BAD: dict[str, tuple[dict[str, Any], type[helm.HelmError], str]] = {
    "misspelt top-level key": (
        {"replicaCout": 2},
        helm.HelmValuesError,
        "additional properties 'replicaCout' not allowed",
    ),
    "replica count as text": (
        {"replicaCount": "three"},
        helm.HelmValuesError,
        "at '/replicaCount': got string, want integer",
    ),
    "several replicas on SQLite": (
        {"replicaCount": 2},
        helm.HelmRenderError,
        "replicaCount=2 needs PostgreSQL: set database.existingSecret",
    ),
    "a namespace that is not a DNS label": (
        {"config": {"automation": {"namespaces_allow": ["Production"]}}},
        helm.HelmValuesError,
        "at '/config/automation/namespaces_allow/0': 'Production' does not match pattern",
    ),
    "a namespace pattern in upper case": (
        {"config": {"automation": {"namespaces_allow": ["Team-*"]}}},
        helm.HelmValuesError,
        "at '/config/automation/namespaces_allow/0': 'Team-*' does not match pattern",
    ),
    "a namespace pattern with an open bracket": (
        {"config": {"automation": {"namespaces_deny": ["kube-["]}}},
        helm.HelmValuesError,
        "at '/config/automation/namespaces_deny/0': 'kube-[' does not match pattern",
    ),
    "a namespace pattern as a Role's namespace": (
        {"config": {"automation": {"namespaces_allow": ["production", "team-*"]}}},
        helm.HelmRenderError,
        'config.automation.namespaces_allow: "team-*" is a pattern and a Role needs a '
        "namespace name: list the namespaces, or set rbac.clusterWide=true",
    ),
    "the chart's own config key": (
        {"config": {"data_dir": "/data"}},
        helm.HelmValuesError,
        "at '/config': additional properties 'data_dir' not allowed",
    ),
    "a database URL in a ConfigMap": (
        {"config": {"store": {"url": "postgresql://u:secret@db/x"}}},
        helm.HelmValuesError,
        "at '/config/store': additional properties 'url' not allowed",
    ),
    "an unknown service setting": (
        {"config": {"automaton": {}}},
        helm.HelmValuesError,
        "additional properties 'automaton' not allowed",
    ),
    "a bad log level": (
        {"config": {"log": {"level": "VERBOSE"}}},
        helm.HelmValuesError,
        "at '/config/log/level'",
    ),
    "an unknown action": (
        {"rbac": {"actions": ["kubernetes.nuke"]}},
        helm.HelmRenderError,
        'rbac.actions: unknown action "kubernetes.nuke" (known: http.request,',
    ),
    "a workload kind that is not one": (
        {"rbac": {"workloadKinds": ["CronJob"]}},
        helm.HelmValuesError,
        "at '/rbac/workloadKinds/0'",
    ),
    "a policy acting on a workload kind rbac.actions does not grant": (
        {
            "rbac": {"actions": ["kubernetes.restart"], "workloadKinds": ["Deployment"]},
            "policies": {"kubePrometheusStack": True},
        },
        helm.HelmRenderError,
        'rbac.workloadKinds: policy "kps-crash-looping" (kube-prometheus-stack.yaml) may act '
        "on a DaemonSet or StatefulSet, and with rbac.actions set the Role grants workloads "
        "of the kinds rbac.workloadKinds lists only (empty: Deployment): add DaemonSet, "
        "StatefulSet",
    ),
    "an unknown job action": (
        {"config": {"jobs": [{"name": "x", "interval": "5m", "action": "kubernetes.nuke"}]}},
        helm.HelmRenderError,
        'unknown action "kubernetes.nuke"',
    ),
    "both webhook credentials": (
        {
            "webhook": {
                "bearerToken": {"existingSecret": "a"},
                "basicAuth": {"username": "am", "existingSecret": "b"},
            }
        },
        helm.HelmRenderError,
        "set one of webhook.bearerToken.existingSecret, webhook.basicAuth.existingSecret",
    ),
    "basic auth without a user": (
        {"webhook": {"basicAuth": {"existingSecret": "b"}}},
        helm.HelmRenderError,
        "webhook.basicAuth.username is required",
    ),
    "a probe without targets": (
        {"probes": {"enabled": True, "targets": [{"name": "api", "module": "http_2xx"}]}},
        helm.HelmValuesError,
        "at '/probes/targets/0': missing property 'targets'",
    ),
    "a scrape interval that is not a duration": (
        {"serviceMonitor": {"interval": "30 seconds"}},
        helm.HelmValuesError,
        "at '/serviceMonitor/interval'",
    ),
    "a policy file name that is not YAML": (
        {"policies": {"files": {"policy.txt": "policies: []"}}},
        helm.HelmValuesError,
        "at '/policies/files': additional properties 'policy.txt' not allowed",
    ),
    "an image digest that is not sha256": (
        {"image": {"digest": "latest"}},
        helm.HelmValuesError,
        "at '/image/digest'",
    ),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_values_are_refused_with_a_clear_message(
    chart: helm.Chart, case: tuple[dict[str, Any], type[helm.HelmError], str]
) -> None:
    values, error, message = case
    with pytest.raises(error) as caught:
        c.render(chart, values)
    assert message in str(caught.value)


def test_the_defaults_and_every_documented_set_pass_the_schema(chart: helm.Chart) -> None:
    for values in c.VALUE_SETS.values():
        chart.validate_schema(chart.merge_values(values))


def test_the_schema_knows_every_service_setting_but_those_the_chart_owns(
    chart: helm.Chart,
) -> None:
    schema = chart.schema
    assert schema is not None
    config = schema["properties"]["config"]["properties"]
    owned = {"data_dir", "policies", "probes_file", "config_file"}
    assert set(config) == set(settings.Settings.model_fields) - owned
    automation = config["automation"]["properties"]
    assert set(automation) == set(settings.AutomationSettings.model_fields)
    store = config["store"]["properties"]
    assert set(store) == set(settings.StoreSettings.model_fields) - {"url"}  # from its Secret
    server = config["server"]["properties"]
    assert set(server) == set(settings.ServerSettings.model_fields)
