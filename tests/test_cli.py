"""The command line as an SRE uses it: check, schema, explain, rbac, pause/resume, reload."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.engine.conftest import alert, notification, wait_for
from tests.support import kube_thread
from tests.support import service as svc
from tests.support.kube_objects import deployment

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "tests" / "fixtures" / "policies"

POLICY = """
policies:
  - name: rate-limit
    match: ['alertname="HighLoad"']
    target: {kind: Deployment, namespace: "{{ labels.namespace }}",
             name: "{{ labels.deployment }}"}
    steps: [[{action: kubernetes.set_env, with: {env: {RATE_LIMIT_PER_MINUTE: "100"}}}]]
"""


def cli(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_check_accepts_the_bundled_config_and_policies() -> None:
    result = cli("check", "--config", "config/conea-monitor.yml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SUCCESS: ")
    assert "kubernetes.scale" in result.stdout


def test_check_reports_every_error_with_its_place(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    shutil.copy(POLICIES / "invalid-unknown-field.yaml", bad)
    result = cli("check", str(bad))
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith(f"{bad}:") and first.count(":") >= 4  # file:line:col: field: why
    assert result.stderr.splitlines()[-1] == "FAILED: 1 error"


def test_schema_is_json_schema_of_the_policy_file() -> None:
    result = cli("schema")
    schema = json.loads(result.stdout)
    assert "policies" in schema["properties"]


def test_explain_shows_match_guardrails_and_a_live_plan(tmp_path: Path) -> None:
    with kube_thread.emulator() as emu:
        emu.add(deployment())
        folder = tmp_path / "remediations"
        folder.mkdir()
        (folder / "p.yaml").write_text(POLICY)
        config = svc.write_config(
            tmp_path,
            policies=[str(folder)],
            kubernetes={"mode": "kubeconfig", "kubeconfig": str(emu.kubeconfig(tmp_path))},
            automation={"dry_run": False},
        )
        alert_file = tmp_path / "alert.json"
        alert_file.write_bytes(notification(alert("HighLoad", "aa01"), alert("Unrelated", "aa02")))
        result = cli("explain", "--alert", str(alert_file), "--config", str(config))
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "alert HighLoad [firing] fingerprint aa01" in out
        assert "  policy rate-limit" in out
        assert "target Deployment/production/conea-api, step 1 of 1" in out
        assert "[ok  ] paused: automation is running" in out
        assert "=> execute" in out
        assert "plan kubernetes.set_env: " in out and "RATE_LIMIT_PER_MINUTE" in out
        assert "alert Unrelated [firing] fingerprint aa02\n  no policy matches" in out
        # explain changes nothing
        env = emu.read("Deployment", "production", "conea-api")
        assert "RATE_LIMIT_PER_MINUTE" not in json.dumps(env)


def test_explain_refuses_a_bad_payload_with_its_reason(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": "3"}')
    result = cli("explain", "--alert", str(bad), "--config", "config/conea-monitor.yml")
    assert result.returncode == 2
    assert "invalid Alertmanager notification" in result.stderr
    assert "version: unsupported version '3'" in result.stderr


def test_rbac_prints_the_role_the_configured_actions_need() -> None:
    result = cli("rbac", "--config", "config/conea-monitor.yml", "--namespace", "production")
    assert result.returncode == 0, result.stderr
    docs = list(yaml.safe_load_all(result.stdout))
    role = next(d for d in docs if d["kind"] == "Role")
    assert role["metadata"]["namespace"] == "production"
    resources = {r for rule in role["rules"] for r in rule["resources"]}
    assert {"deployments", "horizontalpodautoscalers"} <= resources
    assert not any("*" in rule["verbs"] for rule in role["rules"])


def test_rbac_grants_what_the_policies_diagnostics_read(tmp_path: Path) -> None:
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(
        "policies:\n"
        "  - name: investigate\n"
        "    match: ['alertname=\"ApiDown\"']\n"
        "    target: {kind: Deployment, namespace: production, name: api}\n"
        "    steps: [[{action: log}]]\n"
        "    diagnose:\n"
        "      - {action: kubernetes.events}\n"
        "      - {action: kubernetes.logs}\n"
    )
    config = tmp_path / "c.yml"
    config.write_text(f"policies: [{folder}]\n")
    result = cli("rbac", "--config", str(config), "--namespace", "production")
    assert result.returncode == 0, result.stderr
    [role] = list(yaml.safe_load_all(result.stdout))
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]},  # the target's
    ]


RESTARTS = """
policies:
  - name: restart-api
    match: ['alertname="ApiDown"']
    target: {kind: Deployment, namespace: production, name: api}
    steps: [[{action: kubernetes.restart}]]
