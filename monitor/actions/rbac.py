"""The RBAC rules the configured actions need, from what each action declares.

Each action declares :class:`~monitor.actions.registry.RbacRule` entries; :func:`rules`
merges those of the actions the policies use into the fewest rules (verbs merged per
resource, resources with the same verbs grouped per API group), sorted so the output is
stable. :func:`render` shapes them into Roles (:func:`monitor.k8s.rbac.roles`).
:func:`grants` lists them one (verb, group, resource) at a time, as the permission
check (:mod:`monitor.k8s.access`) asks the cluster about them.

An action that handles several workload kinds (``kubernetes.restart``: Deployments,
StatefulSets, DaemonSets) declares them all; a policy needs only the kind its target
names (:func:`workload_kinds`, :func:`for_kinds`). :func:`needed` is the union, over the
policies and jobs, of what each one's actions need for its target: what the permission
check asks for, what ``conea-monitor rbac`` prints (:func:`render_needed`), and what the
Helm chart grants, merging the same declarations the same way.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from monitor.actions import registry as action_registry
from monitor.k8s import names as k8s_names
from monitor.k8s import rbac as k8s_rbac

Grant = tuple[str, str, str]
"""(verb, API group, resource)."""
Use = tuple[Collection[str], Mapping[str, Any]]
"""The action names of a policy (or job) and its target."""

RESOLVE_OWNER = "resolve: owner"
"""Not an action: what a policy whose target says ``resolve: owner`` reads on the way from
a Pod to its workload (:mod:`monitor.k8s.owners`); counted like an action's name."""
OWNER_READS = (
    action_registry.RbacRule(("",), ("pods",), ("get",)),
    action_registry.RbacRule(("apps",), ("replicasets",), ("get",)),
    action_registry.RbacRule(("batch",), ("jobs",), ("get",)),
)

WORKLOAD_RESOURCES = {
    "Deployment": "deployments",
    "StatefulSet": "statefulsets",
    "DaemonSet": "daemonsets",
}
"""The workload kinds a policy's target narrows its grants to, and their ``apps`` resources."""


def workload_kinds(target: Mapping[str, Any]) -> frozenset[str]:
    """The workload kinds a policy or job with ``target`` may act on: the one its ``kind``
    names; every one with ``resolve: owner``, or when the kind names none (templated, a
    Pod whose owner an action reads, no kind at all)."""
    kind = k8s_names.KINDS.get(str(target.get("kind", "")).lower())
    if kind not in WORKLOAD_RESOURCES or target.get("resolve") == "owner":
        return frozenset(WORKLOAD_RESOURCES)
    return frozenset((kind,))


def for_kinds(granted: Iterable[Grant], kinds: Collection[str]) -> list[Grant]:
    """``granted`` without those on the workload kinds not in ``kinds``, subresources
    (``statefulsets/scale``) included: a Role that lets a Deployment restart need not
    cover DaemonSets."""
    others = {r for kind, r in WORKLOAD_RESOURCES.items() if kind not in kinds}
    return [g for g in granted if not (g[1] == "apps" and g[2].partition("/")[0] in others)]


def needed(registry: action_registry.Registry, uses: Iterable[Use]) -> list[Grant]:
    """Every (verb, API group, resource) the ``uses`` need, sorted: each one's actions'
    grants (:func:`grants`) for the workload kinds its target reaches (unknown names:
    KeyError)."""
    found: set[Grant] = set()
    for action_names, target in uses:
        found.update(for_kinds(grants(registry, action_names), workload_kinds(target)))
    return sorted(found)


def merge(granted: Iterable[Grant]) -> list[dict[str, Any]]:
    """``granted`` as the fewest rules: verbs merged per resource, resources with the same
    verbs grouped per API group, sorted by (group, verbs)."""
    verbs: dict[tuple[str, str], set[str]] = defaultdict(set)
    for verb, group, resource in granted:
        verbs[group, resource].add(verb)
    grouped: dict[tuple[str, tuple[str, ...]], list[str]] = defaultdict(list)
    for (group, resource), verb_set in verbs.items():
        grouped[group, tuple(sorted(verb_set))].append(resource)
    return [
        {"apiGroups": [group], "resources": sorted(resources), "verbs": list(verb_list)}
        for (group, verb_list), resources in sorted(grouped.items())
    ]


def rules(registry: action_registry.Registry, action_names: Iterable[str]) -> list[dict[str, Any]]:
    """The merged, minimal ``rules`` list for ``action_names`` on every workload kind they
    handle (unknown names: KeyError); :data:`RESOLVE_OWNER` among them adds
    :data:`OWNER_READS`."""
    return merge(grants(registry, action_names))


def render(
    registry: action_registry.Registry,
    action_names: Iterable[str],
    namespaces: list[str] | None,
    name: str,
) -> list[dict[str, Any]]:
    """One Role per namespace in ``namespaces``, or one ClusterRole when it is None,
    granting what ``action_names`` need."""
    return k8s_rbac.roles(rules(registry, action_names), namespaces, name)


def render_needed(
    registry: action_registry.Registry,
    uses: Iterable[Use],
    namespaces: list[str] | None,
    name: str,
) -> list[dict[str, Any]]:
    """Like :func:`render`, granting what ``uses`` need (:func:`needed`)."""
    return k8s_rbac.roles(merge(needed(registry, uses)), namespaces, name)


def grants(registry: action_registry.Registry, action_names: Iterable[str]) -> list[Grant]:
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
