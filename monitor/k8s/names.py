"""Validation of targets taken from alert labels, before any API call.

Alert labels are untrusted: a label may carry ``../other``, ``kube-system`` or a name
with a slash that would make the API path point elsewhere. Every namespace must be a
DNS-1123 label inside the automation's :class:`monitor.scope.Scope` (the same rule the
engine's ``scope`` guardrail applies); every object name a DNS-1123 subdomain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor import errors
from monitor import scope as scope_mod

_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")

KINDS = {  # accepted spellings -> canonical kind
    "deployment": "Deployment",
    "deployments": "Deployment",
    "deploy": "Deployment",
    "statefulset": "StatefulSet",
    "statefulsets": "StatefulSet",
    "sts": "StatefulSet",
    "pod": "Pod",
    "pods": "Pod",
    "replicaset": "ReplicaSet",
    "replicasets": "ReplicaSet",
    "rs": "ReplicaSet",
    "job": "Job",
    "jobs": "Job",
    "daemonset": "DaemonSet",
    "daemonsets": "DaemonSet",
    "ds": "DaemonSet",
    "cronjob": "CronJob",
    "cronjobs": "CronJob",
    "horizontalpodautoscaler": "HorizontalPodAutoscaler",
    "horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "hpa": "HorizontalPodAutoscaler",
}


class InvalidTargetError(errors.PermanentActionError):
    """A target from alert labels is malformed or outside the allowed namespaces."""


def check_namespace(namespace: object, scope: scope_mod.Scope) -> str:
    """``namespace`` when it is a valid DNS-1123 label inside ``scope``."""
    valid = validate_namespace(namespace)
    problem = scope.denied(valid)
    if problem:
        raise InvalidTargetError(problem)
    return valid


def validate_namespace(value: object) -> str:
    if not isinstance(value, str) or len(value) > 63 or not _LABEL.fullmatch(value):
        raise InvalidTargetError(
            f"namespace {value!r} is not a valid DNS-1123 label "
            "(lower-case letters, digits and '-', at most 63 characters)"
        )
    return value


def validate_name(value: object, what: str = "name") -> str:
    if not isinstance(value, str) or len(value) > 253 or not _SUBDOMAIN.fullmatch(value):
        raise InvalidTargetError(
            f"{what} {value!r} is not a valid DNS-1123 subdomain "
            "(lower-case letters, digits, '-' and '.', at most 253 characters)"
        )
    return value


@dataclass(frozen=True)
class Target:
    kind: str
    namespace: str
    name: str
    pod: str | None = None
    via: str = ""  # resolve: owner's chain, "Pod production/x -> ... -> Deployment y"

    def __str__(self) -> str:
        return f"{self.kind.lower()} {self.namespace}/{self.name}"


def target(
    raw: Mapping[str, str], scope: scope_mod.Scope, kinds: Iterable[str], need_name: bool = True
) -> Target:
    """The validated target of an action, from the engine's rendered ``ctx.target``."""
    kinds = tuple(kinds)
    kind_raw = raw.get("kind") or kinds[0]
    kind = KINDS.get(str(kind_raw).lower())
    if kind not in kinds:
        raise InvalidTargetError(
            f"kind {kind_raw!r} is not supported here (expected one of {', '.join(kinds)})"
        )
    if "namespace" not in raw:
        raise InvalidTargetError("the target names no namespace")
    namespace = check_namespace(raw["namespace"], scope)
    name = raw.get("name") or ""
    if need_name or name:
        name = validate_name(name, f"{kind} name")
    pod = raw.get("pod")
    if pod is not None:
        pod = ",".join(validate_name(p.strip(), "pod name") for p in pod.split(","))
    return Target(kind, namespace, name, pod)
