"""Which labels an alert can carry, read from its Prometheus alerting rule.

``check --rules rules/`` (rule files: ``groups:`` / ``rules:``, or a PrometheusRule
manifest's ``spec``) or ``check --prometheus URL`` (``/api/v1/rules``) gives a
:class:`Catalog` of alerting rules by alert name. An alert carries ``alertname``, the
rule's own ``labels:`` and the labels its expression keeps, which :func:`kept` works out
with a real PromQL parser:

- ``sum by (a, b) (...)``: a and b, nothing else; ``sum(...)``: none;
- ``sum without (x) (...)`` or a selector (``metric{job="x"}``): unknown, since a
  series' labels cannot be known offline, unless the selector names a recording rule
  of the files given (then its expression says);
- a function keeps its argument's labels (``label_replace`` adds one, ``absent`` has
  its selector's equality matchers, ``histogram_quantile`` drops ``le``);
- a binary operation keeps the left side's (``on``/``ignoring`` and ``group_left`` /
  ``group_right`` as Prometheus applies them), ``or`` either side's.

Unknown is said as unknown (None), never guessed. Labels Prometheus adds when it sends
an alert (``external_labels``) are not in the rule files; with ``--prometheus`` they are
read from its ``/api/v1/status/config``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import promql_parser as promql
import yaml

from monitor import yamlfile
from monitor.errors import ConfigError
from monitor.policy import locating

#: The most rules read (files and the API alike), and the deepest expression followed.
MAX_RULES = 20_000
MAX_DEPTH = 64
PROMETHEUS_TIMEOUT = 10.0
MAX_RESPONSE_BYTES = 32 * 1024 * 1024

Kept = tuple[str, ...] | None  # the labels an expression's series can have; None: unknown


@dataclass(frozen=True)
class Rule:
    """One rule: an alert (``alert``) or a recording rule (``record``)."""

    name: str
    where: str  # file:line, or the Prometheus URL and group
    expr: str
    labels: Mapping[str, str]
    alert: bool = True


@dataclass
class Catalog:
    """Rules by name, and what was wrong with the sources."""

    alerts: dict[str, list[Rule]] = field(default_factory=dict)
    records: dict[str, list[Rule]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    count: int = 0
    #: Labels Prometheus adds to every alert it sends (its ``external_labels``).
    external: tuple[str, ...] = ()

    def add(self, rule: Rule) -> None:
        table = self.alerts if rule.alert else self.records
        same = table.setdefault(rule.name, [])
        # rules/prometheusrule.yaml repeats rules/*.yml: one copy is enough.
        if not any(r.expr == rule.expr and r.labels == rule.labels for r in same):
            same.append(rule)
        self.count += 1

    def labels(self, rule: Rule) -> Kept:
        """Every label the alert of ``rule`` can carry (``alertname`` first), or None."""
        try:
            expr = promql.parse(rule.expr)
        except ValueError:
            return None
        found = _Kept(self.records).of(expr, 0)
        if found is None:
            return None
        return _unique(["alertname", *rule.labels, *found, *self.external])


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n != "__name__"))


class _Kept:
    """:func:`kept`, with the recording rules a selector may name."""

    def __init__(self, records: Mapping[str, list[Rule]]) -> None:
        self.records = records
        self.following: set[str] = set()

    def of(self, expr: Any, depth: int) -> Kept:
        if depth > MAX_DEPTH:
            return None
        depth += 1
        if isinstance(expr, promql.ParenExpr | promql.UnaryExpr | promql.SubqueryExpr):
            return self.of(expr.expr, depth)
        if isinstance(expr, promql.NumberLiteral | promql.StringLiteral):
            return ()
        if isinstance(expr, promql.MatrixSelector):
            return self.selector(expr.vector_selector, depth)
        if isinstance(expr, promql.VectorSelector):
            return self.selector(expr, depth)
        if isinstance(expr, promql.AggregateExpr):
            return self.aggregate(expr, depth)
        if isinstance(expr, promql.Call):
            return self.call(expr, depth)
        if isinstance(expr, promql.BinaryExpr):
            return self.binary(expr, depth)
        return None

    def selector(self, selector: Any, depth: int) -> Kept:
        """A recording rule's series have what its expression keeps; others are unknown."""
        name = selector.name
        rules = self.records.get(name or "")
        if not rules or name in self.following:
            return None
        self.following.add(name)
        try:
            names: list[str] = []
            for rule in rules:
                try:
                    found = self.of(promql.parse(rule.expr), depth)
                except ValueError:
                    return None
                if found is None:
                    return None
                names.extend([*found, *rule.labels])
            return _unique(names)
        finally:
            self.following.discard(name)

    def aggregate(self, expr: Any, depth: int) -> Kept:
        op = str(expr.op)
        if op in ("topk", "bottomk", "limitk", "limit_ratio"):
            return self.of(expr.expr, depth)  # these keep the series they pick
        modifier = expr.modifier
        names: list[str] = []
        if modifier is not None:
            if modifier.type == promql.AggModifierType.Without:
                return None
            names = list(modifier.labels)
        if op == "count_values" and isinstance(expr.param, promql.StringLiteral):
            names.append(expr.param.val)
        return _unique(names)

    def call(self, expr: Any, depth: int) -> Kept:
        name = expr.func.name
        args = expr.args
        if name in ("absent", "absent_over_time") and args:
            selector = args[0]
            if isinstance(selector, promql.MatrixSelector):
                selector = selector.vector_selector
            if not isinstance(selector, promql.VectorSelector):
                return ()
            return _unique(
                m.name for m in selector.matchers.matchers if m.op == promql.MatchOp.Equal
            )
        literal = promql.NumberLiteral | promql.StringLiteral
        vectors = [a for a in args if not isinstance(a, literal)]
        if not vectors:
            return ()  # vector(1), time(), pi()...
        if name == "histogram_quantile" and len(args) == 2:
            found = self.of(args[1], depth)
            return None if found is None else tuple(n for n in found if n != "le")
        found = self.of(vectors[0], depth)
        if found is None:
            return None
        if name in ("label_replace", "label_join") and len(args) >= 2:
            destination = args[1]
            if isinstance(destination, promql.StringLiteral):
                return _unique([*found, destination.val])
            return None
        return found

    def binary(self, expr: Any, depth: int) -> Kept:
        lhs, rhs = self.of(expr.lhs, depth), self.of(expr.rhs, depth)
        if _scalar(expr.lhs):
            return rhs
        if _scalar(expr.rhs):
            return lhs
        op = str(expr.op)
        modifier = expr.modifier
        if op == "or":
            return None if lhs is None or rhs is None else _unique([*lhs, *rhs])
        if op in ("and", "unless"):
            return lhs
        matching = modifier.matching if modifier is not None else None
        card = modifier.card if modifier is not None else promql.VectorMatchCardinality.OneToOne
        include = list(modifier.group_labels or []) if modifier is not None else []
        if card == promql.VectorMatchCardinality.OneToMany:
            return None if rhs is None else _unique([*rhs, *include])
        if card == promql.VectorMatchCardinality.ManyToOne:
            return None if lhs is None else _unique([*lhs, *include])
        if matching is not None and matching.type == promql.LabelModifierType.Include:
            on = list(matching.labels)
            return _unique(on if lhs is None else [n for n in lhs if n in on])
        if lhs is None:
            return None
        ignoring = set(matching.labels) if matching is not None else set()
        return tuple(n for n in lhs if n not in ignoring)


