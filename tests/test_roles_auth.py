"""Roles and their credentials (monitor/auth.py): who each credential is, what it may do,
and the settings' start-up errors naming the field."""

from __future__ import annotations

import base64
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from monitor import settings as settings_mod
from monitor.api import access
from monitor.auth import Authenticator, Identity, Role
from monitor.errors import ConfigError
from tests.support import service as svc

LOOPBACK = "127.0.0.1"
REMOTE = "10.1.2.3"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def authenticator(tmp_path: Path, **config: Any) -> Authenticator:
    return Authenticator(settings_mod.load(svc.write_config(tmp_path, **config)))


FULL = {
    "webhook": {"bearer_token": "hook-tok"},
    "automation": {"api_token": "op-tok"},
    "access": {
        "viewer_token": "view-tok",
        "basic_auth": [
            {"username": "alice", "password": "alice-pw", "role": "viewer"},
            {"username": "bob", "password": "bob-pw", "role": "operator"},
        ],
    },
}


@pytest.fixture
def full(tmp_path: Path) -> Authenticator:
    return authenticator(tmp_path, **FULL)


def test_each_credential_is_identified_by_a_name_that_is_never_the_secret(
    full: Authenticator,
) -> None:
    assert full.identify("Bearer op-tok", REMOTE) == Identity(Role.OPERATOR, "operator-token")
    assert full.identify("Bearer view-tok", REMOTE) == Identity(Role.VIEWER, "viewer-token")
    assert full.identify("Bearer hook-tok", REMOTE) == Identity(Role.WEBHOOK, "webhook")
    assert full.identify(basic("alice", "alice-pw"), REMOTE) == Identity(Role.VIEWER, "basic:alice")
    assert full.identify(basic("bob", "bob-pw"), REMOTE) == Identity(Role.OPERATOR, "basic:bob")
    assert full.identify_token("op-tok") == Identity(Role.OPERATOR, "operator-token")
    assert full.identify_token("view-tok") == Identity(Role.VIEWER, "viewer-token")
    assert full.identify_token("hook-tok") is None  # the webhook's token is not a bearer login
    assert full.identify_basic("bob", "bob-pw") == Identity(Role.OPERATOR, "basic:bob")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer op-toK",
        "Bearer view-tok ",  # stripped: still the viewer's? no: the header value is stripped
        basic("alice", "bob-pw"),
        basic("bob", "alice-pw"),
        basic("carol", "alice-pw"),
        "Basic %%%",
        "Basic " + base64.b64encode(b"alice").decode(),
        "Token op-tok",
    ],
)
def test_wrong_or_malformed_credentials_identify_nobody(
    full: Authenticator, authorization: str | None
) -> None:
    identity = full.identify(authorization, LOOPBACK)
    if authorization == "Bearer view-tok ":
        assert identity == Identity(Role.VIEWER, "viewer-token")
        return
    assert identity is None


def test_an_operator_may_read_a_viewer_may_not_act_and_the_webhook_does_neither(
    full: Authenticator,
) -> None:
    operator = full.identify("Bearer op-tok", REMOTE)
    viewer = full.identify(basic("alice", "alice-pw"), REMOTE)
    hook = full.identify("Bearer hook-tok", REMOTE)
    assert full.allows(operator, Role.VIEWER, REMOTE)
    assert full.allows(operator, Role.OPERATOR, REMOTE)
    assert full.allows(viewer, Role.VIEWER, REMOTE)
    assert not full.allows(viewer, Role.OPERATOR, REMOTE)
    assert not full.allows(hook, Role.VIEWER, REMOTE)
    assert not full.allows(hook, Role.OPERATOR, REMOTE)
    assert full.allows(hook, Role.WEBHOOK, REMOTE)


def test_with_credentials_configured_loopback_reads_only_with_one(full: Authenticator) -> None:
    assert full.reading_needs_credentials
    assert full.identify(None, LOOPBACK) is None
    assert not full.allows(None, Role.VIEWER, LOOPBACK)


