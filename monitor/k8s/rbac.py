"""The Role (or ClusterRole) the configured actions need, from their declared rules.

Each action declares :class:`~monitor.actions.registry.RbacRule` entries; :func:`render`
merges those of the actions the policies use into the fewest rules (verbs merged per
resource, resources with the same verbs grouped per API group), sorted so the output is
stable. ``conea-monitor rbac`` prints it; the Helm chart renders the same function.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from monitor import errors
from monitor.actions import registry as action_registry
from monitor.k8s import names


def rules(registry: action_registry.Registry, action_names: Iterable[str]) -> list[dict[str, Any]]:
    """The merged, minimal ``rules`` list for ``action_names`` (unknown names: KeyError)."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for action_name in sorted(set(action_names)):
        for rule in registry.get(action_name).rbac:
            for group in rule.api_groups:
                for resource in rule.resources:
                    verbs[group, resource].update(rule.verbs)
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource), verb_set in verbs.items():
        grouped[group, tuple(sorted(verb_set))].append(resource)
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verb_list)}
        for (group, verb_list), resources in sorted(grouped.items())
    ]


def render(
    registry: action_registry.Registry,
    action_names: Iterable[str],
    namespaces: list[str] | None,
    name: str,
) -> list[dict[str, Any]]:
    """One Role per namespace in ``namespaces``, or one ClusterRole when it is None."""
    try:
        names.validate_name(name, "role name")
    except errors.ActionError as exc:
        raise errors.ConfigError(f"rbac: {exc}") from None
    merged = rules(registry, action_names)
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
    roles = []
    for namespace in sorted(set(namespaces)):
        try:
            names.validate_namespace(namespace)
        except errors.ActionError as exc:
            raise errors.ConfigError(f"rbac: {exc}") from None
        roles.append(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "Role",
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "rules": merged,
            }
        )
    return roles
