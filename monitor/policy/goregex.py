"""Go regular expressions, as Alertmanager matchers use them, run on RE2.

Alertmanager compiles a ``=~`` matcher's value as ``^(?:VALUE)$`` with Go's ``regexp``,
whose syntax and semantics are RE2's. :func:`compile` hands the same anchored pattern to
RE2 itself (google-re2), in UTF-8 mode with Perl classes (``\\d \\w \\s \\b`` are
ASCII-only, ``$`` is the end of the text unless ``(?m)``), so a policy means what the same
matcher means in an Alertmanager route, and every match takes time linear in the label's
length: no pattern can make matching backtrack.

RE2 accepts two things Alertmanager 0.25's Go refuses, ``\\C`` (any byte) and
``(?<name>...)`` (Go 1.22 and later accept it); both are refused here as in Alertmanager.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

import re2

# The public wrapper maps byte offsets back to str offsets on every match (~5 µs); a
# matcher only needs yes/no, so it calls the compiled RE2 object underneath (~0.5 µs).
from re2 import _re2

_OPTIONS = re2.Options()
_OPTIONS.encoding = re2.Options.Encoding.UTF8
_OPTIONS.log_errors = False
_OPTIONS.never_capture = True
# Go's MatchString searches; the pattern's own ^...$ anchors it (or not: ``a)|(b``).
_SEARCH = _re2.RE2.Anchor.UNANCHORED
_NOT_FOUND = (-1, -1)
# \C or (?< outside \Q...\E, after an even number of backslashes.
_GO_REFUSES = re.compile(r"(?<!\\)(?:\\\\)*(\\C|\(\?<)")
_QUOTED = re.compile(r"\\Q.*?(?:\\E|$)", re.DOTALL)
_SURROGATE = re.compile("[\ud800-\udfff]")
# Label values repeat (namespaces, severities) and policies share regexes: each compiled
# regex remembers the verdicts for a few short values (a dict lookup costs a fifth of an
# RE2 call from Python). At most _MEMO values of at most _MEMO_CHARS characters each.
_MEMO = 64
_MEMO_CHARS = 64


class GoRegexError(ValueError):
    """The pattern is not a valid Go regular expression."""


@dataclass(frozen=True)
class Regex:
    """A compiled matcher regex; ``matches(text)`` is true if it matches all of ``text``."""

    pattern: str
    matches: Callable[[str], bool]


@functools.lru_cache(maxsize=4096)
def compile(pattern: str) -> Regex:
    """Compile ``pattern`` anchored at both ends (``^(?:pattern)$``), as Alertmanager does."""
    refused = _GO_REFUSES.search(_QUOTED.sub("", pattern))
    if refused:
        reason = "invalid escape sequence" if refused[1] == "\\C" else "invalid named capture"
        raise GoRegexError(f"invalid regular expression {pattern!r}: {reason} '{refused[1]}'")
    try:
        encoded = f"^(?:{pattern})$".encode()
    except UnicodeEncodeError:
        raise GoRegexError(f"invalid regular expression {pattern!r}: invalid UTF-8") from None
    compiled = _re2.RE2(encoded, _OPTIONS)
    if not compiled.ok():
        bare = _re2.RE2(pattern.encode(), _OPTIONS)  # its error quotes what the user wrote
        reason = _reason((compiled if bare.ok() else bare).error())
        raise GoRegexError(f"invalid regular expression {pattern!r}: {reason}")
    match = compiled.Match
    memo: dict[str, bool] = {}

    def matches(text: str) -> bool:
        found = memo.get(text)
        if found is not None:
            return found
        try:
            data = text.encode()
        except UnicodeEncodeError:  # a lone surrogate: Go's JSON decoder made it U+FFFD
            data = _SURROGATE.sub("\ufffd", text).encode()
        found = match(_SEARCH, data, 0, len(data))[0] != _NOT_FOUND
        if len(text) <= _MEMO_CHARS:
            if len(memo) >= _MEMO:
                memo.clear()
            memo[text] = found
        return found

    return Regex(pattern, matches)


def _reason(error: str | bytes) -> str:
    return error.decode(errors="replace") if isinstance(error, bytes) else error
