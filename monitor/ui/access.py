"""Who is looking at the console: roles and identities.

A thin stand-in for the roles of :mod:`monitor.auth` (``Role``, ``Identity``,
``Authenticator.identify``, ``allows``) until they land: today the operator token is the
one credential; nobody else is identified, and loopback may view while no viewer
credential exists. The console calls only these four names, so the merge swaps the
bodies and nothing else.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from monitor.auth import Authenticator, is_loopback


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


_RANK = {Role.VIEWER: 1, Role.OPERATOR: 2}


@dataclass(frozen=True)
class Identity:
    role: Role
    name: str


def identify_token(auth: Authenticator, token: str) -> Identity | None:
    """The identity a bearer token stands for, or None."""
    if token and hmac.compare_digest(token.encode(), auth.operator):
        return Identity(Role.OPERATOR, "operator")
    return None


def identify(
    auth: Authenticator, authorization: str | None, client_host: str | None
) -> Identity | None:
    """The identity an ``Authorization`` header stands for (bearer), or None."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return identify_token(auth, value.strip())


def allows(
    auth: Authenticator, identity: Identity | None, needed: Role, client_host: str | None
) -> bool:
    """May ``identity`` (None: nobody identified) do what ``needed`` may? With no viewer
    credential configured, loopback may view; operating always needs an operator."""
    if identity is not None and _RANK[identity.role] >= _RANK[needed]:
        return True
    return needed is Role.VIEWER and identity is None and is_loopback(client_host)
