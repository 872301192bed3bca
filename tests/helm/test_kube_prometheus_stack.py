"""The two values for a cluster running kube-prometheus-stack: its policies, our rules."""

from __future__ import annotations

from typing import Any

import helm_python as helm

from scripts import build_prometheusrule
from tests.helm import conftest as c

KPS = "kube-prometheus-stack.yaml"
# The chart's list in templates/prometheusrule.yaml is the script's.
DUPLICATES = set(build_prometheusrule.KUBE_PROMETHEUS_STACK_DUPLICATES)


def _policy_files(objects: list[dict[str, Any]]) -> set[str]:
    return set(c.one(objects, "ConfigMap", f"{c.FULLNAME}-policies")["data"])


def _alerts(objects: list[dict[str, Any]]) -> set[str]:
    rule = c.one(objects, "PrometheusRule")
    return {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}


def _grants(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    role = c.one(objects, "Role")
    return {
        (res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]
    }


def test_the_kube_prometheus_stack_policies_ship_only_when_asked(chart: helm.Chart) -> None:
    default = c.render(chart)
    assert KPS not in _policy_files(default)
    assert "restart-api.yaml" in _policy_files(default)
    # the default policies' diagnostics read pods; only kps-crash-looping deletes them
    assert ("pods", "delete") not in _grants(default)

    on = c.render(chart, {"policies": {"kubePrometheusStack": True}})
    assert KPS in _policy_files(on)
    assert "kps-crash-looping" in c.one(on, "ConfigMap", f"{c.FULLNAME}-policies")["data"][KPS]
    # resolve: owner reads the pod and its ReplicaSet; delete_pod deletes the pod.
    assert {("pods", "get"), ("replicasets", "get"), ("pods", "delete")} <= _grants(on)

    alone = c.render(chart, {"policies": {"kubePrometheusStack": True, "defaults": False}})
    assert _policy_files(alone) == {KPS}


def test_our_rules_that_kube_prometheus_stack_duplicates_can_be_left_out(
    chart: helm.Chart,
) -> None:
    shipped = _alerts(c.render(chart))
    assert shipped >= DUPLICATES
    skipped = _alerts(
        c.render(chart, {"prometheusRule": {"skipKubePrometheusStackDuplicates": True}})
    )
    assert skipped == shipped - DUPLICATES
