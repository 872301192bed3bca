"""Kubernetes objects for the emulator: a Deployment and its HPA, as tests seed them."""

from __future__ import annotations

from typing import Any


def deployment(
    name: str = "conea-api",
    namespace: str = "production",
    replicas: int = 4,
    image: str = "conea/api:1.2.0",
    **spec: Any,
) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": "1"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "api",
                            "image": image,
                            "env": [{"name": "LOG_LEVEL", "value": "info"}],
                        },
                        {"name": "sidecar", "image": "envoy:1.30"},
                    ]
                },
            },
            **spec,
        },
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }


def hpa(
    target: str = "conea-api",
    namespace: str = "production",
    min_replicas: int = 4,
    max_replicas: int = 10,
    kind: str = "Deployment",
) -> dict[str, Any]:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": target, "namespace": namespace},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": kind, "name": target},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
        },
    }
