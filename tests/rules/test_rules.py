"""The alert rules in rules/: promtool accepts them, their unit tests pass, and every alert
has what an on-call person needs (severity, summary, description, a runbook that exists)
plus a promtool test where it fires and one where it must stay quiet."""

from __future__ import annotations

import re
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts import build_prometheusrule as build
from tests.support import services

ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = ROOT / "docs" / "runbooks"
PROMTOOL_TESTS = sorted((Path(__file__).parent / "promtool").glob("*.test.yml"))
SEVERITIES = {"critical", "warning", "info"}

GROUPS = build.load_rule_groups()
ALERTS = build.alerting_rules(GROUPS)
ALERT_NAMES = sorted({rule["alert"] for rule in ALERTS})


def promtool() -> str:
    return services.need_binary("promtool")


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)


def test_promtool_check_rules_accepts_every_rule_file() -> None:
    files = [str(path) for path in build.rule_files()]
    assert files, "rules/ has no *.yml files"
    result = run("check", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_unit_tests_pass() -> None:
    result = run("test", "rules", *[str(path) for path in PROMTOOL_TESTS])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(PROMTOOL_TESTS)


def test_promtool_unit_tests_fail_when_an_expectation_is_wrong(tmp_path: Path) -> None:
    """The harness can fail: a copy of a test file expecting another severity fails."""
    source = Path(__file__).parent / "promtool" / "redis.test.yml"
    text = source.read_text().replace("../../../rules/", f"{ROOT}/rules/")
    broken = text.replace("severity: critical", "severity: info", 1)
    assert broken != text
    (tmp_path / "broken.test.yml").write_text(broken)
    result = run("test", "rules", str(tmp_path / "broken.test.yml"))
    assert result.returncode != 0
    assert "RedisDown" in result.stdout + result.stderr


def test_every_promtool_test_file_covers_rule_files_that_exist() -> None:
    covered = set()
    for path in PROMTOOL_TESTS:
        document = yaml.safe_load(path.read_text())
        for rule_file in document["rule_files"]:
            target = (path.parent / rule_file).resolve()
            assert target.exists(), f"{path.name}: rule file {rule_file} does not exist"
            covered.add(target)
    assert covered == {path.resolve() for path in build.rule_files()}


@pytest.mark.parametrize(
    "rule", ALERTS, ids=lambda rule: f"{rule['alert']}-{rule['labels']['severity']}"
)
def test_alert_has_severity_summary_description_and_runbook(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert set(annotations) >= {"summary", "description", "runbook_url"}
    assert annotations["summary"].strip() and annotations["description"].strip()
    # The description is templated: the value that made it fire, or for up/down alerts
    # the labels that say which target (absent() has only the label it looked for).
    assert "{{" in annotations["description"] or rule["expr"].startswith("absent(")
    assert annotations["runbook_url"] == f"{build.RUNBOOK_BASE}{rule['alert']}.md"
    runbook = RUNBOOKS / f"{rule['alert']}.md"
    assert runbook.is_file(), f"{runbook} is missing"
    text = runbook.read_text()
    assert text.startswith(f"# {rule['alert']}\n")
    for section in ("## What conea-monitor does", "## What you do"):
        assert section in text, f"{runbook.name} lacks a '{section}' section"


def test_every_runbook_belongs_to_an_alert() -> None:
    names = {path.stem for path in RUNBOOKS.glob("*.md")} - {"README"}
    assert names == set(ALERT_NAMES)


def _unit_test_cases() -> tuple[set[tuple[str, str]], set[str]]:
    """(alertname, severity) pairs some test expects to fire with labels and annotations;
    alertnames some test expects to stay quiet."""
    fires: set[tuple[str, str]] = set()
    quiet: set[str] = set()
    for path in PROMTOOL_TESTS:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                expected = check.get("exp_alerts") or []
                if not expected:
                    quiet.add(check["alertname"])
                for alert in expected:
                    annotations = alert.get("exp_annotations", {})
                    if set(annotations) >= {"summary", "description", "runbook_url"}:
                        fires.add((check["alertname"], alert["exp_labels"]["severity"]))
    return fires, quiet


def test_every_alert_has_a_firing_case_and_a_quiet_case() -> None:
    fires, quiet = _unit_test_cases()
    wanted = {(rule["alert"], rule["labels"]["severity"]) for rule in ALERTS}
    assert sorted(wanted - fires) == [], "alerts without a firing promtool test"
    assert sorted(set(ALERT_NAMES) - quiet) == [], "alerts without a must-not-fire test"


def test_alerts_keep_the_labels_remediation_policies_read() -> None:
    """Policies target namespace/deployment/pod/datname/instance: the aggregations must
    keep them. Each alert's `by (...)` clauses are checked against what it must carry."""
    must_keep = {
        "HighErrorRate": {"namespace", "job", "service"},
        "HighResponseTime": {"namespace", "job", "service"},
        "PodRestartingTooOften": {"namespace", "pod", "container"},
        "PostgresIdleInTransaction": {"namespace", "instance", "datname"},
        "PostgresTooManyConnections": {"namespace", "instance"},
        "PostgresLockContention": {"namespace", "instance", "datname"},
    }
    by_name = defaultdict(list)
    for rule in ALERTS:
        by_name[rule["alert"]].append(rule["expr"])
    for alert, labels in must_keep.items():
        for expr in by_name[alert]:
            for clause in expr.split("by (")[1:]:
                kept = {label.strip() for label in clause.split(")")[0].split(",")}
                assert labels <= kept, f"{alert}: by ({', '.join(sorted(kept))}) drops a label"


def _policy_alertnames() -> dict[str, set[str]]:
    """alertname -> the remediations/*.yaml files whose matchers name it (``="X"`` or an
    ``=~"A|B"`` alternation of plain names)."""
    named: dict[str, set[str]] = defaultdict(set)
    for path in sorted((ROOT / "remediations").glob("*.yaml")):
        for op, value in re.findall(r'alertname\s*(=~|=)\s*\\?"([^"\\]+)\\?"', path.read_text()):
            if op == "=" or re.fullmatch(r"[A-Za-z0-9_]+(\|[A-Za-z0-9_]+)*", value):
                for name in value.split("|"):
                    named[name].add(path.name)
    return named


def test_alerts_the_default_policies_answer_exist() -> None:
    named = _policy_alertnames()
    if not named:
        pytest.skip("remediations/ has no policy naming an alert yet")
    missing = {name: sorted(files) for name, files in named.items() if name not in ALERT_NAMES}
    assert missing == {}, "policies match alerts that rules/ does not define"