"""
RESTARTS_AGENT = """
  - name: restart-agent
    match: ['alertname="AgentDown"']
    target: {kind: ds, namespace: production, name: node-agent}
    steps: [[{action: kubernetes.restart}]]
"""


@pytest.mark.parametrize("agent", [False, True], ids=["deployments-only", "with-daemonset"])
def test_rbac_grants_the_workload_kinds_the_policies_target(tmp_path: Path, agent: bool) -> None:
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(RESTARTS + (RESTARTS_AGENT if agent else ""))
    config = tmp_path / "c.yml"
    config.write_text(f"policies: [{folder}]\n")
    result = cli("rbac", "--config", str(config), "--namespace", "production")
    assert result.returncode == 0, result.stderr
    [role] = list(yaml.safe_load_all(result.stdout))
    resources = ["daemonsets", "deployments"] if agent else ["deployments"]
    assert role["rules"] == [
        {"apiGroups": ["apps"], "resources": resources, "verbs": ["get", "patch"]}
    ]


def test_history_refuses_an_execution_state_that_does_not_exist() -> None:
    result = cli("history", "executions", "--status", "success")
    assert result.returncode == 2
    assert result.stderr == (
        "conea-monitor: error: --status 'success' is not an execution state; one of "
        "deferred, running, succeeded, failed, rehearsed, skipped, cancelled, awaiting_approval, "
        "rejected, expired (docs/states.md)\n"
    )


def test_pause_from_the_cli_stops_a_running_service(tmp_path: Path) -> None:
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    config = svc.write_config(tmp_path, policies=[str(folder)])
    with svc.running(config) as service:
        paused = cli("pause", "--config", str(config), "--reason", "maintenance")
        assert paused.stdout.strip() == "automation paused"
        assert service.get("/api/v1/status").json()["paused"] is True
        service.post(notification(alert("HighLoad", "ab01")))
        wait_for(
            lambda: service.get("/api/v1/audit", params={"fingerprint": "ab01"}).json()["items"],
            10,
            "skip record",
        )
        [skip] = service.get("/api/v1/audit", params={"fingerprint": "ab01"}).json()["items"]
        assert skip["outcome"] == "paused"
        cli("resume", "--config", str(config))
        assert service.get("/api/v1/status").json()["paused"] is False


def test_bad_reload_keeps_the_last_good_policies(tmp_path: Path) -> None:
    folder = tmp_path / "remediations"
    folder.mkdir()
    (folder / "p.yaml").write_text(POLICY)
    config = svc.write_config(tmp_path, policies=[str(folder)])
    with svc.running(config) as service:
        (folder / "p.yaml").write_text(POLICY.replace("kubernetes.set_env", "kubernetes.nope"))
        response = service.admin("/-/reload")
        assert response.status_code == 422
        assert "unknown action 'kubernetes.nope'" in response.json()["details"][0]["reason"]
        assert "p.yaml:" in response.json()["details"][0]["reason"]
        assert service.get("/api/v1/status").json()["policies"] == ["rate-limit"]
        metrics = service.get("/metrics").text
        assert "conea_monitor_config_last_reload_successful 0.0" in metrics
        assert service.get("/readyz").status_code == 200  # the last good config still runs

        # A good file and SIGHUP: the new policies are in force.
        (folder / "p.yaml").write_text(POLICY.replace("rate-limit", "rate-limit-v2"))
        os.kill(service.process.pid, signal.SIGHUP)
        wait_for(
            lambda: service.get("/api/v1/status").json()["policies"] == ["rate-limit-v2"],
            10,
            "reload on SIGHUP",
        )
        assert "conea_monitor_config_last_reload_successful 1.0" in service.get("/metrics").text


def test_check_with_a_config_checks_its_probe_modules_too(tmp_path: Path) -> None:
    probes = tmp_path / "probes.yml"
    probes.write_text("modules:\n  x:\n    prober: nope\n")
    config = svc.write_config(tmp_path, probes_file=str(probes))
    result = cli("check", "--config", str(config))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"conea-monitor: error: {probes}:3:13: modules.x.prober: unknown prober 'nope' "
        "(known: http, tcp, postgres, redis, dns, icmp, grpc)"
    )


# Proxy headers: believed only from server.trusted_proxies ------------------------------


def _client_seen(trusted: list[str], peer: str, forwarded_for: str) -> str:
    """The client address the app sees through the uvicorn config ``serve`` runs with."""
    import asyncio

    from monitor import settings as settings_mod
    from monitor.cli import server_config

    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["client"][0])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    settings = settings_mod.load(None, server={"trusted_proxies": trusted})
    config = server_config(app, settings, "127.0.0.1", 0)
    config.load()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/pause",
        "raw_path": b"/api/v1/pause",
        "query_string": b"",
        "headers": [(b"x-forwarded-for", forwarded_for.encode())],
        "client": (peer, 40000),
        "server": ("127.0.0.1", 9115),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(config.loaded_app(scope, receive, send))
    return seen[0]


def test_a_remote_client_claiming_loopback_is_not_believed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "*")  # uvicorn's own setting: ignored
    assert _client_seen([], "203.0.113.9", "127.0.0.1") == "203.0.113.9"
    # From a trusted proxy the forwarded address is the client, and only then.
    assert _client_seen(["10.0.0.0/8"], "10.1.2.3", "203.0.113.9") == "203.0.113.9"
    assert _client_seen(["10.0.0.0/8"], "203.0.113.9", "127.0.0.1") == "203.0.113.9"


def test_behind_a_trusted_proxy_a_forged_loopback_hop_is_refused(tmp_path: Path) -> None:
    # The real server: a proxy on 127.0.0.1 appends the address it saw (203.0.113.9)
    # to the X-Forwarded-For the client forged; the webhook without credentials takes
    # loopback clients only, so it refuses.
    config = svc.write_config(tmp_path, server={"trusted_proxies": ["127.0.0.1/32", "::1/128"]})
    body = notification(alert("HighLoad", "fe01"))
    with svc.running(config, {"FORWARDED_ALLOW_IPS": "*"}) as service:
        forged = service.post(body, headers={"x-forwarded-for": "127.0.0.1, 203.0.113.9"})
        assert forged.status_code == 401
        assert service.post(body).status_code == 200  # the proxy host itself


def test_without_trusted_proxies_forwarded_headers_are_ignored(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path)
    body = notification(alert("HighLoad", "fe02"))
    with svc.running(config, {"FORWARDED_ALLOW_IPS": "*"}) as service:
        # The TCP peer (loopback) counts, not what the header says.
        response = service.post(body, headers={"x-forwarded-for": "203.0.113.9"})
        assert response.status_code == 200


def test_a_trusted_proxy_that_is_not_a_network_is_a_config_error(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, server={"trusted_proxies": ["*"]})
    result = cli("serve", "--config", str(config), "--port", "1")
    assert result.returncode == 2
    assert ".yml:5:5: server.trusted_proxies[0]: value is not a valid IPv4 or IPv6 network" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr


def test_resume_from_the_cli_closes_an_open_breaker(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from monitor import settings
    from monitor.store import breaker, database

    config = svc.write_config(tmp_path, automation={"max_actions": {"count": 5, "window": "10m"}})
    db = database.connect(settings.load(config).database_url)
    try:
        database.migrate(db)
        breaker.open_breaker(db, datetime.now(UTC), "breaker open: 5 live actions")
        resumed = cli("resume", "--config", str(config))
        assert resumed.stdout == "automation resumed\nbreaker closed\n", resumed.stderr
        state = breaker.breaker_state(db)
        assert not state.open and str(state.closed_by).startswith("cli (")
        again = cli("resume", "--config", str(config))
        assert again.stdout == "automation resumed\n"
    finally:
        db.dispose()
