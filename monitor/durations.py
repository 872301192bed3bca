"""Durations: the one grammar for every duration conea-monitor reads.

Policies, probe modules, scheduled jobs and action parameters all go through
:func:`parse`, so ``30s`` means the same everywhere and one message names a bad value.
The grammar (docs/policy.md, "Durations") is the union of what Prometheus and
Alertmanager (``1h30m``, ``2d``, ``500ms``) and Go, as in blackbox_exporter's module
timeouts (``1.5s``, ``1m30s``), accept:

- ``0``, or one or more parts ``<number><unit>`` written together: the number is
  digits with an optional decimal part (``1.5h``), the unit one of ``ms s m h d w y``
  (a day is 24h, a week 7d, a year 365d). Parts are usually in decreasing order
  (``1h30m``); another order adds up the same (``30s1m`` is ``1m30s``);
- a YAML number, as seconds (``90``, ``0.5``);
- spaces around the value are ignored.

Refused, because the reader cannot tell what was meant: a number in a string with no
unit (``"90"`` — seconds or minutes?), a unit with no number, a space inside
(``1h 30m``), a sign, an exponent, ``.5s`` / ``5.s``, Go's ``us``/``ns`` (nothing here
waits less than a millisecond), NaN and infinity, and anything longer than 292 years
(what Prometheus and Go can hold) or than 64 characters.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer
from pydantic.json_schema import WithJsonSchema

MAX = timedelta(days=292 * 365)
"""The longest duration: 292y, what an int64 of nanoseconds (Prometheus, Go) holds."""
MAX_TEXT = 64
"""The longest duration text read, in characters."""

_PART = r"[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d|w|y)"
PATTERN = rf"^\s*(0|({_PART})+)\s*$"
"""The grammar of a duration string as a regular expression (for JSON Schema)."""

_TEXT = re.compile(rf"0|(?:{_PART})+")
_TOKEN = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w|y)")
_MICROSECONDS = {
    "y": 365 * 86_400_000_000,
    "w": 7 * 86_400_000_000,
    "d": 86_400_000_000,
    "h": 3_600_000_000,
    "m": 60_000_000,
    "s": 1_000_000,
    "ms": 1_000,
}
_HINT = "(use e.g. '30s', '5m', '1h30m')"


def _invalid(value: object, why: str = _HINT) -> ValueError:
    shown = value[:MAX_TEXT] + "…" if isinstance(value, str) and len(value) > MAX_TEXT else value
    return ValueError(f"not a valid duration {shown!r} {why}")


def parse(value: object) -> timedelta:
    """A duration (text, number of seconds or timedelta); ValueError naming the value."""
    if isinstance(value, timedelta):
        total = value
    elif isinstance(value, bool):
        raise _invalid(value)
    elif isinstance(value, int | float):
        if not math.isfinite(value):
            raise _invalid(value)
        if value < 0:
            raise _invalid(value, "(a duration cannot be negative)")
        if value > MAX.total_seconds():
            raise _invalid(value, "(at most 292y)")
        total = timedelta(seconds=value)
    elif isinstance(value, str):
        text = value.strip()
        if len(value) > MAX_TEXT or not _TEXT.fullmatch(text):
            raise _invalid(value)
        micro = sum(
            (Decimal(number) * _MICROSECONDS[unit] for number, unit in _TOKEN.findall(text)),
            Decimal(0),
        )
        if micro > _MICROSECONDS["d"] * MAX.days:
            raise _invalid(value, "(at most 292y)")
        total = timedelta(microseconds=int(micro.to_integral_value()))
    else:
        raise _invalid(value)
    if total < timedelta(0):
        raise _invalid(value, "(a duration cannot be negative)")
    if total > MAX:
        raise _invalid(value, "(at most 292y)")
    return total


def seconds(value: object) -> float:
    """:func:`parse`, in seconds."""
    return parse(value).total_seconds()


def format(value: timedelta) -> str:
    """``timedelta(minutes=90)`` -> ``'1h30m'``: the largest units first, what parse reads."""
    micro = value // timedelta(microseconds=1)
    if micro <= 0:
        return "0s" if micro == 0 else "-" + format(-value)
    out = []
    for unit, size in _MICROSECONDS.items():
        if unit == "ms":
            break
        count, micro = divmod(micro, size)
        if count:
            out.append(f"{count}{unit}")
    if micro:
        out.append(f"{micro // 1000}ms" if micro % 1000 == 0 else f"{micro / 1000:g}ms")
    return "".join(out)


_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": PATTERN, "maxLength": MAX_TEXT},
        {"type": "number", "minimum": 0, "maximum": MAX.total_seconds()},
    ],
    "description": "a duration: 500ms, 30s, 5m, 1h30m, 1d, or a number of seconds",
}

Duration = Annotated[
    timedelta,
    BeforeValidator(parse),
    PlainSerializer(format, return_type=str),
    WithJsonSchema(_SCHEMA),
]
"""A duration field, read by :func:`parse` and written back as :func:`format` gives it."""

Seconds = Annotated[float, BeforeValidator(seconds), WithJsonSchema(_SCHEMA)]
"""A duration field held as a number of seconds (probe timeouts)."""


EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)


def since(value: str, now: datetime) -> datetime:
    """A point in time written as people write it on a command line or in a URL: a
    duration back from ``now`` (``1h``, ``2d``, ``90m``) or an ISO 8601 time
    (``2026-11-29T03:00:00Z``; without an offset it is UTC). ValueError naming the value
    and both forms; the result is within 1970..2999."""
    text = value.strip()
    if len(value) > MAX_TEXT or not text:
        raise ValueError(f"not a time or duration {value[:MAX_TEXT]!r}: {_SINCE_HINT}")
    if _TEXT.fullmatch(text):
        when = now - parse(text)
    else:
        try:
            when = datetime.fromisoformat(text.replace("z", "Z"))
        except ValueError:
            raise ValueError(f"not a time or duration {text!r}: {_SINCE_HINT}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    if not EARLIEST <= when <= LATEST:
        raise ValueError(f"{text!r} is outside 1970..2999")
    return when


_SINCE_HINT = (
    "give a duration back from now (1h, 30m, 2d) or an ISO 8601 time (2026-11-29T03:00:00Z)"
)