def _scalar(expr: Any) -> bool:
    while isinstance(expr, promql.ParenExpr | promql.UnaryExpr):
        expr = expr.expr
    if isinstance(expr, promql.NumberLiteral):
        return True
    if isinstance(expr, promql.Call):
        return str(expr.func.return_type).endswith("Scalar")
    if isinstance(expr, promql.BinaryExpr):
        return _scalar(expr.lhs) and _scalar(expr.rhs)
    return False


def kept(expr: str) -> Kept:
    """The labels the series of ``expr`` can carry, without recording rules; None: unknown."""
    return _Kept({}).of(promql.parse(expr), 0)


def from_files(paths: Iterable[str | Path]) -> Catalog:
    """The rules of rule files (a directory: its ``*.yml`` / ``*.yaml``, not recursively)."""
    catalog = Catalog()
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))
        elif path.exists():
            found = [path]
        else:
            catalog.errors.append(f"{path}: no such file or directory")
            continue
        for file in found:
            _read_file(file, catalog)
    return catalog


def _read_file(path: Path, catalog: Catalog) -> None:
    name = str(path)
    try:
        text = yamlfile.read(path)
        data, locator, _ = locating.parse(text, name)
    except OSError as exc:
        catalog.errors.append(f"{name}: cannot read: {exc.strerror or exc}")
        return
    except ValueError as exc:
        catalog.errors.append(str(exc))
        return
    except locating.YAMLProblem as exc:
        catalog.errors.append(str(exc.issue))
        return
    prefix: tuple[int | str, ...] = ()
    if isinstance(data, dict) and data.get("kind") == "PrometheusRule":
        data, prefix = data.get("spec"), ("spec",)
    groups = data.get("groups") if isinstance(data, dict) else None
    if not isinstance(groups, list):
        where = locator.issue(prefix, "not a Prometheus rule file (no groups: list)")
        catalog.errors.append(str(where))
        return
    for g, group in enumerate(groups):
        rules = group.get("rules") if isinstance(group, dict) else None
        for r, rule in enumerate(rules if isinstance(rules, list) else []):
            loc = (*prefix, "groups", g, "rules", r)
            line, _column = locator.mark(loc)
            issue = functools.partial(locator.issue, loc)
            _add(catalog, rule, f"{name}:{line}", issue)


