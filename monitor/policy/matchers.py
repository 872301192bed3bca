"""Alertmanager's matcher syntax: ``name="value"``, ``!=``, ``=~``, ``!~``.

Parsed as Alertmanager 0.25 parses a route's ``matchers:`` entry
(``pkg/labels/parse.go``): an optional ``{...}``, comma-separated matchers (commas inside
double quotes do not separate), a label name, an operator, and a value that may be
double-quoted, with ``\\"``, ``\\\\`` and ``\\n`` escapes (any other backslash is literal).
Regular expressions are anchored at both ends (``^(?:...)$``) and run on RE2, with Go's
syntax and semantics (see :mod:`monitor.policy.goregex`). A label an alert does not have
counts as ``""``.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.policy import goregex

# Go's \s is [\t\n\f\r ]; the value is matched lazily so trailing blanks are dropped.
_S = r"[\t\n\f\r ]*"
_MATCHER = re.compile(
    rf"^{_S}([a-zA-Z_:][a-zA-Z0-9_:]*){_S}(=~|=|!=|!~){_S}(.*?){_S}$",
    re.DOTALL,
)


class MatcherError(ValueError):
    """A matcher could not be parsed; the message quotes the offending text."""


class Op(enum.Enum):
    EQ = "="
    NE = "!="
    RE = "=~"
    NRE = "!~"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: Op
    value: str
    regex: goregex.Regex | None = field(default=None, compare=False, repr=False)

    def matches(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op is Op.EQ:
            return actual == self.value
        if self.op is Op.NE:
            return actual != self.value
        assert self.regex is not None
        found = self.regex.matches(actual)
        return found if self.op is Op.RE else not found

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op.value}"{escaped}"'


def new(name: str, op: Op, value: str) -> Matcher:
    """A matcher from its parts; compiles the regex of ``=~`` / ``!~``."""
    regex = None
    if op in (Op.RE, Op.NRE):
        try:
            regex = goregex.compile(value)
        except goregex.GoRegexError as exc:
            raise MatcherError(str(exc)) from None
    return Matcher(name, op, value, regex)


def parse(text: str) -> list[Matcher]:
    """Parse one ``matchers:`` entry: one or more comma-separated matchers."""
    s = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    token: list[str] = []
    inside_quotes = escaped = False
    for ch in s:
        if ch == "," and not inside_quotes:
            tokens.append("".join(token))
            token = []
            continue
        if ch == '"':
            if not escaped:
                inside_quotes = not inside_quotes
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        token.append(ch)
    last = "".join(token).strip()
    if last:
        tokens.append(last)
    return [parse_one(tok) for tok in tokens]


def parse_one(text: str) -> Matcher:
    """Parse exactly one matcher such as ``severity=~"critical|high"``."""
    m = _MATCHER.match(text)
    if not m:
        raise MatcherError(f"bad matcher format: {text!r}")
    name, op, raw = m.group(1), Op(m.group(2)), m.group(3)
    expect_quote = raw.startswith('"')
    if expect_quote:
        raw = raw[1:]
    value: list[str] = []
    escaped = False
    last = len(raw) - 1
    for i, ch in enumerate(raw):
        if escaped:
            escaped = False
            if ch == "n":
                value.append("\n")
            elif ch in ('"', "\\"):
                value.append(ch)
            else:
                value.append("\\" + ch)
            continue
        if ch == "\\":
            if i < last:
                escaped = True
                continue
            value.append("\\")
        elif ch == '"':
            if not expect_quote or i < last:
                raise MatcherError(f"matcher value contains unescaped double quote: {m.group(3)!r}")
            expect_quote = False
        else:
            value.append(ch)
    if expect_quote:
        raise MatcherError(f"matcher value contains unescaped double quote: {m.group(3)!r}")
    return new(name, op, "".join(value))


def parse_all(entries: list[str]) -> list[Matcher]:
    """Parse a policy's ``match`` list (every matcher of every entry must match)."""
    out: list[Matcher] = []
    for entry in entries:
        out.extend(parse(entry))
    return out


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    return all(m.matches(labels) for m in matchers)
