"""Cross-references of loaded policies: what a policy names must exist where it is used.

``check(policies, registry, configured, catalog)`` returns :class:`Findings`:

errors (the service refuses to start, a reload keeps the last good policies, ``check``
exits 1)
    a ``notify`` action's ``notifier`` that ``notifiers`` does not define; a
    ``postgres.*`` action's ``target`` that ``postgres_targets`` does not define (names
    that are templates are checked once rendered, when their labels' values are known);
    a parameter that is invalid once rendered for a representative alert.
warnings (printed; errors with ``check --strict``)
    a secret reference (``{env: NAME}`` not set, ``{file: PATH}`` not readable or empty)
    of a notifier, a PostgreSQL target or an action parameter the policies use: it is
    read when used, so it may be there by then, but likely is not; a template naming a
    label the matched alert never carries (see :mod:`.rules`).

The representative alert is the one the policy's ``=`` matchers and the alert rule's
own labels describe: only templates made of those labels are rendered (a label whose
value comes from the series is known per alert only). Secret values are never shown.
Without ``configured`` (``check FILES``, no settings) names and secrets are not checked.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pydantic

from monitor import secrets
from monitor.actions.registry import Registry
from monitor.alerts.context import AlertContext
from monitor.errors import ConfigError, PolicyError
from monitor.policy import locating, matchers, rules, templating
from monitor.policy.loader import PolicyLoadError
from monitor.policy.policyset import CompiledAction, Policy, PolicySet, render_target
from monitor.targets import REFERENCES, Notifier, PostgresTarget


@dataclass(frozen=True)
class Configured:
    """What the settings define by name (None: not known here, not checked)."""

    notifiers: Mapping[str, Notifier] | None = None
    postgres_targets: Mapping[str, PostgresTarget] | None = None


@dataclass
class Findings:
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    #: Policies whose alert is in no rule given (their labels were not checked).
    unknown_alerts: list[str] = field(default_factory=list)


def ensure(policies: PolicySet, registry: Registry, configured: Configured) -> None:
    """Raise :class:`PolicyLoadError` if the policies name things the settings lack."""
    found = check(policies, registry, configured)
    if found.errors:
        raise PolicyLoadError(found.errors)


def check(
    policies: PolicySet,
    registry: Registry,
    configured: Configured | None = None,
    catalog: rules.Catalog | None = None,
) -> Findings:
    checker = _Checker(registry, configured, catalog)
    for policy in policies:
        checker.policy(policy)
    return checker.found


def _eq_labels(policy: Policy) -> dict[str, str]:
    return {m.name: m.value for m in policy.matchers if m.op is matchers.Op.EQ and m.value}


_NAMES = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?:\|[A-Za-z_:][A-Za-z0-9_:]*)*")


def _alertnames(policy: Policy, eq: Mapping[str, str]) -> list[str]:
    """The alerts a policy can match: its ``alertname="X"``, or the names of an
    ``alertname=~"X|Y|Z"`` made of names only."""
    if "alertname" in eq:
        return [eq["alertname"]]
    for m in policy.matchers:
        if m.name == "alertname" and m.op is matchers.Op.RE and _NAMES.fullmatch(m.value):
            return list(dict.fromkeys(m.value.split("|")))
    return []


def _static(labels: Mapping[str, str]) -> dict[str, str]:
    """A rule's labels whose value is written out (not a template)."""
    return {k: v for k, v in labels.items() if not templating.is_template(v)}


def _templates(tree: Any, loc: tuple[int | str, ...] = ()) -> Iterator[tuple[Any, Any]]:
    """(location inside params, Template) for every string of a compiled parameter tree."""
    if isinstance(tree, templating.Template):
        yield loc, tree
    elif isinstance(tree, Mapping):
        for key, value in tree.items():
            yield from _templates(value, (*loc, key))
    elif isinstance(tree, list):
        for i, value in enumerate(tree):
            yield from _templates(value, (*loc, i))


def _leaf(tree: Any, loc: Sequence[int | str]) -> Any:
    for part in loc:
        in_list = isinstance(tree, list) and isinstance(part, int) and 0 <= part < len(tree)
        if not (in_list or (isinstance(tree, Mapping) and part in tree)):
            return None
        tree = tree[part]
    return tree


