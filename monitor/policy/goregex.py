"""Go (RE2) regular expressions, as Alertmanager matchers use them, run on Python's ``re``.

Alertmanager compiles a ``=~`` matcher's value as ``^(?:VALUE)$`` with Go's ``regexp``.
Python's ``re`` reads most of that syntax the same way; :func:`compile` translates the
parts where the two differ and refuses what Go would refuse, so a policy means what the
same matcher means in an Alertmanager route:

- ``\\d \\w \\s \\b`` are ASCII-only in Go (``\\s`` is ``[\\t\\n\\f\\r ]``);
- ``$`` is the end of the text (Python's ``$`` also matches before a final newline);
- ``\\z``, ``\\Q...\\E``, ``\\x{...}``, ``[[:alpha:]]`` and ``(?i)`` in the middle of a pattern;
- Python-only syntax (look-around, back-references, possessive repeats, ``{,n}``) and
  repeat counts above 1000 are errors, as in Go.

Not supported (an error that says so): Unicode classes (``\\pL``), negated POSIX classes,
``\\D \\W \\S`` inside brackets, the ``U`` flag, and a flag group followed by ``|`` in the
same group.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PERL_OUT = {
    "d": "[0-9]",
    "D": "[^0-9]",
    "w": "[0-9A-Za-z_]",
    "W": "[^0-9A-Za-z_]",
    "s": "[\\t\\n\\f\\r ]",
    "S": "[^\\t\\n\\f\\r ]",
    "b": "(?a:\\b)",
    "B": "(?a:\\B)",
    "A": "\\A",
    "z": "\\Z",
}
_PERL_IN = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_POSIX = {
    "alnum": "0-9A-Za-z",
    "alpha": "A-Za-z",
    "ascii": "\\x00-\\x7f",
    "blank": "\\t ",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "!-~",
    "lower": "a-z",
    "print": " -~",
    "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ",
    "upper": "A-Z",
    "word": "0-9A-Za-z_",
    "xdigit": "0-9A-Fa-f",
}
_CONTROL = {"a": "\a", "f": "\f", "t": "\t", "n": "\n", "r": "\r", "v": "\v"}
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_MAX_REPEAT = 1000


class GoRegexError(ValueError):
    """The pattern is not a valid Go regular expression (or uses an unsupported part)."""


@dataclass
class _Group:
    multiline: bool
    extra_closers: int = 0


def compile(pattern: str) -> re.Pattern[str]:
    """Compile ``pattern`` anchored at both ends, as Alertmanager does."""
    translated = translate(pattern)
    try:
        return re.compile(f"\\A(?:{translated})\\Z")
    except re.error as exc:
        raise GoRegexError(f"invalid regular expression {pattern!r}: {exc}") from None


def translate(pattern: str) -> str:
    """Return the Python ``re`` spelling of a Go regular expression."""
    return _Translator(pattern).run()


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.out: list[str] = []
        self.groups: list[_Group] = [_Group(multiline=False)]
        self.after_repeat = False

    def fail(self, reason: str) -> GoRegexError:
        return GoRegexError(f"invalid regular expression {self.p!r}: {reason}")

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            repeat = self._repeat_at(self.i)
            if repeat:
                if self.after_repeat:
                    raise self.fail(f"invalid nested repetition operator {repeat!r}")
                self.i += len(repeat)
                if self.i < len(p) and p[self.i] == "?":
                    repeat += "?"
                    self.i += 1
                self.out.append(repeat)
                self.after_repeat = True
                continue
            self.after_repeat = False
            if c == "\\":
                self._escape_outside()
            elif c == "[":
                self._char_class()
            elif c == "(":
                self._open_group()
            elif c == ")":
                self._close_group()
            elif c == "|":
                if self.groups[-1].extra_closers:
                    raise self.fail(
                        "a flag group followed by '|' in the same group is not supported"
                    )
                self.out.append("|")
                self.i += 1
            elif c == "$":
                self.out.append("$" if self.groups[-1].multiline else "\\Z")
                self.i += 1
            elif c == "{":
                self.out.append("\\{")
                self.i += 1
            else:
                self.out.append(c)
                self.i += 1
        if len(self.groups) > 1:
            raise self.fail("missing closing )")
        self.out.append(")" * self.groups[0].extra_closers)
        return "".join(self.out)

    def _repeat_at(self, i: int) -> str:
        c = self.p[i]
        if c in "*+?":
            return c
        if c == "{":
            m = _REPEAT.match(self.p, i)
            if m:
                low = int(m.group(1))
                high = low if m.group(2) is None else (int(m.group(3)) if m.group(3) else None)
                if low > _MAX_REPEAT or (high is not None and (high > _MAX_REPEAT or high < low)):
                    raise self.fail(f"invalid repeat count {m.group(0)!r}")
                return m.group(0)
        return ""

    def _escape_outside(self) -> None:
        p, i = self.p, self.i
        if i + 1 >= len(p):
            raise self.fail("trailing backslash at end of expression")
        c = p[i + 1]
        if c in _PERL_OUT:
            self.out.append(_PERL_OUT[c])
            self.i += 2
        elif c == "Q":
            end = p.find("\\E", i + 2)
            literal = p[i + 2 :] if end < 0 else p[i + 2 : end]
            self.out.append(f"(?:{re.escape(literal)})" if literal else "(?:)")
            self.i = len(p) if end < 0 else end + 2
        else:
            self.out.append(re.escape(self._escaped_char()))

    def _escaped_char(self) -> str:
        """The character of an escape other than a class (``\\n``, ``\\x41``, ``\\.``)."""
        p, i = self.p, self.i
        c = p[i + 1]
        if c in _CONTROL:
            self.i += 2
            return _CONTROL[c]
        if c == "x":
            if p.startswith("{", i + 2):
                m = re.compile(r"\{([0-9A-Fa-f]{1,8})\}").match(p, i + 2)
                if not m or int(m.group(1), 16) > 0x10FFFF:
                    raise self.fail(f"invalid escape sequence {p[i : i + 4]!r}")
                self.i = m.end()
                return chr(int(m.group(1), 16))
            m = re.compile(r"[0-9A-Fa-f]{2}").match(p, i + 2)
            if not m:
                raise self.fail(f"invalid escape sequence {p[i : i + 4]!r}")
            self.i = m.end()
            return chr(int(m.group(0), 16))
        if c in "01234567":
            m = re.compile(r"[0-7]{1,3}").match(p, i + 1)
            assert m is not None
            if c != "0" and len(m.group(0)) == 1:
                raise self.fail(
                    f"invalid escape sequence '\\{c}' (back-references are not allowed)"
                )
            self.i = m.end()
            return chr(int(m.group(0), 8))
        if c in "pP":
            raise self.fail(f"Unicode classes ('\\{c}') are not supported by conea-monitor")
        if c.isascii() and not c.isalnum() and c != "_":
            self.i += 2
            return c
        raise self.fail(f"invalid escape sequence '\\{c}'")

    def _char_class(self) -> None:
        p = self.p
        start = self.i
        self.i += 1
        parts = ["["]
        if self.i < len(p) and p[self.i] == "^":
            parts.append("^")
            self.i += 1
        first = True
        while True:
            if self.i >= len(p):
                raise self.fail(f"missing closing ] in {p[start:]!r}")
            c = p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and p.startswith("[:", self.i):
                end = p.find(":]", self.i + 2)
                name = p[self.i + 2 : end] if end > 0 else ""
                if name.startswith("^"):
                    raise self.fail(f"negated POSIX class [:{name}:] is not supported")
                if name not in _POSIX:
                    raise self.fail(f"invalid character class range '[:{name}:]'")
                parts.append(_POSIX[name])
                self.i = end + 2
            elif c == "\\":
                nxt = p[self.i + 1] if self.i + 1 < len(p) else ""
                if nxt in _PERL_IN:
                    parts.append(_PERL_IN[nxt])
                    self.i += 2
                elif nxt in ("D", "W", "S"):
                    raise self.fail(f"'\\{nxt}' inside brackets is not supported")
                elif nxt == "":
                    raise self.fail("trailing backslash at end of expression")
                else:
                    parts.append(re.escape(self._escaped_char()))
            elif c == "-":
                at_edge = parts[-1] in ("[", "^") or p.startswith("-]", self.i)
                parts.append("\\-" if at_edge else "-")
                self.i += 1
            else:
                parts.append(c if c.isalnum() else re.escape(c))
                self.i += 1
        parts.append("]")
        self.out.append("".join(parts))

    def _open_group(self) -> None:
        p, i = self.p, self.i
        outer = self.groups[-1]
        if not p.startswith("(?", i):
            self.out.append("(")
            self.groups.append(_Group(multiline=outer.multiline))
            self.i += 1
            return
        if p.startswith("(?P<", i):
            m = re.compile(r"\(\?P<([A-Za-z0-9_]+)>").match(p, i)
            if not m:
                raise self.fail(f"invalid named capture {p[i : i + 8]!r}")
            self.out.append(m.group(0))
            self.groups.append(_Group(multiline=outer.multiline))
            self.i = m.end()
            return
        m = re.compile(r"\(\?([a-zA-Z]*)(-[a-zA-Z]*)?([:)])").match(p, i)
        if not m:
            raise self.fail(f"invalid or unsupported Perl syntax {p[i : i + 3]!r}")
        on, off = m.group(1), (m.group(2) or "-")[1:]
        for flag in on + off:
            if flag == "U":
                raise self.fail("the U (ungreedy) flag is not supported by conea-monitor")
            if flag not in "ims":
                raise self.fail(f"invalid or unsupported Perl syntax {m.group(0)!r}")
        if m.group(2) == "-" or (not on and not off and m.group(3) == ")"):
            raise self.fail(f"missing argument to repetition operator {m.group(0)!r}")
        multiline = ("m" in on or outer.multiline) and "m" not in off
        flags = on + (f"-{off}" if off else "")
        self.out.append(f"(?{flags}:" if flags else "(?:")
        self.i = m.end()
        if m.group(3) == ":":
            self.groups.append(_Group(multiline=multiline))
        else:
            outer.extra_closers += 1
            outer.multiline = multiline
            self.after_repeat = True  # Go: a repeat right after a flag group is an error

    def _close_group(self) -> None:
        if len(self.groups) == 1:
            raise self.fail("unexpected )")
        group = self.groups.pop()
        self.out.append(")" * group.extra_closers + ")")
        self.i += 1
