"""Role (or ClusterRole) objects holding given RBAC rules.

The rules come in as plain data: the actions declare what they need and
:mod:`monitor.actions.rbac` merges it; this module only checks the names and shapes the
Kubernetes objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from monitor import errors
from monitor.k8s import names


def roles(
    rules: Sequence[dict[str, Any]], namespaces: list[str] | None, name: str
) -> list[dict[str, Any]]:
    """One Role per namespace in ``namespaces``, or one ClusterRole when it is None."""
    try:
        names.validate_name(name, "role name")
    except errors.ActionError as exc:
        raise errors.ConfigError(f"rbac: {exc}") from None
    merged = list(rules)
    labels = {"app.kubernetes.io/name": "conea-monitor"}
    if namespaces is None:
        return [
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRole",
                "metadata": {"name": name, "labels": labels},
                "rules": merged,
            }
        ]
    result = []
    for namespace in sorted(set(namespaces)):
        try:
            names.validate_namespace(namespace)
        except errors.ActionError as exc:
            raise errors.ConfigError(f"rbac: {exc}") from None
        result.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "rules": merged,
            }
        )
    return result
