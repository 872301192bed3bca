"""A console session ends when the credential that opened it changes (the token rotated,
a basic-auth user's password changed or the user removed), across a restart on the same
store; log-out clears the cookie; explain is an operator's."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from monitor.app import create_app
from monitor.settings import Settings
from monitor.ui import session
from tests.ui.conftest import POLICIES
from tests.ui.test_pages import text

TOKEN_A = "operator-token-a-s3cret"
TOKEN_B = "operator-token-b-s3cret"
VIEWER = "viewer-token-s3cret"
A: dict[str, Any] = {"automation": {"api_token": TOKEN_A}}
B: dict[str, Any] = {"automation": {"api_token": TOKEN_B}}
SIGNED_OUT = "signed out: the credential you logged in with has changed or been removed"


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, store_url: str, cookie: str | None = None, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """The service on ``tmp_path``'s data_dir and ``store_url``, a browser that carries
    ``cookie`` (the session cookie a previous run set)."""
    policies = tmp_path / "policies.yaml"
    policies.write_text(POLICIES)
    app = create_app(
        Settings(
            data_dir=tmp_path / "data",
            policies=[policies],
            store={"url": store_url},
            kubernetes={"mode": "none"},
            public_url="http://conea.test",
            **settings,
        )
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://conea.test") as client:
            if cookie is not None:
                carry(client, cookie)
            yield app, client


def carry(client: httpx.AsyncClient, cookie: str) -> None:
    """The browser sends ``cookie`` (as it keeps one the service set)."""
    client.cookies.set(session.COOKIE, cookie, domain="conea.test", path="/ui")


def access(viewer: bool = False, **alice: str) -> dict[str, Any]:
    users = [{"username": "alice", "role": "operator", **alice}] if alice else []
    return {"basic_auth": users, **({"viewer_token": VIEWER} if viewer else {})}


async def csrf(client: httpx.AsyncClient, path: str = "/ui/login") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', (await client.get(path)).text)
    assert found is not None
    return found.group(1)


async def log_in(client: httpx.AsyncClient, token: str, username: str = "") -> str:
    """Log in through the form; the session cookie it set."""
    form = {"token": token, "username": username, "csrf": await csrf(client)}
    answer = await client.post("/ui/login", data=form)
    assert answer.status_code == 303, answer.text
    return client.cookies[session.COOKIE]


async def signed_out(client: httpx.AsyncClient, path: str = "/ui/", form: str = "") -> None:
    """The request (a POST of the CSRF token ``form`` if given) is sent to the login
    page, which says why, and the cookie is gone."""
    if form:
        answer = await client.post(path, data={"csrf": form, "reason": "x"})
    else:
        answer = await client.get(path)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/login?signed_out=credential"
    assert 'conea_console=""' in answer.headers["set-cookie"]
    assert session.COOKIE not in client.cookies
    page = await client.get(answer.headers["location"])
    assert SIGNED_OUT in text(page.text) and 'name="token"' in page.text


async def test_a_session_opened_with_token_a_ends_when_the_service_restarts_with_token_b(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with serving(tmp_path, store_url, **A) as (_, client):
        cookie = await log_in(client, TOKEN_A)
    # The same token after a restart: the same session.
    async with serving(tmp_path, store_url, cookie, **A) as (_, client):
        shown = text((await client.get("/ui/")).text)
        assert "operator-token (operator)" in shown and "Pause automation" in shown
        form = await csrf(client, "/ui/")
    with caplog.at_level(logging.INFO, logger="monitor"):
        async with serving(tmp_path, store_url, cookie, **B) as (_, client):
            await signed_out(client)
            carry(client, cookie)  # sent again: still out
            answer = await client.post("/ui/pause", data={"csrf": form, "reason": "x"})
            assert answer.status_code == 303 and "signed_out" in answer.headers["location"]
            bearer = {"authorization": f"Bearer {TOKEN_B}"}
            status = await client.get("/api/v1/status", headers=bearer)
            assert status.json()["paused"] is False
            shown = text((await client.get("/ui/")).text)  # not the old operator any more
            assert "loopback viewer" in shown and "Pause automation" not in shown
            assert session.COOKIE not in client.cookies
            await log_in(client, TOKEN_B)
            assert "operator-token (operator)" in text((await client.get("/ui/")).text)
    said = [r.getMessage() for r in caplog.records if "signed out" in r.getMessage()]
    assert said == [
        "console session of operator-token (operator) signed out: the credential that opened "
        "it has changed or been removed since"
    ]
    assert [r.levelno for r in caplog.records if "signed out" in r.getMessage()] == [logging.INFO]
    logged = " ".join(r.getMessage() + str(r.args) for r in caplog.records)
    assert TOKEN_A not in logged and TOKEN_B not in logged


async def test_a_basic_auth_user_whose_password_changed_is_signed_out(
    store_url: str, tmp_path: Path
) -> None:
    before = access(password="alice-old-s3cret")
    async with serving(tmp_path, store_url, access=before) as (_, client):
        wrong = await client.post(
            "/ui/login",
            data={"username": "alice", "token": "not-it", "csrf": await csrf(client)},
        )
        assert wrong.status_code == 401 and "not an access.basic_auth user" in text(wrong.text)
        for username, password in (("a" * 5000, "alice-old-s3cret"), ("alice", "p" * 5000)):
            bad = {"username": username, "token": password, "csrf": await csrf(client)}
            assert (await client.post("/ui/login", data=bad)).status_code == 401
        cookie = await log_in(client, "alice-old-s3cret", username="alice")
        assert "alice-old-s3cret" not in cookie
        assert "basic:alice (operator)" in text((await client.get("/ui/")).text)
        form = await csrf(client, "/ui/")
    async with serving(tmp_path, store_url, cookie, access=before) as (_, client):
        assert "basic:alice (operator)" in text((await client.get("/ui/")).text)
    after = access(password="alice-new-s3cret")
    async with serving(tmp_path, store_url, cookie, access=after) as (_, client):
        await signed_out(client, "/ui/pause", form)
        # A browser that sends the old password itself (basic auth) is refused too.
        old = httpx.BasicAuth("alice", "alice-old-s3cret")
        assert (await client.get("/ui/", auth=old)).status_code == 401
        new = httpx.BasicAuth("alice", "alice-new-s3cret")
        assert "basic:alice (operator)" in text((await client.get("/ui/", auth=new)).text)
    # Removed, or no longer an operator: signed out as well.
    for changed in (access(), access(password="alice-old-s3cret", role="viewer")):
        async with serving(tmp_path, store_url, cookie, access=changed) as (_, client):
            await signed_out(client)


async def test_a_cookie_with_another_credentials_fingerprint_is_refused(
    store_url: str, tmp_path: Path
) -> None:
    async with serving(tmp_path, store_url, **A) as (app, client):
        key = await session.key(app.state.runtime)
        # Signed with the service's own key, but not for the configured token.
        forged = session.Signer(key, lambda _: "0" * 16).session(
            app.state.runtime.auth.identify_token(TOKEN_A)
        )
        carry(client, forged)
        await signed_out(client)
        carry(client, forged)
        await signed_out(client, "/ui/pause", "any")
        carry(client, forged)
        page = await client.get("/ui/login")
        assert page.status_code == 200 and SIGNED_OUT in text(page.text)
        assert 'conea_console=""' in page.headers["set-cookie"]  # cleared here too


async def test_log_out_clears_the_cookie_but_cannot_revoke_a_copy(
    store_url: str, tmp_path: Path
) -> None:
    async with serving(tmp_path, store_url, **A) as (_, client):
        cookie = await log_in(client, TOKEN_A)
        page = (await client.get("/ui/")).text
        assert 'action="/ui/logout"' in page
        refused = await client.post("/ui/logout", data={"csrf": "forged"})
        assert refused.status_code == 403 and "CSRF token is not valid" in refused.text
        assert client.cookies[session.COOKIE] == cookie  # still logged in
        assert (await client.get("/ui/logout")).status_code == 405  # a link cannot log out
        answer = await client.post("/ui/logout", data={"csrf": await csrf(client, "/ui/")})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
        assert session.COOKIE not in client.cookies
        assert "Pause automation" not in text((await client.get("/ui/")).text)
        # A copy of the cookie taken before logging out still works (nothing is stored to
        # revoke it: docs/access.md) until it expires or the token changes.
        carry(client, cookie)
        assert "Pause automation" in text((await client.get("/ui/")).text)
    async with serving(tmp_path, store_url, cookie, **B) as (_, client):
        await signed_out(client)


async def test_explain_is_an_operators(store_url: str, tmp_path: Path) -> None:
    pasted = '{"labels": {"alertname": "HighErrorRate", "namespace": "production", '
    pasted += '"deployment": "conea-api"}, "startsAt": "2026-11-29T03:00:00Z", "fingerprint": "e1"}'
    settings: dict[str, Any] = {"automation": {"api_token": TOKEN_A}, "access": access(viewer=True)}
    async with serving(tmp_path, store_url, **settings) as (_, client):
        await log_in(client, VIEWER)
        page = await client.get("/ui/policies")
        assert page.status_code == 200 and "restart-api" in text(page.text)
        assert 'action="/ui/policies/explain"' not in page.text
        assert "An operator can explain an alert here" in text(page.text)
        answer = await client.post(
            "/ui/policies/explain", data={"alert": pasted, "csrf": await csrf(client, "/ui/")}
        )
        assert answer.status_code == 403
        shown = text(answer.text)
        assert "operator access is needed; you are a viewer." in shown
        assert "Explain is for operators: it plans each action with the service's own" in shown
        assert 'id="report"' not in answer.text

        await log_in(client, TOKEN_A)
        page = await client.get("/ui/policies")
        assert 'action="/ui/policies/explain"' in page.text
        answer = await client.post(
            "/ui/policies/explain", data={"alert": pasted, "csrf": await csrf(client, "/ui/")}
        )
        assert answer.status_code == 200
        assert "policy restart-api" in text(answer.text.split('id="report"')[1])
