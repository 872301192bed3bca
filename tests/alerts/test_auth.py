"""Webhook authentication as Alertmanager's http_config sends it."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import settings as settings_mod
from monitor.auth import Authenticator
from tests.support import service as svc

BODY = svc.fixture_bytes("firing-single.json")


@pytest.fixture(scope="module")
def bearer_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[svc.Service]:
    tmp: Path = tmp_path_factory.mktemp("auth")
    token = tmp / "token"
    token.write_text("s3cr3t-token\n")  # a trailing newline, as files usually have
    config = svc.write_config(tmp, webhook={"bearer_token_file": str(token)})
    with svc.running(config) as service:
        yield service


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        ("Bearer s3cr3t-token", 200),
        ("bearer s3cr3t-token", 200),
        ("Bearer s3cr3t-tokeN", 401),
        ("Bearer", 401),
        (basic("alertmanager", "s3cr3t-token"), 401),
        (None, 401),
    ],
)
def test_bearer_token_from_file(
    bearer_service: svc.Service, authorization: str | None, status: int
) -> None:
    headers = {"authorization": authorization} if authorization else {}
    response = bearer_service.post(BODY, headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"
        assert "authentication required" in response.json()["error"]


def test_unauthorized_requests_store_nothing_and_are_counted(bearer_service: svc.Service) -> None:
    before = len(bearer_service.get("/api/v1/notifications").json()["items"])
    bearer_service.post(BODY, headers={"authorization": "Bearer nope"})
    assert len(bearer_service.get("/api/v1/notifications").json()["items"]) == before
    assert (
        'conea_monitor_webhooks_total{outcome="unauthorized"}'
        in bearer_service.get("/metrics").text
    )


def test_basic_auth_with_password_from_environment(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, webhook={"basic_auth": {"username": "alertmanager"}})
    env = {"CONEA_MONITOR_WEBHOOK__BASIC_AUTH__PASSWORD": "pa:ss"}
    with svc.running(config, env) as service:
        ok = service.post(BODY, headers={"authorization": basic("alertmanager", "pa:ss")})
        assert ok.status_code == 200
        for wrong in (basic("alertmanager", "pa:sS"), basic("root", "pa:ss"), "Basic %%%"):
            assert service.post(BODY, headers={"authorization": wrong}).status_code == 401
        assert "pa:ss" not in service.logs()


def test_without_credentials_only_loopback_clients_are_accepted(tmp_path: Path) -> None:
    settings = settings_mod.load(svc.write_config(tmp_path))
    auth = Authenticator(settings)
    assert auth.open_to_loopback_only
    assert auth.check(None, "127.0.0.1") and auth.check(None, "::1")
    assert not auth.check(None, "10.0.0.7")
    assert not auth.check("Bearer anything", "192.168.1.20")
    assert not auth.check(None, None)


def test_start_up_says_it_accepts_loopback_only(tmp_path: Path) -> None:
    with svc.running(svc.write_config(tmp_path)) as service:
        assert service.post(BODY).status_code == 200
        assert "accepting loopback clients only" in service.logs()


def test_missing_token_file_fails_at_start_with_the_path(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = svc.write_config(tmp_path, webhook={"bearer_token_file": str(tmp_path / "nope")})
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert f"cannot read webhook.bearer_token_file from '{tmp_path / 'nope'}'" in result.stderr
    assert "Traceback" not in result.stderr
