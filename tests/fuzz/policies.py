"""Hypothesis strategies for remediation policy files: valid ones, and broken ones.

Valid documents use only what every registry has (the ``log`` action) and what the
loader documents (docs/policy.md). Broken ones start from a valid document and then
change its tree (wrong types, missing and unknown keys) or its text (stray characters,
tabs, duplicated lines, control characters, anchors that expand, deep nesting, bytes
that are not UTF-8).
"""

from __future__ import annotations

import copy
import operator
import string
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

_FIRST = string.ascii_letters + string.digits
_names = st.builds(operator.add, st.sampled_from(_FIRST), st.text(_FIRST + "_.-", max_size=20))
_words = st.text(string.ascii_letters + string.digits + " .,:/-", max_size=30)
_label_names = st.builds(
    operator.add, st.sampled_from(string.ascii_letters + "_"), st.text(_FIRST + "_", max_size=10)
)
_label_values = st.text(string.ascii_letters + string.digits + " _-", max_size=12)
_regexes = st.sampled_from([".+", ".*", "a|b", "api-.*", "[a-z]+", "(foo|bar)[0-9]{1,3}"])
_durations = st.sampled_from(["0s", "30s", "5m", "1h", "1h30m", "90m", "2d", "1w"])


@st.composite
def _matchers(draw: st.DrawFn) -> str:
    label = draw(_label_names)
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    value = draw(_regexes if "~" in op else _label_values)
    return f'{label}{op}"{value}"'


_targets = st.fixed_dictionaries(
    {
        "kind": st.sampled_from(["Deployment", "StatefulSet"]),
        "name": st.one_of(_names, st.just("{{ labels.deployment | default('api') }}")),
    },
    optional={"namespace": st.one_of(_names, st.just("{{ labels.namespace }}"))},
)
_steps = st.lists(
    st.lists(
        st.fixed_dictionaries(
            {"action": st.just("log")},
            optional={
                "with": st.fixed_dictionaries(
                    {}, optional={"message": _words, "level": st.sampled_from(["info", "warning"])}
                )
            },
        ),
        min_size=1,
        max_size=2,
    ),
    min_size=1,
    max_size=3,
)
_optional_fields: dict[str, st.SearchStrategy[Any]] = {
    "description": _words,
    "severity": st.sampled_from(["critical", "high", "low"]),
    "for_at_least": _durations,
    "cooldown": _durations,
    "budget": st.fixed_dictionaries(
        {}, optional={"attempts": st.integers(1, 10), "window": _durations}
    ),
    "dry_run": st.booleans(),
    "verify": st.fixed_dictionaries({}, optional={"window": _durations, "interval": _durations}),
    "revert": st.fixed_dictionaries({}, optional={"enabled": st.booleans(), "after": _durations}),
    "inactive_time_intervals": st.builds(lambda: ["night"]),
}
_policies = st.fixed_dictionaries(
    {
        "name": _names,
        "match": st.lists(_matchers(), min_size=1, max_size=3),
        "target": _targets,
        "steps": _steps,
    },
    optional=_optional_fields,
)
NIGHT = {
    "name": "night",
    "time_intervals": [{"times": [{"start_time": "00:00", "end_time": "06:00"}]}],
}


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    policies = draw(st.lists(_policies, min_size=1, max_size=3, unique_by=lambda p: p["name"]))
    return {"time_intervals": [copy.deepcopy(NIGHT)], "policies": policies}


# -- breaking it -------------------------------------------------------------------------

yaml_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False),
        st.text(max_size=20),
        st.sampled_from(["{{", "{% raw %}", "{{ labels.x | attr('__class__') }}", "=~", "(?=x)"]),
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found.extend(_paths(value, (*prefix, index)))
    return found


_hows = st.sampled_from(["replace", "replace", "delete", "extra"])


@st.composite
def broken_trees(draw: st.DrawFn) -> Any:
    document = draw(valid_documents())
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(document)
        path = draw(st.sampled_from(paths))
        how = draw(_hows)
        if not path:
            document = draw(yaml_values) if how == "replace" else document
            if not isinstance(document, dict):
                break
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        last = path[-1]
        if how == "replace":
            parent[last] = draw(yaml_values)
        elif how == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=10))] = draw(yaml_values)
    return document


SNIPPETS = [
    "\t",
    "\x00",
    "\x07",
    "\x1b",
    "\ufeff",
    "\u2028",
    ":",
    "- ",
    "? ",
    "&a ",
    "*a",
    "!!python/object/apply:os.system ['true']\n",
    "!!binary AAAA",
    "{{",
    "'",
    '"',
    "#",
    "%YAML 1.1\n---\n",
    "---\n",
    "...\n",
    "[" * 5000,
    "x" * 100_000,
]


def _laughs(levels: int) -> str:
    """A YAML alias bomb: 9**levels strings from a few hundred bytes."""
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    lines.append(f"policies: *l{levels}")
    return "\n".join(lines) + "\n"


@st.composite
def broken_texts(draw: st.DrawFn) -> str:
    text = yaml.safe_dump(draw(valid_documents()), allow_unicode=True, sort_keys=False)
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        how = draw(st.sampled_from(["insert", "insert", "cut", "duplicate line", "truncate"]))
        if how == "insert":
            piece = draw(st.one_of(st.sampled_from(SNIPPETS), st.text(max_size=5)))
            text = text[:at] + piece + text[at:]
        elif how == "cut":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif how == "duplicate line":
            lines = text.splitlines(keepends=True)
            index = draw(st.integers(0, max(len(lines) - 1, 0)))
            lines[index:index] = lines[index : index + 1]
            text = "".join(lines)
        else:
            text = text[:at]
    return text


@dataclass(frozen=True)
class PolicyFile:
    """A file's bytes and whether it came from the valid strategy."""

    data: bytes
    valid: bool

    def __repr__(self) -> str:
        shown = self.data[:800]
        more = f"... ({len(self.data)} bytes)" if len(self.data) > 800 else ""
        return f"PolicyFile(valid={self.valid}, data={shown!r}{more})"


def _dump(document: Any) -> bytes:
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False).encode(
        "utf-8", "surrogatepass"
    )


files = st.one_of(
    st.builds(lambda d: PolicyFile(_dump(d), valid=True), valid_documents()),
    st.builds(lambda d: PolicyFile(_dump(d), valid=False), broken_trees()),
    st.builds(
        lambda t: PolicyFile(t.encode("utf-8", "surrogatepass"), valid=False), broken_texts()
    ),
    st.builds(lambda b: PolicyFile(b, valid=False), st.binary(max_size=200)),
    st.builds(lambda n: PolicyFile(_laughs(n).encode(), valid=False), st.integers(1, 9)),
)


#: Files every run tries first: an alias bomb, deep nesting, bytes that are not UTF-8, a
#: control character.
EXPLICIT = [
    PolicyFile(_laughs(9).encode(), valid=False),
    PolicyFile(b"policies: " + b"[" * 5000, valid=False),
    PolicyFile(b"policies:\n- name: caf\xe9\n", valid=False),
    PolicyFile(b"policies:\n- name: a\x07b\n", valid=False),
]
