"""``diagnose:`` in a policy: diagnostics only, steps' actions never, checked at load
with file:line:field messages; compiled with their timeouts and PromQL templates."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import policy as policy_mod
from monitor.actions import diagnose
from monitor.actions.registry import Registry
from monitor.alerts.context import AlertContext
from monitor.policy import loader
from tests.policy.conftest import make_registry

GOOD = """\
policies:
  - name: api-down
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: api}
    steps:
      - - action: test.scale
          with: {replicas: 3}
    diagnose:
      - action: kubernetes.pods
      - action: kubernetes.logs
        name: errors
        with: {tail: 50, filter: ERROR}
        timeout: 20s
      - action: prometheus.query
        with:
          promql: >-
            topk(3, rate(container_cpu_usage_seconds_total{namespace="{{ labels.namespace }}"}[5m]))
"""

BAD = """\
policies:
  - name: api-down
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: prod, name: api}
    steps:
      - - action: kubernetes.logs
    diagnose:
      - action: test.scale
      - action: kubernetes.logz
      - action: kubernetes.logs
        with: {tail: 5000}
"""


@pytest.fixture
def registry() -> Registry:
    registry = make_registry()
    diagnose.register(registry)
    return registry


def test_diagnostics_compile_with_their_names_timeouts_and_promql_templates(
    tmp_path: Path, registry: Registry
) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    [policy] = loader.load([str(path)], registry, strict_actions=True)
    assert [(d.action, d.label, d.timeout) for d in policy.diagnostics] == [
        ("kubernetes.pods", "kubernetes.pods", 10.0),
        ("kubernetes.logs", "errors", 20.0),
        ("prometheus.query", "prometheus.query", 10.0),
    ]
    assert policy.action_names() == {
        "test.scale",
        "kubernetes.pods",
        "kubernetes.logs",
        "prometheus.query",
    }
    alert = AlertContext(
        labels={"alertname": "ApiDown", "namespace": 'we"ird'},
        annotations={},
        status="firing",
        fingerprint="f",
        starts_at=datetime(2026, 11, 29, tzinfo=UTC),
    )
    params = policy_mod.parse_params(policy.diagnostics[2], alert, registry)
    # a label value is escaped as the contents of a PromQL string, as in verify.promql
    assert params.model_dump()["promql"] == (
        'topk(3, rate(container_cpu_usage_seconds_total{namespace="we\\"ird"}[5m]))'
    )


def test_a_bad_diagnose_list_names_each_file_line_and_field(
    tmp_path: Path, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("bad.yaml").write_text(BAD)
    with pytest.raises(loader.PolicyLoadError) as caught:
        loader.load(["bad.yaml"], registry, strict_actions=True)
    assert caught.value.errors == [
        "bad.yaml:6:19: policies[0].steps[0][0].action: 'kubernetes.logs' is a diagnostic: "
        "list it under diagnose:, not in a step",
        "bad.yaml:8:17: policies[0].diagnose[0].action: 'test.scale' is not a diagnostic "
        "(diagnose: runs read-only actions only)",
        "bad.yaml:9:17: policies[0].diagnose[1].action: unknown diagnostic 'kubernetes.logz' "
        "(known: kubernetes.events, kubernetes.logs, kubernetes.pods, postgres.activity, "
        "prometheus.query)",
        "bad.yaml:11:22: policies[0].diagnose[2].with.tail: input should be less than or "
        "equal to 2000, got 5000",
    ]


ELEVEN = "".join(f"      - {{action: kubernetes.pods, name: p{i}}}\n" for i in range(11))


@pytest.mark.parametrize(
    ("listed", "error"),
    [
        pytest.param(
            "      - action: kubernetes.pods\n        timeout: 2m\n",
            "10:18: policies[0].diagnose[0].timeout: 2m is longer than 1m, the most a "
            "diagnostic may take",
            id="a-minute-at-most",
        ),
        pytest.param(
            ELEVEN,
            "9:7: policies[0].diagnose: list should have at most 10 items after validation, not 11",
            id="ten-at-most",
        ),
        pytest.param(
            "      - action: kubernetes.pods\n      - action: kubernetes.pods\n",
            "10:17: policies[0].diagnose[1].action: duplicate diagnostic name "
            "'kubernetes.pods' (first at diagnose[0]); give one a name:",
            id="one-name-once",
        ),
    ],
)
def test_a_diagnose_list_past_its_limits_is_refused_naming_where(
    tmp_path: Path, registry: Registry, listed: str, error: str
) -> None:
    path = tmp_path / "limits.yaml"
    path.write_text(GOOD.split("    diagnose:\n")[0] + "    diagnose:\n" + listed)
    with pytest.raises(loader.PolicyLoadError) as caught:
        loader.load([str(path)], registry, strict_actions=True)
    [found] = caught.value.errors
    assert found.split(", got ")[0] == f"{path}:{error}"  # not the list it echoes back
