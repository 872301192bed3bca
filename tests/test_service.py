"""Health, readiness, metrics and the history command of a running service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.support import service as svc


def test_health_readiness_and_own_metrics(tmp_path: Path) -> None:
    with svc.running(svc.write_config(tmp_path)) as service:
        assert service.get("/healthz").json() == {"status": "ok"}
        assert service.get("/readyz").json() == {"status": "ready"}
        service.post(svc.fixture_bytes("firing-group-of-3.json"))
        service.post(b"{}")
        families = {f.name: f for f in text_string_to_metric_families(service.get("/metrics").text)}
        webhooks = {
            s.labels["outcome"]: s.value
            for s in families["conea_monitor_webhooks"].samples
            if s.name.endswith("_total")
        }
        assert webhooks == {"accepted": 1.0, "invalid": 1.0}
        duration = families["conea_monitor_webhook_duration_seconds"]
        count = [s.value for s in duration.samples if s.name.endswith("_count")]
        assert count == [1.0]
        build = families["conea_monitor_build_info"].samples[0]
        assert build.labels["version"] == __import__("monitor").__version__
        assert all(name.startswith("conea_monitor_") for name in families)


def test_readyz_fails_when_the_store_is_gone(tmp_path: Path, postgres: object) -> None:
    from tests.support.services import Postgres

    assert isinstance(postgres, Postgres)
    name = postgres.create_database("conea_readyz")
    config = svc.write_config(tmp_path, store={"url": postgres.url(name)})
    with svc.running(config) as service:
        import psycopg

        with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        response = service.get("/readyz")
        assert response.status_code == 503
        assert response.json()["problems"] == ["store unreachable: OperationalError"]
        assert service.get("/healthz").status_code == 200
        # Alertmanager gets a 503 (and retries) rather than a lost notification.
        posted = service.post(svc.fixture_bytes("firing-single.json"))
        assert posted.status_code == 503
        assert posted.json()["error"].endswith("Alertmanager will retry")


def test_history_prints_stored_alerts(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path)
    with svc.running(config) as service:
        service.post(svc.fixture_bytes("firing-group-of-3.json"))
        service.post(svc.fixture_bytes("firing-group-of-3.json"))
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "history", "alerts", "--config", str(config)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    lines = result.stdout.splitlines()
    assert lines[0].split() == [
        "ID",
        "LAST_RECEIVED_AT",
        "STATUS",
        "ALERTNAME",
        "FINGERPRINT",
        "STARTS_AT",
        "DELIVERIES",
    ]
    assert len(lines) == 4
    assert all("DemoHighValue" in line and line.split()[-1] == "2" for line in lines[1:])
    filtered = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor",
            "history",
            "--status",
            "resolved",
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert filtered.stdout.strip() == "no alerts recorded"


def test_json_logs_never_carry_credentials(tmp_path: Path) -> None:
    import json

    token = tmp_path / "token"
    token.write_text("sup3r-s3cret-t0ken")
    config = svc.write_config(tmp_path, webhook={"bearer_token_file": str(token)})
    env = {"CONEA_MONITOR_LOG__FORMAT": "json", "CONEA_MONITOR_LOG__LEVEL": "DEBUG"}
    with svc.running(config, env) as service:
        service.post(
            svc.fixture_bytes("firing-single.json"),
            headers={"authorization": "Bearer sup3r-s3cret-t0ken"},
        )
        service.post(
            svc.fixture_bytes("firing-single.json"), headers={"authorization": "Bearer wrong-t0ken"}
        )
        logs = service.logs()
    records = [json.loads(line) for line in logs.splitlines() if line.startswith("{")]
    assert records, logs
    assert {"time", "level", "name", "message"} <= set(records[0])
    assert any(r["message"].startswith("webhook authentication: bearer") for r in records)
    assert "sup3r-s3cret-t0ken" not in logs and "wrong-t0ken" not in logs
