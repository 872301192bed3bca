"""The second half of loading: compile checked policies, across all files.

What needs more than one field or more than one file is checked here: action names and
parameters (against the registry), time interval names, duplicate names, the severity
rules. Templates and matchers are compiled once, for :class:`~.policyset.PolicySet`.
Every problem becomes an :class:`~.locating.Issue` with its file, line and field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pydantic

from monitor.actions.registry import Registry
from monitor.policy import locating, matchers, models, templating
from monitor.policy.locating import Issue, Locator
from monitor.policy.policyset import CompiledAction, Policy, PolicySet
from monitor.policy.timeintervals import NamedTimeInterval

Loc = tuple[int | str, ...]


@dataclass
class ParsedFile:
    """The entries of one file that passed the model checks, with their indexes."""

    name: str
    locator: Locator
    intervals: list[tuple[int, NamedTimeInterval]] = field(default_factory=list)
    policies: list[Entry] = field(default_factory=list)


@dataclass
class Entry:
    """A policy to compile. A salvaged one (``valid`` False) is compiled for its errors only."""

    index: int
    spec: models.PolicySpec
    valid: bool = True
    name_ok: bool = True


class Compiler:
    def __init__(self, registry: Registry | None, strict_actions: bool) -> None:
        self.registry = registry
        self.strict_actions = strict_actions
        self.issues: list[Issue] = []
        self.warnings: list[str] = []
        self.intervals: dict[str, NamedTimeInterval] = {}

    def compile(self, parsed: Sequence[ParsedFile]) -> PolicySet:
        interval_at: dict[str, str] = {}
        for entry in parsed:
            locator = entry.locator
            for i, interval in entry.intervals:
                name_loc: Loc = ("time_intervals", i, "name")
                if interval.name in self.intervals:
                    first = interval_at[interval.name]
                    self.error(
                        locator,
                        name_loc,
                        f"duplicate time interval {interval.name!r} (first at {first})",
                    )
                    continue
                self.intervals[interval.name] = interval
                interval_at[interval.name] = self.where(locator, name_loc)
        policies: list[Policy] = []
        first_at: dict[str, str] = {}
        for entry in parsed:
            locator = entry.locator
            for item in entry.policies:
                spec, loc = item.spec, ("policies", item.index)
                if item.name_ok and spec.name in first_at:
                    reason = f"duplicate policy name {spec.name!r} (first at {first_at[spec.name]})"
                    self.error(locator, (*loc, "name"), reason)
                    continue
                if item.name_ok:
                    first_at[spec.name] = self.where(locator, (*loc, "name"))
                policy = self.policy(spec, entry.name, locator, loc, len(policies))
                if policy is not None and item.valid:
                    policies.append(policy)
        return PolicySet(policies, dict(self.intervals), [entry.name for entry in parsed])

    def where(self, locator: Locator, loc: Loc) -> str:
        line, column = locator.mark(loc)
        return f"{locator.filename}:{line}:{column}"

    def error(self, locator: Locator, loc: Loc, reason: str) -> None:
        self.issues.append(locator.issue(loc, reason))

    def policy(
        self, spec: models.PolicySpec, source: str, locator: Locator, loc: Loc, ordinal: int
    ) -> Policy | None:
        before = len(self.issues)
        parsed_matchers: list[matchers.Matcher] = []
        for j, text in enumerate(spec.match):
            try:
                parsed_matchers.extend(matchers.parse(text))
            except matchers.MatcherError as exc:
                self.error(locator, (*loc, "match", j), str(exc))
        target = {
            key: t
            for key, value in spec.target.items()
            if (t := self.template(value, locator, (*loc, "target", key))) is not None
        }
        steps = tuple(
            tuple(
                self.action(action, spec, locator, (*loc, "steps", s, *inner, a))
                for a, action in enumerate(spec.step_actions(s))
            )
            for s, step in enumerate(spec.steps)
            for inner in [("actions",) if isinstance(step, models.StepSpec) else ()]
        )
        diagnostics = self.diagnostics(spec, locator, loc)
        promql = None
        if spec.verify.promql is not None:
            promql_loc = (*loc, "verify", "promql")
            promql = self.template(spec.verify.promql, locator, promql_loc, promql=True)
        active = self.resolve(
            spec.active_time_intervals or [], locator, (*loc, "active_time_intervals")
        )
        if spec.active_time_intervals is None:
            defaults = models.SEVERITY_ACTIVE_TIME_INTERVALS.get(spec.severity or "", [])
            for name in defaults:
                if name not in self.intervals:
                    reason = (
                        f"severity {spec.severity!r} acts only inside the time interval {name!r}, "
                        "which no file defines (define it, or set active_time_intervals)"
                    )
                    self.error(locator, (*loc, "severity"), reason)
            active = [self.intervals[n] for n in defaults if n in self.intervals]
        inactive = self.resolve(
            spec.inactive_time_intervals, locator, (*loc, "inactive_time_intervals")
        )
        if len(self.issues) > before:
            return None
        return Policy(
            name=spec.name,
            spec=spec,
            source=source,
            where=self.where(locator, loc),
            matchers=tuple(parsed_matchers),
            target=target,
            steps=steps,
            promql=promql,
            active_intervals=tuple(active),
            inactive_intervals=tuple(inactive),
            ordinal=ordinal,
            diagnostics=diagnostics,
        )

    def resolve(self, names: list[str], locator: Locator, loc: Loc) -> list[NamedTimeInterval]:
        found = []
        for j, name in enumerate(names):
            if name in self.intervals:
                found.append(self.intervals[name])
            else:
                known = ", ".join(sorted(self.intervals)) or "none defined"
                self.error(locator, (*loc, j), f"unknown time interval {name!r} (known: {known})")
        return found

    def template(
        self, source: str, locator: Locator, loc: Loc, *, promql: bool = False
    ) -> templating.Template | None:
        where = f"{self.where(locator, loc)}: {locating.path(loc)}"
        try:
            return templating.compile(source, where, promql=promql)
        except templating.TemplateSyntaxError as exc:
            self.error(locator, loc, str(exc))
            return None

    def tree(self, value: Any, locator: Locator, loc: Loc) -> Any:
        if isinstance(value, str):
            return self.template(value, locator, loc)
        if isinstance(value, dict):
            return {k: self.tree(v, locator, (*loc, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.tree(v, locator, (*loc, i)) for i, v in enumerate(value)]
        return value

    def action(
        self, spec: models.ActionSpec, policy: models.PolicySpec, locator: Locator, loc: Loc
    ) -> CompiledAction:
        params = self.tree(spec.with_, locator, (*loc, "with"))
        if policy.severity == "low" and spec.action not in models.RECORD_ONLY_ACTIONS:
            allowed = ", ".join(sorted(models.RECORD_ONLY_ACTIONS))
            reason = f"severity 'low' only records: use {allowed}, not {spec.action!r}"
            self.error(locator, (*loc, "action"), reason)
        if self.registry is None:
            pass
        elif spec.action in self.registry:
            if self.registry.get(spec.action).diagnostic:
                self.kind_of(spec, locator, loc, diagnostic=False)
            else:
                self.check_params(spec, locator, loc)
        elif self.strict_actions:
            known = ", ".join(n for n in self.registry if not self.registry.get(n).diagnostic)
            known = known or "none"
            self.error(
                locator, (*loc, "action"), f"unknown action {spec.action!r} (known: {known})"
            )
        else:
            line, column = locator.mark((*loc, "action"))
            self.warnings.append(
                f"{locator.filename}:{line}:{column}: {locating.path((*loc, 'action'))}: "
                f"action {spec.action!r} is not registered here; its parameters were not checked"
            )
        return CompiledAction(
            spec.action,
            params,
            f"{self.where(locator, loc)}: {locating.path(loc)}",
            spec,
            timeout=None if spec.timeout is None else spec.timeout.total_seconds(),
            retries=spec.retries,
        )

    def diagnostics(
        self, policy: models.PolicySpec, locator: Locator, loc: Loc
    ) -> tuple[CompiledAction, ...]:
        """``diagnose:``: diagnostic actions only, each name once; ``promql`` parameters
        are PromQL templates (label values escaped as in ``verify.promql``)."""
        compiled = []
        first_at: dict[str, int] = {}
        for d, spec in enumerate(policy.diagnose):
            here: Loc = (*loc, "diagnose", d)
            params = {
                key: self.template(value, locator, (*here, "with", key), promql=True)
                if key == "promql" and isinstance(value, str)
                else self.tree(value, locator, (*here, "with", key))
                for key, value in spec.with_.items()
            }
            if spec.label in first_at:
                first = first_at[spec.label]
                reason = (
                    f"duplicate diagnostic name {spec.label!r} (first at diagnose[{first}]); "
                    "give one a name:"
                )
                self.error(locator, (*here, "name" if spec.name else "action"), reason)
            first_at.setdefault(spec.label, d)
            self.kind_of(spec, locator, here, diagnostic=True)
            compiled.append(
                CompiledAction(
                    spec.action,
                    params,
                    f"{self.where(locator, here)}: {locating.path(here)}",
                    spec,
                    timeout=spec.timeout.total_seconds(),
                    retries=0,
                )
            )
        return tuple(compiled)

    def kind_of(
        self,
        spec: models.ActionSpec | models.DiagnosticSpec,
        locator: Locator,
        loc: Loc,
        *,
        diagnostic: bool,
    ) -> None:
        """A diagnostic only under ``diagnose:``, and only diagnostics there; then its
        parameters (registered actions; an unknown one as for steps)."""
        if self.registry is None:
            return
        if spec.action not in self.registry:
            if not diagnostic:
                return
            if self.strict_actions:
                known = ", ".join(n for n in self.registry if self.registry.get(n).diagnostic)
                reason = f"unknown diagnostic {spec.action!r} (known: {known or 'none'})"
                self.error(locator, (*loc, "action"), reason)
            else:
                line, column = locator.mark((*loc, "action"))
                self.warnings.append(
                    f"{locator.filename}:{line}:{column}: {locating.path((*loc, 'action'))}: "
                    f"diagnostic {spec.action!r} is not registered here; its parameters "
                    "were not checked"
                )
            return
        is_diagnostic = self.registry.get(spec.action).diagnostic
        if is_diagnostic and not diagnostic:
            reason = f"{spec.action!r} is a diagnostic: list it under diagnose:, not in a step"
            self.error(locator, (*loc, "action"), reason)
        elif diagnostic and not is_diagnostic:
            reason = f"{spec.action!r} is not a diagnostic (diagnose: runs read-only actions only)"
            self.error(locator, (*loc, "action"), reason)
        elif diagnostic:
            self.check_params(spec, locator, loc)

    def check_params(
        self, spec: models.ActionSpec | models.DiagnosticSpec, locator: Locator, loc: Loc
    ) -> None:
        assert self.registry is not None
        try:
            self.registry.parse_params(spec.action, spec.with_)
        except pydantic.ValidationError as exc:
            params_model = self.registry.get(spec.action).Params
            for error in exc.errors():
                inner = tuple(error["loc"])
                if _hits_template(spec.with_, inner):
                    continue  # known per alert only: checked when rendered
                reason = locating.describe(error, params_model)
                full = (*loc, "with", *inner)
                self.issues.append(
                    locator.issue(full, reason, at_key=error["type"] == "extra_forbidden")
                )


def _hits_template(value: Any, loc: Sequence[int | str]) -> bool:
    for part in loc:
        if isinstance(value, str):
            break
        if isinstance(value, dict) and part in value:
            value = value[part]
            continue
        if not (isinstance(value, list) and isinstance(part, int) and part < len(value)):
            return False
        value = value[part]
    return isinstance(value, str) and templating.is_template(value)