class _Checker:
    def __init__(
        self, registry: Registry, configured: Configured | None, catalog: rules.Catalog | None
    ) -> None:
        self.registry = registry
        # Without settings (``check FILES``) names and secrets are not checked.
        self.configured = configured or Configured()
        self.deployed = configured is not None
        self.catalog = catalog
        self.found = Findings()
        self.secrets_seen: set[str] = set()

    def policy(self, policy: Policy) -> None:
        eq = _eq_labels(policy)
        every: list[rules.Rule] = []
        for alertname in _alertnames(policy, eq):
            found: list[rules.Rule] = []
            if self.catalog is not None:
                found = [
                    rule
                    for rule in self.catalog.alerts.get(alertname, [])
                    if all(eq.get(k, v) == v for k, v in _static(rule.labels).items())
                ]
                if not found:
                    self.found.unknown_alerts.append(f"{policy.name} ({alertname})")
            possible = self.possible(found, eq)
            if possible is not None:
                self.labels(policy, alertname, found, possible)
            every.extend(found)
        contexts = [self.known(eq, rule) for rule in every] or [self.known(eq, None)]
        for known in contexts:
            self.target(policy, known)
            for step in (*policy.steps, policy.diagnostics):
                for action in step:
                    self.action(action, known)

    def possible(self, found: list[rules.Rule], eq: Mapping[str, str]) -> tuple[str, ...] | None:
        """The labels the policy's alerts can carry: their rules' and those its ``=``
        matchers require (an external label, say); None: unknown."""
        if not found or self.catalog is None:
            return None
        names: list[str] = [*eq]
        for rule in found:
            labels = self.catalog.labels(rule)
            if labels is None:
                return None
            names.extend(labels)
        return tuple(dict.fromkeys(names))

    def known(self, eq: Mapping[str, str], rule: rules.Rule | None) -> dict[str, str]:
        values = dict(eq)
        if rule is not None:
            values["alertname"] = rule.name
            for key, value in _static(rule.labels).items():
                values.setdefault(key, value)
        return values

    def templates(self, policy: Policy) -> Iterator[templating.Template]:
        yield from policy.target.values()
        for step in (*policy.steps, policy.diagnostics):
            for action in step:
                for _loc, template in _templates(action.params):
                    yield template
        if policy.promql is not None:
            yield policy.promql

    def labels(
        self, policy: Policy, alertname: str, found: list[rules.Rule], possible: Sequence[str]
    ) -> None:
        shown = ", ".join(n for n in possible if n != "alertname") or "none"
        wheres = ", ".join(dict.fromkeys(rule.where for rule in found))
        for template in self.templates(policy):
            if template.constant:
                continue
            for label, safe in templating.label_uses(template.source):
                if safe or label in possible:
                    continue
                self.found.warnings.append(
                    f"{template.where}: label {label!r} is never on alert {alertname!r} "
                    f"({wheres}: its labels are {shown})"
                )

    def alert(self, known: Mapping[str, str]) -> AlertContext:
        at = datetime(2000, 1, 1, tzinfo=UTC)
        return AlertContext(dict(known), {}, "firing", "check", at)

    @staticmethod
    def renders(template: templating.Template, known: Mapping[str, str]) -> bool:
        """Is the template made only of labels whose value is known (or of none)?"""
        keys = template.label_keys
        return keys is not None and all(k in known for k in keys)

    def target(self, policy: Policy, known: Mapping[str, str]) -> None:
        if not all(self.renders(t, known) for t in policy.target.values()):
            return
        if not any(not t.constant for t in policy.target.values()):
            return
        try:
            render_target(policy, self.alert(known))
        except PolicyError as exc:
            self.error(f"{exc} (rendered for the alert {self.describe(known)})")

    def describe(self, known: Mapping[str, str]) -> str:
        return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(known.items())) + "}"

    def error(self, message: str) -> None:
        if message not in self.found.errors:
            self.found.errors.append(message)

    def warn(self, message: str) -> None:
        if message not in self.found.warnings:
            self.found.warnings.append(message)

    def action(self, action: CompiledAction, known: Mapping[str, str]) -> None:
        if action.action not in self.registry:
            return
        model = self.registry.get(action.action).Params
        ctx = templating.context(self.alert(known))
        unknown: set[tuple[int | str, ...]] = set()
        values: dict[tuple[int | str, ...], str] = {}
        failed = False
        for loc, template in _templates(action.params):
            if template.constant:
                values[loc] = template.source
            elif self.renders(template, known):
                try:
                    values[loc] = template.render(ctx)
                except PolicyError as exc:
                    self.error(f"{exc} (rendered for the alert {self.describe(known)})")
                    failed = True
            else:
                unknown.add(loc)
        if failed:
            return
        try:
            model.model_validate(_replace(action.params, values))
        except pydantic.ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error["loc"])
                leaf = _leaf(action.params, loc)
                if not isinstance(leaf, templating.Template) or leaf.constant:
                    continue  # reported when the file loaded
                if loc in unknown:
                    continue  # known per alert only
                reason = locating.describe(error, model)
                self.error(f"{leaf.where}: rendered for the alert {self.describe(known)}: {reason}")
        for prefix, key, what, setting in REFERENCES:
            if not action.action.startswith(prefix) or key not in model.model_fields:
                continue
            leaf = _leaf(action.params, (key,))
            if not isinstance(leaf, templating.Template) or (key,) not in values:
                continue
            self.reference(leaf, values[(key,)], what, setting)
        for loc, template in _templates(action.params):
            # {secret: {env: X}} anywhere, and auth's {bearer: {env: X}} / password.
            referenced = len(loc) >= 2 and (loc[-2] == "secret" or loc[0] == "auth")
            if not self.deployed:
                break
            if referenced and loc[-1] in ("env", "file") and loc not in unknown:
                parent = _leaf(action.params, loc[:-1])
                if isinstance(parent, Mapping) and len(parent) == 1:
                    self.secret_param(template, loc[-1], values.get(loc))

    def reference(self, leaf: templating.Template, name: str, what: str, setting: str) -> None:
        defined: Mapping[str, Any] | None = getattr(self.configured, setting)
        if defined is None:
            return
        if name not in defined:
            known = ", ".join(sorted(defined)) or "none configured"
            rendered = "" if leaf.constant else f" (rendered from {leaf.source!r})"
            self.error(
                f"{leaf.where}: unknown {what} {name!r}{rendered} (known: {known}); "
                f"{what}s are defined under {setting} in the settings"
            )
            return
        thing = defined[name]
        refs: list[tuple[str, secrets.SecretRef]] = []
        if isinstance(thing, Notifier):
            for part in ("url", "routing_key", "username", "password"):
                if isinstance(ref := getattr(thing, part), secrets.SecretRef):
                    refs.append((part, ref))
            for header, value in thing.headers.items():
                if isinstance(value, secrets.SecretValue):
                    refs.append((f"headers.{header}", value.secret))
        elif isinstance(thing, PostgresTarget) and thing.password is not None:
            refs.append(("password", thing.password))
        for part, ref in refs:
            key = f"{setting}.{name}.{part}"
            if key in self.secrets_seen:
                continue
            self.secrets_seen.add(key)
            problem = _secret_problem(ref)
            if problem is not None:
                self.warn(f"{leaf.where}: {what} {name!r}: {part}: {problem}")

    def secret_param(self, template: templating.Template, kind: Any, value: str | None) -> None:
        if value is None:
            return
        try:
            ref = secrets.SecretRef.model_validate({kind: value})
        except pydantic.ValidationError:
            return
        key = f"param:{ref.describe()}"
        if key in self.secrets_seen:
            return
        self.secrets_seen.add(key)
        problem = _secret_problem(ref)
        if problem is not None:
            self.warn(f"{template.where}: {problem}")


def _replace(tree: Any, values: Mapping[tuple[int | str, ...], str]) -> Any:
    def walk(node: Any, loc: tuple[int | str, ...]) -> Any:
        if isinstance(node, templating.Template):
            return values.get(loc, node.source)
        if isinstance(node, Mapping):
            return {k: walk(v, (*loc, k)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, (*loc, i)) for i, v in enumerate(node)]
        return node

    return walk(tree, ())


def _secret_problem(ref: secrets.SecretRef) -> str | None:
    """Why the secret cannot be read now (naming the reference, never its value), or None."""
    try:
        ref.resolve()
    except ConfigError as exc:
        return str(exc)
    return None
