"""Each role can do exactly its part: a table over EVERY route of the app.

``ROUTES`` says what each route needs. A route the table does not list fails the test, so a
new route cannot slip in open: add one line for it. The callers are every kind of
credential (and none, from a remote and from a loopback address), with credentials
configured and with none configured (only the generated operator token). HEAD is answered
by the GET route and is not listed apart.
"""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from monitor import settings as settings_mod
from monitor.app import create_app
from tests.support import service as svc

OPEN = "open"  # health, metrics, probe: no credentials, as Prometheus scrapes them
VIEWER = "viewer"
OPERATOR = "operator"
WEBHOOK = "webhook"  # its own credentials (webhook.*), loopback while it has none
LINK = "link"  # a signed approval link: the signature is the credential, not the header
# The console's forms (docs/console.md): the role, then a CSRF token made for the caller;
# these requests carry none, so a caller with the role is refused for the token ("csrf").
FORM = "form"  # pause, resume, approve, reject, explain: an operator
LOGIN = "login"  # log in and out: anyone, with the page's CSRF token
CSRF = "csrf"

ROUTES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("GET", "/metrics"): OPEN,
    ("GET", "/probe"): OPEN,
    ("POST", "/webhook/alertmanager"): WEBHOOK,
    ("GET", "/api/v1/alerts"): VIEWER,
    ("GET", "/api/v1/notifications"): VIEWER,
    ("GET", "/api/v1/executions"): VIEWER,
    ("GET", "/api/v1/executions/{execution_id}"): VIEWER,
    ("GET", "/api/v1/executions/{execution_id}/report"): VIEWER,
    ("GET", "/api/v1/audit"): VIEWER,
    ("GET", "/api/v1/status"): VIEWER,
    ("GET", "/docs"): VIEWER,
    ("GET", "/openapi.json"): VIEWER,
    ("POST", "/api/v1/pause"): OPERATOR,
    ("POST", "/api/v1/resume"): OPERATOR,
    ("POST", "/-/reload"): OPERATOR,
    ("POST", "/api/v1/executions/{execution_id}/approve"): OPERATOR,
    ("POST", "/api/v1/executions/{execution_id}/reject"): OPERATOR,
    ("GET", "/approvals/{token}"): LINK,
    ("POST", "/approvals/{token}"): LINK,
    ("GET", "/docs/assets"): OPEN,  # Swagger UI's script and stylesheet
    ("GET", "/ui/static"): OPEN,  # the console's stylesheet
    ("GET", "/ui/"): VIEWER,
    ("GET", "/ui/executions"): VIEWER,
    ("GET", "/ui/executions/{ident}"): VIEWER,
    ("GET", "/ui/alerts"): VIEWER,
    ("GET", "/ui/policies"): VIEWER,
    ("GET", "/ui/login"): OPEN,
    ("POST", "/ui/logout"): LOGIN,
    ("POST", "/ui/login"): LOGIN,
    ("POST", "/ui/policies/explain"): FORM,
    ("POST", "/ui/pause"): FORM,
    ("POST", "/ui/resume"): FORM,
    ("POST", "/ui/executions/{ident}/approve"): FORM,
    ("POST", "/ui/executions/{ident}/reject"): FORM,
}

REMOTE = "10.1.2.3"
LOOPBACK = "127.0.0.1"


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# The secrets, also what the log test looks for.
SECRETS = {
    "hook": "hook-s3cret-tok",
    "viewer": "viewer-s3cret-tok",
    "operator": "operator-s3cret-tok",
    "alice": "alice-s3cret-pw",
    "bob": "bob-s3cret-pw",
}

CONFIGURED = {
    "webhook": {"bearer_token": SECRETS["hook"]},
    "automation": {"api_token": SECRETS["operator"]},
    "access": {
        "viewer_token": SECRETS["viewer"],
        "basic_auth": [
            {"username": "alice", "password": SECRETS["alice"], "role": "viewer"},
            {"username": "bob", "password": SECRETS["bob"], "role": "operator"},
        ],
    },
}

# caller: (client address, Authorization header or None)
CALLERS: dict[str, tuple[str, str | None]] = {
    "none (remote)": (REMOTE, None),
    "none (loopback)": (LOOPBACK, None),
    "webhook token": (REMOTE, f"Bearer {SECRETS['hook']}"),
    "viewer token": (REMOTE, f"Bearer {SECRETS['viewer']}"),
    "viewer basic": (REMOTE, _basic("alice", SECRETS["alice"])),
    "operator token": (REMOTE, f"Bearer {SECRETS['operator']}"),
    "operator basic": (REMOTE, _basic("bob", SECRETS["bob"])),
}

