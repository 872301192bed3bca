"""The bundled remediations/, the JSON Schema and the check command."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from monitor.actions import default_registry
from monitor.actions.registry import Registry
from monitor.alerts.context import AlertContext
from monitor.policy import cli, loader, policyset, schema
from tests.policy.conftest import POLICY_FIXTURES

REMEDIATIONS = Path(__file__).resolve().parents[2] / "remediations"


def _alert(labels: dict[str, str]) -> AlertContext:
    return AlertContext(
        labels=labels, annotations={"summary": "s", "description": "d"}, status="firing",
        fingerprint="f", starts_at=datetime(2026, 11, 27, 1, tzinfo=UTC),
    )  # fmt: skip


def test_bundled_policies_load_with_every_action_checked() -> None:
    registry = default_registry()
    policies = loader.load([REMEDIATIONS], registry, strict_actions=True)
    assert len(policies) >= 6
    for policy in policies:
        for step in policy.steps:
            for action in step:
                assert action.action in registry


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({"alertname": "ContainerCPUNearLimit", "severity": "warning", "namespace": "production",
          "deployment": "conea-api", "pod": "conea-api-1"}, ["scale-out-on-cpu"]),
        ({"alertname": "HighResponseTime", "severity": "warning", "namespace": "production",
          "service": "conea-api"}, ["high-load"]),
        ({"alertname": "ProbeTargetDown", "severity": "critical", "namespace": "production",
          "deployment": "conea-api", "instance": "https://api.conea.io/health"},
         ["restart-unresponsive-api", "page-on-critical"]),
        ({"alertname": "PostgresIdleInTransaction", "severity": "warning",
          "datname": "conea_production", "instance": "db:5432"},
         ["terminate-idle-in-transaction"]),
        ({"alertname": "HighErrorRate", "severity": "critical", "namespace": "production"},
         ["high-error-rate", "page-on-critical"]),
        ({"alertname": "RedisMemoryNearMax", "severity": "warning"}, ["notify-in-business-hours"]),
        ({"alertname": "ConeaMonitorPaused", "severity": "info"}, ["record-low-severity"]),
        ({"alertname": "ContainerCPUNearLimit", "severity": "warning",
          "namespace": "kube-system", "deployment": "coredns"}, []),
    ],
)  # fmt: skip
def test_bundled_policies_handle_the_manuals_alerts(
    labels: dict[str, str], expected: list[str]
) -> None:
    registry = default_registry()
    policies = loader.load([REMEDIATIONS], registry, strict_actions=True)
    matched = policies.match(labels)
    assert [p.name for p in matched] == expected
    for policy in matched:  # every template renders and every parameter is valid
        policyset.render_target(policy, _alert(labels))
        policyset.render_promql(policy, _alert(labels))
        for step in policy.steps:
            for action in step:
                policyset.parse_params(action, _alert(labels), registry)


def test_manual_ladder_in_bundled_policies() -> None:
    policies = loader.load([REMEDIATIONS], default_registry(), strict_actions=True)
    cpu = policies.get("scale-out-on-cpu")
    assert cpu is not None and cpu.for_at_least.total_seconds() == 30 * 60
    assert cpu.steps[-1][0].action == "notify" and cpu.revert.enabled
    load = policies.get("high-load")
    assert load is not None
    assert [s[0].action for s in load.steps] == [
        "kubernetes.scale", "kubernetes.set_env", "http.request", "notify",
    ]  # fmt: skip
    medium = policies.get("notify-in-business-hours")
    assert medium is not None
    assert not policyset.active(medium, datetime(2026, 11, 28, 3, tzinfo=UTC))  # Saturday
    assert policyset.active(medium, datetime(2026, 11, 27, 3, tzinfo=UTC))  # Friday, noon JST


def test_json_schema_accepts_bundled_files_and_rejects_bad_ones() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    document = schema.json_schema()
    jsonschema.Draft202012Validator.check_schema(document)
    validator = jsonschema.Draft202012Validator(document)
    for path in sorted(REMEDIATIONS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        assert list(validator.iter_errors(data)) == [], path
    for name in ("invalid-unknown-field.yaml", "invalid-duration.yaml", "invalid-severity.yaml"):
        data = yaml.safe_load(Path(POLICY_FIXTURES, name).read_text())
        assert list(validator.iter_errors(data)) != [], name


def test_schema_command_prints_the_schema() -> None:
    printed = json.loads(cli.schema())
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert printed["title"] == "conea-monitor remediation policies"
    assert set(printed["properties"]) == {"time_intervals", "policies"}


def test_check_command_summary_and_exit_codes(registry: Registry) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.check([str(REMEDIATIONS)], registry=default_registry(), out=out, err=err) == 0
    assert out.getvalue().startswith("SUCCESS: ")
    assert err.getvalue() == ""
    out, err = io.StringIO(), io.StringIO()
    bad = os.path.join(POLICY_FIXTURES, "invalid-many-errors.yaml")
    assert cli.check([bad], registry=registry, strict_actions=True, out=out, err=err) == 1
    lines = err.getvalue().splitlines()
    assert len(lines) == 8 and lines[-1] == "FAILED: 7 errors"
    assert all(line.startswith(f"{bad}:") for line in lines[:-1])
    assert out.getvalue() == ""


def test_check_command_warns_about_unregistered_actions(registry: Registry) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli.check([str(REMEDIATIONS)], registry=registry, out=out, err=err) == 0
    assert (
        "warning: " in err.getvalue() and "'kubernetes.scale' is not registered" in err.getvalue()
    )
