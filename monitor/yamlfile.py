"""YAML loading that remembers where each value came from.

``load(text, filename)`` returns the data and a ``Locator`` that turns a pydantic error
location (``("webhook", "max_body_bytes")``) into ``file:line:column`` so that every
config error names the file, the line and the key.

Every YAML file the service reads (settings, probe modules, policies) is parsed by
:func:`compose`, which bounds aliases: a document to which aliases would add more than
:data:`MAX_NODES` nodes once expanded (a "billion laughs"), or that refers to itself,
is an error at the line of the node that grows too large, before anything walks it.
A character YAML does not allow, or nesting deeper than the parser can follow, is an
error at its line and column too; :func:`read` names the line and column of the first
byte that is not UTF-8.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from monitor.errors import ConfigError

#: The most nodes aliases may add to a document once expanded.
MAX_NODES = 100_000
# Where an alias can start (a superset: a "*" in a quoted string costs a check, no more).
_ALIAS = re.compile(r"(?:^|[\s\[{,:])\*", re.MULTILINE)


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


def read(path: Path) -> str:
    """A file's text; OSError, or ValueError naming file:line:column of a byte that is not
    UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"{path}:{line}:{column}: the file is not UTF-8 (byte 0x{data[exc.start]:02x})"
        ) from None


def compose(
    text: str, loader_class: type[yaml.SafeLoader] = yaml.SafeLoader
) -> tuple[yaml.Node | None, Any]:
    """The node tree and the data of one document, aliases bounded (a MarkedYAMLError)."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = loader_class(text)
        root = loader.get_single_node()
        if root is None:
            return None, None
        if _ALIAS.search(text):
            _check_expansion(root)
        return root, loader.construct_document(root)
    except yaml.reader.ReaderError as exc:
        character = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "byte"
        raise _error(
            text, exc.position, f"unacceptable character {character}: {exc.reason}"
        ) from None
    except RecursionError:
        raise _error(text, _deepest(text), "the document is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def _error(text: str, index: int, problem: str) -> yaml.MarkedYAMLError:
    index = max(0, min(index, len(text)))
    line = text.count("\n", 0, index)
    column = index - (text.rfind("\n", 0, index) + 1)
    mark = yaml.Mark("<document>", index, line, column, None, 0)
    return yaml.composer.ComposerError(None, None, problem, mark)


def _deepest(text: str) -> int:
    """Where flow collections (``[`` / ``{``) nest deepest: what made the parser recurse."""
    depth = best = where = 0
    for index, char in enumerate(text):
        if char in "[{":
            depth += 1
            if depth > best:
                best, where = depth, index
        elif char in "]}":
            depth = max(0, depth - 1)
    return where


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Count the nodes of the expanded document (each shared node once per use)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            total = 1 + sum(sizes[id(child)] for child in _children(node))
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise yaml.constructor.ConstructorError(
                None, None, "an alias refers to a node that contains it", node.start_mark
            )
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    limit = len(sizes) + MAX_NODES
    node = root
    if sizes[id(node)] <= limit:
        return
    while True:  # the smallest node that is too large: where the aliases multiply
        bigger = [c for c in _children(node) if sizes[id(c)] > limit]
        if not bigger:
            break
        node = bigger[0]
    raise yaml.constructor.ConstructorError(
        None,
        None,
        f"aliases expand this node by more than {MAX_NODES} nodes",
        node.start_mark,
    )


def load(text: str, filename: str) -> tuple[Any, Locator]:
    """Parse YAML text; a syntax error becomes a ConfigError naming file:line:col."""
    try:
        root, data = compose(text)
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
