"""The console's controls: login, pause/resume and approve/reject as CSRF-checked POSTs by
an operator, each in the audit trail with who did it; refused otherwise, changing nothing."""

from __future__ import annotations

import html as html_mod
import re
from pathlib import Path

import httpx

from monitor.app import create_app
from monitor.settings import Settings
from tests.ui.conftest import Console, alert, notification
from tests.ui.test_pages import text


async def login(console: Console) -> None:
    csrf = await console.csrf("/ui/login")
    answer = await console.client.post("/ui/login", data={"token": console.token, "csrf": csrf})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/"


async def audit(console: Console, kind: str) -> list[str]:
    items = (await console.client.get("/api/v1/audit", params={"kind": kind})).json()["items"]
    return [a["message"] for a in items]


async def paused(console: Console) -> bool:
    status = await console.client.get(
        "/api/v1/status", headers={"authorization": f"Bearer {console.token}"}
    )
    return bool(status.json()["paused"])


async def test_login_sets_a_signed_session_cookie_not_the_token(console: Console) -> None:
    page = await console.client.get("/ui/login")
    assert page.status_code == 200 and 'name="token"' in page.text
    wrong = await console.client.post(
        "/ui/login", data={"token": "not-it", "csrf": await console.csrf("/ui/login")}
    )
    assert wrong.status_code == 401 and "not a viewer&#39;s or an operator&#39;s" in wrong.text
    assert "conea_console" not in console.client.cookies

    csrf = await console.csrf("/ui/login")
    answer = await console.client.post("/ui/login", data={"token": console.token, "csrf": csrf})
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("conea_console=")
    for attribute in ("HttpOnly", "Max-Age=43200", "Path=/ui", "SameSite=strict"):
        assert attribute in cookie
    assert "Secure" not in cookie  # public_url is http
    assert console.token not in cookie
    shown = text((await console.client.get("/ui/")).text)
    assert "operator-token (operator)" in shown and "Pause automation" in shown

    await console.client.post("/ui/logout", data={"csrf": await console.csrf()})
    assert "conea_console" not in console.client.cookies
    shown = text((await console.client.get("/ui/")).text)
    assert "loopback viewer" in shown and "Pause automation" not in shown


async def test_a_forged_or_foreign_cookie_is_nobody(console: Console) -> None:
    console.client.cookies.set("conea_console", "eyJyb2xlIjoib3BlcmF0b3IifQ.x.y", path="/ui")
    shown = text((await console.client.get("/ui/")).text)
    assert "loopback viewer" in shown and "Pause automation" not in shown


async def test_pause_and_resume_through_the_console_land_in_the_audit_trail(
    console: Console,
) -> None:
    await login(console)
    answer = await console.client.post(
        "/ui/pause", data={"reason": "db migration", "csrf": await console.csrf()}
    )
    assert answer.status_code == 303
    assert await paused(console)
    assert await audit(console, "pause") == [
        "automation paused by operator-token (console): db migration"
    ]
    shown = text((await console.client.get("/ui/")).text)
    assert "by operator-token (console)" in shown and "“db migration”" in shown
    assert "Resume automation" in shown

    answer = await console.client.post(
        "/ui/resume", data={"reason": "done", "csrf": await console.csrf()}
    )
    assert answer.status_code == 303
    assert not await paused(console)
    assert await audit(console, "resume") == [
        "automation resumed by operator-token (console): done; "
        "0 alerts skipped during the pause are decided again"
    ]


async def test_a_post_without_a_good_csrf_token_changes_nothing(console: Console) -> None:
    await login(console)
    csrf = await console.csrf()
    for data, headers in (
        ({"reason": "x"}, {}),
        ({"reason": "x", "csrf": "forged"}, {}),
        ({"reason": "x", "csrf": csrf[:-2]}, {}),
        ({"reason": "x", "csrf": csrf}, {"origin": "https://evil.example"}),
        ({"reason": "x", "csrf": csrf}, {"referer": "https://evil.example/ui/"}),
    ):
        answer = await console.client.post("/ui/pause", data=data, headers=headers)
        assert answer.status_code == 403, (data, headers)
        assert "Refused" in answer.text
    assert not await paused(console)
    assert await audit(console, "pause") == []
    # The same token from this console's own origin is accepted.
    answer = await console.client.post(
        "/ui/pause", data={"csrf": csrf}, headers={"origin": "http://conea.test"}
    )
    assert answer.status_code == 303 and await paused(console)


async def test_a_csrf_token_is_bound_to_its_identity(console: Console) -> None:
    anonymous = await console.csrf("/ui/login")  # made for the loopback viewer
    await login(console)
    answer = await console.client.post("/ui/pause", data={"csrf": anonymous})
    assert answer.status_code == 403
    assert not await paused(console)


async def test_controls_need_an_operator(console: Console) -> None:
    csrf = await console.csrf("/ui/login")  # a loopback viewer's form
    page = await console.client.get("/ui/")
    assert "Pause automation" not in page.text and "An operator can pause" in page.text
    answer = await console.client.post("/ui/pause", data={"csrf": csrf, "reason": "x"})
    assert answer.status_code == 401
    assert not await paused(console)


