"""The loader: one invalid fixture per rule, each with its exact message."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from monitor.actions.registry import Registry
from monitor.errors import PolicyError
from monitor.policy import loader
from tests.policy.conftest import POLICY_FIXTURES

EXPECTED = {
    "invalid-yaml-syntax.yaml": [
        "invalid-yaml-syntax.yaml:4:5: invalid YAML: expected ',' or ']', but got '<scalar>'",
    ],
    "invalid-duplicate-key.yaml": [
        "invalid-duplicate-key.yaml:7:5: policies[0].cooldown: duplicate key",
    ],
    "invalid-top-level-list.yaml": [
        "invalid-top-level-list.yaml:1:1: expected a mapping (key: value), got a list",
    ],
    "invalid-unknown-top-level-key.yaml": [
        "invalid-unknown-top-level-key.yaml:1:1: policy: unknown field"
        " (allowed: time_intervals, policies)",
    ],
    "invalid-unknown-field.yaml": [
        "invalid-unknown-field.yaml:6:5: policies[0].cooldwon: unknown field (allowed: name,"
        " description, severity, match, target, steps, for_at_least, cooldown, budget, dry_run,"
        " approval,"
        " active_time_intervals, inactive_time_intervals, verify, revert, diagnose)",
    ],
    "invalid-missing-name.yaml": [
        "invalid-missing-name.yaml:2:5: policies[0].name: missing required field",
    ],
    "invalid-wrong-type.yaml": [
        "invalid-wrong-type.yaml:6:14: policies[0].dry_run: input should be a valid boolean,"
        " got 'sometimes'",
    ],
    "invalid-duration.yaml": [
        "invalid-duration.yaml:6:19: policies[0].for_at_least: not a valid duration '5 minutes'"
        " (use e.g. '30s', '5m', '1h30m')",
    ],
    "invalid-empty-match.yaml": [
        "invalid-empty-match.yaml:3:12: policies[0].match: needs at least 1 item",
    ],
    "invalid-matcher-format.yaml": [
        "invalid-matcher-format.yaml:5:9: policies[0].match[1]: bad matcher format:"
        " 'severity critical'",
    ],
    "invalid-matcher-quote.yaml": [
        "invalid-matcher-quote.yaml:3:13: policies[0].match[0]: matcher value contains"
        " unescaped double quote: '\"HighErrorRate'",
    ],
    "invalid-matcher-regex.yaml": [
        "invalid-matcher-regex.yaml:3:30: policies[0].match[1]: invalid regular expression"
        " '(prod|stage': missing ): (prod|stage",
    ],
    "invalid-matcher-regex-lookahead.yaml": [
        "invalid-matcher-regex-lookahead.yaml:3:30: policies[0].match[1]: invalid regular"
        " expression '(?!kube-).*': invalid perl operator: (?!",
    ],
    "invalid-template-syntax.yaml": [
        "invalid-template-syntax.yaml:6:18: policies[0].target.namespace: template error:"
        " unexpected '}'",
    ],
    "invalid-template-in-params.yaml": [
        "invalid-template-in-params.yaml:7:27: policies[0].steps[0][0].with.message: template"
        " error: Unexpected end of template. Jinja was looking for the following tags: 'elif'"
        " or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
    ],
    "invalid-target-without-name.yaml": [
        "invalid-target-without-name.yaml:4:13: policies[0].target: target needs name",
    ],
    "invalid-empty-step.yaml": [
        "invalid-empty-step.yaml:7:9: policies[0].steps[1]: a step needs at least one action",
    ],
    "invalid-unknown-action.yaml": [
        "invalid-unknown-action.yaml:6:19: policies[0].steps[0][0].action: unknown action"
        " 'kubernetes.explode' (known: log, test.scale)",
    ],
    "invalid-action-params.yaml": [
        "invalid-action-params.yaml:7:28: policies[0].steps[0][0].with.replicas: input should"
        " be greater than or equal to 0, got -1",
    ],
    "invalid-action-timeout.yaml": [
        "invalid-action-timeout.yaml:7:20: policies[0].steps[0][0].timeout: 2h is longer than"
        " 1h, the most a try may take",
        "invalid-action-timeout.yaml:8:20: policies[0].steps[0][0].retries: input should be"
        " less than or equal to 10, got 11",
    ],
    "invalid-action-unknown-param.yaml": [
        "invalid-action-unknown-param.yaml:7:31: policies[0].steps[0][0].with.replica: unknown"
        " field (allowed: replicas)",
    ],
    "invalid-duplicate-policy-name.yaml": [
        "invalid-duplicate-policy-name.yaml:6:11: policies[1].name: duplicate policy name"
        " 'same' (first at invalid-duplicate-policy-name.yaml:2:11)",
    ],
    "invalid-unknown-time-interval.yaml": [
        "invalid-unknown-time-interval.yaml:9:29: policies[0].active_time_intervals[0]: unknown"
        " time interval 'business-hours' (known: weekends)",
    ],
    "invalid-duplicate-time-interval.yaml": [
        "invalid-duplicate-time-interval.yaml:4:11: time_intervals[1].name: duplicate time"
        " interval 'weekends' (first at invalid-duplicate-time-interval.yaml:2:11)",
    ],
    "invalid-time-interval-fields.yaml": [
        "invalid-time-interval-fields.yaml:4:17: time_intervals[0].time_intervals[0].times[0]:"
        " start_time must be before end_time",
        "invalid-time-interval-fields.yaml:5:20: time_intervals[0].time_intervals[0].weekdays[0]:"
        " start day cannot be after end day in 'friday:monday'",
        "invalid-time-interval-fields.yaml:6:25:"
        " time_intervals[0].time_intervals[0].days_of_month[0]: end day must be negative if"
        " start day is negative",
        "invalid-time-interval-fields.yaml:7:18: time_intervals[0].time_intervals[0].months[0]:"
        " 'smarch' is not a valid month",
        "invalid-time-interval-fields.yaml:8:19: time_intervals[0].time_intervals[0].location:"
        " unknown time zone 'Mars/Olympus_Mons'",
    ],
    "invalid-medium-without-business-hours.yaml": [
        "invalid-medium-without-business-hours.yaml:3:15: policies[0].severity: severity"
        " 'medium' acts only inside the time interval 'business-hours', which no file defines"
        " (define it, or set active_time_intervals)",
    ],
    "invalid-low-severity-acts.yaml": [
        "invalid-low-severity-acts.yaml:6:23: policies[0].steps[0][0].action: severity 'low'"
        " only records: use log, not 'test.scale'",
    ],
    "invalid-severity.yaml": [
        "invalid-severity.yaml:3:15: policies[0].severity: input should be 'critical', 'high',"
        " 'medium' or 'low', got 'urgent'",
    ],
    "invalid-budget.yaml": [
        "invalid-budget.yaml:6:24: policies[0].budget.attempts: input should be greater than or"
        " equal to 1, got 0",
    ],
    "invalid-policy-name.yaml": [
        "invalid-policy-name.yaml:2:11: policies[0].name: string should match pattern"
        " '^[A-Za-z0-9][A-Za-z0-9_.-]*$', got 'scale out!'",
    ],
    "invalid-many-errors.yaml": [
        "invalid-many-errors.yaml:3:13: policies[0].match[0]: matcher value contains unescaped"
        " double quote: '\"A'",
        "invalid-many-errors.yaml:3:29: policies[0].match[1]: invalid regular expression '[':"
        " missing ]: [",
        "invalid-many-errors.yaml:4:38: policies[0].target.name: template error: unexpected '}'",
        "invalid-many-errors.yaml:5:23: policies[0].steps[0][0].action: unknown action 'nope'"
        " (known: log, test.scale)",
        "invalid-many-errors.yaml:8:13: policies[1].target: target needs name",
        "invalid-many-errors.yaml:9:42: policies[1].steps[0][0].with.level: input should be a"
        " valid string, got 3",
        "invalid-many-errors.yaml:10:15: policies[1].cooldown: not a valid duration 'soon'"
        " (use e.g. '30s', '5m', '1h30m')",
    ],
}


@pytest.fixture
def in_fixtures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(POLICY_FIXTURES)


def test_every_invalid_fixture_has_an_expected_message() -> None:
    invalid = {name for name in os.listdir(POLICY_FIXTURES) if name.startswith("invalid-")}
    assert invalid == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_fixture_reports_exact_errors(
    name: str, registry: Registry, in_fixtures: None
) -> None:
    with pytest.raises(PolicyError) as caught:
        loader.load([name], registry, strict_actions=True)
    assert isinstance(caught.value, loader.PolicyLoadError)
    assert caught.value.errors == EXPECTED[name]
    assert str(caught.value).splitlines()[1:] == EXPECTED[name]


def test_errors_of_several_files_are_all_reported(registry: Registry, in_fixtures: None) -> None:
    names = ["invalid-budget.yaml", "invalid-severity.yaml", "valid-templated-params.yaml"]
    report = loader.check(names, registry, strict_actions=True)
    assert report.policies is None
    assert report.errors == EXPECTED["invalid-budget.yaml"] + EXPECTED["invalid-severity.yaml"]


def test_duplicate_policy_names_across_files(tmp_path: Path, registry: Registry) -> None:
    text = "policies:\n  - {name: same, match: ['a=\"b\"'], target: {kind: K, name: n},"
    text += " steps: [[{action: log}]]}\n"
    (tmp_path / "a.yaml").write_text(text)
    (tmp_path / "b.yml").write_text(text)
    (tmp_path / "notes.txt").write_text("not a policy file")
    report = loader.check([tmp_path], registry)
    assert report.errors == [
        f"{tmp_path}/b.yml:2:12: policies[0].name: duplicate policy name 'same'"
        f" (first at {tmp_path}/a.yaml:2:12)"
    ]


def test_time_intervals_are_shared_between_files(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "intervals.yaml").write_text(
        "time_intervals:\n  - name: business-hours\n    time_intervals: [{weekdays: [monday]}]\n"
    )
    (tmp_path / "policy.yaml").write_text(
        "policies:\n  - {name: p, severity: medium, match: ['a=\"b\"'],"
        " target: {kind: K, name: n}, steps: [[{action: log}]]}\n"
    )
    policies = loader.load([tmp_path], registry)
    policy = policies.get("p")
    assert policy is not None
    assert [i.name for i in policy.active_intervals] == ["business-hours"]
    assert policies.sources == [f"{tmp_path}/intervals.yaml", f"{tmp_path}/policy.yaml"]


def _two_policies(second_name: str) -> str:
    return (
        "policies:\n"
        "  - name: first\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        "    steps: [[{action: log}]]\n"
        f"  - name: {second_name}\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        "    steps: [[{action: test.scale, with: {replicas: -1}}]]\n"
        "    cooldown: 5 minutes\n"
        "    active_time_intervals: [nowhere]\n"
    )


def test_a_policy_with_errors_is_still_checked_for_the_rest(
    tmp_path: Path, registry: Registry
) -> None:
    """Errors of different kinds in one policy come out together, not one fix at a time."""
    (tmp_path / "p.yaml").write_text(_two_policies("second"))
    report = loader.check([tmp_path], registry, strict_actions=True)
    assert [e.split(": ", 2)[1] for e in report.errors] == [
        "policies[1].steps[0][0].with.replicas",
        "policies[1].cooldown",
        "policies[1].active_time_intervals[0]",
    ]
    (tmp_path / "p.yaml").write_text(_two_policies("first"))
    report = loader.check([tmp_path], registry, strict_actions=True)
    assert [e.split(": ", 2)[1] for e in report.errors] == [
        "policies[1].name",
        "policies[1].cooldown",
    ]


def test_missing_path_is_an_error(tmp_path: Path, registry: Registry) -> None:
    report = loader.check([tmp_path / "nope.yaml"], registry)
    assert report.errors == [f"{tmp_path}/nope.yaml: no such file or directory"]


def test_empty_file_has_no_policies(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    assert len(loader.load([tmp_path], registry)) == 0


def test_unknown_action_is_a_warning_unless_strict(registry: Registry, in_fixtures: None) -> None:
    report = loader.check(["invalid-unknown-action.yaml"], registry)
    assert report.errors == []
    assert report.warnings == [
        "invalid-unknown-action.yaml:6:19: policies[0].steps[0][0].action: action"
        " 'kubernetes.explode' is not registered here; its parameters were not checked"
    ]
    assert report.policies is not None and len(report.policies) == 1


def test_templated_params_are_checked_when_rendered(registry: Registry, in_fixtures: None) -> None:
    """A template where an int is wanted loads; the rendered value is checked per alert."""
    policies = loader.load(["valid-templated-params.yaml"], registry, strict_actions=True)
    policy = policies.get("templated")
    assert policy is not None
    assert policy.steps[0][0].action == "test.scale"


def test_every_duration_field_reads_the_one_grammar(tmp_path: Path, registry: Registry) -> None:
    """Go forms (``1.5h``), seconds as a number and ``0`` all read in a policy file."""
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: p\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        "    steps: [[{action: log}]]\n"
        "    for_at_least: 1m30s\n"
        "    cooldown: 1.5h\n"
        "    budget: {window: 1d}\n"
        "    verify: {window: 300, interval: 0.5s}\n"
        "    revert: {enabled: true, after: 0}\n"
    )
    policy = loader.load([tmp_path], registry).get("p")
    assert policy is not None
    spec = policy.spec
    assert (spec.for_at_least, spec.cooldown, spec.budget.window) == (
        timedelta(seconds=90),
        timedelta(minutes=90),
        timedelta(days=1),
    )
    assert (spec.verify.window, spec.verify.interval) == (
        timedelta(minutes=5),
        timedelta(seconds=0.5),
    )
    assert spec.revert.after == timedelta(0)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("99999999999999999999y", "(at most 292y)"),
        ("1h 30m", "(use e.g. '30s', '5m', '1h30m')"),
        ("-5", "(a duration cannot be negative)"),
        (".nan", "(use e.g. '30s', '5m', '1h30m')"),
    ],
)
def test_a_duration_out_of_bounds_is_an_error_at_its_line(
    tmp_path: Path, registry: Registry, value: str, why: str
) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - {name: p, match: ['a=\"b\"'], target: {kind: K, name: n},"
        f" steps: [[{{action: log}}]],\n     cooldown: {value}}}\n"
    )
    report = loader.check([tmp_path], registry)
    shown = {"-5": "-5", ".nan": "nan"}.get(value, repr(value))
    assert report.errors == [
        f"{tmp_path}/p.yaml:3:16: policies[0].cooldown: not a valid duration {shown} {why}"
    ]


def test_a_step_action_may_set_its_timeout_and_retries(tmp_path: Path, registry: Registry) -> None:
    """``timeout`` and ``retries`` next to ``action``/``with`` reach the compiled step."""
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: p\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        "    steps:\n"
        "      - - {action: log, timeout: 45s, retries: 2}\n"
        "        - {action: log, timeout: 1.5, retries: 0}\n"
        "        - {action: log}\n"
    )
    policy = loader.load([tmp_path], registry).get("p")
    assert policy is not None
    assert [(a.timeout, a.retries) for a in policy.steps[0]] == [
        (45.0, 2),
        (1.5, 0),
        (None, None),
    ]


@pytest.mark.parametrize(
    ("line", "error"),
    [
        ("timeout: 0", "timeout: must be longer than 0s"),
        ("timeout: 1h1s", "timeout: 1h1s is longer than 1h, the most a try may take"),
        ("timeout: soon", "timeout: not a valid duration 'soon' (use e.g. '30s', '5m', '1h30m')"),
        ("retries: -1", "retries: input should be greater than or equal to 0, got -1"),
        ("retries: '2'", "retries: input should be a valid integer, got '2'"),
        ("retries: 2.5", "retries: input should be a valid integer, got 2.5"),
    ],
)
def test_a_bad_timeout_or_retries_is_an_error_at_its_line(
    tmp_path: Path, registry: Registry, line: str, error: str
) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - {name: p, match: ['a=\"b\"'], target: {kind: K, name: n},\n"
        "     steps: [[{action: log,\n"
        f"       {line}}}]]}}\n"
    )
    report = loader.check([tmp_path], registry)
    column = len("       ") + len(line.split(":")[0]) + len(": ") + 1  # where the value starts
    where = f"{tmp_path}/p.yaml:4:{column}: policies[0].steps[0][0]"
    assert report.errors == [f"{where}.{error}"]


def test_a_step_may_be_a_mapping_with_its_own_dry_run(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n"
        "  - name: p\n"
        "    match: ['a=\"b\"']\n"
        "    target: {kind: K, name: n}\n"
        "    steps:\n"
        "      - [{action: log}]\n"
        "      - actions: [{action: log}, {action: log}]\n"
        "        dry_run: true\n"
        "      - actions: [{action: log}]\n"
    )
    policy = loader.load([tmp_path], registry).get("p")
    assert policy is not None
    assert [len(step) for step in policy.steps] == [1, 2, 1]
    assert [policy.rehearsed(s) for s in range(3)] == [False, True, False]


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (
            "{actions: [{action: log}], dry_runn: true}",
            "1:57: policies[0].steps[0].dry_runn: unknown field"
            " (allowed: actions, dry_run, approval)",
        ),
        ("{dry_run: true}", "1:30: policies[0].steps[0].actions: missing required field"),
        (
            "{actions: [{action: log, retries: -1}]}",
            "1:64: policies[0].steps[0].actions[0].retries: input should be greater",
        ),
        (
            "{actions: [], dry_run: true}",
            "1:40: policies[0].steps[0].actions: a step needs at least one action",
        ),
        ("{actions: [{action: log}], dry_run: maybe}", "1:66: policies[0].steps[0].dry_run"),
    ],
)
def test_a_bad_mapping_step_is_an_error_at_its_line(
    tmp_path: Path, registry: Registry, step: str, error: str
) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies: [{name: p, steps: ["
        + step
        + "], match: ['a=\"b\"'], target: {kind: K, name: n}}]\n"
    )
    report = loader.check([tmp_path], registry)
    assert len(report.errors) == 1
    assert report.errors[0].startswith(f"{tmp_path}/p.yaml:{error}"), report.errors


def test_a_policy_dry_run_rehearses_every_step(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - {name: p, dry_run: true, match: ['a=\"b\"'], target: {kind: K, name: n},\n"
        "     steps: [[{action: log}], {actions: [{action: log}], dry_run: false}]}\n"
    )
    policy = loader.load([tmp_path], registry).get("p")
    assert policy is not None and [policy.rehearsed(0), policy.rehearsed(1)] == [True, True]


def test_approval_on_a_policy_or_a_step(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "p.yaml").write_text(
        "policies:\n  - {name: p, approval: required, match: ['a=\"b\"'],\n"
        "     target: {kind: K, name: n},\n"
        "     steps: [[{action: log}], {actions: [{action: log}], approval: none}]}\n"
    )
    policy = loader.load([tmp_path], registry).get("p")
    assert policy is not None
    assert [policy.spec.step_approval(0), policy.spec.step_approval(1)] == ["required", "none"]
    (tmp_path / "p.yaml").write_text(
        "policies: [{name: p, approval: always, match: ['a=\"b\"'], target: {kind: K, name: n},"
        " steps: [[{action: log}]]}]\n"
    )
    [error] = loader.check([tmp_path], registry).errors
    assert "policies[0].approval: input should be 'required' or 'none'" in error