@pytest.mark.parametrize(
    "config",
    [
        {"access": {"viewer_token": "v"}},
        {"access": {"basic_auth": [{"username": "a", "password": "p", "role": "viewer"}]}},
        {"webhook": {"bearer_token": "h"}},
        {"webhook": {"basic_auth": {"username": "am", "password": "p"}}},
    ],
)
def test_any_viewer_basic_or_webhook_credential_closes_reading_to_anonymous_loopback(
    tmp_path: Path, config: dict[str, Any]
) -> None:
    auth = authenticator(tmp_path, **config)
    assert auth.reading_needs_credentials
    assert not auth.allows(auth.identify(None, LOOPBACK), Role.VIEWER, LOOPBACK)


def test_with_none_configured_loopback_may_read_but_never_act(tmp_path: Path) -> None:
    auth = authenticator(tmp_path, automation={"api_token": "op-tok"})
    assert not auth.reading_needs_credentials
    anonymous = auth.identify(None, LOOPBACK)
    assert anonymous == Identity(Role.VIEWER, "loopback")
    assert auth.allows(anonymous, Role.VIEWER, LOOPBACK)
    assert not auth.allows(anonymous, Role.OPERATOR, LOOPBACK)
    assert auth.identify(None, "::1") == anonymous
    assert auth.identify(None, REMOTE) is None
    assert not auth.allows(None, Role.VIEWER, REMOTE)
    assert not auth.allows(anonymous, Role.VIEWER, REMOTE)  # an identity is no address
    assert auth.identify("Bearer not-a-token", LOOPBACK) is None  # a wrong one is refused
    assert not auth.allows(None, Role.VIEWER, LOOPBACK)
    operator = auth.identify("Bearer op-tok", REMOTE)
    assert auth.allows(operator, Role.VIEWER, REMOTE)
    assert auth.allows(operator, Role.OPERATOR, REMOTE)


def test_the_generated_operator_token_works_and_keeps_loopback_reading(tmp_path: Path) -> None:
    auth = authenticator(tmp_path)
    generated = (tmp_path / "data" / "admin-token").read_text().strip()
    assert auth.identify_token(generated) == Identity(Role.OPERATOR, "operator-token")
    assert not auth.reading_needs_credentials


def test_viewer_token_and_password_from_files(tmp_path: Path) -> None:
    (tmp_path / "viewer").write_text("view-from-file\n")
    (tmp_path / "pw").write_text("pw-from-file\n")
    auth = authenticator(
        tmp_path,
        access={
            "viewer_token_file": "viewer",  # relative to the config file
            "basic_auth": [{"username": "carol", "password_file": "pw", "role": "operator"}],
        },
    )
    assert auth.identify_token("view-from-file") == Identity(Role.VIEWER, "viewer-token")
    assert auth.identify_basic("carol", "pw-from-file") == Identity(Role.OPERATOR, "basic:carol")


def test_viewer_token_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONEA_MONITOR_ACCESS__VIEWER_TOKEN", "view-env")
    auth = authenticator(tmp_path)
    assert auth.identify_token("view-env") == Identity(Role.VIEWER, "viewer-token")
    assert auth.reading_needs_credentials


# Start-up errors naming the field ------------------------------------------------------


