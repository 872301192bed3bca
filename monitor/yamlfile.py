"""YAML loading that remembers where each value came from.

``load(text, filename)`` returns the data and a ``Locator`` that turns a pydantic error
location (``("webhook", "max_body_bytes")``) into ``file:line:column`` so that every
config error names the file, the line and the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from monitor.errors import ConfigError


@dataclass(frozen=True)
class Locator:
    filename: str
    root: yaml.Node | None

    def where(self, loc: Sequence[int | str], key: bool = False) -> str:
        """``file:line:col`` of the deepest node on ``loc`` that exists: its value, or
        its key when ``key`` is true (an unknown key is best shown at the key)."""
        node = self.root
        mark = node.start_mark if node is not None else None
        for part in loc:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                        child = value
                        mark = key_node.start_mark if key else value.start_mark
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
        if mark is None:
            return self.filename
        return f"{self.filename}:{mark.line + 1}:{mark.column + 1}"


def load(text: str, filename: str) -> tuple[Any, Locator]:
    """Parse YAML text; a syntax error becomes a ConfigError naming file:line:col."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{filename}:{mark.line + 1}:{mark.column + 1}" if mark else filename
        raise ConfigError(f"{where}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: invalid YAML: {exc}") from exc
    return data, Locator(filename, root)


def dotted(loc: Sequence[int | str]) -> str:
    """``("a", 0, "b")`` -> ``a[0].b``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
