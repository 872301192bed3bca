"""FastAPI dependencies that say who may use a route: ``viewer`` (read) and ``operator``
(change what the service does). See monitor/auth.py for the roles and their credentials.

Each sets ``request.state.identity`` to the caller's :class:`~monitor.auth.Identity` and
returns it. Without a usable credential: 401 with ``WWW-Authenticate: Bearer`` (and
``Basic realm="conea-monitor"`` when basic users are configured, so a browser asks);
with a credential that does not carry the role: 403. Health, ``/metrics``, ``/probe``,
the webhook (its own check) and the signed approval links do not use these.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from monitor.auth import Authenticator, Identity, Role
from monitor.runtime import Runtime

REALM = 'Basic realm="conea-monitor"'

_WANTED = {
    Role.VIEWER: "a viewer or operator credential (access.viewer_token, an access.basic_auth "
    "user, or the operator token)",
    Role.OPERATOR: "the operator token (automation.api_token, or the generated "
    "<data_dir>/admin-token) or an operator access.basic_auth user",
}


def _authenticator(request: Request) -> Authenticator:
    rt: Runtime = request.app.state.runtime
    return rt.auth


def _require(request: Request, needed: Role) -> Identity:
    auth = _authenticator(request)
    host = request.client.host if request.client else None
    identity = auth.identify(request.headers.get("authorization"), host)
    if identity is not None and auth.allows(identity, needed, host):
        request.state.identity = identity
        return identity
    if identity is None or identity.name == "loopback":
        challenges = ["Bearer", REALM] if auth.users else ["Bearer"]
        raise HTTPException(
            401,
            f"authentication required: send {_WANTED[needed]}",
            headers={"WWW-Authenticate": ", ".join(challenges)},
        )
    raise HTTPException(
        403, f"{identity.name} ({identity.role}) may not do this: it needs {_WANTED[needed]}"
    )


async def viewer(request: Request) -> Identity:
    """Reading: a viewer or operator, or a loopback client while none is configured."""
    return _require(request, Role.VIEWER)


async def operator(request: Request) -> Identity:
    """Changing what the service does: an operator credential from every address."""
    return _require(request, Role.OPERATOR)


# For a handler that wants to know who calls it: ``async def f(who: access.Operator)``.
Viewer = Annotated[Identity, Depends(viewer)]
Operator = Annotated[Identity, Depends(operator)]
