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


def pod_status(
    obj: dict[str, Any],
    *,
    ready: bool = True,
    restarts: int = 0,
    waiting: str | None = None,
    last_terminated: str | None = None,
    node: str = "node-1",
    phase: str = "Running",
) -> dict[str, Any]:
    """``obj`` (a Pod) with a status as the kubelet reports it, for every container."""
    obj["spec"]["nodeName"] = node
    statuses = []
    for container in obj["spec"]["containers"]:
        status: dict[str, Any] = {
            "name": container["name"],
            "ready": ready,
            "restartCount": restarts,
            "state": {"waiting": {"reason": waiting}} if waiting else {"running": {}},
        }
        if last_terminated:
            status["lastState"] = {"terminated": {"reason": last_terminated, "exitCode": 1}}
        statuses.append(status)
    obj["status"] = {"phase": phase, "containerStatuses": statuses}
    return obj


def event(
    name: str,
    involved: dict[str, Any],
    reason: str,
    message: str,
    *,
    last: str,
    type_: str = "Normal",
    count: int = 1,
) -> dict[str, Any]:
    """A core/v1 Event about ``involved`` (an object as seeded), last seen at ``last``."""
    meta = involved["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": involved.get("apiVersion", "v1"),
            "kind": involved["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
        },
        "reason": reason,
        "message": message,
        "type": type_,
        "count": count,
        "firstTimestamp": last,
        "lastTimestamp": last,
    }
