"""Reading workloads: replica arithmetic, the HPA that owns a workload, rollout history.

Pure functions over API objects as dicts, so they are tested without a server.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from monitor import errors

REVISION = "deployment.kubernetes.io/revision"
RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
_BY = re.compile(r"([+-]?)(\d+)(%?)")


def desired_replicas(
    current: int,
    *,
    replicas: int | None = None,
    by: int | str | None = None,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """``replicas: N``, or ``by: +2`` / ``by: -1`` / ``by: 50%`` (rounded up), within bounds."""
    if replicas is not None:
        wanted = replicas
    else:
        match = _BY.fullmatch(str(by).strip())
        if match is None:
            raise errors.PermanentActionError(f"cannot read 'by: {by}' (use +2, -1 or 50%)")
        sign = -1 if match[1] == "-" else 1
        amount = int(match[2])
        step = math.ceil(current * amount / 100) if match[3] else amount
        wanted = current + sign * step
    if minimum is not None:
        wanted = max(wanted, minimum)
    if maximum is not None:
        wanted = min(wanted, maximum)
    return max(wanted, 0)


def hpa_for(hpas: Iterable[Mapping[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    """The HorizontalPodAutoscaler whose scaleTargetRef is ``kind``/``name``, if any."""
    for hpa in hpas:
        ref = hpa.get("spec", {}).get("scaleTargetRef", {})
        if ref.get("kind") == kind and ref.get("name") == name:
            return dict(hpa)
    return None


def match_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    return dict(workload.get("spec", {}).get("selector", {}).get("matchLabels") or {})


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def revision(obj: Mapping[str, Any]) -> int:
    value = (obj.get("metadata", {}).get("annotations") or {}).get(REVISION, "0")
    try:
        return int(value)
    except ValueError:
        return 0


def owned_by(obj: Mapping[str, Any], owner: Mapping[str, Any]) -> bool:
    uid = owner.get("metadata", {}).get("uid")
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return any(ref.get("uid") == uid and ref.get("controller", True) for ref in refs)


def previous_replica_set(
    deployment: Mapping[str, Any], replica_sets: Iterable[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """kubectl's ``rollout undo`` without ``--to-revision``: among the ReplicaSets the
    Deployment owns, the one with the highest revision below the current one."""
    current = revision(deployment)
    owned = [rs for rs in replica_sets if owned_by(rs, deployment)]
    if not current and owned:
        current = max(revision(rs) for rs in owned)
    older = [rs for rs in owned if 0 < revision(rs) < current]
    if not older:
        return None
    best: Mapping[str, Any] = max(older, key=revision)
    return dict(best)


def template_of(replica_set: Mapping[str, Any]) -> dict[str, Any]:
    """A ReplicaSet's pod template as a Deployment template: without pod-template-hash."""
    template = copy.deepcopy(dict(replica_set.get("spec", {}).get("template") or {}))
    labels = template.get("metadata", {}).get("labels")
    if labels:
        labels.pop("pod-template-hash", None)
    return template


def images(template: Mapping[str, Any]) -> str:
    containers = template.get("spec", {}).get("containers") or []
    return ", ".join(f"{c.get('name')}={c.get('image')}" for c in containers)


def containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(
        workload.get("spec", {}).get("template", {}).get("spec", {}).get("containers") or []
    )


def env_entry(container: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    for entry in container.get("env") or []:
        if entry.get("name") == name:
            return dict(entry)
    return None


def set_env_entry(container: dict[str, Any], name: str, entry: dict[str, Any] | None) -> None:
    """Put ``entry`` in place of the variable ``name`` (append it; remove it if None)."""
    env = [e for e in container.get("env") or []]
    index = next((i for i, e in enumerate(env) if e.get("name") == name), None)
    if entry is None:
        if index is not None:
            env.pop(index)
    elif index is None:
        env.append(entry)
    else:
        env[index] = entry
    container["env"] = env


def paused(workload: Mapping[str, Any]) -> bool:
    return bool(workload.get("spec", {}).get("paused"))


def on_delete(workload: Mapping[str, Any]) -> bool:
    """A StatefulSet or DaemonSet that replaces its pods only when they are deleted."""
    strategy = workload.get("spec", {}).get("updateStrategy") or {}
    return bool(strategy.get("type") == "OnDelete")
