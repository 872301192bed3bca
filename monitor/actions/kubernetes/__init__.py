"""Kubernetes actions: scale, restart, set env, roll back, delete pod.

The target (``kind``, ``namespace``, ``name``, ``pod``) comes from alert labels and is
validated by :mod:`monitor.k8s.names` before any call. ``plan`` reads; ``apply`` reads
again and writes guarded by the resourceVersion it read, so a concurrent change is never
overwritten: on a conflict (409) it reads again and decides again, up to
``common.CONFLICT_ATTEMPTS`` times. ``revert`` restores only fields still holding the value
it set; a field someone else changed since is left alone and reported.
"""

from __future__ import annotations

from typing import Any

from monitor.actions.kubernetes import delete_pod, restart, rollback, scale, set_env
from monitor.actions.registry import Action, Registry

ACTIONS: tuple[type[Action[Any]], ...] = (
    scale.Scale,
    restart.Restart,
    set_env.SetEnv,
    rollback.Rollback,
    delete_pod.DeletePod,
)

__all__ = ["ACTIONS", "register"]


def register(registry: Registry) -> None:
    """Register every Kubernetes action in ``registry``."""
    for action in ACTIONS:
        registry.register(action)
