"""Diagnostics: read-only actions a policy's ``diagnose:`` runs to gather evidence.

They run through the action runner like a step's actions, but never as a step (the
policy compiler keeps them apart by their ``diagnostic`` class variable), each bounded by
its ``timeout`` and its output by the caps of :mod:`.common`, secrets redacted.
"""

from __future__ import annotations

from typing import Any

from monitor.actions.registry import Action, Registry


def diagnostics() -> tuple[type[Action[Any]], ...]:
    """Every diagnostic that ships with the service (those whose client is installed)."""
    from monitor.actions.diagnose import kubernetes, postgres, prometheus

    return (*kubernetes.DIAGNOSTICS, *prometheus.DIAGNOSTICS, *postgres.DIAGNOSTICS)


def register(registry: Registry) -> None:
    """Register every diagnostic in ``registry``."""
    for action in diagnostics():
        registry.register(action)
