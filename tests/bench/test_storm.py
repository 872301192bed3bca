"""bench/storm.py, the sustained storm bench: a short run end to end reports every figure
and its checks pass; the checks catch a lost alert and a key run twice. The figures
themselves are the benchmark's to print, not a test's to assert."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import storm
from bench.common import LoadResult
from monitor import actions, policy

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.slow
def test_a_short_storm_reports_every_figure_and_loses_nothing() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.storm",
            "--seconds",
            "3",
            "--probes",
            "3",
            "--targets",
            "5",
            "--concurrency",
            "8",
            "--baseline-seconds",
            "1",
            "--drain-timeout",
            "10",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    checks = result["checks"]
    assert checks["alerts_missing_from_store"] == 0
    assert checks["execution_keys_run_twice"] == 0
    assert checks["ok"] is True
    # Every alert answered 200 was counted: the load's (10 per request) and the probes'.
    assert result["ingest"]["alerts_answered_200"] % 10 == 0
    assert result["ingest"]["alerts_answered_200"] > 0
    assert checks["alerts_answered_200"] == result["ingest"]["alerts_answered_200"] + 3
    assert result["ingest"]["parse_only_alerts_per_s"] > 0
    assert result["fresh_target"]["sent"] == 3
    assert 0 < result["rss_mb"]["start"] <= result["rss_mb"]["max"]
    assert result["samples"], "the service was sampled"
    assert {name: t["verdict"] in ("OK", "MISS") for name, t in result["targets"].items()} == {
        "drain": True,
        "rss": True,
        "fresh": True,
        "ingest": True,
    }


def args(**overrides: Any) -> argparse.Namespace:
    values = dict(seconds=3.0, concurrency=8, targets=5, probes=2, drain_timeout=10.0, per=10)
    return argparse.Namespace(**{**values, **overrides})


def finished_run(drain: float | None, latencies: list[float]) -> storm.Run:
    plan = storm.Storm(targets=5)
    run = storm.Run(
        load=LoadResult(requests=2, errors=0, seconds=2.0, latencies=[0.01, 0.02]),
        answered={plan.fingerprint(i, j) for i in range(2) for j in range(plan.per)},
        probes_answered={plan.probe(k)[0] for k in range(2)},
        probes_sent=2,
        latencies=latencies,
        samples=[
            {"t": 0.0, "rss_mb": 100.0, "backlog_notifications": 0.0, "backlog_alerts": 0.0},
            {"t": 1.0, "rss_mb": 150.0, "backlog_notifications": 2.0, "backlog_alerts": 20.0},
        ],
        drain=drain,
    )
    return run


BARE = LoadResult(requests=8, errors=0, seconds=2.0, latencies=[0.001] * 8)  # 40 alerts/s


def test_the_summary_holds_the_issues_targets_each_ok_or_miss(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = finished_run(drain=0.5, latencies=[0.1, 0.2])
    stored = run.answered | run.probes_answered
    result = storm.summarise(args(), run, BARE, stored, dupes=0)
    assert {name: (t["measured"], t["verdict"]) for name, t in result["targets"].items()} == {
        "drain": (0.5, "OK"),
        "rss": (50.0, "OK"),
        "fresh": (0.2, "OK"),
        "ingest": (0.25, "MISS"),  # 10 alerts/s against 40 parse-only
    }
    assert result["checks"]["ok"] is True
    storm.report(result)
    out = capsys.readouterr().out
    assert "| backlog drained within 10 s of the load stopping | 0.5 s | OK |" in out
    assert "| ingest at least 0.5 of the parse-only endpoint | 0.25 | MISS |" in out
    assert "drained 0.5 s after the load stopped" in out


def test_an_undrained_backlog_and_an_undecided_probe_are_misses(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = finished_run(drain=None, latencies=[0.1])  # the second probe never decided
    result = storm.summarise(args(), run, BARE, run.answered | run.probes_answered, dupes=0)
    assert result["targets"]["drain"] == {
        "what": storm.TARGETS["drain"],
        "measured": None,
        "verdict": "MISS",
    }
    assert result["fresh_target"] == {
        "sent": 2,
        "decided": 1,
        "p50_s": None,
        "p99_s": None,
        "max_s": None,
    }
    assert result["targets"]["fresh"]["verdict"] == "MISS"
    storm.report(result)
    out = capsys.readouterr().out
    assert "not drained after 10 s" in out
    assert "| fresh-target alert decided within 1 s (p99) | some never decided | MISS |" in out


def test_a_lost_alert_or_a_key_run_twice_fails_the_checks() -> None:
    run = finished_run(drain=0.5, latencies=[0.1, 0.2])
    lost = next(iter(run.answered))
    result = storm.summarise(args(), run, BARE, (run.answered | run.probes_answered) - {lost}, 0)
    assert result["checks"]["alerts_missing_from_store"] == 1
    assert result["checks"]["ok"] is False
    result = storm.summarise(args(), run, BARE, run.answered | run.probes_answered, dupes=3)
    assert result["checks"]["execution_keys_run_twice"] == 3
    assert result["checks"]["ok"] is False


@pytest.mark.parametrize("option", ["--seconds", "--concurrency", "--targets", "--probes"])
def test_a_figure_that_is_not_positive_is_refused_naming_the_option(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        storm.main([option, "0"])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be greater than 0, not '0'" in capsys.readouterr().err


def test_the_load_is_the_bundled_policies_alert_over_the_targets() -> None:
    plan = storm.Storm(targets=3)
    body = json.loads(plan.body(7))
    labels = [a["labels"] for a in body["alerts"]]
    assert len(labels) == plan.per == 10
    assert {lab["alertname"] for lab in labels} == {"HighErrorRate"}
    assert {lab["severity"] for lab in labels} == {"critical"}  # as rules/conea-api.yml sets it
    assert {lab["deployment"] for lab in labels} == {"api-0", "api-1", "api-2"}
    fingerprints = [a["fingerprint"] for a in body["alerts"]]
    assert len(set(fingerprints)) == plan.per
    assert not set(fingerprints) & {a["fingerprint"] for a in json.loads(plan.body(8))["alerts"]}
    single = json.loads(storm.Storm(targets=3, per=1).body(7))["alerts"]
    assert [a["labels"]["deployment"] for a in single] == ["api-1"]  # request 7 of 3 targets
    probe_fingerprint, probe_body = plan.probe(0)
    probe = json.loads(probe_body)["alerts"]
    assert [a["labels"]["deployment"] for a in probe] == ["fresh-0"]
    assert probe[0]["fingerprint"] == probe_fingerprint
    bundled = policy.load([ROOT / "remediations"], actions.default_registry())
    assert storm.POLICY in {p.name for p in bundled.match(labels[0])}
    assert storm.POLICY in {p.name for p in bundled.match(probe[0]["labels"])}


def test_a_backlog_drained_by_the_time_the_load_stops_is_ok() -> None:
    run = finished_run(drain=0.0, latencies=[0.1, 0.2])
    result = storm.summarise(args(), run, BARE, run.answered | run.probes_answered, dupes=0)
    assert result["backlog"]["drain_s"] == 0.0
    assert result["targets"]["drain"]["verdict"] == "OK"
