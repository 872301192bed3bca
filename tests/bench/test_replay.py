"""bench/replay.py at a tiny size: it backfills its history into a real Prometheus,
replays it and prints every figure (the figures are the benchmark's, not the test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import replay as bench

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
def test_a_tiny_replay_bench_reports_every_figure() -> None:
    tiny = ["--alerts", "20", "--policies", "5", "--days", "1", "--json"]
    done = subprocess.run(
        [sys.executable, "-m", "bench.replay", *tiny],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert set(result) == {
        "alerts",
        "policies",
        "days",
        "samples",
        "backfill_and_start_seconds",
        "query_seconds",
        "simulation_seconds",
        "total_seconds",
        "target_seconds",
        "within_target",
        "episodes",
        "decisions",
        "executions",
    }
    assert (result["alerts"], result["policies"], result["days"]) == (20, 5, 1)
    # Every alert fires at least once a day, and the history reaches the policies.
    assert result["episodes"] >= 20
    assert result["decisions"] >= result["executions"] > 0


def test_the_generated_history_fires_every_alert_and_names_every_policy() -> None:
    series = bench.history(alerts=10, policies=5, days=1)
    assert len(series) == 10
    assert {labels["alertname"] for labels, _ in series} == {f"Bench0{n}" for n in range(5)}
    assert all(list(times) for _, times in series)
    assert bench.policy_file(5).count("  - name: bench-") == 5
