"""The one duration grammar: every form the former three grammars took, and what it refuses."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import BaseModel, ValidationError

from monitor import durations

ACCEPTED = [
    # Prometheus / Alertmanager, as policies took them
    ("0", 0),
    ("30s", 30),
    ("5m", 300),
    ("1h30m", 5400),
    ("500ms", 0.5),
    ("1d", 86_400),
    ("2d", 172_800),
    ("1w", 604_800),
    ("1y", 31_536_000),
    ("1y2w3d4h5m6s7ms", 31_536_000 + 1_209_600 + 259_200 + 14_400 + 300 + 6.007),
    # Go, as probe modules took them (blackbox_exporter timeouts)
    ("1.5s", 1.5),
    ("2.5s", 2.5),
    ("1m30s", 90),
    ("100ms", 0.1),
    ("250ms", 0.25),
    ("5s", 5),
    ("1h", 3600),
    ("2h", 7200),
    ("0.5ms", 0.0005),
    ("30s1m", 90),  # any order adds up, as in Go and the former action grammar
    ("1m1m", 120),
    # numbers of seconds and spaces around, as actions, jobs and probes took them
    (90, 90),
    (0.5, 0.5),
    (3, 3),
    (0, 0),
    (" 10m ", 600),
    ("292y", 292 * 31_536_000),
]

REFUSED = [
    "",
    "   ",
    "10",  # seconds or minutes?
    "m",
    "10 m",
    "1h 30m",
    "-5s",
    "+5s",
    "1e3s",
    ".5s",
    "5.s",
    "1m30",
    "5us",
    "5ns",
    "5M",
    "0s0",
    "soon",
    "293y",
    "99999999999999999999y",
    "1" * 65 + "s",
    -5,
    float("nan"),
    float("inf"),
    1e20,
    True,
    None,
    [5],
]


@pytest.mark.parametrize(("text", "seconds"), ACCEPTED)
def test_accepted_forms(text: str | float, seconds: float) -> None:
    assert math.isclose(durations.seconds(text), seconds, abs_tol=1e-9)
    assert durations.parse(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("value", REFUSED, ids=repr)
def test_refused_forms_name_the_value(value: object) -> None:
    with pytest.raises(ValueError, match=r"^not a valid duration ") as caught:
        durations.parse(value)
    if isinstance(value, str) and len(value) > durations.MAX_TEXT:
        assert str(caught.value).startswith(f"not a valid duration {value[:64] + '…'!r} ")
    else:
        assert str(caught.value).startswith(f"not a valid duration {value!r} (")


def test_the_schema_pattern_is_the_grammar() -> None:
    pattern = re.compile(durations.PATTERN)
    for text, _ in ACCEPTED:
        if isinstance(text, str):
            assert pattern.match(text), text
    for value in REFUSED:
        if isinstance(value, str) and value not in ("293y", "99999999999999999999y"):
            assert not (len(value) <= durations.MAX_TEXT and pattern.match(value)), value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(0), "0s"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(milliseconds=500), "500ms"),
        (timedelta(seconds=1.5), "1s500ms"),
        (timedelta(days=8), "1w1d"),
        (timedelta(days=365), "1y"),
        (timedelta(microseconds=500), "0.5ms"),
    ],
)
def test_format_reads_back(value: timedelta, text: str) -> None:
    assert durations.format(value) == text
    assert durations.parse(text) == value


class _Model(BaseModel):
    wait: durations.Duration
    timeout: durations.Seconds = 1.0


def test_a_model_field_reads_and_writes_the_grammar() -> None:
    model = _Model.model_validate({"wait": "1h30m", "timeout": "1.5s"})
    assert (model.wait, model.timeout) == (timedelta(minutes=90), 1.5)
    assert model.model_dump(mode="json") == {"wait": "1h30m", "timeout": 1.5}
    with pytest.raises(ValidationError, match="not a valid duration 'soon'"):
        _Model.model_validate({"wait": "soon"})


NOW = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", datetime(2026, 11, 29, 2, 0, tzinfo=UTC)),
        ("2d", datetime(2026, 11, 27, 3, 0, tzinfo=UTC)),
        (" 90m ", datetime(2026, 11, 29, 1, 30, tzinfo=UTC)),
        ("2026-11-28T12:00:00Z", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
        ("2026-11-28T12:00:00", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
        ("2026-11-28T21:00:00+09:00", datetime(2026, 11, 28, 12, 0, tzinfo=UTC)),
    ],
)
def test_since_reads_a_duration_back_from_now_or_an_iso_time(text: str, expected: datetime) -> None:
    assert durations.since(text, NOW) == expected


@pytest.mark.parametrize("text", ["bogus", "1h 30m", "", "-1h", "1e3s", "x" * 100])
def test_since_refuses_what_it_cannot_read_and_names_both_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a time or duration .*1h, 30m, 2d.*ISO 8601"):
        durations.since(text, NOW)


def test_since_refuses_times_outside_the_stored_range() -> None:
    with pytest.raises(ValueError, match=r"outside 1970\.\.2999"):
        durations.since("100y", NOW)
