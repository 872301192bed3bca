"""verify.promql on a real Prometheus engine (promtool): a label cannot rewrite the query."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.actions import default_registry
from monitor.alerts.context import AlertContext
from monitor.policy import loader, policyset
from tests.support import services

pytestmark = pytest.mark.integration

REMEDIATIONS = Path(__file__).resolve().parents[2] / "remediations"
# Ends the bundled query's string and selector, and ORs in a query that always has a
# series: the policy would never judge recovery.
INJECTION = 'x"}[2m])) > 0 or vector(1) or sum(rate(http_requests_total{job="x'


def _labels(job: str) -> str:
    quoted = job.replace("\\", "\\\\").replace('"', '\\"')
    return f'namespace="production", job="{quoted}", service="api"'


def _series(job: str, status: str, per_minute: int) -> dict[str, str]:
    selector = f'http_requests_total{{{_labels(job)}, status="{status}"}}'
    return {"series": selector, "values": f"0+{per_minute}x20"}


def _promtool_eval(tmp_path: Path, query: str, series: list[dict[str, str]], expected: list) -> str:
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "promql_expr_test": [{"expr": query, "eval_time": "10m", "exp_samples": expected}],
            }
        ],
    }
    path = tmp_path / "verify.test.yml"
    path.write_text(json.dumps(test))
    result = subprocess.run(
        [services.need_binary("promtool"), "test", "rules", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.stdout + result.stderr if result.returncode else ""


def _rendered(job: str) -> str:
    policies = loader.load([REMEDIATIONS], default_registry(), strict_actions=True)
    policy = policies.get("high-error-rate")
    assert policy is not None
    alert = AlertContext(
        labels={"alertname": "HighErrorRate", "namespace": "production", "job": job},
        annotations={}, status="firing", fingerprint="f",
        starts_at=datetime(2026, 11, 27, 1, tzinfo=UTC),
    )  # fmt: skip
    query = policyset.render_promql(policy, alert)
    assert query is not None
    return query


@pytest.mark.parametrize("job", [INJECTION, "conea.api", "a\\b"])
def test_label_values_stay_inside_the_selector(job: str, tmp_path: Path) -> None:
    query = _rendered(job)
    failing = [_series(job, "500", 20), _series(job, "200", 80)]
    # Another job failing as badly must not count, and a job the regex would match if the
    # value were not quoted (conea.api vs conea-api) neither.
    other = [_series("conea-api", "500", 50), _series("conea-api", "200", 50)]
    expected = [{"labels": f"{{{_labels(job)}}}", "value": 0.2}]  # that job's ratio alone
    assert _promtool_eval(tmp_path, query, failing + other, expected) == ""
    recovered = [_series(job, "500", 0), _series(job, "200", 80)]
    assert _promtool_eval(tmp_path, query, recovered + other, []) == ""
