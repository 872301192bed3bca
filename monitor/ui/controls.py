"""The console's forms: explain, login and logout, pause and resume, approve and reject.

Each POST is checked for its role, then its origin and CSRF token (:func:`_form`), before
anything else is read. The controls call what the API calls
(:func:`monitor.api.admin.switch`, the engine's ``answer``), so each lands in the audit
trail with who did it: ``<name> (console)``, the name the roles give (``operator-token``,
``basic:alice``), never the client's address (as the API records it).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from monitor.alerts import payload
from monitor.api.admin import _body, _Refused, reason_error, switch
from monitor.auth import Identity, Role
from monitor.settings import MAX_CREDENTIAL_CHARS, MAX_USERNAME_CHARS
from monitor.ui import pages, session, views

router = APIRouter(include_in_schema=False)


MAX_EXPLAINED = 20  # alerts one explain form looks at
EXPLAIN_NEEDS = (
    "Explain is for operators: it plans each action with the service's own credentials, "
    "reading the live state of whatever target the pasted alert names, which the API "
    "does not let a viewer do either."
)
SIGNED_OUT_MESSAGE = (
    "You were signed out: the credential you logged in with has changed or been removed "
    "since. Log in with the current one."
)


async def _form(
    request: Request, needed: Role, why: str = ""
) -> tuple[dict[str, Any], dict[str, str]]:
    """A POST's context and fields: the role, then the origin and the CSRF token, are
    checked before anything is read further (raises pages.Stop with a 401/403 page)."""
    ctx = await pages.context(request, needed, why)
    try:
        body = await _body(request)
    except _Refused as refused:
        raise pages.Stop(refused.response) from None
    fields = _read_form(request, body)
    signer: session.Signer = ctx["signer"]
    if not session.same_origin(request, pages.runtime(request).settings.public_url):
        raise pages.refused(request, 403, "Refused", "The form was not sent from this console.")
    if not signer.csrf_ok(fields.get("csrf"), ctx["who"]):
        raise pages.refused(
            request,
            403,
            "Refused",
            "The form's CSRF token is missing, expired or not yours: reload the page and "
            "send it again.",
        )
    return ctx, fields


def _read_form(request: Request, body: bytes) -> dict[str, str]:
    """A urlencoded form's fields (the first value of each); 400 when it cannot be read."""
    try:
        parsed = urllib.parse.parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    except ValueError:
        raise pages.refused(request, 400, "Invalid form", "The form could not be read.") from None
    return {k: v[0] for k, v in parsed.items()}


def _reason(request: Request, fields: dict[str, str]) -> str:
    reason = fields.get("reason", "").strip()
    why = reason_error(reason)
    if why is not None:
        raise pages.refused(request, 400, "Invalid reason", f"reason {why}")
    return reason


def _by(ctx: dict[str, Any]) -> str:
    who: Identity = ctx["who"]
    return f"{who.name} (console)"


