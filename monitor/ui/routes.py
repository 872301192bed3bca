"""The console's routes under ``/ui/`` (docs/console.md).

Reading needs a viewer (with no viewer credential configured, loopback may read);
pause, resume, approve and reject need an operator and a POST form whose CSRF token
(:mod:`.session`) was made for the same identity. The controls call what the API calls
(:func:`monitor.api.admin.switch`, the engine's ``answer``), so each lands in the audit
trail with who did it: ``<name> (console)``, the name the roles give (``operator-token``,
``basic:alice``), never the client's address (as the API records it).
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from monitor import durations
from monitor.alerts import payload
from monitor.api.access import REALM
from monitor.api.admin import MAX_REASON_CHARS, _body, _Refused, reason_error, switch
from monitor.auth import LOOPBACK, Identity, Role
from monitor.runtime import Runtime
from monitor.store import queries
from monitor.store.states import State
from monitor.ui import session, views

router = APIRouter(prefix="/ui", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["ago"] = views.ago
templates.env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M:%S UTC") if v else ""
templates.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)

PAGE = 50  # rows per list page, unless ?limit= says otherwise
MAX_PAGE = 500
MAX_EXPLAINED = 20  # alerts one explain form looks at
MAX_ID = 2**63 - 1
STATES = [s.value for s in State]
_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


class _Stop(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _rt(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


async def _who(request: Request, signer: session.Signer) -> Identity | None:
    """The credential sent (bearer or basic), else the session cookie, else a loopback
    reader while reading needs no credential (:meth:`Authenticator.identify`)."""
    auth = _rt(request).auth
    header = request.headers.get("authorization")
    if not header:
        found = signer.read_session(request.cookies.get(session.COOKIE))
        if found is not None:
            return found
    return auth.identify(header, _client(request))


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    status: int = 200,
) -> HTMLResponse:
    context = {
        "who": None,
        "operator": False,
        "mode": views.mode(_rt(request)),
        "now": datetime.now(UTC),
        "path": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(_HEADERS)
    return response


def _refused(request: Request, status: int, title: str, message: str, **more: Any) -> _Stop:
    return _Stop(
        _page(request, "refused.html", {"title": title, "message": message, **more}, status)
    )


async def _context(request: Request, needed: Role = Role.VIEWER) -> dict[str, Any]:
    """Who asks, checked against ``needed``, and what every page shows (raises _Stop)."""
    signer = session.Signer(await session.key(_rt(request)))
    who = await _who(request, signer)
    auth = _rt(request).auth
    if not auth.allows(who, needed, _client(request)):
        if who is None or who == LOOPBACK:
            page = _page(request, "login.html", _base(request, signer, who), 401)
            # as the API answers; with basic users, a browser asks for one
            page.headers["www-authenticate"] = f"Bearer, {REALM}" if auth.users else "Bearer"
            raise _Stop(page)
        raise _refused(
            request, 403, "Not allowed", f"{needed} access is needed; you are a {who.role}."
        )
    return _base(request, signer, who)


def _base(request: Request, signer: session.Signer, who: Identity | None) -> dict[str, Any]:
    rt = _rt(request)
    return {
        "who": who,
        "signer": signer,
        "csrf": signer.csrf(who),
        "operator": rt.auth.allows(who, Role.OPERATOR, _client(request)),
        "mode": views.mode(rt),
        "now": datetime.now(UTC),
        "path": request.url.path,
    }


async def _form(request: Request, needed: Role) -> tuple[dict[str, Any], dict[str, str]]:
    """A POST's context and fields: the role, then the origin and the CSRF token, are
    checked before anything is read further (raises _Stop with a 401/403 page)."""
    ctx = await _context(request, needed)
    try:
        body = await _body(request)
    except _Refused as refused:
        raise _Stop(refused.response) from None
    fields = _read_form(request, body)
    signer: session.Signer = ctx["signer"]
    if not session.same_origin(request, _rt(request).settings.public_url):
        raise _refused(request, 403, "Refused", "The form was not sent from this console.")
    if not signer.csrf_ok(fields.get("csrf"), ctx["who"]):
        raise _refused(
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
        raise _refused(request, 400, "Invalid form", "The form could not be read.") from None
    return {k: v[0] for k, v in parsed.items()}


def _reason(request: Request, fields: dict[str, str]) -> str:
    reason = fields.get("reason", "").strip()
    why = reason_error(reason)
    if why is not None:
        raise _refused(request, 400, "Invalid reason", f"reason {why}")
    return reason


def _by(ctx: dict[str, Any]) -> str:
    who: Identity = ctx["who"]
    return f"{who.name} (console)"


def _text(request: Request, name: str, limit: int) -> str | None:
    value = request.query_params.get(name, "").strip()
    if not value:
        return None
    if len(value) > limit or "\x00" in value:
        raise _refused(
            request, 400, "Invalid filter", f"{name}: at most {limit} characters, no NUL"
        )
    return value


def _before(request: Request) -> int | None:
    value = _text(request, "before", 20)
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_ID:
        raise _refused(request, 400, "Invalid filter", "before: an execution id (1, 2, ...)")
    return int(value)


def _limit(request: Request) -> int:
    value = _text(request, "limit", 4)
    if value is None:
        return PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise _refused(request, 400, "Invalid filter", f"limit: 1 to {MAX_PAGE} rows")
    return int(value)


def _since(request: Request) -> datetime | None:
    value = _text(request, "since", durations.MAX_TEXT)
    if value is None:
        return None
    try:
        return durations.since(value, datetime.now(UTC))
    except ValueError as exc:
        raise _refused(request, 400, "Invalid filter", f"since: {exc}") from None


def _guarded(handler: Any) -> Any:
    """Turn a _Stop raised anywhere in the handler into its page."""
    import functools

    @functools.wraps(handler)
    async def run(*args: Any, **kwargs: Any) -> Response:
        try:
            response: Response = await handler(*args, **kwargs)
        except _Stop as stop:
            return stop.response
        return response

    return run


@router.get("/", response_class=HTMLResponse)
@_guarded
async def overview(request: Request) -> Response:
    ctx = await _context(request)
    ctx["view"] = await views.overview(_rt(request))
    ctx["max_reason"] = MAX_REASON_CHARS
    return _page(request, "overview.html", ctx)


@router.get("/executions", response_class=HTMLResponse)
@_guarded
async def executions(request: Request) -> Response:
    ctx = await _context(request)
    state = _text(request, "state", 32)
    if state is not None and state not in STATES:
        raise _refused(
            request, 400, "Invalid filter", f"state {state!r}: one of {', '.join(STATES)}"
        )
    f = queries.Filters(
        status=state,
        policy=_text(request, "policy", 255),
        target=_text(request, "target", 512),
        alertname=_text(request, "alertname", 255),
        since=_since(request),
        before=_before(request),
        limit=_limit(request),
    )

    page = await run_in_threadpool(queries.list_executions, _rt(request).db, f, True)
    shown = {k: v for k, v in request.query_params.items() if k != "before" and v}
    more = urllib.parse.urlencode({**shown, "before": page.next}) if page.next else None
    ctx.update(rows=page.items, more=more, states=STATES, filters=shown)
    return _page(request, "executions.html", ctx)


def _execution_id(request: Request, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise _refused(request, 404, "Not found", f"no execution {text[:40]!r}")
    return int(text)


@router.get("/executions/{ident}", response_class=HTMLResponse)
@_guarded
async def execution(request: Request, ident: str) -> Response:
    ctx = await _context(request)
    execution_id = _execution_id(request, ident)
    detail = await views.detail(_rt(request), execution_id)
    if detail is None:
        raise _refused(request, 404, "Not found", f"no execution #{execution_id}")
    ctx.update(d=detail, e=detail.row, max_reason=MAX_REASON_CHARS)
    return _page(request, "execution.html", ctx)


@router.get("/alerts", response_class=HTMLResponse)
@_guarded
async def alerts(request: Request) -> Response:
    ctx = await _context(request)
    status = _text(request, "status", 16)
    if status is not None and status not in ("firing", "resolved"):
        raise _refused(request, 400, "Invalid filter", "status: one of firing, resolved")
    f = queries.Filters(
        status=status,
        alertname=_text(request, "alertname", 255),
        since=_since(request),
        before=_before(request),
        limit=_limit(request),
    )
    rows, after = await views.alerts(_rt(request), f)
    shown = {k: v for k, v in request.query_params.items() if k != "before" and v}
    more = urllib.parse.urlencode({**shown, "before": after}) if after else None
    ctx.update(rows=rows, more=more, filters=shown)
    return _page(request, "alerts.html", ctx)


def _policies(request: Request) -> list[dict[str, Any]]:
    engine = _rt(request).extras.get("engine")
    return [views.policy_view(p) for p in engine.policies] if engine else []


@router.get("/policies", response_class=HTMLResponse)
@_guarded
async def policies(request: Request) -> Response:
    """The loaded policies; ``?alert=<id>`` fills the explain form with a stored alert."""
    ctx = await _context(request)
    pasted = ""
    ident = _text(request, "alert", 20)
    if ident is not None:
        if not ident.isdigit() or not 1 <= int(ident) <= MAX_ID:
            raise _refused(request, 400, "Invalid alert", "alert: an alert's id (1, 2, ...)")
        f = queries.Filters(before=int(ident) + 1, limit=1)
        page = await run_in_threadpool(queries.list_alerts, _rt(request).db, f)
        if not page.items or page.items[0]["id"] != int(ident):
            raise _refused(request, 404, "Not found", f"no alert #{ident}")
        pasted = json.dumps(_as_received(page.items[0]), indent=2)
    ctx.update(policies=_policies(request), pasted=pasted, report=None)
    return _page(request, "policies.html", ctx)


def _as_received(row: dict[str, Any]) -> dict[str, Any]:
    """A stored alert as Alertmanager sent it."""
    ends = row["ends_at"]
    return {
        "status": row["status"],
        "labels": row["labels"],
        "annotations": row["annotations"],
        "startsAt": row["starts_at"].isoformat(),
        "endsAt": ends.isoformat() if ends else "0001-01-01T00:00:00Z",
        "generatorURL": row["generator_url"],
        "fingerprint": row["fingerprint"],
    }


EXPLAIN_EXAMPLE = {
    "status": "firing",
    "labels": {"alertname": "...", "namespace": "...", "deployment": "..."},
    "annotations": {},
    "startsAt": "2026-11-29T03:00:00Z",
    "fingerprint": "...",
}


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
@_guarded
async def explain(request: Request) -> Response:
    from monitor.engine import explain as explaining

    ctx, fields = await _form(request, Role.VIEWER)
    pasted = fields.get("alert", "")
    engine = _rt(request).extras.get("engine")
    ctx.update(policies=_policies(request), pasted=pasted, report=None, error=None)
    if engine is None:
        raise _refused(request, 503, "Not ready", "The engine is not running; try again shortly.")
    try:
        notification = _notification(pasted)
    except payload.PayloadError as exc:
        details = "; ".join(f"{d['field']}: {d['reason']}" for d in exc.details[:5])
        ctx["error"] = exc.message + (f" ({details})" if details else "")
        return _page(request, "policies.html", ctx, 400)
    ctx["report"] = explaining.render(await explaining.explain(engine, notification))
    return _page(request, "policies.html", ctx)


@router.get("/login", response_class=HTMLResponse)
@_guarded
async def login_form(request: Request) -> Response:
    signer = session.Signer(await session.key(_rt(request)))
    return _page(request, "login.html", _base(request, signer, await _who(request, signer)))


@router.post("/login", response_class=HTMLResponse)
@_guarded
async def login(request: Request) -> Response:
    rt = _rt(request)
    signer = session.Signer(await session.key(rt))
    try:
        body = await _body(request)
    except _Refused as refused:
        return refused.response
    fields = _read_form(request, body)
    before = await _who(request, signer)
    csrf_ok = signer.csrf_ok(fields.get("csrf"), before)
    if not session.same_origin(request, rt.settings.public_url) or not csrf_ok:
        raise _refused(request, 403, "Refused", "The login form's CSRF token is not valid.")
    token = fields.get("token", "").strip()
    who = rt.auth.identify_token(token) if 0 < len(token) <= 4096 else None
    if who is None:
        ctx = _base(request, signer, before)
        ctx["error"] = "That token is not a viewer's or an operator's."
        return _page(request, "login.html", ctx, 401)
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


@router.api_route("/logout", methods=["GET", "POST"], response_class=HTMLResponse)
async def logout(request: Request) -> Response:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(session.COOKIE, path="/ui", httponly=True, samesite="strict")
    return response


@router.post("/pause", response_class=HTMLResponse)
@router.post("/resume", response_class=HTMLResponse)
@_guarded
async def pause_or_resume(request: Request) -> Response:
    ctx, fields = await _form(request, Role.OPERATOR)
    paused = request.url.path.endswith("/pause")
    reason = _reason(request, fields)
    answer = await switch(_rt(request), paused, _by(ctx), reason)
    if answer is None:
        raise _refused(request, 503, "Not ready", "The engine is not running; try again shortly.")
    return RedirectResponse("/ui/", status_code=303)


@router.post("/executions/{ident}/approve", response_class=HTMLResponse)
@router.post("/executions/{ident}/reject", response_class=HTMLResponse)
@_guarded
async def answer(request: Request, ident: str) -> Response:
    ctx, fields = await _form(request, Role.OPERATOR)
    execution_id = _execution_id(request, ident)
    reason = _reason(request, fields)
    engine = _rt(request).extras.get("engine")
    if engine is None:
        raise _refused(request, 503, "Not ready", "The engine is not running; try again shortly.")
    approve = request.url.path.endswith("/approve")
    result = await engine.answer(execution_id, approve=approve, by=_by(ctx), reason=reason)
    if not result.ok:
        raise _refused(
            request, 404 if result.state is None else 409, "Not answered", result.message
        )
    return RedirectResponse(f"/ui/executions/{execution_id}", status_code=303)
