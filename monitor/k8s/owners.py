"""A target given as a Pod (or a ReplicaSet, a Job), resolved to its controlling workload.

kube-prometheus-stack's alerts name a ``pod``, not the Deployment an action acts on. With
``resolve: owner`` the target's object is read and its controller (the ``ownerReferences``
entry with ``controller: true``) followed: Pod -> ReplicaSet -> Deployment, Pod ->
StatefulSet, Pod -> DaemonSet, Pod -> Job -> CronJob. Only the Pods, ReplicaSets and Jobs on
the way are read (``get``); a workload at the top of a chain is the action's to read. At
most :data:`MAX_HOPS` owners are followed; a chain longer than that, a loop, a gone object
or one without a controller is a permanent action error saying which.
"""

from __future__ import annotations

from dataclasses import dataclass

from monitor import errors
from monitor.k8s import client as k8s_client
from monitor.k8s import errors as k8s_errors
from monitor.k8s import names

MAX_HOPS = 3
FOLLOWED = ("Pod", "ReplicaSet", "Job")
"""Kinds read to find their controller (and the kinds a ``resolve: owner`` target may be)."""
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet", "CronJob")
"""Controllers at the top of a chain: the resolution stops there."""


class OwnerError(errors.PermanentActionError):
    """The target's controlling workload cannot be found."""


@dataclass(frozen=True)
class Resolution:
    """The chain from the rendered target to its workload: ``(kind, name)`` pairs."""

    namespace: str
    chain: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> str:
        return self.chain[-1][0]

    @property
    def name(self) -> str:
        return self.chain[-1][1]

    def __str__(self) -> str:
        first_kind, first_name = self.chain[0]
        steps = [f"{first_kind} {self.namespace}/{first_name}"]
        steps += [f"{kind} {name}" for kind, name in self.chain[1:]]
        return " -> ".join(steps)


def controller(obj: dict[str, object]) -> tuple[str, str] | None:
    """``(kind, name)`` of the object's controlling owner, or None."""
    meta = obj.get("metadata")
    refs = meta.get("ownerReferences") if isinstance(meta, dict) else None
    for ref in refs if isinstance(refs, list) else []:
        if isinstance(ref, dict) and ref.get("controller") is True:
            return str(ref.get("kind") or ""), str(ref.get("name") or "")
    return None


async def resolve(kube: k8s_client.Kube, kind: str, namespace: str, name: str) -> Resolution:
    """Follow controllers from ``kind`` ``namespace``/``name`` to the workload at the top."""
    if kind not in FOLLOWED:
        raise OwnerError(
            f"resolve: owner starts from a {', '.join(FOLLOWED)}; the target is a {kind}"
        )
    chain: list[tuple[str, str]] = [(kind, name)]
    while True:
        current_kind, current_name = chain[-1]
        so_far = Resolution(namespace, tuple(chain))
        try:
            obj = await kube.read(current_kind, namespace, current_name)
        except k8s_errors.NotFoundError:
            gone = "is gone" if len(chain) == 1 else "does not exist"
            raise OwnerError(f"cannot resolve the owner of {so_far}: it {gone}") from None
        found = controller(obj)
        if found is None:
            raise OwnerError(
                f"cannot resolve the owner of {so_far}: {current_kind} {current_name} "
                "has no controller (ownerReferences with controller: true)"
            )
        owner_kind, owner_name = found
        names.validate_name(owner_name, f"{owner_kind} name in ownerReferences")
        if found in chain:
            raise OwnerError(f"cannot resolve the owner of {so_far}: the owners loop back")
        chain.append(found)
        resolution = Resolution(namespace, tuple(chain))
        if owner_kind in WORKLOADS:
            return resolution
        if owner_kind not in FOLLOWED:
            raise OwnerError(
                f"cannot resolve {resolution}: a {owner_kind} is not a workload "
                f"conea-monitor acts on ({', '.join(WORKLOADS)})"
            )
        if len(chain) > MAX_HOPS:
            raise OwnerError(f"cannot resolve {resolution}: no workload within {MAX_HOPS} owners")
