"""Prometheus durations (``30s``, ``5m``, ``1h30m``, ``0``) as :class:`datetime.timedelta`."""

from __future__ import annotations

import re
from datetime import timedelta

PATTERN = (
    r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"
)
_DURATION = re.compile(PATTERN)
_UNITS = (
    ("y", timedelta(days=365)),
    ("w", timedelta(weeks=1)),
    ("d", timedelta(days=1)),
    ("h", timedelta(hours=1)),
    ("m", timedelta(minutes=1)),
    ("s", timedelta(seconds=1)),
    ("ms", timedelta(milliseconds=1)),
)


def parse(text: object) -> timedelta:
    """Parse a Prometheus duration; raises ValueError naming the bad value."""
    if isinstance(text, timedelta):
        return text
    if not isinstance(text, str) or text == "":
        raise ValueError(f"expected a duration such as '30s', '5m' or '1h30m', got {text!r}")
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"not a valid duration {text!r} (use e.g. '30s', '5m', '1h30m')")
    total = timedelta()
    for index, (_, unit) in enumerate(_UNITS):
        count = m.group(3 + 2 * index)
        if count:
            total += int(count) * unit
    return total


def format(value: timedelta) -> str:
    """``timedelta(minutes=90)`` -> ``'1h30m'``."""
    ms = int(value.total_seconds() * 1000)
    if ms == 0:
        return "0s"
    out = []
    for suffix, unit in _UNITS:
        unit_ms = int(unit.total_seconds() * 1000)
        count, ms = divmod(ms, unit_ms)
        if count:
            out.append(f"{count}{suffix}")
    return "".join(out)