def _add(catalog: Catalog, rule: Any, where: str, issue: Any) -> None:
    if catalog.count >= MAX_RULES:
        if catalog.count == MAX_RULES:
            catalog.errors.append(f"{where}: more than {MAX_RULES} rules; the rest are ignored")
            catalog.count += 1
        return
    if not isinstance(rule, dict):
        catalog.errors.append(str(issue("a rule must be a mapping")))
        return
    name = rule.get("alert", rule.get("record"))
    expr, labels = rule.get("expr"), rule.get("labels") or {}
    if not isinstance(name, str) or not isinstance(expr, str | int | float):
        catalog.errors.append(str(issue("a rule needs alert (or record) and expr")))
        return
    try:
        promql.parse(str(expr))
    except ValueError as exc:
        catalog.errors.append(str(issue(f"rule {name!r}: invalid PromQL: {exc}")))
        return
    if not isinstance(labels, dict):
        catalog.errors.append(str(issue(f"rule {name!r}: labels must be a mapping")))
        return
    clean = {str(k): str(v) for k, v in labels.items()}
    catalog.add(Rule(name, where, str(expr), clean, alert="alert" in rule))


def from_prometheus(url: str, *, timeout: float = PROMETHEUS_TIMEOUT) -> Catalog:
    """The rules a Prometheus server has loaded (``GET /api/v1/rules``).

    Raises :class:`~monitor.errors.ConfigError` naming the URL when it cannot be read.
    """
    endpoint = url.rstrip("/") + "/api/v1/rules"
    try:
        with httpx.Client(timeout=timeout) as client, client.stream("GET", endpoint) as response:
            body = bytearray()
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ConfigError(f"{endpoint}: answer over {MAX_RESPONSE_BYTES} bytes")
            status = response.status_code
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise ConfigError(f"cannot read the rules from {endpoint}: {reason}") from None
    if status != 200:
        raise ConfigError(f"cannot read the rules from {endpoint}: HTTP {status}")
    try:
        groups = json.loads(bytes(body))["data"]["groups"]
        if not isinstance(groups, list):
            raise TypeError
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{endpoint}: not a Prometheus rules answer") from exc
    catalog = Catalog(external=_external_labels(url, timeout))
    for group in groups:
        if not isinstance(group, dict):
            continue
        where = f"{endpoint} (group {group.get('name')!r}, {group.get('file', '?')})"
        for item in group.get("rules") or []:
            if not isinstance(item, dict):
                continue
            kind = "alert" if item.get("type") == "alerting" else "record"
            rule = {kind: item.get("name"), "expr": item.get("query"), "labels": item.get("labels")}
            _add(catalog, rule, where, functools.partial(_at, where))
    return catalog


def _external_labels(url: str, timeout: float) -> tuple[str, ...]:
    """The names of Prometheus' ``global.external_labels`` (``/api/v1/status/config``);
    none when it does not say (an older server, a proxy that hides it)."""
    try:
        with httpx.Client(timeout=timeout) as client:
            response = client.get(url.rstrip("/") + "/api/v1/status/config")
        if response.status_code != 200 or len(response.content) > MAX_RESPONSE_BYTES:
            return ()
        config = yaml.safe_load(response.json()["data"]["yaml"])
        labels = config["global"]["external_labels"]
        return tuple(str(name) for name in labels) if isinstance(labels, dict) else ()
    except (httpx.HTTPError, ValueError, KeyError, TypeError, yaml.YAMLError):
        return ()


def _at(where: str, reason: str) -> str:
    return f"{where}: {reason}"
