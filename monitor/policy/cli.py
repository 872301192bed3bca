"""``conea-monitor check`` and ``conea-monitor schema`` for the policy files.

The top-level CLI (``monitor/cli.py``) wires them::

    conea-monitor check [PATHS...]   -> sys.exit(policy.cli.check(paths))
    conea-monitor schema             -> print(policy.cli.schema())

``check`` also resolves the cross-references (:mod:`.crossref`): the notifiers and
PostgreSQL targets of ``configured`` (the settings), their secrets, the parameters
rendered for a representative alert, and with ``rules`` (rule files) or ``prometheus``
(a URL) the labels templates name against the alerts' rules. Warnings print and exit 0;
with ``strict`` they are errors (exit 1).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO

from monitor.actions.registry import Registry
from monitor.errors import ConfigError
from monitor.policy import crossref, loader, rules
from monitor.policy import schema as schema_module

DEFAULT_PATHS = ("remediations",)


def check(
    paths: Sequence[str],
    *,
    registry: Registry | None = None,
    strict_actions: bool = False,
    configured: crossref.Configured | None = None,
    rule_paths: Sequence[str] = (),
    prometheus: str | None = None,
    strict: bool = False,
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
    errors, warnings = list(report.errors), list(report.warnings)
    catalog: rules.Catalog | None = None
    if rule_paths or prometheus:
        catalog = rules.Catalog()
        try:
            if rule_paths:
                _merge(catalog, rules.from_files(rule_paths))
            if prometheus:
                _merge(catalog, rules.from_prometheus(prometheus))
        except ConfigError as exc:
            catalog.errors.append(str(exc))
        errors.extend(catalog.errors)
    found = None
    if report.policies is not None:
        found = crossref.check(report.policies, registry, configured, catalog)
        errors.extend(found.errors)
        warnings.extend(found.warnings)
    for warning in warnings:
        print(f"warning: {warning}", file=err)
    failures = len(errors) + (len(warnings) if strict else 0)
    if failures:
        for error in errors:
            print(error, file=err)
        noun = "error" if failures == 1 else "errors"
        how = f" ({len(warnings)} of them warnings, with --strict)" if strict and warnings else ""
        print(f"FAILED: {failures} {noun}{how}", file=err)
        return 1
    assert report.policies is not None and found is not None
    policies = report.policies
    actions = sorted({name for p in policies for name in p.action_names()})
    print(
        f"SUCCESS: {len(policies)} policies, {len(policies.time_intervals)} time intervals "
        f"in {len(policies.sources)} files; actions used: {', '.join(actions) or 'none'}",
        file=out,
    )
    if catalog is not None:
        unknown = ", ".join(found.unknown_alerts) or "none"
        print(
            f"templates checked against {sum(map(len, catalog.alerts.values()))} alert rules; "
            f"policies whose alert is in no rule given: {unknown}",
            file=out,
        )
    return 0


def _merge(into: rules.Catalog, source: rules.Catalog) -> None:
    into.errors.extend(source.errors)
    into.external = tuple(dict.fromkeys([*into.external, *source.external]))
    for table, other in ((into.alerts, source.alerts), (into.records, source.records)):
        for name, found in other.items():
            table.setdefault(name, []).extend(found)


def schema() -> str:
    """The JSON Schema of the policy file format, as indented JSON."""
    return json.dumps(schema_module.json_schema(), indent=2, sort_keys=False)
