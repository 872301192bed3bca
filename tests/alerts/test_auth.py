"""Webhook authentication as Alertmanager's http_config sends it."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor import settings as settings_mod
from monitor.auth import Authenticator, Role
from monitor.errors import ConfigError
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


def opens_operator_routes(auth: Authenticator, authorization: str | None) -> bool:
    """What ``monitor.api.access.operator`` asks, from loopback (never enough alone)."""
    host = "127.0.0.1"
    return auth.allows(auth.identify(authorization, host), Role.OPERATOR, host)


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
    # webhook credentials are set: reading needs a viewer or operator credential
    operator = {"authorization": f"Bearer {bearer_service.operator_token()}"}
    before = len(bearer_service.get("/api/v1/notifications", headers=operator).json()["items"])
    bearer_service.post(BODY, headers={"authorization": "Bearer nope"})
    after = bearer_service.get("/api/v1/notifications", headers=operator).json()["items"]
    assert len(after) == before
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


# Fail closed: an empty credential is a start-up error naming where it came from ----------


def _authenticator(config: Path) -> Authenticator:
    return Authenticator(settings_mod.load(config))


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
def test_an_empty_bearer_token_from_the_environment_is_a_start_up_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CONEA_MONITOR_WEBHOOK__BEARER_TOKEN", value)
    with pytest.raises(ConfigError) as caught:
        _authenticator(svc.write_config(tmp_path))
    message = str(caught.value)
    assert "environment CONEA_MONITOR_WEBHOOK__BEARER_TOKEN: webhook.bearer_token:" in message
    assert "must not be empty" in message


@pytest.mark.parametrize(
    ("section", "setting", "file_key"),
    [
        ("webhook", "webhook.bearer_token_file", "bearer_token_file"),
        ("automation", "automation.api_token_file", "api_token_file"),
    ],
)
@pytest.mark.parametrize("content", ["", "\n", "  \r\n"])
def test_an_empty_token_file_is_a_start_up_error_naming_the_path(
    tmp_path: Path, section: str, setting: str, file_key: str, content: str
) -> None:
    token = tmp_path / "token"
    token.write_text(content)
    config = svc.write_config(tmp_path, **{section: {file_key: str(token)}})
    with pytest.raises(ConfigError) as caught:
        _authenticator(config)
    assert (
        str(caught.value)
        == f"{setting} {str(token)!r}: the credential is empty (that would let anyone in)"
    )


def test_an_empty_basic_auth_password_file_or_user_is_a_start_up_error(tmp_path: Path) -> None:
    password = tmp_path / "password"
    password.write_text("\n")
    basic = {"username": "alertmanager", "password_file": str(password)}
    with pytest.raises(
        ConfigError, match=r"webhook.basic_auth.password_file '.*password': the credential is empty"
    ):
        _authenticator(svc.write_config(tmp_path, webhook={"basic_auth": basic}))
    basic = {"username": " ", "password": "pw"}
    with pytest.raises(
        ConfigError,
        match=r"conea-monitor.yml:\d+:\d+: webhook.basic_auth.username: .*must not be empty",
    ):
        _authenticator(svc.write_config(tmp_path, webhook={"basic_auth": basic}))


def test_an_empty_operator_token_in_the_config_file_names_file_and_line(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, automation={"api_token": ""})
    with pytest.raises(
        ConfigError, match=r"conea-monitor.yml:\d+:\d+: automation.api_token: .*must not be empty"
    ):
        _authenticator(config)


def test_the_service_refuses_to_start_with_an_empty_token(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = svc.write_config(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "monitor", "serve", "--config", str(config), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONEA_MONITOR_WEBHOOK__BEARER_TOKEN": ""},
    )
    assert result.returncode == 2
    assert "CONEA_MONITOR_WEBHOOK__BEARER_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_credentials_are_stripped_with_a_warning_that_never_shows_them(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = tmp_path / "token"
    token.write_text("  tok-with-spaces \n")
    config = svc.write_config(
        tmp_path, webhook={"bearer_token_file": str(token)}, automation={"api_token": " op-token "}
    )
    with caplog.at_level("WARNING", logger="monitor.auth"):
        auth = _authenticator(config)
    assert auth.check("Bearer tok-with-spaces", "10.0.0.7")
    assert opens_operator_routes(auth, "Bearer op-token")
    warnings = [r.getMessage() for r in caplog.records]
    assert (
        f"webhook.bearer_token_file {str(token)!r}: surrounding whitespace stripped" in warnings[0]
    )
    assert (
        "automation.api_token (or CONEA_MONITOR_AUTOMATION__API_TOKEN): surrounding" in warnings[1]
    )
    assert not any("tok-with-spaces" in w or "op-token" in w for w in warnings)


def test_a_token_file_with_only_a_final_newline_is_not_warned_about(
    bearer_service: svc.Service,
) -> None:
    assert "whitespace stripped" not in bearer_service.logs()


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Bearer    ", "Basic", "Basic "])
def test_a_bare_scheme_never_authenticates(tmp_path: Path, authorization: str) -> None:
    config = svc.write_config(
        tmp_path,
        webhook={"basic_auth": {"username": "am", "password": "pw"}},
        automation={"api_token": "op"},
    )
    auth = _authenticator(config)
    assert not auth.check(authorization, "127.0.0.1")
    assert not opens_operator_routes(auth, authorization)


# Operators: their own token, needed from every address ---------------------------------


def test_the_webhook_token_does_not_open_the_operator_endpoints(tmp_path: Path) -> None:
    config = svc.write_config(tmp_path, webhook={"bearer_token": "hook-token"})
    auth = _authenticator(config)
    assert auth.check("Bearer hook-token", "10.0.0.7")
    assert not opens_operator_routes(auth, "Bearer hook-token")
    generated = (tmp_path / "data" / "admin-token").read_text().strip()
    assert opens_operator_routes(auth, f"Bearer {generated}")


def test_a_configured_operator_token_file_is_used_and_nothing_is_generated(
    tmp_path: Path,
) -> None:
    token = tmp_path / "operator"
    token.write_text("operator-s3cret\n")
    auth = _authenticator(svc.write_config(tmp_path, automation={"api_token_file": str(token)}))
    assert opens_operator_routes(auth, "Bearer operator-s3cret")
    assert not opens_operator_routes(auth, "Bearer operator-s3creT")
    assert not (tmp_path / "data" / "admin-token").exists()
