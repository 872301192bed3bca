"""The console's session cookie and CSRF tokens.

Both are signed with the key that signs approval links (the ``control`` table's, or
``automation.approval.key_file``), each with its own salt, so neither can pass for the
other or for a link. The cookie holds ``{role, name, issued}``, never a token, and is
valid for :data:`LIFETIME`; a form's CSRF token names the identity it was made for and
is checked, with the ``Origin``/``Referer`` host when the browser sends one, before a
POST changes anything.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import itsdangerous
from starlette.requests import Request

from monitor.auth import Identity, Role
from monitor.runtime import Runtime

COOKIE = "conea_console"
LIFETIME = 12 * 3600  # seconds a login lasts
MAX_TOKEN_CHARS = 1000  # longer cookies and CSRF tokens are not read
_SESSION_SALT = "conea-console-session"
_CSRF_SALT = "conea-console-csrf"


async def key(rt: Runtime) -> str:
    """The signing key: the approval links' (read once per runtime)."""
    found = rt.extras.get("console_key")
    if isinstance(found, str):
        return found
    engine = rt.extras.get("engine")
    if engine is not None:
        value: str = (await engine.approvals.links()).key
    else:
        value = await rt.store.approval_key(datetime.now(UTC))
    rt.extras["console_key"] = value
    return value


@dataclass(frozen=True)
class Signer:
    key: str
    clock: Callable[[], float] = time.time  # seconds since the epoch (tests pass their own)

    def _serializer(self, salt: str) -> itsdangerous.URLSafeTimedSerializer:
        clock = self.clock

        class Stamped(itsdangerous.TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        return itsdangerous.URLSafeTimedSerializer(self.key, salt=salt, signer=Stamped)

    def _session(self) -> itsdangerous.URLSafeTimedSerializer:
        return self._serializer(_SESSION_SALT)

    def _csrf(self) -> itsdangerous.URLSafeTimedSerializer:
        return self._serializer(_CSRF_SALT)

    def session(self, identity: Identity) -> str:
        value = {"role": str(identity.role), "name": identity.name, "issued": int(self.clock())}
        return str(self._session().dumps(value))

    def read_session(self, cookie: str | None) -> Identity | None:
        """The identity a cookie holds; None when it is missing, forged or expired."""
        if not cookie or len(cookie) > MAX_TOKEN_CHARS:
            return None
        try:
            value = self._session().loads(cookie, max_age=LIFETIME)
        except itsdangerous.BadData:
            return None
        if not isinstance(value, dict):
            return None
        role, name = value.get("role"), value.get("name")
        if role not in (Role.VIEWER, Role.OPERATOR) or not isinstance(name, str):
            return None
        return Identity(Role(role), name)

    def csrf(self, identity: Identity | None) -> str:
        return str(self._csrf().dumps(_bound(identity)))

    def csrf_ok(self, token: str | None, identity: Identity | None) -> bool:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return False
        try:
            value = self._csrf().loads(token, max_age=LIFETIME)
        except itsdangerous.BadData:
            return False
        return bool(value == _bound(identity))


def _bound(identity: Identity | None) -> str:
    return f"{identity.role}:{identity.name}" if identity else "-"


def same_origin(request: Request, public_url: str) -> bool:
    """False when the browser says the form came from elsewhere: an ``Origin`` (or,
    without one, a ``Referer``) whose host is neither the request's ``Host`` nor
    ``public_url``'s. A request that says neither is judged by its CSRF token alone."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if not claimed:
        return True
    host = urllib.parse.urlsplit(claimed).netloc.lower()
    ours = {request.headers.get("host", "").lower(), urllib.parse.urlsplit(public_url).netloc}
    return bool(host) and host in ours


def secure(public_url: str) -> bool:
    """Is the cookie sent over HTTPS only (``public_url`` is https)?"""
    return public_url.lower().startswith("https://")