OK = "allowed"  # anything but 401 and 403: the route did its work
# What each caller gets, per kind of route, with credentials configured.
EXPECTED: dict[str, list[str | int]] = {
    #          none-remote, none-loopback, webhook, viewer, viewer-basic, operator, op-basic
    OPEN: [OK, OK, OK, OK, OK, OK, OK],
    VIEWER: [401, 401, 403, OK, OK, OK, OK],
    OPERATOR: [401, 401, 403, 403, 403, OK, OK],
    WEBHOOK: [401, 401, OK, 401, 401, 401, 401],
    LINK: [LINK] * 7,
    FORM: [401, 401, 403, 403, 403, CSRF, CSRF],
    LOGIN: [CSRF] * 7,
}

# With none configured: the generated operator token is the only credential.
BARE_CALLERS: dict[str, tuple[str, str | None]] = {
    "none (remote)": (REMOTE, None),
    "none (loopback)": (LOOPBACK, None),
    "unknown token (loopback)": (LOOPBACK, "Bearer not-a-token"),
    "operator token (remote)": (REMOTE, "generated"),
}
BARE_EXPECTED: dict[str, list[str | int]] = {
    OPEN: [OK, OK, OK, OK],
    VIEWER: [401, OK, 401, OK],
    OPERATOR: [401, 401, 401, OK],
    WEBHOOK: [401, OK, OK, 401],  # the webhook without credentials: loopback, as before
    LINK: [LINK] * 4,
    FORM: [401, 401, 401, CSRF],
    LOGIN: [CSRF] * 4,
}

BODIES = {
    "/webhook/alertmanager": svc.fixture_bytes("firing-single.json"),
}


def _route_table(app: FastAPI) -> set[tuple[str, str]]:
    found = set()
    for context in iter_route_contexts(app.routes):
        path = context.path
        assert path is not None
        for method in context.methods or {"GET"}:
            if method != "HEAD":
                found.add((method, path))
    return found


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


async def _request(
    app: FastAPI, method: str, path: str, client: str, authorization: str | None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(client, 4321))
    headers = {"content-type": "application/json"}
    if authorization:
        headers["authorization"] = authorization
    body = BODIES.get(path, b"{}") if method == "POST" else None
    async with httpx.AsyncClient(transport=transport, base_url="http://conea") as http:
        return await http.request(method, _concrete(path), headers=headers, content=body)


def _outcome(response: httpx.Response, kind: str) -> str | int:
    if kind == LINK:
        # the same refusal for everyone: a header neither opens nor closes a bad link
        assert response.status_code == 403, response.text
        assert "Approval link refused" in response.text
        return LINK
    if kind in (FORM, LOGIN) and response.status_code == 403 and ("CSRF token" in response.text):
        return CSRF
    if response.status_code in (401, 403):
        return response.status_code
    return OK


async def _table(
    app: FastAPI,
    callers: dict[str, tuple[str, str | None]],
    expected: dict[str, list[str | int]],
) -> None:
    listed = set(ROUTES)
    served = _route_table(app)
    assert served - listed == set(), "routes missing from ROUTES (add a line for each)"
    assert listed - served == set(), "ROUTES lists routes the app does not serve"
    wrong = []
    for (method, path), kind in sorted(ROUTES.items()):
        for (caller, (client, authorization)), want in zip(
            callers.items(), expected[kind], strict=True
        ):
            response = await _request(app, method, path, client, authorization)
            got = _outcome(response, kind)
            if got != want:
                wrong.append(
                    f"{method} {path} as {caller}: {got} ({response.text[:80]}), not {want}"
                )
            if got == 401 and kind in (VIEWER, OPERATOR, FORM):
                assert "Bearer" in response.headers["www-authenticate"]
    assert wrong == []


async def test_each_role_does_exactly_its_part_with_credentials_configured(
    tmp_path: Path,
) -> None:
    settings = settings_mod.load(svc.write_config(tmp_path, **CONFIGURED))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        await _table(app, CALLERS, EXPECTED)


async def test_with_none_configured_loopback_reads_and_only_the_operator_token_acts(
    tmp_path: Path,
) -> None:
    settings = settings_mod.load(svc.write_config(tmp_path))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        generated = (tmp_path / "data" / "admin-token").read_text().strip()
        callers = {
            name: (client, f"Bearer {generated}" if auth == "generated" else auth)
            for name, (client, auth) in BARE_CALLERS.items()
        }
        await _table(app, callers, BARE_EXPECTED)


