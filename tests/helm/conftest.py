"""Render the chart with the real Helm engine (helm-python-sdk), offline."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "helm" / "conea-monitor"
RELEASE = "conea"
NAMESPACE = "production"
FULLNAME = "conea-conea-monitor"
KUBE_VERSION = "1.30"

#: Value sets every structural test renders: the defaults and the documented set-ups.
VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "ha-postgres": {
        "replicaCount": 3,
        "database": {"existingSecret": "conea-monitor-db"},
        "webhook": {"bearerToken": {"existingSecret": "conea-monitor-webhook"}},
        "operatorToken": {"existingSecret": "conea-monitor-operator"},
        "monitoringRelease": "kube-prometheus-stack",
        "secretEnv": [{"name": "SLACK_WEBHOOK_URL", "secretName": "conea-slack", "key": "url"}],
        "secretFiles": [{"secretName": "conea-pg", "mountPath": "/var/run/secrets/conea-pg"}],
        "config": {
            "notifiers": {"oncall": {"kind": "slack", "url": {"env": "SLACK_WEBHOOK_URL"}}},
            "postgres_targets": {
                "conea-production": {
                    "host": "db.production.svc",
                    "user": "conea_monitor",
                    "password_file": "/var/run/secrets/conea-pg/password",
                }
            },
            "jobs": [
                {
                    "name": "nightly-vacuum",
                    "cron": "0 2 * * *",
                    "action": "postgres.vacuum_analyze",
                    "params": {"target": "conea-production"},
                }
            ],
        },
    },
    "network-policy": {
        "networkPolicy": {"enabled": True},
        "webhook": {
            "basicAuth": {"username": "alertmanager", "existingSecret": "conea-monitor-basic"}
        },
    },
    "cluster-wide": {
        "rbac": {"clusterWide": True, "actions": ["kubernetes.scale", "kubernetes.delete_pod"]},
        "policies": {"defaults": False},
    },
    "namespaces-and-probes": {
        "config": {"automation": {"namespaces_allow": ["production", "staging"]}},
        "probes": {
            "enabled": True,
            "targets": [
                {
                    "name": "conea-api",
                    "module": "http_2xx",
                    "targets": ["https://api.conea.io/health"],
                    "labels": {"service": "conea-api"},
                }
            ],
        },
        "probeModules": {"modules": {"http_2xx": {"prober": "http", "timeout": "5s"}}},
        "policies": {"reloadInPlace": True},
        "persistence": {"enabled": False},
    },
    "kube-prometheus-stack": {
        "policies": {"kubePrometheusStack": True},
        "prometheusRule": {"skipKubePrometheusStackDuplicates": True},
    },
}


@pytest.fixture(scope="session")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART_DIR) as loaded:
        yield loaded


def render_files(chart: helm.Chart, values: dict[str, Any] | None = None) -> dict[str, str]:
    return chart.render(values or {}, name=RELEASE, namespace=NAMESPACE, is_install=True)


def render(chart: helm.Chart, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every Kubernetes object the chart renders (NOTES.txt left out)."""
    objects: list[dict[str, Any]] = []
    for path, text in sorted(render_files(chart, values).items()):
        if path.endswith("NOTES.txt"):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return objects


def by_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def one(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in by_kind(objects, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def service_config(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The rendered conea-monitor.yml."""
    configmap = one(objects, "ConfigMap", f"{FULLNAME}-config")
    loaded: dict[str, Any] = yaml.safe_load(configmap["data"]["conea-monitor.yml"])
    return loaded
