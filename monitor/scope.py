"""Which namespaces the automation may touch: one rule for the engine and for ``k8s``.

``automation.namespaces_allow`` and ``automation.namespaces_deny`` hold namespace names
or shell-style patterns, matched case-sensitively against the whole name (as
:func:`fnmatch.fnmatchcase` does):

========= ==========================================================
``*``     any run of characters, also none (``team-*``, ``kube-*``)
``?``     exactly one character (``team-?``)
``[...]`` one of the characters or ranges (``db-[0-9]``); ``[!...]`` one that is not
========= ==========================================================

Anything else is a literal, so an exact name (``production``) matches only itself. A
namespace is in scope when it matches no deny pattern and, if the allow list is not
empty, at least one allow pattern (an empty allow list allows every namespace). The
default deny list, ``["kube-*"]``, covers every ``kube-`` system namespace
(``kube-system``, ``kube-public``, ``kube-node-lease``, ``kube-flannel``...).

A pattern may use only lower-case letters, digits, ``-`` and the characters above, at
most :data:`MAX_PATTERN_CHARS` of them, so that a typo (``Team-*``, ``team-[a``) fails
the configuration instead of silently matching nothing. This module imports neither the
engine nor ``monitor.k8s``: both import it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_DENY = ("kube-*",)
MAX_PATTERN_CHARS = 128
MAX_PATTERNS = 100
GLOB_CHARS = frozenset("*?[")

_LITERAL = r"[a-z0-9-]"
_PATTERN = re.compile(rf"(?:{_LITERAL}|\*|\?|\[!?(?:{_LITERAL})+\])+")


def is_pattern(value: str) -> bool:
    """Whether ``value`` uses ``*``, ``?`` or ``[...]`` (else it is an exact name)."""
    return any(c in GLOB_CHARS for c in value)


def check_pattern(value: str) -> str:
    """``value`` when it is a valid name or pattern; ValueError saying why otherwise."""
    if not value:
        raise ValueError("a namespace pattern must not be empty")
    if len(value) > MAX_PATTERN_CHARS:
        raise ValueError(f"namespace pattern is longer than {MAX_PATTERN_CHARS} characters")
    if not _PATTERN.fullmatch(value):
        raise ValueError(
            f"{value!r} is neither a namespace name nor a pattern: use lower-case "
            "letters, digits and '-', with '*', '?' and '[...]' as wildcards"
        )
    return value


def _patterns(values: Iterable[str]) -> tuple[str, ...]:
    patterns = tuple(check_pattern(v) for v in values)
    if len(patterns) > MAX_PATTERNS:
        raise ValueError(f"at most {MAX_PATTERNS} namespace patterns")
    return patterns


@dataclass(frozen=True)
class Scope:
    """``allow`` (empty: every namespace) minus ``deny``; patterns as the module says."""

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = DEFAULT_DENY

    @classmethod
    def of(cls, allow: Iterable[str] | None = (), deny: Iterable[str] = DEFAULT_DENY) -> Scope:
        """A scope from configured lists; ValueError for a malformed pattern."""
        return cls(_patterns(allow or ()), _patterns(deny))

    def denied(self, namespace: str) -> str | None:
        """None when ``namespace`` is in scope, else the reason it is not."""
        for pattern in self.deny:
            if fnmatch.fnmatchcase(namespace, pattern):
                via = "" if pattern == namespace else f" (pattern {pattern!r})"
                return f"namespace {namespace!r} is in the deny list{via}"
        if self.allow and not any(fnmatch.fnmatchcase(namespace, p) for p in self.allow):
            return f"namespace {namespace!r} is not in the allow list ({', '.join(self.allow)})"
        return None

    def allows(self, namespace: str) -> bool:
        return self.denied(namespace) is None
