"""One namespace scope: shell-style patterns, decided once, refused when malformed."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import scope, settings
from monitor.errors import ConfigError
from monitor.k8s import names

TEAMS = scope.Scope.of(["team-*", "db-[0-9]", "job-?", "production"])


@pytest.mark.parametrize(
    ("namespace", "reason"),
    [
        ("team-a", None),
        ("team-payments-eu", None),
        ("db-7", None),
        ("job-x", None),
        ("production", None),
        ("production-2", "namespace 'production-2' is not in the allow list "),
        ("team", "namespace 'team' is not in the allow list "),
        ("db-x", "namespace 'db-x' is not in the allow list "),
        ("job-xy", "namespace 'job-xy' is not in the allow list "),
        ("kube-team-a", "namespace 'kube-team-a' is in the deny list (pattern 'kube-*')"),
    ],
)
def test_patterns_and_exact_names(namespace: str, reason: str | None) -> None:
    problem = TEAMS.denied(namespace)
    assert problem is None if reason is None else (problem or "").startswith(reason)
    # the Kubernetes client's check says the same
    if reason is None:
        assert names.check_namespace(namespace, TEAMS) == namespace
    else:
        with pytest.raises(names.InvalidTargetError) as caught:
            names.check_namespace(namespace, TEAMS)
        assert str(caught.value) == problem


@pytest.mark.parametrize(
    "namespace", ["kube-system", "kube-public", "kube-node-lease", "kube-flannel"]
)
def test_the_default_deny_list_covers_every_kube_namespace(namespace: str) -> None:
    assert settings.Settings().automation.namespaces_deny == ["kube-*"]
    assert not scope.Scope().allows(namespace)
    assert scope.Scope().allows("kubernetes-dashboard")  # kube- is the prefix, not kube


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "automation:\n  namespaces_allow:\n    - production\n    - Team-*\n",
            "{f}:4:7: automation.namespaces_allow[1]: Value error, 'Team-*' is neither a "
            "namespace name nor a pattern: use lower-case letters, digits and '-', with "
            "'*', '?' and '[...]' as wildcards",
        ),
        (
            "automation:\n  namespaces_deny: ['kube-[']\n",
            "{f}:2:21: automation.namespaces_deny[0]: Value error, 'kube-[' is neither a "
            "namespace name nor a pattern: use lower-case letters, digits and '-', with "
            "'*', '?' and '[...]' as wildcards",
        ),
        (
            "automation:\n  namespaces_deny: ['']\n",
            "{f}:2:21: automation.namespaces_deny[0]: Value error, a namespace pattern "
            "must not be empty",
        ),
        (
            f"automation:\n  namespaces_allow: ['{'a' * 129}']\n",
            "{f}:2:22: automation.namespaces_allow[0]: Value error, namespace pattern is "
            "longer than 128 characters",
        ),
    ],
)
def test_a_bad_pattern_is_a_config_error_naming_the_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "conea-monitor.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        settings.load(path)
    assert str(caught.value) == message.format(f=path)


def test_too_many_patterns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "conea-monitor.yml"
    path.write_text("automation:\n  namespaces_allow: [" + ", ".join(["a"] * 101) + "]\n")
    with pytest.raises(
        ConfigError, match=r"automation\.namespaces_allow: List should have at most"
    ):
        settings.load(path)
