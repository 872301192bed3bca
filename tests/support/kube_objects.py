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


def owned_by(obj: dict[str, Any], owner: dict[str, Any], controller: bool = True) -> dict[str, Any]:
    """``obj`` with ``owner`` in its ownerReferences (the controller by default)."""
    ref = {
        "apiVersion": owner.get("apiVersion", "v1"),
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"].get("uid", f"uid-{owner['metadata']['name']}"),
        "controller": controller,
    }
    obj["metadata"].setdefault("ownerReferences", []).append(ref)
    return obj


def replica_set(
    name: str, namespace: str = "production", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    labels = labels or {}
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
        "spec": {"selector": {"matchLabels": dict(labels)}, "template": {"metadata": {}}},
    }


def pod(
    name: str, namespace: str = "production", labels: dict[str, str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": {"containers": [{"name": "api", "image": "conea/api:1.2.0"}]},
    }


def workload(kind: str, name: str, namespace: str = "production") -> dict[str, Any]:
    """A bare StatefulSet, DaemonSet, Job or CronJob (enough to own pods)."""
    api = "batch/v1" if kind in ("Job", "CronJob") else "apps/v1"
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {"selector": {"matchLabels": {"app": name}}},
    }


def deployment_with_pods(
    name: str = "conea-api", namespace: str = "production", pods: int = 2, **options: Any
) -> list[dict[str, Any]]:
    """A Deployment, its ReplicaSet ``<name>-7d9f`` and its Pods ``<name>-7d9f-x<i>``,
    linked by ownerReferences as the controllers link them: [deployment, rs, *pods]."""
    dep = deployment(name, namespace, **options)
    labels = {**dep["spec"]["selector"]["matchLabels"], "pod-template-hash": "7d9f"}
    rs = owned_by(replica_set(f"{name}-7d9f", namespace, labels), dep)
    made = [owned_by(pod(f"{name}-7d9f-x{i}", namespace, labels), rs) for i in range(pods)]
    return [dep, rs, *made]
