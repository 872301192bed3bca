"""Episodes from samples: scrape holes, ends, chunks; the bounds of a Prometheus read."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from monitor import replay
from monitor.replay import history
from tests.replay import scenario
from tests.support import services

T0 = datetime(2026, 3, 2, 10, tzinfo=UTC)
STEP = timedelta(minutes=1)
LABELS = {"alertname": "A"}


def at(*minutes: int) -> list[datetime]:
    return [T0 + m * STEP for m in minutes]


def episodes(starts: list[int], ends: list[int]) -> list[tuple[datetime, datetime | None]]:
    found = replay.episodes_of(LABELS, at(*starts), at(*ends), STEP)
    assert len({e.fingerprint for e in found}) <= 1  # the same alert each time
    return [(e.starts_at, e.ends_at) for e in found]


def test_one_missing_sample_is_a_scrape_hole_not_a_resolution() -> None:
    # Samples at 0, 1, 3, 4: it stops at 2 and starts again at 3.
    assert episodes([0, 3], [2, 5]) == [(T0, T0 + 5 * STEP)]


def test_two_missing_samples_split_the_episode() -> None:
    # Samples at 0, 1, 4, 5.
    assert episodes([0, 4], [2, 6]) == [(T0, T0 + 2 * STEP), (T0 + 4 * STEP, T0 + 6 * STEP)]


def test_an_episode_without_an_end_is_still_firing() -> None:
    assert episodes([5], []) == [(T0 + 5 * STEP, None)]


def test_an_end_before_any_start_is_an_episode_before_the_window() -> None:
    # Firing when the window opened (a start at its first point too), then again later.
    assert episodes([0, 0, 10], [3, 12]) == [(T0, T0 + 3 * STEP), (T0 + 10 * STEP, T0 + 12 * STEP)]
    assert episodes([], [3]) == []


def test_chunks_cover_the_window_once_within_a_day_and_the_points_limit() -> None:
    for step, until in (
        (STEP, T0 + timedelta(days=7)),
        (timedelta(seconds=1), T0 + timedelta(hours=6)),
    ):
        parts = history.chunks(T0, until, step)
        assert parts[0][0] == T0 and parts[-1][1] == until
        for (_, end), (start, _) in itertools.pairwise(parts):
            assert start == end + step  # no point twice, none missed
        for start, end in parts:
            points = (end - start) // step + 1
            assert points <= history.CHUNK_POINTS and end - start < timedelta(days=1)
    # A week is seven days of 1,440 points, and the point at --until itself.
    assert [end - start for start, end in history.chunks(T0, T0 + timedelta(days=7), STEP)] == [
        timedelta(days=1) - STEP
    ] * 7 + [timedelta(0)]


@pytest.mark.parametrize(
    ("since", "until", "step", "message"),
    [
        (T0 - timedelta(days=32), T0, STEP, "the window is 32 days; replay reads at most 31 days"),
        (T0, T0, STEP, "is not before --until"),
        (T0 - timedelta(days=1), T0, timedelta(0), "--step 0s: must be between 1s and 1h"),
        (T0 - timedelta(days=1), T0, timedelta(hours=2), "--step 7200s: must be between 1s and 1h"),
    ],
)
def test_a_window_out_of_bounds_is_refused_naming_the_limit(
    since: datetime, until: datetime, step: timedelta, message: str
) -> None:
    with pytest.raises(replay.ReplayError, match=message):
        replay.from_prometheus("http://127.0.0.1:1", since, until, step)


def test_more_series_than_the_limit_is_an_error_naming_it(
    history_prometheus: services.Prometheus,
) -> None:
    with pytest.raises(replay.ReplayError, match="more than 5 ALERTS series in the window"):
        replay.from_prometheus(
            history_prometheus.url, scenario.START, scenario.UNTIL, STEP, max_series=5
        )


def test_episodes_read_from_prometheus_keep_the_labels_without_alertstate(
    history_prometheus: services.Prometheus,
) -> None:
    found = replay.from_prometheus(history_prometheus.url, scenario.START, scenario.UNTIL, STEP)
    short = [e for e in found if e.labels.get("alertname") == "Short"]
    assert [dict(e.labels) for e in short] == [
        {"alertname": "Short", "namespace": "shop", "deployment": "a"}
    ] * 2
    assert [(e.starts_at, e.ends_at) for e in short] == [
        (scenario.START, scenario.START + 5 * STEP),
        (scenario.START + 60 * STEP, scenario.START + 90 * STEP),
    ]