@pytest.mark.parametrize(
    ("access", "message"),
    [
        (
            {"viewer_token": "  "},
            r"conea-monitor.yml:\d+:\d+: access.viewer_token: .*must not be empty",
        ),
        (
            {"viewer_token": "a", "viewer_token_file": "f"},
            r"conea-monitor.yml:\d+:\d+: access: Value error, set at most one of viewer_token, "
            r"viewer_token_file",
        ),
        (
            {"basic_auth": [{"username": "a", "role": "viewer"}]},
            r"conea-monitor.yml:\d+:\d+: access.basic_auth\[0\]: Value error, set exactly one of "
            r"password, password_file",
        ),
        (
            {
                "basic_auth": [
                    {"username": "a", "password": "p", "role": "viewer"},
                    {"username": "b", "password": "p", "role": "viewer"},
                    {"username": "a", "password": "q", "role": "operator"},
                ]
            },
            r"conea-monitor.yml:\d+:\d+: access.basic_auth\[2\].username: username 'a' is listed "
            r"twice",
        ),
        (
            {"basic_auth": [{"username": "a", "password": "p", "role": "admin"}]},
            r"conea-monitor.yml:\d+:\d+: access.basic_auth\[0\].role: Input should be 'viewer' or "
            r"'operator'",
        ),
        (
            {"basic_auth": [{"username": "a", "password": "p"}]},
            r"access.basic_auth\[0\].role: Field required",
        ),
        (
            {"basic_auth": [{"username": "a:b", "password": "p", "role": "viewer"}]},
            r"access.basic_auth\[0\].username: Value error, must not contain ':'",
        ),
        (
            {"basic_auth": [{"username": "a", "password": "", "role": "viewer"}]},
            r"access.basic_auth\[0\].password: .*must not be empty",
        ),
        (
            {
                "basic_auth": [
                    {"username": f"u{i}", "password": "p", "role": "viewer"} for i in range(33)
                ]
            },
            r"access.basic_auth: List should have at most 32 items",
        ),
    ],
)
def test_bad_access_settings_are_start_up_errors_naming_the_field(
    tmp_path: Path, access: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        authenticator(tmp_path, access=access)


def test_an_empty_viewer_token_file_names_the_setting_and_path(tmp_path: Path) -> None:
    (tmp_path / "viewer").write_text("\n")
    with pytest.raises(ConfigError) as caught:
        authenticator(tmp_path, access={"viewer_token_file": str(tmp_path / "viewer")})
    assert str(caught.value) == (
        f"access.viewer_token_file {str(tmp_path / 'viewer')!r}: the credential is empty "
        "(that would let anyone in)"
    )


def test_an_empty_password_file_names_the_user_and_path(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text(" \n")
    user = {"username": "alice", "password_file": str(tmp_path / "pw"), "role": "viewer"}
    with pytest.raises(ConfigError) as caught:
        authenticator(tmp_path, access={"basic_auth": [user]})
    assert str(caught.value) == (
        f"access.basic_auth[0].password_file {str(tmp_path / 'pw')!r}: the credential is empty "
        "(that would let anyone in)"
    )


def test_an_empty_viewer_token_from_the_environment_names_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONEA_MONITOR_ACCESS__VIEWER_TOKEN", " ")
    with pytest.raises(ConfigError, match="environment CONEA_MONITOR_ACCESS__VIEWER_TOKEN"):
        authenticator(tmp_path)


# The dependencies (monitor/api/access.py) on a route of their own ------------------------


def _tiny_app(auth: Authenticator) -> Any:
    app = FastAPI()
    app.state.runtime = SimpleNamespace(auth=auth)

    @app.get("/read")
    async def read(request: Request, who: access.Viewer) -> dict[str, str]:
        assert request.state.identity == who
        return {"name": who.name}

    @app.post("/act")
    async def act(who: access.Operator) -> dict[str, str]:
        return {"name": who.name}

    return app


async def _call(app: Any, method: str, path: str, client: str, **headers: str) -> Any:
    transport = httpx.ASGITransport(app=app, client=(client, 1234))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        return await http.request(method, path, headers=headers)


async def test_the_dependencies_answer_401_403_and_say_who(full: Authenticator) -> None:
    app = _tiny_app(full)
    none = await _call(app, "GET", "/read", LOOPBACK)
    assert none.status_code == 401
    assert none.headers["www-authenticate"] == 'Bearer, Basic realm="conea-monitor"'
    viewer = await _call(app, "GET", "/read", REMOTE, authorization=basic("alice", "alice-pw"))
    assert viewer.json() == {"name": "basic:alice"}
    refused = await _call(app, "POST", "/act", REMOTE, authorization="Bearer view-tok")
    assert refused.status_code == 403
    hook = await _call(app, "GET", "/read", REMOTE, authorization="Bearer hook-tok")
    assert hook.status_code == 403
    acted = await _call(app, "POST", "/act", REMOTE, authorization=basic("bob", "bob-pw"))
    assert acted.json() == {"name": "basic:bob"}


async def test_loopback_reads_as_loopback_while_nothing_is_configured(tmp_path: Path) -> None:
    app = _tiny_app(authenticator(tmp_path))
    read = await _call(app, "GET", "/read", LOOPBACK)
    assert read.json() == {"name": "loopback"}
    assert read.status_code == 200
    act = await _call(app, "POST", "/act", LOOPBACK)
    assert act.status_code == 401
    assert act.headers["www-authenticate"] == "Bearer"
    assert (await _call(app, "GET", "/read", REMOTE)).status_code == 401
