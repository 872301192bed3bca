"""PolicySet.match (indexed by alertname) and the rendered, checked target."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.actions.registry import Registry
from monitor.alerts.context import AlertContext
from monitor.errors import PolicyError
from monitor.policy import loader, policyset

MATCH_SETS = [
    ['alertname="A"'],
    ['alertname="A"', 'severity="critical"'],
    ['alertname="B"'],
    ['alertname=~"A|B"'],
    ['severity="critical"'],
    ['alertname!="A"', 'namespace=~"prod.*"'],
    ['alertname=""'],
    ['{alertname="C", namespace!~"kube-.*"}'],
]


def _load(tmp_path: Path, registry: Registry, sets: list[list[str]]) -> policyset.PolicySet:
    policies = [
        {"name": f"p{i}", "match": s, "target": {"kind": "Deployment",
         "namespace": "{{ labels.namespace | default('default') }}",
         "name": "{{ labels.deployment | default('conea-api') }}"},
         "steps": [[{"action": "log"}]]}
        for i, s in enumerate(sets)
    ]  # fmt: skip
    (tmp_path / "p.yaml").write_text(json.dumps({"policies": policies}))
    return loader.load([tmp_path / "p.yaml"], registry)


def test_match_returns_every_matching_policy_in_file_order(
    tmp_path: Path, registry: Registry
) -> None:
    policies = _load(tmp_path, registry, MATCH_SETS)
    names = [p.name for p in policies.match({"alertname": "A", "severity": "critical"})]
    assert names == ["p0", "p1", "p3", "p4"]
    assert [p.name for p in policies.match({"namespace": "production"})] == ["p5", "p6"]
    assert [p.name for p in policies.match({"alertname": "C", "namespace": "kube-x"})] == []


def test_indexed_match_equals_checking_every_policy(tmp_path: Path, registry: Registry) -> None:
    rng = random.Random(5)
    values = ["A", "B", "C", ""]
    policies = _load(tmp_path, registry, MATCH_SETS)
    for _ in range(300):
        labels = {
            name: rng.choice([*values, "critical", "production", "kube-x"])
            for name in ("alertname", "severity", "namespace")
            if rng.random() < 0.8
        }
        labels = {k: v for k, v in labels.items() if v}
        expected = [p for p in policies if p.matches(labels)]
        assert policies.match(labels) == expected


def _alert(**labels: str) -> AlertContext:
    return AlertContext(
        labels=labels, annotations={}, status="firing", fingerprint="f",
        starts_at=datetime(2026, 11, 28, tzinfo=UTC),
    )  # fmt: skip


def test_render_target_and_key(tmp_path: Path, registry: Registry) -> None:
    policy = _load(tmp_path, registry, MATCH_SETS).get("p0")
    assert policy is not None
    target = policyset.render_target(policy, _alert(alertname="A", namespace="production"))
    assert target == {"kind": "Deployment", "namespace": "production", "name": "conea-api"}
    assert policyset.target_key(target) == "Deployment/production/conea-api"


@pytest.mark.parametrize(
    ("labels", "reason"),
    [
        ({"namespace": "Prod_1"}, "target namespace 'Prod_1' is not a DNS-1123 label"),
        ({"namespace": "a" * 64}, f"target namespace {'a' * 64!r} is not a DNS-1123 label"),
        ({"deployment": "../../etc"}, "target name '../../etc' is not a valid name"),
        ({"deployment": "api\n"}, "target name 'api\\n' is not a valid name"),
    ],
)
def test_untrusted_labels_cannot_make_a_bad_target(
    tmp_path: Path, registry: Registry, labels: dict[str, str], reason: str
) -> None:
    policy = _load(tmp_path, registry, MATCH_SETS).get("p0")
    assert policy is not None
    with pytest.raises(PolicyError) as caught:
        policyset.render_target(policy, _alert(alertname="A", **labels))
    assert str(caught.value).endswith(reason)
    assert str(caught.value).startswith(f"{tmp_path}/p.yaml:1:")


def test_policy_exposes_its_settings_with_defaults(tmp_path: Path, registry: Registry) -> None:
    policy = _load(tmp_path, registry, MATCH_SETS).get("p0")
    assert policy is not None
    assert (policy.cooldown.total_seconds(), policy.dry_run) == (300, False)
    assert (policy.budget.attempts, policy.budget.window.total_seconds()) == (3, 3600)
    assert policy.verify.promql is None and policy.revert.enabled is False
    assert policyset.render_promql(policy, _alert()) is None
