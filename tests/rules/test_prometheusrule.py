"""rules/prometheusrule.yaml: generated from rules/*.yml, committed, and kept up to date."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from monitor import errors
from scripts import build_prometheusrule as build
from tests.support import services


def test_committed_prometheusrule_is_up_to_date() -> None:
    assert build.OUTPUT.read_text() == build.render(), (
        "rules/prometheusrule.yaml is stale: run .venv/bin/python scripts/build_prometheusrule.py"
    )


def test_check_mode_reports_a_stale_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = tmp_path / "prometheusrule.yaml"
    stale.write_text(build.render().replace("for: 5m", "for: 1m", 1))
    assert build.main(["--check", "--output", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert build.main(["--output", str(stale)]) == 0
    assert build.main(["--check", "--output", str(stale)]) == 0


def test_prometheusrule_carries_exactly_the_rule_groups() -> None:
    document = yaml.safe_load(build.OUTPUT.read_text())
    assert document["apiVersion"] == "monitoring.coreos.com/v1"
    assert document["kind"] == "PrometheusRule"
    assert document["metadata"]["name"] == "conea-monitor-rules"
    assert document["spec"]["groups"] == build.load_rule_groups()
    names = [rule["alert"] for rule in build.alerting_rules(document["spec"]["groups"])]
    assert "HighErrorRate" in names and "ConeaMonitorRemediationLoop" in names


def test_promtool_accepts_the_prometheusrule_spec(tmp_path: Path) -> None:
    """What the Prometheus Operator hands to Prometheus is spec.groups: promtool checks it."""
    spec = yaml.safe_load(build.OUTPUT.read_text())["spec"]
    path = tmp_path / "spec.yml"
    path.write_text(yaml.safe_dump(spec))
    result = subprocess.run(
        [services.need_binary("promtool"), "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in spec['groups'])} rules found" in result.stdout


def test_runbook_base_can_be_replaced_for_a_fork() -> None:
    groups = build.rebase_runbooks(build.load_rule_groups(), "https://wiki.example/runbooks/")
    urls = {rule["annotations"]["runbook_url"] for rule in build.alerting_rules(groups)}
    assert "https://wiki.example/runbooks/HighErrorRate.md" in urls
    assert not any(url.startswith(build.RUNBOOK_BASE) for url in urls)
    # The source groups are untouched.
    original = build.alerting_rules(build.load_rule_groups())
    assert all(
        rule["annotations"]["runbook_url"].startswith(build.RUNBOOK_BASE) for rule in original
    )


def test_namespace_is_optional_metadata() -> None:
    document = yaml.safe_load(build.render(namespace="monitoring"))
    assert document["metadata"]["namespace"] == "monitoring"
    assert "namespace" not in yaml.safe_load(build.render())["metadata"]


def test_duplicate_group_names_are_refused_naming_both_files(tmp_path: Path) -> None:
    group = "groups:\n  - name: same\n    rules:\n      - record: a\n        expr: up\n"
    (tmp_path / "a.yml").write_text(group)
    (tmp_path / "b.yml").write_text(group)
    with pytest.raises(errors.ConfigError) as info:
        build.load_rule_groups(tmp_path)
    assert str(info.value) == f"{tmp_path / 'b.yml'}: group 'same' is already defined in a.yml"


def test_invalid_yaml_and_missing_groups_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "broken.yml").write_text("groups: [\n")
    with pytest.raises(errors.ConfigError, match=r"broken\.yml: invalid YAML"):
        build.load_rule_groups(tmp_path)
    (tmp_path / "broken.yml").write_text("rules: []\n")
    with pytest.raises(
        errors.ConfigError, match=r"broken\.yml: expected a mapping with a 'groups' list"
    ):
        build.load_rule_groups(tmp_path)


def test_the_rules_kube_prometheus_stack_duplicates_can_be_left_out(tmp_path: Path) -> None:
    out = tmp_path / "rules.yaml"
    assert build.main(["--skip-kube-prometheus-stack-duplicates", "--output", str(out)]) == 0
    groups = yaml.safe_load(out.read_text())["spec"]["groups"]
    kept = {r["alert"] for r in build.alerting_rules(groups)}
    every = {r["alert"] for r in build.alerting_rules(build.load_rule_groups())}
    assert set(build.KUBE_PROMETHEUS_STACK_DUPLICATES) == {
        "PodRestartingTooOften",
        "ContainerCPUNearLimit",
    }
    assert kept == every - set(build.KUBE_PROMETHEUS_STACK_DUPLICATES)
