"""Compiled policies and the set the engine asks: which policies handle this alert?

A :class:`Policy` is a checked :class:`~monitor.policy.models.PolicySpec` with its
matchers parsed, regexes and templates compiled and its time intervals resolved, so
deciding an alert does no parsing. :class:`PolicySet` indexes policies by their
``alertname="..."`` matcher: an alert is only checked against the policies naming its
alertname and the few that do not name one.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pydantic

from monitor.actions.registry import Registry
from monitor.alerts.context import AlertContext
from monitor.errors import PolicyError
from monitor.policy import matchers, models, templating
from monitor.policy.timeintervals import NamedTimeInterval

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_KIND = re.compile(r"^[A-Za-z][A-Za-z0-9.]*$")


@dataclass(frozen=True)
class CompiledAction:
    """One action of a step: its name, its parameters with templates compiled, and the
    step's overrides of the action runner's rules (None: the action's own)."""

    action: str
    params: Any
    where: str
    spec: models.ActionSpec | models.DiagnosticSpec
    timeout: float | None = None  # seconds one try may take
    retries: int | None = None  # tries after the first

    @property
    def label(self) -> str:
        """A diagnostic's evidence name (its ``name:``, else the action's)."""
        return self.spec.label if isinstance(self.spec, models.DiagnosticSpec) else self.action


_OPS = {matchers.Op.EQ: 0, matchers.Op.NE: 1, matchers.Op.RE: 2, matchers.Op.NRE: 3}


@dataclass(frozen=True)
class Policy:
    name: str
    spec: models.PolicySpec
    source: str
    where: str
    matchers: tuple[matchers.Matcher, ...]
    target: Mapping[str, templating.Template]
    steps: tuple[tuple[CompiledAction, ...], ...]
    promql: templating.Template | None = None
    active_intervals: tuple[NamedTimeInterval, ...] = ()
    inactive_intervals: tuple[NamedTimeInterval, ...] = ()
    ordinal: int = 0
    # ``diagnose:``: read-only actions whose results are kept as evidence; each one's
    # ``timeout`` is its own (seconds), ``spec`` a models.DiagnosticSpec.
    diagnostics: tuple[CompiledAction, ...] = ()
    _checks: tuple[tuple[str, int, str, Any], ...] = field(default=(), init=False, repr=False)

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def for_at_least(self) -> timedelta:
        return self.spec.effective_for_at_least()

    @property
    def cooldown(self) -> timedelta:
        return self.spec.cooldown

    @property
    def budget(self) -> models.Budget:
        return self.spec.budget

    @property
    def dry_run(self) -> bool:
        """Is every step rehearsed (the policy's own ``dry_run``)?"""
        return self.spec.dry_run

    def rehearsed(self, step: int) -> bool:
        """Is this step rehearsed by the policy (its ``dry_run``, or the step's own)?"""
        return 0 <= step < len(self.spec.steps) and self.spec.step_rehearsed(step)

    def action_names(self) -> set[str]:
        """Every action the policy runs: its steps' and its diagnostics' (for RBAC)."""
        return {a.action for step in self.steps for a in step} | {
            d.action for d in self.diagnostics
        }

    @property
    def verify(self) -> models.Verify:
        return self.spec.verify

    @property
    def revert(self) -> models.Revert:
        return self.spec.revert

    @property
    def severity(self) -> str | None:
        return self.spec.severity

    def __post_init__(self) -> None:
        # (label, op, value, regex match) tuples: the hot loop of PolicySet.match.
        checks = tuple(
            (m.name, _OPS[m.op], m.value, m.regex.matches if m.regex is not None else None)
            for m in self.matchers
        )
        object.__setattr__(self, "_checks", checks)

    def matches(self, labels: Mapping[str, str]) -> bool:
        get = labels.get
        for name, op, value, match in self._checks:
            actual = get(name, "")
            if op == 0:
                if actual != value:
                    return False
            elif op == 1:
                if actual == value:
                    return False
            elif match(actual) != (op == 2):
                return False
        return True


def _alertname(policy: Policy) -> str | None:
    for m in policy.matchers:
        if m.name == "alertname" and m.op is matchers.Op.EQ:
            return m.value
    return None


@dataclass
class PolicySet:
    """Every loaded policy, in file order, indexed for :meth:`match`."""

    policies: Sequence[Policy] = ()
    time_intervals: Mapping[str, NamedTimeInterval] = field(default_factory=dict)
    sources: Sequence[str] = ()

    def __post_init__(self) -> None:
        self._by_name = {p.name: p for p in self.policies}
        self._by_alertname: dict[str, list[Policy]] = {}
        self._generic: list[Policy] = []
        for policy in self.policies:
            alertname = _alertname(policy)
            if alertname is None:
                self._generic.append(policy)
            else:
                self._by_alertname.setdefault(alertname, []).append(policy)

    def __len__(self) -> int:
        return len(self.policies)

    def __iter__(self) -> Iterator[Policy]:
        return iter(self.policies)

    def get(self, name: str) -> Policy | None:
        return self._by_name.get(name)

    def match(self, labels: Mapping[str, str]) -> list[Policy]:
        """The policies whose matchers all match ``labels``, in file order."""
        named = self._by_alertname.get(labels.get("alertname", ""), [])
        found = [p for p in named if p.matches(labels)]
        generic = [p for p in self._generic if p.matches(labels)]
        if found and generic:
            return sorted(found + generic, key=lambda p: p.ordinal)
        return found or generic


def active(policy: Policy, at: datetime) -> bool:
    """May ``policy`` act at ``at``? Inside an active interval (if any), outside inactive ones."""
    if any(interval.contains(at) for interval in policy.inactive_intervals):
        return False
    if not policy.active_intervals:
        return True
    return any(interval.contains(at) for interval in policy.active_intervals)


def target_labels(policy: Policy) -> tuple[str, ...] | None:
    """The alert labels the policy's target depends on, or None when it depends on more
    (annotations, the alert's times...)."""
    keys: set[str] = set()
    for template in policy.target.values():
        found = template.label_keys
        if found is None:
            return None
        keys.update(found)
    return tuple(sorted(keys))


class Targets:
    """:func:`render_target` with a bounded memo: in a storm, thousands of alerts share
    the few labels a target is made of (a Deployment's pods), and rendering is most of
    the cost of deciding. Only targets made of labels alone are remembered."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self._memo: OrderedDict[tuple[int, tuple[str | None, ...]], tuple[Policy, Any]] = (
            OrderedDict()
        )
        self._keys: dict[int, tuple[Policy, tuple[str, ...] | None]] = {}

    def render(self, policy: Policy, alert: AlertContext) -> Mapping[str, str]:
        known = self._keys.get(id(policy))
        if known is None or known[0] is not policy:
            known = (policy, target_labels(policy))
            if len(self._keys) >= self.size:
                self._keys.clear()
            self._keys[id(policy)] = known
        keys = known[1]
        if keys is None:
            return render_target(policy, alert)
        key = (id(policy), tuple(alert.labels.get(k) for k in keys))
        hit = self._memo.get(key)
        if hit is None or hit[0] is not policy:
            try:
                result: Any = render_target(policy, alert)
            except PolicyError as exc:
                result = str(exc)
            hit = (policy, result)
            self._memo[key] = hit
            if len(self._memo) > self.size:
                self._memo.popitem(last=False)
        if isinstance(hit[1], str):
            raise PolicyError(hit[1])
        return hit[1]  # shared: callers copy before changing

    def key_for(self, policy: Policy, labels: Mapping[str, str]) -> str | None:
        """The target key for an alert with ``labels`` when it is already known (a target
        made of labels alone, rendered before); None when it must be rendered."""
        known = self._keys.get(id(policy))
        if known is None or known[0] is not policy or known[1] is None:
            return None
        hit = self._memo.get((id(policy), tuple(labels.get(k) for k in known[1])))
        if hit is None or hit[0] is not policy or isinstance(hit[1], str):
            return None
        return target_key(hit[1])


def render_target(policy: Policy, alert: AlertContext) -> dict[str, str]:
    """The target for ``alert``, checked: a namespace must be a DNS-1123 label."""
    ctx = templating.context(alert)
    target = {key: template.render(ctx) for key, template in policy.target.items()}
    for key, value in target.items():
        where = policy.target[key].where
        if key == "kind" and not _KIND.match(value):
            raise PolicyError(f"{where}: target kind {value!r} is not a valid kind")
        if key == "name" and (
            not value or "/" in value or len(value) > 253 or not value.isprintable()
        ):
            raise PolicyError(f"{where}: target name {value!r} is not a valid name")
        if key == "namespace" and value and not (len(value) <= 63 and _DNS1123_LABEL.match(value)):
            raise PolicyError(f"{where}: target namespace {value!r} is not a DNS-1123 label")
    return target


def target_key(target: Mapping[str, str]) -> str:
    """``kind/namespace/name``: what cooldowns, budgets and the per-target lock are keyed by."""
    return f"{target.get('kind', '')}/{target.get('namespace', '')}/{target.get('name', '')}"


def render_params(action: CompiledAction, alert: AlertContext) -> dict[str, Any]:
    """The action's parameters with every template rendered for ``alert``."""
    rendered = templating.render_tree(action.params, templating.context(alert))
    assert isinstance(rendered, dict)
    return rendered


def parse_params(
    action: CompiledAction, alert: AlertContext, registry: Registry
) -> pydantic.BaseModel:
    """Render and validate the parameters; a bad rendered value is a :class:`PolicyError`."""
    rendered = render_params(action, alert)
    try:
        return registry.parse_params(action.action, rendered)
    except KeyError as exc:
        raise PolicyError(f"{action.where}: {exc.args[0]}") from None
    except pydantic.ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'with'}: {e['msg']}" for e in exc.errors()
        )
        raise PolicyError(
            f"{action.where}: parameters rendered for the alert are invalid: {reasons}"
        ) from None


def render_promql(policy: Policy, alert: AlertContext) -> str | None:
    """The verification query for ``alert``, or None to use the alert's own state."""
    if policy.promql is None:
        return None
    return policy.promql.render(templating.context(alert))
