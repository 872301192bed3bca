"""The simulation on its own (no Prometheus): a long wait for a time interval is decided
as the engine's 5-minute rechecks would, counted one by one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from monitor import policy, replay
from monitor import scope as scope_mod
from monitor.actions import default_registry

FRIDAY_EVENING = datetime(2026, 3, 6, 18, tzinfo=UTC)
MONDAY = datetime(2026, 3, 9, tzinfo=UTC)
WEEKDAYS = """
time_intervals:
  - name: weekdays
    time_intervals: [{weekdays: ["monday:friday"]}]
policies:
  - name: weekdays-only
    match: ['alertname="A"']
    target: {kind: Deployment, namespace: shop, name: "{{ labels.deployment }}"}
    steps: [[{action: log}]]
    active_time_intervals: [weekdays]
"""


def run(tmp_path: Path, *episodes: replay.Episode) -> dict[str, Any]:
    (tmp_path / "p.yaml").write_text(WEEKDAYS)
    policies = policy.load([tmp_path / "p.yaml"], default_registry(), strict_actions=True)
    outcome = replay.simulate(
        policies,
        list(episodes),
        since=FRIDAY_EVENING,
        until=MONDAY + timedelta(days=1),
        scope=scope_mod.Scope.of(),
    )
    return replay.build(outcome, step=timedelta(minutes=1), source="test")


def episode(deployment: str, ends: datetime | None) -> replay.Episode:
    labels = {"alertname": "A", "deployment": deployment}
    return replay.Episode(labels, FRIDAY_EVENING + timedelta(hours=7), ends, deployment)


def test_an_alert_firing_all_weekend_acts_on_monday_after_every_recheck(
    tmp_path: Path,
) -> None:
    report = run(tmp_path, episode("api", None))
    [entry] = report["policies"]
    assert entry["executions"] == 1 and entry["deferred"]["time_interval"] == 1
    # Saturday 01:00 defers, so do the 563 rechecks until Sunday 23:55; Monday 00:00 acts.
    assert report["decisions"] == 1 + 563 + 1
    assert report["peak_actions_per_hour"] == {"count": 1, "hour": "2026-03-09T00:00:00Z"}


def test_an_alert_that_ends_during_the_weekend_is_stopped_by_the_time_interval(
    tmp_path: Path,
) -> None:
    report = run(tmp_path, episode("api", datetime(2026, 3, 7, 2, tzinfo=UTC)))
    [entry] = report["policies"]
    assert entry["executions"] == 0 and entry["stopped"]["time_interval"] == 1
    assert report["decisions"] == 1 + 11  # 01:00, then 01:05 ... 01:55 while it fires
