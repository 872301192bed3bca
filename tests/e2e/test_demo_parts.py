"""The pieces the end-to-end tests and ``make demo`` stand on: the demo API and the
shortened copies of the shipped rules and policies."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest
import yaml

from demo import app as demo_app
from demo import shorten
from tests.support import services


def test_demo_api_fails_exactly_the_ratio_it_is_told_and_exports_it() -> None:
    with demo_app.running(services.free_port(), rate=0) as demo:
        assert httpx.get(f"{demo.url}/api/items").status_code == 200
        answer = httpx.post(f"{demo.url}/control", json={"error_ratio": 0.5, "latency_ms": 20})
        assert answer.json() == {"error_ratio": 0.5, "latency_ms": 20.0, "healthy": True}
        statuses = [httpx.get(f"{demo.url}/api/items").status_code for _ in range(10)]
        assert sorted(statuses) == [200] * 5 + [500] * 5
        metrics = httpx.get(f"{demo.url}/metrics").text
        assert 'http_requests_total{method="GET",route="/api/items",status="500"} 5.0' in metrics
        assert 'http_requests_total{method="GET",route="/api/items",status="200"} 6.0' in metrics
        # Every answer took the latency it was told: all but the first above the 10ms bucket.
        assert (
            'http_request_duration_seconds_bucket{le="0.01",method="GET",route="/api/items"} 1.0'
            in metrics
        )
        httpx.post(f"{demo.url}/control", json={"healthy": False})
        assert httpx.get(f"{demo.url}/healthz").status_code == 503


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"error_ratio": 2}, "error_ratio must be a number from 0 to 1, not 2"),
        ({"latency_ms": "slow"}, "latency_ms must be a number >= 0, not 'slow'"),
        ({"healthy": "no"}, "healthy must be true or false, not 'no'"),
        ({"errors": 1}, "unknown keys: errors"),
        ([1], "the body must be a JSON object"),
    ],
)
def test_demo_control_refuses_bad_input_with_the_reason(body: object, reason: str) -> None:
    with demo_app.running(services.free_port(), rate=0) as demo:
        answer = httpx.post(f"{demo.url}/control", json=body)
        assert answer.status_code == 400
        assert answer.json() == {"error": reason}
        assert httpx.get(f"{demo.url}/control").json()["error_ratio"] == 0.0


def test_shortened_rules_are_valid_and_keep_every_shipped_alert(tmp_path: Path) -> None:
    promtool = services.need_binary("promtool")
    files = shorten.rule_files()
    shipped = sorted(p.name for p in shorten.RULES.glob("*.yml"))
    assert sorted(Path(name).name for name in files) == shipped
    for name, text in files.items():
        (tmp_path / Path(name).name).write_text(text)
    paths = [str(tmp_path / Path(name).name) for name in files]
    result = subprocess.run([promtool, "check", "rules", *paths], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    rules = {
        r["alert"]: r
        for text in files.values()
        for g in yaml.safe_load(text)["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    assert rules["HighErrorRate"]["for"] == "2s"
    assert (
        "[10s]" in rules["HighErrorRate"]["expr"] and "[5m]" not in rules["HighErrorRate"]["expr"]
    )
    assert rules["ProbeTargetDown"]["for"] == "2s"
    assert rules["ConeaMonitorAbsent"]["for"] == shorten.ABSENT_FOR


def test_demo_policies_are_the_bundled_ones_with_seconds() -> None:
    restart = shorten.restart_unresponsive_api()
    bundled = shorten.bundled_policy("restart-unresponsive-api")
    assert restart["steps"] == bundled["steps"] and restart["match"] == bundled["match"]
    assert restart["verify"]["window"] == "4s"
    errors = shorten.high_error_rate()
    bundled_errors = shorten.bundled_policy("high-error-rate")
    assert errors["steps"] == bundled_errors["steps"]  # scale by 50%, then page
    assert errors["steps"][-1][0]["action"] == "notify"
    assert errors["target"] == bundled_errors["target"]
    assert "[4s]" in errors["verify"]["promql"] and "[2m]" not in errors["verify"]["promql"]
    with pytest.raises(LookupError, match="no policy 'ghost'"):
        shorten.bundled_policy("ghost")
