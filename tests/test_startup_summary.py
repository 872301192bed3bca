"""Start-up says what is on and off, and why, without a secret value (monitor/summary.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor import summary
from monitor.settings import Settings
from tests.support import service as svc
from tests.support import services


def summary_lines(logs: str) -> list[str]:
    return [
        line.split(summary.PREFIX, 1)[1] for line in logs.splitlines() if summary.PREFIX in line
    ]


def test_a_bare_config_says_what_is_off_and_why(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, kubernetes={"mode": "none"})
    with svc.running(config) as service:
        logs = service.logs()
    assert summary_lines(logs) == [
        "mode: rehearsal (no Kubernetes credentials: kubernetes.mode: none; "
        "automation.mode: live to act)",
        "verification: off (prometheus_url is not set: verify.promql cannot run, recovery is "
        "judged by the alert's own state)",
        "still-firing check: off (neither alertmanager_url nor prometheus_url is set: only the "
        "webhooks received tell whether an alert still fires)",
        "notifiers: none configured (notify steps cannot run)",
        "PostgreSQL targets: none configured (postgres.* actions cannot run)",
        "breaker: off (automation.max_actions is not set)",
        "approval: only steps and policies with approval: required; no "
        "automation.approval.notifier: requests wait in the API and `conea-monitor approve`; "
        "unanswered for 30m, the next step runs",
        "namespaces: any except kube-*",
        f"store: sqlite:///{(tmp_path / 'data' / 'conea-monitor.db').resolve()}",
    ]
    assert " INFO monitor: start-up: mode: rehearsal" in logs


def test_each_notifier_and_target_says_whether_its_secret_resolves(tmp_path: Path) -> None:
    password = tmp_path / "pg-password"
    password.write_text("pg-s3cret-value\n")
    config = svc.write_config(
        tmp_path,
        kubernetes={"mode": "none"},
        prometheus_url="http://prom:pr0m-s3cret@127.0.0.1:9/",
        alertmanager_url="http://127.0.0.1:9/",
        store={"url": f"sqlite:///{tmp_path / 'store.db'}"},
        notifiers={
            "oncall": {"kind": "slack", "url": {"env": "CONEA_TEST_SLACK_URL"}},
            "unset": {"kind": "slack", "url": {"env": "CONEA_TEST_UNSET_URL"}},
            "plain": {
                "kind": "webhook",
                "url": "https://hooks.example/services/T0/B0/h00k-s3cret",
                "headers": {"Authorization": {"secret": {"file": str(tmp_path / "missing")}}},
            },
        },
        postgres_targets={
            "conea-production": {"host": "db", "user": "conea", "password_file": str(password)},
            "other": {"host": "db2", "port": 6432, "user": "u", "password_env": "CONEA_TEST_PGPW"},
            "trusting": {"host": "db3", "user": "u"},
        },
        automation={
            "mode": "approval",
            "approval": {"notifier": "oncall", "timeout": "1h"},
            "max_actions": {"count": 5, "window": "10m", "notifier": "oncall"},
            "namespaces_allow": ["shop", "pay-*"],
            "namespaces_deny": [],
        },
    )
    env = {"CONEA_TEST_SLACK_URL": "https://hooks.example/sl4ck-s3cret"}
    with svc.running(config, env) as service:
        logs = service.logs()
    assert summary_lines(logs) == [
        "mode: approval (automation.mode: approval); Kubernetes actions cannot run "
        "(kubernetes.mode: none)",
        "verification: on (verify.promql is asked of http://prom@127.0.0.1:9/)",
        "still-firing check: Alertmanager at http://127.0.0.1:9/",
        "notifier 'oncall': slack, url env:CONEA_TEST_SLACK_URL (resolvable)",
        "notifier 'plain': webhook, url https://hooks.example/…, header Authorization "
        f"file:{tmp_path / 'missing'} (file {tmp_path / 'missing'} does not exist)",
        "notifier 'unset': slack, url env:CONEA_TEST_UNSET_URL (env CONEA_TEST_UNSET_URL not set)",
        f"PostgreSQL target 'conea-production': conea@db:5432/postgres, password "
        f"file:{password} (resolvable)",
        "PostgreSQL target 'other': u@db2:6432/postgres, password env:CONEA_TEST_PGPW "
        "(env CONEA_TEST_PGPW not set)",
        "PostgreSQL target 'trusting': u@db3:5432/postgres, no password configured",
        "breaker: on: at most 5 live actions in 10m (reset auto, tells 'oncall')",
        "approval: every step that changes something; requests go to notifier 'oncall'; "
        "unanswered for 1h, the next step runs",
        "namespaces: shop, pay-*",
        f"store: sqlite:///{tmp_path / 'store.db'}",
    ]
    for secret in ("pg-s3cret-value", "pr0m-s3cret", "sl4ck-s3cret", "h00k-s3cret"):
        assert secret not in logs


def test_urls_lose_their_password_only() -> None:
    assert summary.safe_url("postgresql+psycopg://conea:pw@db:5432/x") == (
        "postgresql+psycopg://conea@db:5432/x"
    )
    assert summary.safe_url("http://127.0.0.1:9090") == "http://127.0.0.1:9090"


def test_start_up_says_which_named_services_do_not_answer(
    tmp_path: Path, postgres: services.Postgres
) -> None:
    """Prometheus and a database that answer, a closed port, a role that does not exist:
    each a log line, the failures on /readyz (still ready), no password anywhere."""
    password = tmp_path / "pg-password"
    password.write_text(postgres.password + "\n")
    closed = services.free_port()
    db = {"host": postgres.host, "port": postgres.port, "password_file": str(password)}
    with services.prometheus_server("global: {scrape_interval: 1m}\n") as prom:
        config = svc.write_config(
            tmp_path,
            kubernetes={"mode": "none"},
            prometheus_url=prom.url,
            alertmanager_url=f"http://127.0.0.1:{closed}",
            postgres_targets={
                "main": {**db, "user": postgres.user},
                "typo": {**db, "user": "conea_monitr"},
                "gone": {**db, "user": postgres.user, "port": closed},
            },
        )
        with svc.running(config) as service:
            services.wait_for(
                lambda: "unreachable" in service.get("/readyz").json(), 20, "reachability"
            )
            ready = service.get("/readyz")
            logs = service.logs()
    where = f"{postgres.host}:{postgres.port}/postgres"
    assert ready.status_code == 200
    unreachable = ready.json()["unreachable"]
    assert [line.split(": ", 2)[:2] for line in unreachable] == [
        [f"Alertmanager http://127.0.0.1:{closed}", "does not answer"],
        [f"PostgreSQL target 'gone' ({postgres.user}@{postgres.host}:{closed}/postgres)",
         "cannot connect"],
        ["PostgreSQL target 'typo' (conea_monitr@" + where + ")", "cannot connect"],
    ]  # fmt: skip
    assert "Connection refused" in unreachable[1]
    assert 'role "conea_monitr" does not exist' in unreachable[2]
    checks = [
        (level, line.split("start-up check: ", 1)[1])
        for line in logs.splitlines()
        if "start-up check: " in line
        for level in ("WARNING" if " WARNING " in line else "INFO",)
    ]
    assert ("INFO", f"Prometheus {prom.url}: answers") in checks
    assert ("INFO", f"PostgreSQL target 'main' ({postgres.user}@{where}): answers") in checks
    assert sorted(line for level, line in checks if level == "WARNING") == sorted(unreachable)
    assert postgres.password not in logs


def test_pagers_say_where_they_send_and_whether_their_secret_resolves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONEA_TEST_PD_KEY", "R0ut1ngKeyOfTestsAbCdEf012345678")
    monkeypatch.delenv("CONEA_TEST_SMTP_PW", raising=False)
    settings = Settings.model_validate(
        {
            "kubernetes": {"mode": "none"},
            "notifiers": {
                "pager": {"kind": "pagerduty", "routing_key": {"env": "CONEA_TEST_PD_KEY"}},
                "mail": {
                    "kind": "email",
                    "host": "smtp.conea.io",
                    "from": "monitor@conea.io",
                    "to": ["oncall@conea.io"],
                    "username": "monitor",
                    "password": {"env": "CONEA_TEST_SMTP_PW"},
                },
            },
        }
    )
    lines = summary_lines("\n".join(summary.lines(settings, kube=False, rehearsal=True)))
    assert (
        "notifier 'mail': email, smtp://smtp.conea.io:587 (STARTTLS), 1 recipient(s), "
        "password env:CONEA_TEST_SMTP_PW (env CONEA_TEST_SMTP_PW not set)"
    ) in lines
    assert (
        "notifier 'pager': pagerduty, url https://events.pagerduty.com/…, routing key "
        "env:CONEA_TEST_PD_KEY (resolvable)"
    ) in lines
    assert "R0ut1ngKeyOfTestsAbCdEf012345678" not in "\n".join(lines)
