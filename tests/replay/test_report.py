"""replay against a real Prometheus loaded with the known history of scenario.py: the
exact report, and the text docs/replay.md shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor import cli
from tests.replay import scenario
from tests.support import services

ROOT = Path(__file__).resolve().parent.parent.parent
EXPECTED = Path(__file__).with_name("expected-report.json")
DOC_URL = "http://prometheus:9090"


def replay(
    capsys: pytest.CaptureFixture[str], prom: services.Prometheus, policies: Path, *flags: str
) -> str:
    code = cli.main(
        [
            "replay",
            "--since",
            scenario.START.isoformat(),
            "--until",
            scenario.UNTIL.isoformat(),
            "--prometheus",
            prom.url,
            "--policies",
            str(policies),
            *flags,
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    return out.replace(prom.url, DOC_URL)


def test_the_report_of_the_known_history_is_exact(
    capsys: pytest.CaptureFixture[str], history_prometheus: services.Prometheus, policies: Path
) -> None:
    report = json.loads(replay(capsys, history_prometheus, policies, "--json"))
    by = {(e["policy"], e["target"].rsplit("/", 1)[1]): e for e in report["policies"]}
    # The story of scenario.py, one line each, before the whole report.
    assert report["episodes"] == 17 and report["alerts"] == 10  # h's gap splits, g's does not
    assert by["gappy", "g"]["alerts"] == 1 and by["gappy", "h"]["alerts"] == 2
    assert by["short", "a"]["stopped"]["for_at_least"] == 1  # the 5-minute episode
    assert by["short", "a"]["executions"] == 1  # the 30-minute one, at 01:10
    flappy = by["flappy", "c"]
    assert flappy["coalesced"] == 2 and flappy["deferred"]["cooldown"] == 1
    assert flappy["budget_exhausted"] == {"times": 2, "first": "2026-03-02T03:30:00Z"}
    assert by["sticky", "l"]["steps"] == {"1": 1, "2": 1, "3": 1}
    assert by["sticky", "l"]["escalated"] == 2
    assert by["sticky", "r"]["recovered"] == 2
    assert by["sticky", "r"]["reverts"] == {"done": 1, "cancelled": 1, "pending": 0}
    assert by["daytime-only", "m"]["stopped"]["time_interval"] == 1
    assert by["daytime-only", "n"]["executions"] == 1
    assert by["system", "dns"]["stopped"]["scope"] == 1
    assert report["never_matched"] == ["unused"]
    assert report == json.loads(EXPECTED.read_text())


def test_the_docs_example_is_what_replay_prints(
    capsys: pytest.CaptureFixture[str], history_prometheus: services.Prometheus, policies: Path
) -> None:
    text = replay(capsys, history_prometheus, policies)
    doc = (ROOT / "docs" / "replay.md").read_text()
    example = doc.split("<!-- example report -->\n```text\n", 1)[1].split("```", 1)[0]
    assert example == text
