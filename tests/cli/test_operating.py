"""pause, resume, status, history, approve, reject and reload as an operator runs them:
against the running service by default (--url, CONEA_MONITOR_URL), and against a store
only when one is named (--store, --config), with a warning when no service uses it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor import cli as monitor_cli
from monitor import settings
from monitor.store import control, database, presence
from tests.engine.conftest import alert, notification, wait_for
from tests.support import service as svc

ROOT = Path(__file__).resolve().parents[2]

POLICY = """
policies:
  - name: rate-limit
    match: ['alertname="HighLoad"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}",
             name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.set_env, with: {env: {RATE_LIMIT_PER_MINUTE: "100"}}}]]
"""


ENV = ("CONEA_MONITOR_URL", "CONEA_MONITOR_TOKEN", "CONEA_MONITOR_TOKEN_FILE")


def cli(
    *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it, in its own process."""
    clean = {k: v for k, v in os.environ.items() if k not in ENV}
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**clean, **(env or {})},
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


Run = Callable[..., Ran]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Run:
    """The command in this process (monitor.cli.main): as ``cli``, a second faster."""

    def call(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> Ran:
        with monkeypatch.context() as patched:
            for name in ENV:
                patched.delenv(name, raising=False)
            for name, value in (env or {}).items():
                patched.setenv(name, value)
            patched.chdir(cwd)
            capsys.readouterr()
            code = monitor_cli.main(list(args))
            out, err = capsys.readouterr()
        return Ran(code, out, err)

    return call


def token_file(service: svc.Service) -> Path:
    """The operator token the service generated (no automation.api_token configured)."""
    return service.config.parent / "data" / "admin-token"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    directory = tmp_path_factory.mktemp("operated")
    (directory / "remediations").mkdir()
    (directory / "remediations" / "p.yaml").write_text(POLICY)
    config = svc.write_config(directory, policies=[str(directory / "remediations")])
    with svc.running(config) as running:
        yield running


@pytest.fixture
def default_port_closed() -> Iterator[None]:
    """Nothing answers at the default address while the test runs: the port is held,
    unlistened (a connection is refused), so no service on this machine can be reached."""
    with socket.socket() as held:
        try:
            held.bind(("127.0.0.1", settings.DEFAULT_PORT))
        except OSError:
            pytest.skip(f"127.0.0.1:{settings.DEFAULT_PORT} is in use on this machine")
        yield


@pytest.mark.usefixtures("default_port_closed")
def test_pause_from_another_directory_without_a_service_refuses_and_creates_nothing(
    tmp_path: Path,
) -> None:
    elsewhere = tmp_path / "elsewhere"
    home = tmp_path / "home"
    elsewhere.mkdir()
    home.mkdir()
    result = cli("pause", "--reason", "incident", cwd=elsewhere, env={"HOME": str(home)})
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"conea-monitor: error: no conea-monitor answers at http://127.0.0.1:"
        f"{settings.DEFAULT_PORT}: [Errno 111] Connection refused; start it, pass --url "
        "(or set CONEA_MONITOR_URL), or change a store directly with --config/--store\n"
    )
    assert sorted(tmp_path.rglob("*")) == sorted([elsewhere, home])
    history = cli("history", "executions", cwd=elsewhere, env={"HOME": str(home)})
    assert history.returncode == 1 and "no executions recorded" not in history.stdout
    assert sorted(tmp_path.rglob("*")) == sorted([elsewhere, home])


