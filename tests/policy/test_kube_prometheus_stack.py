"""remediations/optional/kube-prometheus-stack.yaml against the labels that
kube-prometheus-stack's alerts carry (its kubernetes-apps and kubernetes-resources rules on
kube-state-metrics series)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.actions import default_registry
from monitor.alerts.context import AlertContext
from monitor.policy import loader, policyset

ROOT = Path(__file__).resolve().parents[2]
KPS = ROOT / "remediations" / "optional" / "kube-prometheus-stack.yaml"
COMMON = {"namespace": "production", "job": "kube-state-metrics", "severity": "warning"}
POD = {"pod": "conea-api-7d9f-x2x", "container": "api"}

# alertname -> (its labels besides COMMON, the policy, the rendered target)
CASES = {
    "KubePodCrashLooping": (
        {**POD, "reason": "CrashLoopBackOff"},
        "kps-crash-looping",
        {"kind": "Pod", "namespace": "production", "name": POD["pod"], "resolve": "owner"},
    ),
    "KubeContainerWaiting": (
        {**POD, "reason": "ImagePullBackOff"},
        "kps-container-waiting",
        {"kind": "Pod", "namespace": "production", "name": POD["pod"], "resolve": "owner"},
    ),
    "KubeHpaMaxedOut": (
        {"horizontalpodautoscaler": "conea-api"},
        "kps-hpa-maxed-out",
        {"kind": "HorizontalPodAutoscaler", "namespace": "production", "name": "conea-api"},
    ),
    "KubeDeploymentReplicasMismatch": (
        {"deployment": "conea-api"},
        "kps-replicas-mismatch",
        {
            "kind": "Alert",
            "namespace": "production",
            "name": "KubeDeploymentReplicasMismatch-conea-api",
        },
    ),
    "KubeStatefulSetReplicasMismatch": (
        {"statefulset": "redis"},
        "kps-replicas-mismatch",
        {
            "kind": "Alert",
            "namespace": "production",
            "name": "KubeStatefulSetReplicasMismatch-redis",
        },
    ),
    "CPUThrottlingHigh": (
        {**POD, "severity": "info"},
        "kps-cpu-throttling",
        {"kind": "Alert", "namespace": "production", "name": "CPUThrottlingHigh-api"},
    ),
}


@pytest.fixture(scope="module")
def policies() -> policyset.PolicySet:
    # With the default policies, as the chart ships both: only the kps- ones answer.
    return loader.load([ROOT / "remediations", KPS], default_registry())


@pytest.mark.parametrize("alertname", CASES)
def test_each_alert_finds_its_policy_and_every_step_renders(
    policies: policyset.PolicySet, alertname: str
) -> None:
    labels, name, target = CASES[alertname]
    alert = AlertContext(
        labels={**COMMON, "alertname": alertname, **labels},
        annotations={"description": "d", "summary": "s"},
        status="firing",
        fingerprint="f",
        starts_at=datetime(2026, 11, 29, 12, 0, tzinfo=UTC),
    )
    matched = [p.name for p in policies.match(alert.labels) if p.name.startswith("kps-")]
    assert matched == [name]
    policy = policies.get(name)
    assert policy is not None
    assert policyset.render_target(policy, alert) == target
    for step in policy.steps:
        for action in step:
            policyset.parse_params(action, alert, default_registry())
    promql = policyset.render_promql(policy, alert)
    if promql is not None:  # by namespace and container: a restart's new pods have new names
        assert 'namespace="production"' in promql and 'container="api"' in promql


def test_a_kube_system_pod_is_left_alone(policies: policyset.PolicySet) -> None:
    labels = {**COMMON, **POD, "namespace": "kube-system", "alertname": "KubePodCrashLooping"}
    assert not [p for p in policies.match(labels) if p.name.startswith("kps-")]


def test_the_service_does_not_load_them_with_the_default_policies() -> None:
    defaults = loader.load([ROOT / "remediations"], default_registry())
    assert defaults.policies and not [p for p in defaults if p.name.startswith("kps-")]
