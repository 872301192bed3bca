"""Time intervals (Alertmanager's format and meaning) and ``active(policy, at)``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from monitor.actions.registry import Registry
from monitor.policy import loader, policyset
from monitor.policy.timeintervals import TimeInterval

JST = timedelta(hours=9)


def interval(**fields: Any) -> TimeInterval:
    return TimeInterval.model_validate(fields)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_business_hours_in_tokyo() -> None:
    hours = interval(
        times=[{"start_time": "09:00", "end_time": "18:00"}],
        weekdays=["monday:friday"],
        location="Asia/Tokyo",
    )
    # Friday 2026-11-27 09:00 JST is 00:00 UTC; 18:00 JST (exclusive end) is 09:00 UTC.
    assert hours.contains(utc(2026, 11, 27, 0, 0))
    assert hours.contains(utc(2026, 11, 27, 8, 59))
    assert not hours.contains(utc(2026, 11, 27, 9, 0))
    assert not hours.contains(utc(2026, 11, 26, 23, 59))
    # Saturday in Tokyo, although still Friday in UTC.
    assert not hours.contains(utc(2026, 11, 27, 15, 30))
    assert not hours.contains(utc(2026, 11, 28, 2, 0))


def test_weekday_names_and_single_days() -> None:
    weekend = interval(weekdays=["saturday", "sunday"])
    assert weekend.contains(utc(2026, 11, 28, 12))  # Saturday
    assert weekend.contains(utc(2026, 11, 29, 12))  # Sunday
    assert not weekend.contains(utc(2026, 11, 30, 12))  # Monday


def test_end_of_day_is_24_00() -> None:
    evening = interval(times=[{"start_time": "20:00", "end_time": "24:00"}])
    assert evening.contains(utc(2026, 11, 28, 23, 59))
    assert not evening.contains(utc(2026, 11, 29, 0, 0))


def test_negative_days_of_month_count_from_the_end() -> None:
    last_three = interval(days_of_month=["-3:-1"])
    assert last_three.contains(utc(2026, 2, 26, 12))  # 28-day February
    assert not last_three.contains(utc(2026, 2, 25, 12))
    assert last_three.contains(utc(2026, 1, 29, 12))
    assert not last_three.contains(utc(2026, 1, 28, 12))


def test_months_years_and_day_ranges_combine() -> None:
    spring_2027 = interval(months=["march:may"], years=["2027"], days_of_month=["1:7"])
    assert spring_2027.contains(utc(2027, 4, 3, 12))
    assert not spring_2027.contains(utc(2027, 4, 8, 12))
    assert not spring_2027.contains(utc(2026, 4, 3, 12))
    assert not spring_2027.contains(utc(2027, 6, 3, 12))
    numeric = interval(months=["3:5"])
    assert numeric.contains(utc(2027, 5, 31, 12))


def test_naive_datetimes_are_utc() -> None:
    morning = interval(times=[{"start_time": "06:00", "end_time": "07:00"}])
    assert morning.contains(datetime(2026, 11, 28, 6, 30))  # naive on purpose


def _policies(tmp_path: Path, registry: Registry, extra: str) -> policyset.PolicySet:
    (tmp_path / "p.yaml").write_text(
        "time_intervals:\n"
        "  - name: business-hours\n"
        "    time_intervals:\n"
        "      - times: [{start_time: '09:00', end_time: '18:00'}]\n"
        "        weekdays: ['monday:friday']\n"
        "        location: Asia/Tokyo\n"
        "  - name: backup\n"
        "    time_intervals: [{times: [{start_time: '02:00', end_time: '03:00'}]}]\n"
        "policies:\n"
        "  - name: p\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        "    steps: [[{action: log}]]\n" + extra
    )
    return loader.load([tmp_path / "p.yaml"], registry)


def test_policy_without_intervals_is_always_active(tmp_path: Path, registry: Registry) -> None:
    policy = _policies(tmp_path, registry, "").get("p")
    assert policy is not None
    assert policyset.active(policy, utc(2026, 11, 29, 3))


def test_medium_severity_means_business_hours(tmp_path: Path, registry: Registry) -> None:
    policy = _policies(tmp_path, registry, "    severity: medium\n").get("p")
    assert policy is not None
    assert policyset.active(policy, utc(2026, 11, 27, 1))  # Friday 10:00 JST
    assert not policyset.active(policy, utc(2026, 11, 28, 1))  # Saturday 10:00 JST


def test_inactive_intervals_win(tmp_path: Path, registry: Registry) -> None:
    policy = _policies(
        tmp_path, registry, "    active_time_intervals: []\n    inactive_time_intervals: [backup]\n"
    ).get("p")
    assert policy is not None
    assert not policyset.active(policy, utc(2026, 11, 28, 2, 30))
    assert policyset.active(policy, utc(2026, 11, 28, 3, 0))


@pytest.mark.parametrize(
    ("severity", "expected"),
    [("critical", timedelta(0)), ("high", timedelta(minutes=30)), (None, timedelta(0))],
)
def test_severity_sets_for_at_least(
    tmp_path: Path, registry: Registry, severity: str | None, expected: timedelta
) -> None:
    extra = f"    severity: {severity}\n" if severity else ""
    policy = _policies(tmp_path, registry, extra).get("p")
    assert policy is not None
    assert policy.for_at_least == expected
    explicit = _policies(tmp_path, registry, extra + "    for_at_least: 1h30m\n").get("p")
    assert explicit is not None
    assert explicit.for_at_least == timedelta(hours=1, minutes=30)
