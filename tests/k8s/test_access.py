"""The permission check: SelfSubjectAccessReviews against the emulator's Roles, and the
guardrail that stops a policy the cluster denies a permission."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import policy
from monitor import scope as scope_mod
from monitor.actions import default_registry, rbac
from monitor.engine import guardrails
from monitor.k8s import access, client
from monitor.store.records import TargetHistory
from tests.support import kube_emulator

RESTART = "kubernetes.restart"


def _needs(action: str, namespace: str) -> list[access.Need]:
    grants = rbac.grants(default_registry(), [action])
    return [access.Need(verb, group, resource, namespace) for verb, group, resource in grants]


def _role(actions: list[str], namespace: str | None) -> dict[str, object]:
    [role] = rbac.render(
        default_registry(), actions, None if namespace is None else [namespace], "conea"
    )
    return role


@pytest.fixture()
def kube_any(emulator: kube_emulator.KubeEmulator) -> Iterator[client.Kube]:
    kube = client.for_host(str(emulator.url), timeout=(1.0, 2.0))
    yield kube
    kube.close()


async def test_a_role_granting_what_the_actions_declare_leaves_nothing_missing(
    emulator: kube_emulator.KubeEmulator, kube_any: client.Kube
) -> None:
    emulator.grant(_role([RESTART, "kubernetes.scale"], "production"))
    wanted = {
        "restart-api": _needs(RESTART, "production"),
        "scale-out": _needs("kubernetes.scale", "production"),
    }
    assert await access.check(kube_any, wanted) == []
    # each distinct need asked once, subresources as the API names them
    assert len(emulator.reviews) == len({n for ns in wanted.values() for n in ns})
    assert {
        "verb": "update",
        "group": "apps",
        "resource": "deployments",
        "subresource": "scale",
        "namespace": "production",
    } in emulator.reviews


async def test_a_missing_verb_is_named_per_policy(
    emulator: kube_emulator.KubeEmulator, kube_any: client.Kube
) -> None:
    role = _role([RESTART], "production")
    for rule in role["rules"]:  # type: ignore[attr-defined]
        rule["verbs"] = [v for v in rule["verbs"] if v != "patch"]
    emulator.grant(role)
    findings = await access.check(kube_any, {"restart-api": _needs(RESTART, "production")})
    assert [str(f) for f in findings] == [
        "policy 'restart-api' needs patch daemonsets.apps in production: denied",
        "policy 'restart-api' needs patch deployments.apps in production: denied",
        "policy 'restart-api' needs patch statefulsets.apps in production: denied",
    ]
    assert access.denied(findings) == {
        "restart-api": "needs patch daemonsets.apps in production: denied; "
        "needs patch deployments.apps in production: denied; "
        "needs patch statefulsets.apps in production: denied"
    }


async def test_a_role_in_another_namespace_or_a_cluster_wide_need_is_denied(
    emulator: kube_emulator.KubeEmulator, kube_any: client.Kube
) -> None:
    emulator.grant(_role(["kubernetes.delete_pod"], "staging"))
    findings = await access.check(
        kube_any, {"p": [access.Need("delete", "", "pods", "production")]}
    )
    assert [str(f) for f in findings] == ["policy 'p' needs delete pods in production: denied"]
    emulator.grant(_role(["kubernetes.delete_pod"], None))  # a ClusterRole
    everywhere = access.Need("delete", "", "pods", "")
    assert await access.check(kube_any, {"p": [everywhere]}) == []
    assert str(everywhere) == "delete pods in every namespace"


async def test_an_api_error_is_unknown_not_denied(
    emulator: kube_emulator.KubeEmulator, kube_any: client.Kube
) -> None:
    emulator.grant()  # nothing granted: an answer would be "denied"
    emulator.fail(500, plural="selfsubjectaccessreviews", message="etcd is away")
    need = access.Need("get", "apps", "deployments", "production")
    [finding] = await access.check(kube_any, {"restart-api": [need]})
    assert finding.answer == "unknown"
    assert "etcd is away" in str(finding)
    assert access.denied([finding]) == {}


async def test_reviews_left_unanswered_past_the_bound_are_unknown(
    emulator: kube_emulator.KubeEmulator, kube_any: client.Kube
) -> None:
    emulator.stall(5.0, plural="selfsubjectaccessreviews")
    need = access.Need("get", "apps", "deployments", "production")
    [finding] = await access.check(kube_any, {"p": [need]}, within=0.2)
    assert str(finding) == (
        "policy 'p' needs get deployments.apps in production: unknown (no answer within 0.2s)"
    )


def test_namespaces_asked_about_follow_the_target_then_the_scope_then_the_release() -> None:
    named = scope_mod.Scope.of(["staging", "production"])
    patterned = scope_mod.Scope.of(["team-*", "production"])
    anywhere = scope_mod.Scope.of([])
    assert access.namespaces("payments", named, "monitoring") == ["payments"]
    assert access.namespaces("{{ labels.namespace }}", named, "monitoring") == [
        "production",
        "staging",
    ]
    assert access.namespaces("{{ labels.namespace }}", patterned, "monitoring") == [
        "production",
        "",
    ]
    assert access.namespaces("{{ labels.namespace }}", anywhere, "monitoring") == ["monitoring"]


def test_the_release_namespace_comes_from_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "monitoring")
    assert access.release_namespace() == "monitoring"


GUARDED = """
policies:
  - name: restart-api
    match: ['alertname="Down"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}", name: api}
    steps: [[{action: kubernetes.restart}]]
"""


@pytest.mark.parametrize(
    ("namespace", "paused", "expected"),
    [
        (
            "production",
            False,
            ("skip", "permission", "needs patch deployments.apps in production: denied"),
        ),
        (
            "kube-system",
            False,
            ("skip", "scope", "namespace 'kube-system' is in the deny list (pattern 'kube-*')"),
        ),
        ("production", True, ("skip", "paused", "automation is paused")),
    ],
    ids=["denied", "scope-first", "paused-first"],
)
def test_the_permission_guardrail_stops_a_denied_policy_right_after_scope(
    tmp_path: Path, namespace: str, paused: bool, expected: tuple[str, str, str]
) -> None:
    (tmp_path / "p.yaml").write_text(GUARDED)
    [restart] = policy.load([tmp_path / "p.yaml"], default_registry())
    decision = guardrails.decide(
        restart,
        target={"kind": "Deployment", "namespace": namespace, "name": "api"},
        starts_at=datetime(2026, 11, 29, tzinfo=UTC),
        now=datetime(2026, 11, 29, 1, tzinfo=UTC),
        paused=paused,
        rehearsal=False,
        scope=scope_mod.Scope(),
        history=TargetHistory(None, 0),
        denied="needs patch deployments.apps in production: denied",
    )
    assert (decision.outcome, decision.guardrail, decision.reason) == expected
    without = guardrails.decide(
        restart,
        target={"kind": "Deployment", "namespace": "production", "name": "api"},
        starts_at=datetime(2026, 11, 29, tzinfo=UTC),
        now=datetime(2026, 11, 29, 1, tzinfo=UTC),
        paused=False,
        rehearsal=False,
        scope=scope_mod.Scope(),
        history=TargetHistory(None, 0),
    )
    assert without.outcome == "execute"
