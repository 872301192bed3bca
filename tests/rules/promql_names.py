"""Metric names used by a PromQL expression, without a PromQL parser in Python.

Prometheus itself checks that every expression parses (tests/dashboards/test_queries.py);
this only has to find the names in expressions that parse. It blanks out what cannot
hold a metric name (strings, label matchers, ranges, grouping label lists) and keeps the
identifiers that are neither keywords nor followed by "(" (functions, aggregations).
"""

from __future__ import annotations

import re

KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "atan2",
    "inf",
    "nan",
}
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_IDENT = re.compile(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?=\s*(\(?))")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects, e.g. ``{"a", "b"}`` for ``sum(rate(a[5m])) / b``."""
    text = _STRING.sub('""', expr)
    text = _BRACES.sub("", text)
    text = _BRACKETS.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENT.finditer(text):
        name, paren = match.group(1), match.group(2)
        if paren or name.lower() in KEYWORDS:
            continue
        names.add(name)
    return names


def variable_selector(query: str) -> str | None:
    """The series selector of a Grafana ``label_values(selector, label)`` variable query,
    or None for ``label_values(label)`` (all series) and other query kinds."""
    match = _LABEL_VALUES.match(query)
    return match.group(1).strip() if match else None
