"""What every console page shares: who asks (the roles of :mod:`monitor.auth`, else the
session cookie of :mod:`.session`), the templates, and the refusal pages.

A handler raises :class:`Stop` with the page to answer (401 with the login form, 403,
400 naming a bad value, 404); :func:`guarded` turns it into the response.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from monitor.api.access import REALM
from monitor.auth import LOOPBACK, Identity, Role
from monitor.runtime import Runtime
from monitor.ui import session, views

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
templates.env.globals["ago"] = views.ago
templates.env.filters["when"] = lambda v: v.strftime("%Y-%m-%d %H:%M:%S UTC") if v else ""
templates.env.filters["pretty"] = lambda v: json.dumps(v, indent=2, sort_keys=True, default=str)


MAX_ID = 2**63 - 1


_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


class Stop(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def runtime(request: Request) -> Runtime:
    rt: Runtime = request.app.state.runtime
    return rt


def client(request: Request) -> str | None:
    return request.client.host if request.client else None


SIGNED_OUT = "/ui/login?signed_out=credential"  # where a signed-out session is sent


async def identity_of(request: Request, signer: session.Signer) -> Identity | None:
    """The credential sent (bearer or basic), else the session cookie, else a loopback
    reader while reading needs no credential (:meth:`Authenticator.identify`). A session
    whose credential has changed since it was opened raises Stop: a redirect to the login
    page that clears the cookie (see :func:`reading`)."""
    found, changed = reading(request, signer)
    if changed:
        response = RedirectResponse(SIGNED_OUT, status_code=303)
        forget(response)
        raise Stop(response)
    return found


def reading(request: Request, signer: session.Signer) -> tuple[Identity | None, bool]:
    """Who asks (as :func:`identity_of`), and whether a session cookie was signed out
    because its credential changed (then logged once; who asks is then decided as if
    there were no cookie)."""
    auth = runtime(request).auth
    header = request.headers.get("authorization")
    changed = False
    if not header:
        found = signer.read(request.cookies.get(session.COOKIE))
        if found.identity is not None:
            return found.identity, False
        if found.changed is not None:
            session.signed_out(runtime(request), found)
            changed = True
    return auth.identify(header, client(request)), changed


def forget(response: Response) -> None:
    """Clear the session cookie (as it was set: ``Path=/ui``)."""
    response.delete_cookie(session.COOKIE, path="/ui", httponly=True, samesite="strict")


def render(
    request: Request,
    name: str,
    context: dict[str, Any],
    status: int = 200,
) -> HTMLResponse:
    context = {
        "who": None,
        "operator": False,
        "mode": views.mode(runtime(request)),
        "now": datetime.now(UTC),
        "path": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, name, context, status_code=status)
    response.headers.update(_HEADERS)
    return response


def refused(request: Request, status: int, title: str, message: str, **more: Any) -> Stop:
    return Stop(
        render(request, "refused.html", {"title": title, "message": message, **more}, status)
    )


async def context(request: Request, needed: Role = Role.VIEWER, why: str = "") -> dict[str, Any]:
    """Who asks, checked against ``needed``, and what every page shows (raises Stop;
    ``why`` is added to the 403 page's message)."""
    signer = await session.signer(runtime(request))
    who = await identity_of(request, signer)
    auth = runtime(request).auth
    if not auth.allows(who, needed, client(request)):
        if who is None or who == LOOPBACK:
            page = render(request, "login.html", base(request, signer, who), 401)
            # as the API answers; with basic users, a browser asks for one
            page.headers["www-authenticate"] = f"Bearer, {REALM}" if auth.users else "Bearer"
            raise Stop(page)
        raise refused(
            request,
            403,
            "Not allowed",
            f"{needed} access is needed; you are a {who.role}." + (f" {why}" if why else ""),
        )
    return base(request, signer, who)


def base(request: Request, signer: session.Signer, who: Identity | None) -> dict[str, Any]:
    rt = runtime(request)
    return {
        "who": who,
        "signer": signer,
        "csrf": signer.csrf(who),
        "operator": rt.auth.allows(who, Role.OPERATOR, client(request)),
        "mode": views.mode(rt),
        "now": datetime.now(UTC),
        "path": request.url.path,
    }


def guarded(handler: Any) -> Any:
    """Turn a Stop raised anywhere in the handler into its page."""

    @functools.wraps(handler)
    async def run(*args: Any, **kwargs: Any) -> Response:
        try:
            response: Response = await handler(*args, **kwargs)
        except Stop as stop:
            return stop.response
        return response

    return run


def execution_id(request: Request, text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= MAX_ID:
        raise refused(request, 404, "Not found", f"no execution {text[:40]!r}")
    return int(text)
