"""Load remediation policy files and report every error at once.

``load(["remediations/"], registry)`` reads ``*.yaml`` / ``*.yml`` (a directory is read
non-recursively, in name order), checks each file against :mod:`.models`, then compiles
the policies: matchers, templates, action names and parameters, time interval names,
duplicate names. Any error raises :class:`PolicyLoadError`, whose ``errors`` lists every
problem as ``file:line:column: field.path: reason``.

Action parameters are checked against the action's ``Params`` model; values that are
templates are only known per alert, so an error located at a template is left to
render time (:func:`monitor.policy.policyset.parse_params`). An action name the registry
does not know is an error only with ``strict_actions=True`` (the service starts with it
once every action module is registered; ``check`` warns about it otherwise).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from monitor import yamlfile
from monitor.actions.registry import Registry
from monitor.errors import PolicyError
from monitor.policy import compiling, locating, models
from monitor.policy.locating import Issue, Locator
from monitor.policy.policyset import PolicySet
from monitor.policy.timeintervals import NamedTimeInterval

Loc = tuple[int | str, ...]


class PolicyLoadError(PolicyError):
    """Policy files are invalid; ``errors`` holds one line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        noun = "error" if len(errors) == 1 else "errors"
        super().__init__(f"{len(errors)} {noun} in remediation policies:\n" + "\n".join(errors))


@dataclass
class Report:
    """What a load found: the policy set (if no errors), errors and warnings."""

    policies: PolicySet | None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def files(paths: Iterable[str | Path]) -> tuple[list[Path], list[str]]:
    """The policy files named by ``paths`` (directories expanded) and the errors met."""
    found: list[Path] = []
    errors: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        elif path.exists():
            found.append(path)
        else:
            errors.append(f"{path}: no such file or directory")
    return found, errors


def load(
    paths: Iterable[str | Path], registry: Registry | None = None, *, strict_actions: bool = False
) -> PolicySet:
    """Load and compile; raises :class:`PolicyLoadError` listing every error."""
    report = check(paths, registry, strict_actions=strict_actions)
    if report.errors or report.policies is None:
        raise PolicyLoadError(report.errors)
    return report.policies


def check(
    paths: Iterable[str | Path], registry: Registry | None = None, *, strict_actions: bool = False
) -> Report:
    """Load and compile, collecting errors and warnings instead of raising."""
    paths_found, errors = files(paths)
    parsed: list[compiling.ParsedFile] = []
    issues: list[Issue] = []
    for path in paths_found:
        name = str(path)
        try:
            text = yamlfile.read(path)
        except OSError as exc:
            errors.append(f"{name}: cannot read: {exc.strerror or exc}")
            continue
        except ValueError as exc:
            errors.append(str(exc))
            continue
        result = _parse_file(text, name, issues)
        if result is not None:
            parsed.append(result)
    compiler = compiling.Compiler(registry, strict_actions)
    policies = compiler.compile(parsed)
    issues.extend(compiler.issues)
    errors.extend(str(issue) for issue in sorted(issues, key=_order))
    if errors:
        return Report(None, errors, compiler.warnings)
    return Report(policies, [], compiler.warnings)


def _order(issue: Issue) -> tuple[str, int, int]:
    return issue.file, issue.line, issue.column


def _validate(
    model: type[pydantic.BaseModel], data: Any, locator: Locator, prefix: Loc, issues: list[Issue]
) -> tuple[Any, list[Loc]]:
    try:
        return model.model_validate(data), []
    except pydantic.ValidationError as exc:
        locs = []
        for error in exc.errors():
            error["loc"] = tuple(p for p in error["loc"] if p not in models.STEP_FORMS)
            reason = locating.describe(error, model)
            at_key = error["type"] == "extra_forbidden"
            issues.append(locator.issue((*prefix, *error["loc"]), reason, at_key=at_key))
            locs.append(error["loc"])
        return None, locs


# Stand-ins for the required fields of a policy that failed its model checks; compiled
# to nothing (see _salvage).
_PLACEHOLDERS: dict[str, Any] = {
    "name": "invalid",
    "match": ['alertname="invalid"'],
    "target": {"kind": "Invalid", "name": "invalid"},
    "steps": [[{"action": "invalid"}]],
}
_EMPTY: dict[str, Any] = {"match": [], "target": {}, "steps": []}


def _salvage(raw: Any, failed: list[Loc], index: int) -> compiling.Entry | None:
    """The fields of an invalid policy that are fine, so their errors are reported too.

    Fields with errors are dropped (required ones replaced by stand-ins that compile to
    nothing); what is left is compiled for its errors (unknown actions, bad parameters,
    unknown time intervals, duplicate names) but never used.
    """
    if not isinstance(raw, dict):
        return None
    bad = {loc[0] for loc in failed if loc}
    if not bad or () in failed:
        return None
    kept = {k: v for k, v in raw.items() if k not in bad and k in models.PolicySpec.model_fields}
    for key, value in _PLACEHOLDERS.items():
        kept.setdefault(key, value)
    try:
        spec = models.PolicySpec.model_validate(kept)
    except pydantic.ValidationError:
        return None
    empty = {k: v for k, v in _EMPTY.items() if k in bad or k not in raw}
    return compiling.Entry(
        index, spec.model_copy(update=empty), valid=False, name_ok="name" not in bad
    )


def _parse_file(text: str, name: str, issues: list[Issue]) -> compiling.ParsedFile | None:
    """Check the file's shape, then each time interval and each policy on its own."""
    try:
        data, locator, duplicates = locating.parse(text, name)
    except locating.YAMLProblem as exc:
        issues.append(exc.issue)
        return None
    issues.extend(duplicates)
    shape, _ = _validate(models.FileShape, {} if data is None else data, locator, (), issues)
    if shape is None:
        return None
    parsed = compiling.ParsedFile(name, locator)
    for i, raw in enumerate(shape.time_intervals):
        interval, _ = _validate(NamedTimeInterval, raw, locator, ("time_intervals", i), issues)
        if interval is not None:
            parsed.intervals.append((i, interval))
    for i, raw in enumerate(shape.policies):
        policy, failed = _validate(models.PolicySpec, raw, locator, ("policies", i), issues)
        entry = compiling.Entry(i, policy) if policy is not None else _salvage(raw, failed, i)
        if entry is not None:
            parsed.policies.append(entry)
    return parsed
