"""The remediation policy language: what SREs write in ``remediations/*.yaml``.

::

    from monitor import policy

    policies = policy.load(["remediations/"], registry)     # PolicyLoadError lists every error
    for p in policies.match(alert.labels):                  # Alertmanager matchers, indexed
        if policy.active(p, now):                           # time intervals
            target = policy.render_target(p, alert)         # templated, checked
            key = policy.target_key(target)                 # kind/namespace/name
            params = policy.parse_params(p.steps[0][0], alert, registry)

See ``docs/policy.md`` for the file format.
"""

from __future__ import annotations

from monitor.policy.loader import PolicyLoadError, Report, check, load
from monitor.policy.policyset import (
    CompiledAction,
    Policy,
    PolicySet,
    Targets,
    active,
    parse_params,
    render_params,
    render_promql,
    render_target,
    target_key,
    target_labels,
)
from monitor.policy.schema import json_schema

__all__ = [
    "CompiledAction",
    "Policy",
    "PolicyLoadError",
    "PolicySet",
    "Report",
    "Targets",
    "active",
    "check",
    "json_schema",
    "load",
    "parse_params",
    "render_params",
    "render_promql",
    "render_target",
    "target_key",
    "target_labels",
]
