"""Alertmanager's ``time_intervals``: business hours, maintenance windows.

The format and the meaning follow Alertmanager 0.25 (``timeinterval/timeinterval.go``)::

    time_intervals:
      - name: business-hours
        time_intervals:
          - times: [{start_time: "09:00", end_time: "18:00"}]   # end exclusive, 24:00 allowed
            weekdays: ["monday:friday"]                          # names, inclusive ranges
            days_of_month: ["1:10", "-3:-1"]                     # negative: from the month's end
            months: ["january:march", "12"]
            years: ["2026:2027"]
            location: Asia/Tokyo                                 # default UTC

A named interval contains an instant when any of its entries does; an entry contains it
when every field it sets does.
"""

from __future__ import annotations

import calendar
import re
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    field_validator,
    model_validator,
)

_TIME = re.compile(r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
WEEKDAYS = ("sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")  # fmt: skip


def _member(text: str, names: tuple[str, ...] | None, what: str, first: int) -> int:
    if names is not None and text in names:
        return names.index(text) + first
    if names is not None and what == "weekday":
        raise ValueError(f"{text!r} is not a valid weekday")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a valid {what}") from None


def _split(text: str, names: tuple[str, ...] | None, what: str, first: int) -> tuple[int, int]:
    parts = text.lower().split(":")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"{text!r} is not a valid {what} range (use 'a' or 'a:b')")
    begin = _member(parts[0], names, what, first)
    end = _member(parts[-1], names, what, first)
    return begin, end


def weekday_range(text: str) -> tuple[int, int]:
    begin, end = _split(text, WEEKDAYS, "weekday", 0)
    if begin > end:
        raise ValueError(f"start day cannot be after end day in {text!r}")
    return begin, end


def day_of_month_range(text: str) -> tuple[int, int]:
    begin, end = _split(text, None, "day of the month", 1)
    for day in (begin, end):
        if day == 0 or not -31 <= day <= 31:
            raise ValueError(f"{day} is not a valid day of the month: out of range")
    if begin < 0 < end:
        raise ValueError("end day must be negative if start day is negative")
    check_begin = 28 + begin if begin < 0 else begin
    check_end = 28 + end if end < 0 else end
    if check_begin > check_end:
        raise ValueError(f"end day {end} is always before start day {begin}")
    return begin, end


def month_range(text: str) -> tuple[int, int]:
    begin, end = _split(text, MONTHS, "month", 1)
    for month in (begin, end):
        if not 1 <= month <= 12:
            raise ValueError(f"{month} is not a valid month: out of range")
    if begin > end:
        raise ValueError(f"end month {MONTHS[end - 1]} is before start month {MONTHS[begin - 1]}")
    return begin, end


def year_range(text: str) -> tuple[int, int]:
    begin, end = _split(text, None, "year", 0)
    if begin <= 0 or begin > end:
        raise ValueError(f"end year {end} is before start year {begin}")
    return begin, end


def minutes(text: str) -> int:
    if not _TIME.match(text):
        raise ValueError(f"couldn't parse time {text!r}: use HH:MM from 00:00 to 24:00")
    hours, mins = text.split(":")
    return int(hours) * 60 + int(mins)


def _checked(parse: Callable[[str], object]) -> Callable[[str], str]:
    def check(text: str) -> str:
        parse(text)
        return text

    return check


WeekdayText = Annotated[str, AfterValidator(_checked(weekday_range))]
DayText = Annotated[str, AfterValidator(_checked(day_of_month_range))]
MonthText = Annotated[str, AfterValidator(_checked(month_range))]
YearText = Annotated[str, AfterValidator(_checked(year_range))]


class TimeRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    start_time: str = Field(description="HH:MM, inclusive")
    end_time: str = Field(description="HH:MM, exclusive; 24:00 is the end of the day")

    @field_validator("start_time", "end_time")
    @classmethod
    def _check_time(cls, value: str) -> str:
        minutes(value)
        return value

    @model_validator(mode="after")
    def _check_order(self) -> TimeRange:
        if minutes(self.start_time) >= minutes(self.end_time):
            raise ValueError("start_time must be before end_time")
        return self


class TimeInterval(BaseModel):
    """One entry: every field it sets must contain the instant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    times: list[TimeRange] | None = None
    weekdays: list[WeekdayText] | None = Field(None, description="e.g. 'monday:friday'")
    days_of_month: list[DayText] | None = Field(None, description="e.g. '1:5', '-1' (last day)")
    months: list[MonthText] | None = Field(None, description="e.g. 'january:march', '12'")
    years: list[YearText] | None = Field(None, description="e.g. '2026:2027'")
    location: str = Field("UTC", description="IANA time zone, e.g. 'Asia/Tokyo'")

    _zone: zoneinfo.ZoneInfo = PrivateAttr()

    @field_validator("location")
    @classmethod
    def _check_location(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    def model_post_init(self, context: object) -> None:
        self._zone = zoneinfo.ZoneInfo(self.location)

    def contains(self, at: datetime) -> bool:
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)
        t = at.astimezone(self._zone)
        if self.times is not None:
            minute = t.hour * 60 + t.minute
            if not any(minutes(r.start_time) <= minute < minutes(r.end_time) for r in self.times):
                return False
        if self.days_of_month is not None and not any(
            _day_in(t, day_of_month_range(text)) for text in self.days_of_month
        ):
            return False
        if self.months is not None and not any(
            lo <= t.month <= hi for lo, hi in map(month_range, self.months)
        ):
            return False
        weekday = (t.weekday() + 1) % 7  # Go: Sunday == 0
        if self.weekdays is not None and not any(
            lo <= weekday <= hi for lo, hi in map(weekday_range, self.weekdays)
        ):
            return False
        return self.years is None or any(
            lo <= t.year <= hi for lo, hi in map(year_range, self.years)
        )


def _day_in(t: datetime, days: tuple[int, int]) -> bool:
    month_days = calendar.monthrange(t.year, t.month)[1]
    begin = month_days + days[0] + 1 if days[0] < 0 else days[0]
    end = month_days + days[1] + 1 if days[1] < 0 else days[1]
    if begin > month_days:
        return False
    begin = max(-month_days, min(begin, month_days))
    end = max(-month_days, min(end, month_days))
    return begin <= t.day <= end


class NamedTimeInterval(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME)
    time_intervals: list[TimeInterval]

    def contains(self, at: datetime) -> bool:
        return any(entry.contains(at) for entry in self.time_intervals)