async def test_reasons_are_bounded(console: Console) -> None:
    await login(console)
    answer = await console.client.post(
        "/ui/pause", data={"reason": "x" * 1001, "csrf": await console.csrf()}
    )
    assert answer.status_code == 400 and "reason must be at most 1000 characters" in answer.text
    answer = await console.client.post(
        "/ui/pause", content=b"x" * (65 * 1024), headers={"content-type": "text/plain"}
    )
    assert answer.status_code == 413
    assert not await paused(console)


async def test_approve_and_reject_through_the_console(console: Console) -> None:
    await console.post_alerts(
        alert("QueueBacklog", "q1", deployment="worker"),
        alert("QueueBacklog", "q2", deployment="mailer"),
    )
    rows = await console.settled(2)
    assert {r["state"] for r in rows} == {"awaiting_approval"}
    first, second = sorted(r["id"] for r in rows)
    page = await console.client.get(f"/ui/executions/{first}")
    assert 'id="approve"' not in page.text  # a loopback viewer sees no buttons

    await login(console)
    page = await console.client.get(f"/ui/executions/{first}")
    assert 'id="approve"' in page.text and 'id="reject"' in page.text
    csrf = await console.csrf(f"/ui/executions/{first}")
    answer = await console.client.post(
        f"/ui/executions/{first}/approve", data={"csrf": csrf, "reason": "go ahead"}
    )
    assert answer.status_code == 303
    answer = await console.client.post(
        f"/ui/executions/{second}/reject", data={"csrf": csrf, "reason": "not now"}
    )
    assert answer.status_code == 303

    async def approved_ran() -> bool:
        row = (await console.client.get(f"/api/v1/executions/{first}")).json()
        return bool(row["state"] == "succeeded")

    await console.until(approved_ran, "the approved step to run")
    messages = await audit(console, "approval")
    assert any(m.endswith("approved by operator-token (console): go ahead") for m in messages)
    assert any(m.endswith("rejected by operator-token (console): not now") for m in messages)
    shown = text((await console.client.get(f"/ui/executions/{first}")).text)
    assert "approved by operator-token (console)" in shown
    again = await console.client.post(f"/ui/executions/{second}/approve", data={"csrf": csrf})
    assert again.status_code == 409 and "not awaiting approval" in again.text


async def test_without_credentials_only_loopback_may_look(console: Console) -> None:
    transport = httpx.ASGITransport(app=console.app, client=("10.1.2.3", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://conea.test") as remote:
        page = await remote.get("/ui/")
        assert page.status_code == 401 and 'name="token"' in page.text
        page = await remote.get("/ui/", headers={"authorization": f"Bearer {console.token}"})
        assert page.status_code == 200
        page = await remote.get("/ui/", headers={"authorization": "Bearer wrong"})
        assert page.status_code == 401
        assert (await remote.get("/docs")).status_code == 401


async def test_explain_shows_what_the_engine_would_do(console: Console) -> None:
    await login(console)  # explain is an operator's (tests/ui/test_signout.py)
    page = await console.client.get("/ui/policies")
    shown = text(page.text)
    assert "restart-api" in shown and "scale-queue" in shown
    assert 'alertname="QueueBacklog"' in shown and "approval" in shown
    csrf = await console.csrf("/ui/policies")
    pasted = '{"labels": {"alertname": "HighErrorRate", "namespace": "production", '
    pasted += '"deployment": "conea-api"}, "startsAt": "2026-11-29T03:00:00Z", "fingerprint": "e1"}'
    answer = await console.client.post("/ui/policies/explain", data={"alert": pasted, "csrf": csrf})
    assert answer.status_code == 200
    report = text(answer.text.split('id="report"')[1])
    assert "policy restart-api" in report and "target Deployment/production/conea-api" in report
    assert "plan log:" in report
    many = notification(*(alert("HighErrorRate", f"e{i}") for i in range(21))).decode()
    for bad, why in (
        ("{", "not JSON"),
        ("[" * 5000 + "]" * 5000, "not JSON"),
        ("[1]", "must be a JSON object"),
        ("[" * 15000, "not JSON"),
        ('{"labels": {}}', "alerts[0].startsAt: required field is missing"),
        (many, "21 alerts: explain at most 20 at a time"),
    ):
        answer = await console.client.post(
            "/ui/policies/explain", data={"alert": bad, "csrf": csrf}
        )
        assert answer.status_code == 400 and why in html_mod.unescape(answer.text), bad[:40]
    answer = await console.client.post(
        "/ui/policies/explain", content=b"%%%=" * 30, headers={"content-type": "text/plain"}
    )
    assert answer.status_code in (400, 403)
    answer = await console.client.post("/ui/policies/explain", data={"alert": pasted})
    assert answer.status_code == 403
    assert await console.executions() == []  # explaining changed nothing


async def test_docs_load_without_the_internet(console: Console) -> None:
    page = await console.client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    script = await console.client.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000
    css = await console.client.get("/ui/static/console.css")
    assert css.status_code == 200 and "@media" in css.text


async def test_the_cookie_is_secure_when_the_console_is_served_over_https(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path / "data", policies=[], public_url="https://conea.example")
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        token = app.state.runtime.auth.operator.decode()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://conea.example") as c:
            page = await c.get("/ui/login")
            csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert csrf is not None
            answer = await c.post("/ui/login", data={"token": token, "csrf": csrf.group(1)})
    assert answer.status_code == 303
    assert "Secure" in answer.headers["set-cookie"]