async def test_a_viewer_is_told_why_and_a_browser_is_asked_for_basic_auth(tmp_path: Path) -> None:
    settings = settings_mod.load(svc.write_config(tmp_path, **CONFIGURED))
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        refused = await _request(app, "POST", "/api/v1/pause", REMOTE, CALLERS["viewer token"][1])
        assert refused.status_code == 403
        assert refused.json()["error"].startswith("viewer-token (viewer) may not do this")
        anonymous = await _request(app, "GET", "/api/v1/alerts", LOOPBACK, None)
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Bearer, Basic realm="conea-monitor"'
        assert anonymous.json()["error"].startswith("authentication required")
        status = await _request(app, "GET", "/api/v1/status", REMOTE, CALLERS["viewer basic"][1])
        assert status.json()["paused"] is False  # nothing changed by the refused pause


async def test_every_mutating_request_records_who_by_name_never_by_secret(tmp_path: Path) -> None:
    settings = settings_mod.load(svc.write_config(tmp_path, **CONFIGURED))
    app = create_app(settings)
    operator = CALLERS["operator token"][1]
    bob = CALLERS["operator basic"][1]
    async with app.router.lifespan_context(app):
        paused = await _request(app, "POST", "/api/v1/pause", REMOTE, bob)
        assert paused.json()["paused"] is True
        assert (await _request(app, "POST", "/api/v1/resume", REMOTE, operator)).status_code == 200
        assert (await _request(app, "POST", "/-/reload", REMOTE, bob)).status_code == 200
        audit = await _request(app, "GET", "/api/v1/audit", REMOTE, CALLERS["viewer token"][1])
    items = audit.json()["items"]
    messages = [a["message"] for a in items]
    assert any(m.startswith("automation paused by basic:bob") for m in messages)
    assert any(m.startswith("automation resumed by operator-token") for m in messages)
    [reload] = [a for a in items if a["kind"] == "reload"]
    assert "basic:bob" in str(reload["details"])
    assert not any(secret in audit.text for secret in SECRETS.values())


async def test_tokens_never_appear_in_logs_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = settings_mod.load(svc.write_config(tmp_path, **CONFIGURED))
    app = create_app(settings)
    wrong = {"Bearer wrong-s3cret-tok", _basic("bob", "wrong-s3cret-pw")}
    with caplog.at_level(logging.DEBUG):
        async with app.router.lifespan_context(app):
            for (method, path), _kind in sorted(ROUTES.items()):
                for client, authorization in [*CALLERS.values(), *((REMOTE, w) for w in wrong)]:
                    await _request(app, method, path, client, authorization)
    assert len(caplog.records) > 0
    texts = [r.getMessage() + str(r.args) + (r.exc_text or "") for r in caplog.records]
    headers = [a.split(" ", 1)[1] for _, a in CALLERS.values() if a] + [
        w.split(" ", 1)[1] for w in wrong
    ]
    for secret in [*SECRETS.values(), "wrong-s3cret-tok", "wrong-s3cret-pw", *headers]:
        assert not any(secret in text for text in texts), secret


@pytest.mark.parametrize(
    ("config", "level", "said"),
    [
        ({}, logging.WARNING, "no viewer credentials configured: loopback clients may read"),
        (CONFIGURED, logging.INFO, "reading the API needs viewer token or basic auth or the"),
    ],
)
async def test_start_up_says_who_may_read(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    config: dict[str, Any],
    level: int,
    said: str,
) -> None:
    app = create_app(settings_mod.load(svc.write_config(tmp_path, **config)))
    with caplog.at_level(logging.INFO, logger="monitor"):
        async with app.router.lifespan_context(app):
            pass
    assert [r.levelno for r in caplog.records if r.getMessage().startswith(said)] == [level]


def test_a_served_service_logs_no_credential_at_debug(tmp_path: Path) -> None:
    """The real server (uvicorn, text logs at DEBUG): every route with every credential."""
    config = svc.write_config(tmp_path, log={"level": "DEBUG"}, **CONFIGURED)
    with svc.running(config) as service:
        for (method, path), _kind in sorted(ROUTES.items()):
            for _client, authorization in CALLERS.values():
                headers = {"content-type": "application/json"}
                if authorization:
                    headers["authorization"] = authorization
                body = BODIES.get(path, b"{}") if method == "POST" else None
                httpx.request(
                    method, service.url + _concrete(path), headers=headers, content=body, timeout=30
                )
        logs = service.logs()
    assert "automation paused by basic:bob" in logs  # names, where the requests are logged
    sent = [a.split(" ", 1)[1] for _, a in CALLERS.values() if a]
    for secret in [*SECRETS.values(), *sent]:
        assert secret not in logs