def _notification(text: str) -> payload.Notification:
    """A pasted notification, or one alert (put in a notification of its own)."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise payload.PayloadError(f"not JSON: {exc}", []) from None
    if isinstance(data, dict) and "alerts" not in data:
        data = {
            "version": "4",
            "groupKey": "console",
            "truncatedAlerts": 0,
            "status": data.get("status", "firing"),
            "receiver": "console",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "",
            "alerts": [
                {
                    "status": "firing",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "annotations": {},
                    **data,
                }
            ],
        }
    notification = payload.parse(json.dumps(data).encode())
    if len(notification.alerts) > MAX_EXPLAINED:
        raise payload.PayloadError(
            f"{len(notification.alerts)} alerts: explain at most {MAX_EXPLAINED} at a time", []
        )
    return notification


@router.post("/policies/explain", response_class=HTMLResponse)
@pages.guarded
async def explain(request: Request) -> Response:
    from monitor.engine import explain as explaining

    ctx, fields = await _form(request, Role.OPERATOR, EXPLAIN_NEEDS)
    pasted = fields.get("alert", "")
    engine = pages.runtime(request).extras.get("engine")
    ctx.update(
        policies=views.loaded(pages.runtime(request)), pasted=pasted, report=None, error=None
    )
    if engine is None:
        raise pages.refused(
            request, 503, "Not ready", "The engine is not running; try again shortly."
        )
    try:
        notification = _notification(pasted)
    except payload.PayloadError as exc:
        details = "; ".join(f"{d['field']}: {d['reason']}" for d in exc.details[:5])
        ctx["error"] = exc.message + (f" ({details})" if details else "")
        return pages.render(request, "policies.html", ctx, 400)
    ctx["report"] = explaining.render(await explaining.explain(engine, notification))
    return pages.render(request, "policies.html", ctx)


@router.get("/login", response_class=HTMLResponse)
@pages.guarded
async def login_form(request: Request) -> Response:
    signer = await session.signer(pages.runtime(request))
    who, changed = pages.reading(request, signer)
    ctx = pages.base(request, signer, who)
    if changed or request.query_params.get("signed_out") == "credential":
        ctx["error"] = SIGNED_OUT_MESSAGE
    page = pages.render(request, "login.html", ctx)
    if changed:
        pages.forget(page)
    return page


@router.post("/login", response_class=HTMLResponse)
@pages.guarded
async def login(request: Request) -> Response:
    """A token (the viewer's or the operator's), or an ``access.basic_auth`` user's name
    and password, opens a session."""
    rt = pages.runtime(request)
    signer = await session.signer(rt)
    try:
        body = await _body(request)
    except _Refused as refused:
        return refused.response
    fields = _read_form(request, body)
    before, _ = pages.reading(request, signer)
    csrf_ok = signer.csrf_ok(fields.get("csrf"), before)
    if not session.same_origin(request, rt.settings.public_url) or not csrf_ok:
        raise pages.refused(request, 403, "Refused", "The login form's CSRF token is not valid.")
    token = fields.get("token", "").strip()
    username = fields.get("username", "").strip()
    readable = 0 < len(token) <= MAX_CREDENTIAL_CHARS and len(username) <= MAX_USERNAME_CHARS
    if username:
        who = rt.auth.identify_basic(username, token) if readable else None
        wrong = "That name and password are not an access.basic_auth user's."
    else:
        who = rt.auth.identify_token(token) if readable else None
        wrong = "That token is not a viewer's or an operator's."
    if who is None:
        ctx = pages.base(request, signer, before)
        ctx["error"] = wrong
        return pages.render(request, "login.html", ctx, 401)
    response = RedirectResponse("/ui/", status_code=303)
    response.set_cookie(
        session.COOKIE,
        signer.session(who),
        max_age=session.LIFETIME,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=session.secure(rt.settings.public_url),
    )
    return response


@router.post("/logout", response_class=HTMLResponse)
@pages.guarded
async def logout(request: Request) -> Response:
    """Clear the session cookie (a copy of it stays valid: see monitor/ui/session.py).
    A session already signed out (its credential changed) needs no CSRF token to go."""
    rt = pages.runtime(request)
    signer = await session.signer(rt)
    try:
        body = await _body(request)
    except _Refused as refused:
        return refused.response
    fields = _read_form(request, body)
    who, changed = pages.reading(request, signer)
    csrf_ok = signer.csrf_ok(fields.get("csrf"), who)
    if not changed and (not session.same_origin(request, rt.settings.public_url) or not csrf_ok):
        raise pages.refused(request, 403, "Refused", "The log-out form's CSRF token is not valid.")
    response = RedirectResponse(pages.SIGNED_OUT if changed else "/ui/login", status_code=303)
    pages.forget(response)
    return response


@router.post("/pause", response_class=HTMLResponse)
@router.post("/resume", response_class=HTMLResponse)
@pages.guarded
async def pause_or_resume(request: Request) -> Response:
    ctx, fields = await _form(request, Role.OPERATOR)
    paused = request.url.path.endswith("/pause")
    reason = _reason(request, fields)
    answer = await switch(pages.runtime(request), paused, _by(ctx), reason)
    if answer is None:
        raise pages.refused(
            request, 503, "Not ready", "The engine is not running; try again shortly."
        )
    return RedirectResponse("/ui/", status_code=303)


@router.post("/executions/{ident}/approve", response_class=HTMLResponse)
@router.post("/executions/{ident}/reject", response_class=HTMLResponse)
@pages.guarded
async def answer(request: Request, ident: str) -> Response:
    ctx, fields = await _form(request, Role.OPERATOR)
    execution_id = pages.execution_id(request, ident)
    reason = _reason(request, fields)
    engine = pages.runtime(request).extras.get("engine")
    if engine is None:
        raise pages.refused(
            request, 503, "Not ready", "The engine is not running; try again shortly."
        )
    approve = request.url.path.endswith("/approve")
    result = await engine.answer(execution_id, approve=approve, by=_by(ctx), reason=reason)
    if not result.ok:
        raise pages.refused(
            request, 404 if result.state is None else 409, "Not answered", result.message
        )
    return RedirectResponse(f"/ui/executions/{execution_id}", status_code=303)
