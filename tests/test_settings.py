"""Settings are strict and say where a mistake is; the environment overrides the file."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from monitor import settings
from monitor.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conea-monitor.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("data_dir: x\nbogus: 1\n", "{f}:2:1: bogus: unknown key"),
        (
            "webhook:\n  max_body_bytes: 10\n  bearer_tokne: x\n",
            "{f}:3:3: webhook.bearer_tokne: unknown key",
        ),
        (
            "webhook:\n  max_body_bytes: lots\n",
            "{f}:2:19: webhook.max_body_bytes: Input should be a valid integer, unable to parse "
            "string as an integer",
        ),
        (
            "webhook:\n  max_body_bytes: 0\n",
            "{f}:2:19: webhook.max_body_bytes: Input should be greater than 0",
        ),
        ("log:\n  format: xml\n", "{f}:2:11: log.format: Input should be 'text' or 'json'"),
        (
            "webhook:\n  basic_auth:\n    username: am\n",
            "{f}:3:5: webhook.basic_auth: Value error, set exactly one of password, password_file",
        ),
        ("webhook: [1, 2\n", "{f}:2:1: invalid YAML: expected ',' or ']', but got '<stream end>'"),
        ("- a\n- b\n", "{f}:1:1: the config file must be a mapping of keys"),
    ],
)
def test_config_errors_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        settings.load(path)
    assert str(caught.value) == message.format(f=path)


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "data_dir: /from/file\nwebhook:\n  max_body_bytes: 10\n")
    monkeypatch.setenv("CONEA_MONITOR_DATA_DIR", "/from/env")
    monkeypatch.setenv("CONEA_MONITOR_WEBHOOK__MAX_BODY_BYTES", "2048")
    loaded = settings.load(path)
    assert loaded.data_dir == Path("/from/env")
    assert loaded.webhook.max_body_bytes == 2048
    assert loaded.database_url == "sqlite:////from/env/conea-monitor.db"


def test_bad_environment_value_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONEA_MONITOR_WEBHOOK__MAX_BODY_BYTES", "huge")
    path = write(tmp_path, "data_dir: x\n")
    with pytest.raises(ConfigError, match="environment CONEA_MONITOR_WEBHOOK__MAX_BODY_BYTES"):
        settings.load(path)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "CONEA_MONITOR_AUTOMATION__PAUSED",
            "maybe",
            "automation.paused: Input should be a valid boolean, unable to interpret input",
        ),
        (
            "CONEA_MONITOR_AUTOMATION__MODE",
            "yolo",
            "automation.mode: Input should be 'live', 'rehearsal' or 'approval'",
        ),
        (
            "CONEA_MONITOR_LOG__LEVEL",
            "LOUD",
            "log.level: Input should be 'DEBUG', 'INFO', 'WARNING' or 'ERROR'",
        ),
        (
            "CONEA_MONITOR_WEBHOOK__MAX_BODY_BYTES",
            "0",
            "webhook.max_body_bytes: Input should be greater than 0",
        ),
        (
            "CONEA_MONITOR_AUTOMATION__APPROVAL__NOTIFIER",
            "ghost",
            "automation.approval.notifier: unknown notifier 'ghost' (known: none configured); "
            "notifiers are defined under notifiers",
        ),
        (
            "conea_monitor_store__pool_size",
            "none",
            "store.pool_size: Input should be a valid integer, unable to parse string as an "
            "integer",
        ),
    ],
)
def test_a_bad_override_of_a_key_in_the_file_blames_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    # The file sets every one of these keys correctly: the environment's value is the one
    # in force, so the file's line must not be blamed.
    path = write(
        tmp_path,
        "automation:\n  paused: false\n  mode: live\nlog:\n  level: INFO\n"
        "webhook:\n  max_body_bytes: 10\nstore:\n  pool_size: 5\n",
    )
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        settings.load(path)
    assert str(caught.value) == f"environment {variable}: {message}"
    monkeypatch.delenv(variable)
    assert settings.load(path).automation.paused is False


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file: No such file"):
        settings.load(tmp_path / "missing.yml")


def test_paths_in_the_file_are_relative_to_it(tmp_path: Path) -> None:
    path = write(tmp_path, "policies: [remediations]\n")
    loaded = settings.load(path)
    assert loaded.resolve(loaded.policies[0]) == tmp_path / "remediations"


def test_bundled_config_loads() -> None:
    bundled = Path(__file__).resolve().parent.parent / "config" / "conea-monitor.yml"
    loaded = settings.load(bundled)
    assert loaded.automation.dry_run is None  # dry-run until Kubernetes credentials exist
    assert loaded.resolve(loaded.policies[0]).name == "remediations"


def test_job_durations_in_the_file_read_the_one_grammar(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "jobs:\n"
        "  - name: idle\n"
        "    interval: 1.5m\n"
        "    timeout: 30\n"
        "    action: postgres.terminate_idle_in_transaction\n"
        "    params: {target: db, databases: [app], older_than: 10m}\n",
    )
    job = settings.load(path).jobs[0]
    assert (job.interval, job.timeout) == (timedelta(seconds=90), timedelta(seconds=30))
    write(tmp_path, "jobs:\n  - name: idle\n    interval: 1h 30m\n    action: log\n")
    with pytest.raises(ConfigError) as caught:
        settings.load(path)
    assert str(caught.value) == (
        f"{path}:3:15: jobs[0].interval: Value error, not a valid duration '1h 30m'"
        " (use e.g. '30s', '5m', '1h30m')"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "automation:\n  max_actions:\n    count: 5\n    window: 0s\n",
            "{f}:4:13: automation.max_actions.window: Value error, must be longer than 0s",
        ),
        (
            "automation:\n  max_actions:\n    count: 5\n    window: 8d\n",
            "{f}:4:13: automation.max_actions.window: Value error, must be at most 1w (7 days)",
        ),
        (
            "automation:\n  max_actions:\n    count: 5\n    window: '10'\n",
            "{f}:4:13: automation.max_actions.window: Value error, not a valid duration '10' "
            "(use e.g. '30s', '5m', '1h30m')",
        ),
        (
            "automation:\n  max_actions:\n    count: 0\n    window: 10m\n",
            "{f}:3:12: automation.max_actions.count: Input should be greater than or equal to 1",
        ),
        (
            "automation:\n  max_actions:\n    count: 100001\n    window: 10m\n",
            "{f}:3:12: automation.max_actions.count: Input should be less than or equal to 100000",
        ),
        (
            "automation:\n  max_actions:\n    count: 5\n    window: 10m\n    reset: never\n",
            "{f}:5:12: automation.max_actions.reset: Input should be 'auto' or 'manual'",
        ),
        (
            "automation:\n  max_actions: {count: 5}\n",
            "{f}:2:16: automation.max_actions.window: Field required",
        ),
        (
            "notifiers:\n  oncall: {kind: slack, url: 'https://hooks.example/x'}\n"
            "automation:\n  max_actions:\n    count: 5\n    window: 10m\n    notifier: on-call\n",
            "{f}:7:15: automation.max_actions.notifier: unknown notifier 'on-call' (known: "
            "oncall); notifiers are defined under notifiers",
        ),
        (
            "automation:\n  max_actions:\n    count: 5\n    window: 10m\n    notifier: oncall\n",
            "{f}:5:15: automation.max_actions.notifier: unknown notifier 'oncall' (known: "
            "none configured); notifiers are defined under notifiers",
        ),
    ],
)
def test_a_bad_breaker_names_its_field(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        settings.load(path)
    assert str(caught.value) == message.format(f=path)


def test_the_breaker_reads_the_one_duration_grammar(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "notifiers:\n  oncall: {kind: slack, url: 'https://hooks.example/x'}\n"
        "automation:\n  max_actions: {count: 20, window: 1h30m, notifier: oncall}\n",
    )
    limit = settings.load(path).automation.max_actions
    assert limit is not None
    assert (limit.count, limit.window, limit.reset) == (20, timedelta(minutes=90), "auto")
    assert settings.load(write(tmp_path, "data_dir: x\n")).automation.max_actions is None


@pytest.mark.parametrize(
    ("text", "kube", "rehearsal"),
    [
        ("{}", False, True),  # no credentials: rehearsal
        ("{}", True, False),
        ("{mode: rehearsal}", True, True),
        ("{mode: live}", False, False),
        ("{dry_run: true}", True, True),
        ("{dry_run: false, mode: live}", False, False),
    ],
)
def test_automation_mode(tmp_path: Path, text: str, kube: bool, rehearsal: bool) -> None:
    loaded = settings.load(write(tmp_path, f"automation: {text}\n"))
    assert loaded.automation.rehearsal(kube_configured=kube) is rehearsal


def test_mode_and_dry_run_that_disagree_are_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "automation:\n  mode: live\n  dry_run: true\n")
    with pytest.raises(ConfigError, match="mode 'live' and dry_run true disagree"):
        settings.load(path)


def test_approval_settings_are_checked(tmp_path: Path) -> None:
    good = settings.load(
        write(
            tmp_path,
            "notifiers: {oncall: {kind: webhook, url: 'http://127.0.0.1:1/x'}}\n"
            "automation: {mode: approval, approval: {timeout: 15m, notifier: oncall}}\n",
        )
    )
    assert good.automation.approval.timeout.total_seconds() == 900
    assert good.automation.rehearsal(kube_configured=True) is False
    for text, message in (
        ("automation: {approval: {timeout: 8d}}\n", r"must be at most 1w \(7 days\)"),
        ("automation: {approval: {timeout: 0s}}\n", "must be longer than 0s"),
        ("automation: {approval: {notifier: pager}}\n", "unknown notifier 'pager'"),
        ("automation: {mode: sometimes}\n", "automation.mode"),
    ):
        with pytest.raises(ConfigError, match=message):
            settings.load(write(tmp_path, text))