def test_pause_and_resume_reach_the_service_at_the_url(
    run: Run, service: svc.Service, tmp_path: Path
) -> None:
    paused = run(
        "pause",
        "--url",
        service.url,
        "--token-file",
        str(token_file(service)),
        "--reason",
        "maintenance window",
        cwd=tmp_path,
    )
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout == f"automation paused ({service.url})\n"
    assert service.get("/api/v1/status").json()["paused"] is True
    [record] = service.get("/api/v1/audit", params={"kind": "pause"}).json()["items"][:1]
    assert record["message"] == "automation paused by api (127.0.0.1): maintenance window"
    status = run("status", "--url", service.url, cwd=tmp_path)
    assert "automation: PAUSED" in status.stdout

    token = token_file(service).read_text().strip()
    resumed = run(
        "resume",
        "--no-catch-up",
        cwd=tmp_path,
        env={"CONEA_MONITOR_URL": service.url, "CONEA_MONITOR_TOKEN": token},
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.startswith("automation resumed")
    assert resumed.stdout.endswith(f"({service.url})\n")
    assert service.get("/api/v1/status").json()["paused"] is False
    assert list(tmp_path.iterdir()) == []  # no store opened here


def test_a_wrong_token_fails_naming_its_source_and_never_shows_it(
    run: Run, service: svc.Service, tmp_path: Path
) -> None:
    wrong = "Zm9vYmFyLXdyb25nLXRva2Vu"
    result = run(
        "pause",
        env={"CONEA_MONITOR_URL": service.url, "CONEA_MONITOR_TOKEN": wrong},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"conea-monitor: error: {service.url} refused the token from $CONEA_MONITOR_TOKEN (401: "
    )
    assert wrong not in result.stdout + result.stderr
    assert service.get("/api/v1/status").json()["paused"] is False

    wrong_file = tmp_path / "token"
    wrong_file.write_text(wrong + "\n")
    via_file = run("reload", "--url", service.url, "--token-file", str(wrong_file))
    assert via_file.returncode == 1
    assert f"refused the token from --token-file {str(wrong_file)!r}" in via_file.stderr
    assert wrong not in via_file.stdout + via_file.stderr


def test_status_over_http(run: Run, service: svc.Service) -> None:
    result = run("--url", service.url, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == [f"service: {service.url}", "automation: running"]
    assert "policies: 1 (rate-limit)" in lines
    as_json = run("status", "--url", service.url, "--json")
    assert json.loads(as_json.stdout)["policies"] == ["rate-limit"]


def test_history_over_http_shows_the_services_executions(run: Run, service: svc.Service) -> None:
    assert service.post(notification(alert("HighLoad", "cd02"))).status_code == 200
    wait_for(
        lambda: service.get("/api/v1/executions", params={"fingerprint": "cd02"}).json()["items"],
        30,
        "execution",
    )
    result = run("history", "executions", "--url", service.url, "--since", "1h")
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:4] == ["ID", "CREATED_AT", "POLICY", "STEP"]
    assert any(row.split()[3] == "rate-limit" for row in rows), result.stdout
    before = run("history", "executions", "--url", service.url, "--until", "1h")
    assert before.stdout == "no executions recorded\n"
    as_json = run("history", "executions", "--url", service.url, "--policy", "rate-limit", "--json")
    assert {item["fingerprint"] for item in json.loads(as_json.stdout)} >= {"cd02"}


def test_history_refuses_a_time_it_cannot_read(run: Run) -> None:
    result = run("history", "--since", "yesterday", "--url", "http://127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr == (
        "conea-monitor: error: --since: not a time or duration 'yesterday': give a duration "
        "back from now (1h, 30m, 2d) or an ISO 8601 time (2026-11-29T03:00:00Z)\n"
    )


def test_reload_and_an_unknown_approval_over_http(run: Run, service: svc.Service) -> None:
    token = str(token_file(service))
    reloaded = run("reload", "--url", service.url, "--token-file", token)
    assert reloaded.stdout == "policies reloaded: 1 in force\n", reloaded.stderr
    unknown = run("approve", "424242", "--url", service.url, "--token-file", token)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith(
        "conea-monitor: error: POST /api/v1/executions/424242/approve: 404 "
    )


def test_url_and_a_store_together_are_refused(run: Run, tmp_path: Path) -> None:
    result = run("pause", "--url", "http://127.0.0.1:1", "--store", f"sqlite:///{tmp_path}/x.db")
    assert result.returncode == 2
    assert result.stderr == (
        "conea-monitor: error: give --url (the running service) or --config/--store "
        "(a store directly), not both\n"
    )


def _store(directory: Path) -> str:
    url = f"sqlite:///{directory / 'store.db'}"
    db = database.connect(url)
    database.migrate(db)
    db.dispose()
    return url


def test_a_store_that_does_not_exist_is_not_created(run: Run, tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    result = run("pause", "--store", f"sqlite:///{missing}")
    assert result.returncode == 2
    assert result.stderr == (
        f"conea-monitor: error: no store at {missing} (--store): nothing to pause; pass --url "
        "for the running service, or the --config/--store it uses\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_pause_of_an_empty_store_nobody_uses_is_refused(run: Run, tmp_path: Path) -> None:
    url = _store(tmp_path)
    result = run("pause", "--store", url)
    assert result.returncode == 1
    assert result.stdout == ""
    warning, error = result.stderr.splitlines()
    assert warning == (
        f"conea-monitor: warning: the store {url} is empty (no executions, no switch ever set, "
        "never used by a service): is it the one the service uses? (its store.url or data_dir)"
    )
    assert error.startswith("conea-monitor: error: nothing paused: the store ")
    db = database.connect(url)
    try:
        assert control.get_control(db, control.PAUSE_KEY) is None
    finally:
        db.dispose()
    history = run("history", "executions", "--store", url)
    assert history.returncode == 0
    assert history.stdout == "no executions recorded\n"
    assert "is empty" in history.stderr


def test_a_store_whose_service_went_quiet_is_changed_with_a_warning(
    run: Run, tmp_path: Path
) -> None:
    url = _store(tmp_path)
    db = database.connect(url)
    quiet = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    try:
        presence.beat(db, quiet, {"host": "node-1", "pid": 7, "public_url": "http://x"})
        paused = run("pause", "--store", url, "--reason", "maintenance")
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout == "automation paused\n"
        assert paused.stderr == (
            "conea-monitor: warning: no running service has used this store since "
            f"2026-11-29 03:00:00 UTC; it is {url}\n"
        )
        assert control.is_paused(db)
        presence.beat(db, datetime.now(UTC) - timedelta(seconds=5), {"host": "node-1", "pid": 7})
        status = run("status", "--store", url)
        assert status.stderr == ""
        assert status.stdout.splitlines()[1].startswith("automation: PAUSED since ")
        assert status.stdout.splitlines()[1].endswith(" by cli (" + _user() + "): maintenance")
    finally:
        db.dispose()


def _user() -> str:
    import getpass

    return getpass.getuser()


def test_the_service_beats_in_its_store_and_says_when_it_stopped(run: Run, tmp_path: Path) -> None:
    config = svc.write_config(tmp_path)
    with svc.running(config) as running:
        status = run("status", "--config", str(config))
        assert status.returncode == 0, status.stderr
        assert status.stderr == ""  # the store a running service uses: no warning
        assert f"(pid {running.process.pid})" in status.stdout
    url = settings.load(config).database_url
    after = run("pause", "--config", str(config))
    assert after.returncode == 0, after.stderr
    assert after.stderr.startswith(
        "conea-monitor: warning: no running service has used this store since "
    )
    db = database.connect(url)
    try:
        assert presence.usage(db).stopped
    finally:
        db.dispose()
