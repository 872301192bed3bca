"""Remediation actions: the registry and the actions that ship with the service."""

from __future__ import annotations

from monitor.actions.registry import (
    Action,
    ActionContext,
    Change,
    Outcome,
    Plan,
    RbacRule,
    Registry,
    Services,
    StrictModel,
)

__all__ = [
    "Action",
    "ActionContext",
    "Change",
    "Outcome",
    "Plan",
    "RbacRule",
    "Registry",
    "Services",
    "StrictModel",
    "default_registry",
]


def default_registry() -> Registry:
    """A registry holding every action that ships with the service.

    Each action module has a ``register(registry)`` function; a module whose optional
    dependency is missing is simply not registered.
    """
    from monitor.actions import builtin

    registry = Registry()
    builtin.register(registry)
    for module_name in ("kubernetes", "postgres", "http", "notify", "diagnose"):
        try:
            module = __import__(f"monitor.actions.{module_name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name == f"monitor.actions.{module_name}":
                continue
            raise
        module.register(registry)
    return registry
