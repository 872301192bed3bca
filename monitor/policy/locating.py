"""Where a value came from: YAML node marks for pydantic error locations.

``parse(text, filename)`` builds the data and keeps PyYAML's node tree; a
:class:`Locator` walks that tree along a location (``("policies", 0, "match", 1)``) and
answers ``file:line:column``. :func:`describe` turns one pydantic error into the reason
a person can act on.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

from monitor import yamlfile

Loc = Sequence[int | str]
# libyaml's parser (same nodes and marks) is ~10 times faster than the pure-Python one.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Issue:
    """One error: file, 1-based line and column, field path, reason."""

    file: str
    line: int
    column: int
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class YAMLProblem(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue


@dataclass(frozen=True)
class Locator:
    filename: str
    root: yaml.Node | None

    def mark(self, loc: Loc) -> tuple[int, int]:
        """1-based (line, column) of the deepest node on ``loc``; unknown keys point at the key."""
        node = self.root
        if node is None:
            return 1, 1
        mark = node.start_mark
        for part in loc:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        child = value
                        mark = key.start_mark if value is None else value.start_mark
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                child = node.value[part]
                mark = child.start_mark
            if child is None:
                break
            node = child
        return mark.line + 1, mark.column + 1

    def key_mark(self, loc: Loc) -> tuple[int, int]:
        """Like :meth:`mark`, but for the key of the last part (an unknown key)."""
        line, column = self.mark(loc[:-1])
        node = self.root
        for part in loc[:-1]:
            node = _child(node, part)
        if isinstance(node, yaml.MappingNode):
            for key, _value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value == str(loc[-1]):
                    return key.start_mark.line + 1, key.start_mark.column + 1
        return line, column

    def issue(self, loc: Loc, reason: str, *, at_key: bool = False) -> Issue:
        line, column = self.key_mark(loc) if at_key and loc else self.mark(loc)
        return Issue(self.filename, line, column, path(loc), reason)


def _child(node: yaml.Node | None, part: int | str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def parse(text: str, filename: str) -> tuple[Any, Locator, list[Issue]]:
    """Parse YAML; raises :class:`YAMLProblem` on a syntax error. Also reports duplicate keys."""
    try:
        root, data = yamlfile.compose(text, _Loader)
    except yaml.YAMLError:
        # The pure-Python parser words its errors better and the same everywhere.
        try:
            root, data = yamlfile.compose(text, yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            reason = f"invalid YAML: {exc.problem or exc.context}"
            raise YAMLProblem(Issue(filename, line, column, "", reason)) from None
        except yaml.YAMLError as exc:
            raise YAMLProblem(Issue(filename, 0, 0, "", f"invalid YAML: {exc}")) from None
    locator = Locator(filename, root)
    return data, locator, _duplicate_keys(root, (), locator)


def _duplicate_keys(
    node: yaml.Node | None, loc: tuple[int | str, ...], locator: Locator
) -> list[Issue]:
    issues: list[Issue] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                if key.value in seen:
                    line, column = key.start_mark.line + 1, key.start_mark.column + 1
                    issues.append(
                        Issue(
                            locator.filename, line, column, path((*loc, key.value)), "duplicate key"
                        )
                    )
                seen.add(key.value)
                issues.extend(_duplicate_keys(value, (*loc, key.value), locator))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            issues.extend(_duplicate_keys(item, (*loc, index), locator))
    return issues


def path(loc: Loc) -> str:
    """``("policies", 0, "match")`` -> ``policies[0].match``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    return names.get(type(value), f"a {type(value).__name__}")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def describe(error: ErrorDetails, root: type[BaseModel]) -> str:
    """The reason of one pydantic error, worded for the person editing the file."""
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        allowed = fields_at(root, error["loc"][:-1])
        hint = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return f"unknown field{hint}"
    if kind == "missing":
        return "missing required field"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping (key: value), got {_kind(error['input'])}"
    if kind == "list_type":
        return f"expected a list, got {_kind(error['input'])}"
    if kind == "too_short":
        count = error.get("ctx", {}).get("min_length", 1)
        return f"needs at least {count} item{'s' if count != 1 else ''}"
    if kind in ("value_error", "assertion_error"):
        return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return f"{msg[:1].lower()}{msg[1:]}, got {_short(error['input'])}"


def fields_at(root: type[BaseModel], loc: Loc) -> list[str]:
    """The keys allowed at ``loc`` inside ``root`` (for "unknown field" hints)."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            field = next(
                (f for name, f in current.model_fields.items() if (f.alias or name) == part), None
            )
            if field is None:
                return []
            current = field.annotation
        else:
            args = [a for a in typing.get_args(current) if a is not type(None)]
            current = args[-1] if args else None
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or name for name, f in current.model_fields.items()]
    return []


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            args = [_unwrap(a) for a in typing.get_args(annotation) if a is not type(None)]
            # Of a model and another form (a step: a list or a mapping), the model's keys.
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            annotation = models[0] if models else args[0]
        else:
            return annotation
