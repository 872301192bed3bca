"""``conea-monitor check`` and ``conea-monitor schema`` for the policy files.

The top-level CLI (``monitor/cli.py``) wires them::

    conea-monitor check [PATHS...]   -> sys.exit(policy.cli.check(paths))
    conea-monitor schema             -> print(policy.cli.schema())
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from monitor.actions.registry import Registry
from monitor.policy import loader
from monitor.policy import schema as schema_module

DEFAULT_PATHS = ("remediations",)


def check(
    paths: Sequence[str],
    *,
    registry: Registry | None = None,
    strict_actions: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Check policy files: print every error (exit 1) or a summary (exit 0)."""
    out = out or sys.stdout
    err = err or sys.stderr
    if registry is None:
        from monitor.actions import default_registry

        registry = default_registry()
    report = loader.check(
        list(paths) or list(DEFAULT_PATHS), registry, strict_actions=strict_actions
    )
    for warning in report.warnings:
        print(f"warning: {warning}", file=err)
    if report.errors:
        for error in report.errors:
            print(error, file=err)
        noun = "error" if len(report.errors) == 1 else "errors"
        print(f"FAILED: {len(report.errors)} {noun}", file=err)
        return 1
    assert report.policies is not None
    policies = report.policies
    actions = sorted({a.action for p in policies for step in p.steps for a in step})
    print(
        f"SUCCESS: {len(policies)} policies, {len(policies.time_intervals)} time intervals "
        f"in {len(policies.sources)} files; actions used: {', '.join(actions) or 'none'}",
        file=out,
    )
    return 0


def schema() -> str:
    """The JSON Schema of the policy file format, as indented JSON."""
    return json.dumps(schema_module.json_schema(), indent=2, sort_keys=False)
