"""The RBAC rules the configured actions need, from what each action declares.

Each action declares :class:`~monitor.actions.registry.RbacRule` entries; :func:`rules`
merges those of the actions the policies use into the fewest rules (verbs merged per
resource, resources with the same verbs grouped per API group), sorted so the output is
stable. :func:`render` shapes them into Roles (:func:`monitor.k8s.rbac.roles`).
``conea-monitor rbac`` prints them; the Helm chart merges the same declarations the same
way. :func:`grants` lists them one (verb, group, resource) at a time, as the permission
check (:mod:`monitor.k8s.access`) asks the cluster about them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from monitor.actions import registry as action_registry
from monitor.k8s import rbac as k8s_rbac

RESOLVE_OWNER = "resolve: owner"
"""Not an action: what a policy whose target says ``resolve: owner`` reads on the way from
a Pod to its workload (:mod:`monitor.k8s.owners`); counted like an action's name."""
OWNER_READS = (
    action_registry.RbacRule(("",), ("pods",), ("get",)),
    action_registry.RbacRule(("apps",), ("replicasets",), ("get",)),
    action_registry.RbacRule(("batch",), ("jobs",), ("get",)),
)


def rules(registry: action_registry.Registry, action_names: Iterable[str]) -> list[dict[str, Any]]:
    """The merged, minimal ``rules`` list for ``action_names`` (unknown names: KeyError);
    :data:`RESOLVE_OWNER` among them adds :data:`OWNER_READS`."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for action_name in sorted(set(action_names)):
        declared = OWNER_READS if action_name == RESOLVE_OWNER else registry.get(action_name).rbac
        for rule in declared:
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
    """One Role per namespace in ``namespaces``, or one ClusterRole when it is None,
    granting what ``action_names`` need."""
    return k8s_rbac.roles(rules(registry, action_names), namespaces, name)


def grants(
    registry: action_registry.Registry, action_names: Iterable[str]
) -> list[tuple[str, str, str]]:
    """Every (verb, API group, resource) ``action_names`` need, sorted (unknown names:
    KeyError)."""
    return sorted(
        {
            (verb, group, resource)
            for name in set(action_names)
            for rule in (OWNER_READS if name == RESOLVE_OWNER else registry.get(name).rbac)
            for group in rule.api_groups
            for resource in rule.resources
            for verb in rule.verbs
        }
    )
