"""The console's session cookie and CSRF tokens.

Both are signed with the key that signs approval links (the ``control`` table's, or
``automation.approval.key_file``), each with its own salt, so neither can pass for the
other or for a link. The cookie holds ``{role, name, issued, credential}``, never a
token, and is valid for :data:`LIFETIME`; a form's CSRF token names the identity it was
made for and is checked, with the ``Origin``/``Referer`` host when the browser sends
one, before a POST changes anything.

``credential`` is the fingerprint of the credential that opened the session
(:meth:`monitor.auth.Authenticator.fingerprint`), and CSRF tokens carry it too. Reading
a session recomputes it from the credentials configured now: once the token is rotated
or the basic-auth user's password changed or the user removed, the session is signed out
(:attr:`Reading.changed`), logged once at INFO by name (:func:`signed_out`). A cookie is
not stored anywhere, so logging out cannot revoke a copy of it: only the credential's
change, the key's, or :data:`LIFETIME` ends it (docs/access.md).
"""

from __future__ import annotations

import hmac
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import itsdangerous
from starlette.requests import Request

from monitor.auth import Identity, Role
from monitor.runtime import Runtime

log = logging.getLogger(__name__)

COOKIE = "conea_console"
LIFETIME = 12 * 3600  # seconds a login lasts
MAX_TOKEN_CHARS = 1000  # longer cookies and CSRF tokens are not read
_SESSION_SALT = "conea-console-session"
_CSRF_SALT = "conea-console-csrf"
SIGNED_OUT_REMEMBERED = 1024  # signed-out sessions logged once each (then forgotten)

# The fingerprint of the credential that stands for an identity now; None for none.
Credential = Callable[[Identity], str | None]


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


async def signer(rt: Runtime) -> Signer:
    """The runtime's signer: its key, and the credentials configured now."""
    found = await key(rt)
    raw = found.encode()
    return Signer(found, lambda identity: rt.auth.fingerprint(identity, raw))


@dataclass(frozen=True)
class Reading:
    """What a session cookie says: who it signs in, or None (missing, forged, expired, or
    its credential changed). ``changed`` names a genuine, unexpired session whose
    credential has changed since it was opened (rotated, removed): it is signed out."""

    identity: Identity | None
    changed: Identity | None = None
    fingerprint: str = ""  # the one the changed session was opened with


@dataclass(frozen=True)
class Signer:
    key: str
    credential: Credential
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
        """A cookie for ``identity``, which a credential configured now stands for."""
        value = {
            "role": str(identity.role),
            "name": identity.name,
            "issued": int(self.clock()),
            "credential": self.credential(identity) or "",
        }
        return str(self._session().dumps(value))

    def read(self, cookie: str | None) -> Reading:
        """Who a cookie signs in, checked against the credentials configured now."""
        if not cookie or len(cookie) > MAX_TOKEN_CHARS:
            return Reading(None)
        try:
            value = self._session().loads(cookie, max_age=LIFETIME)
        except itsdangerous.BadData:
            return Reading(None)
        if not isinstance(value, dict):
            return Reading(None)
        role, name, opened = value.get("role"), value.get("name"), value.get("credential")
        if role not in (Role.VIEWER, Role.OPERATOR) or not isinstance(name, str):
            return Reading(None)
        identity = Identity(Role(role), name)
        now = self.credential(identity)
        if not isinstance(opened, str) or now is None or not hmac.compare_digest(now, opened):
            return Reading(None, identity, opened if isinstance(opened, str) else "")
        return Reading(identity)

    def read_session(self, cookie: str | None) -> Identity | None:
        """The identity a cookie holds; None when it is missing, forged or expired, or its
        credential changed since."""
        return self.read(cookie).identity

    def csrf(self, identity: Identity | None) -> str:
        return str(self._csrf().dumps(self._bound(identity)))

    def csrf_ok(self, token: str | None, identity: Identity | None) -> bool:
        if not token or len(token) > MAX_TOKEN_CHARS:
            return False
        try:
            value = self._csrf().loads(token, max_age=LIFETIME)
        except itsdangerous.BadData:
            return False
        return isinstance(value, str) and hmac.compare_digest(value, self._bound(identity))

    def _bound(self, identity: Identity | None) -> str:
        """What a CSRF token names: the identity and its credential's fingerprint now."""
        if identity is None:
            return "-"
        return f"{identity.role}:{identity.name}:{self.credential(identity) or '-'}"


def signed_out(rt: Runtime, reading: Reading) -> None:
    """Log, once per session credential, that a session was signed out because the
    credential that opened it changed (its name and role, never a secret)."""
    if reading.changed is None:
        return
    seen: set[tuple[str, str, str]] = rt.extras.setdefault("console_signed_out", set())
    entry = (str(reading.changed.role), reading.changed.name, reading.fingerprint)
    if entry in seen:
        return
    if len(seen) >= SIGNED_OUT_REMEMBERED:
        seen.clear()
    seen.add(entry)
    log.info(
        "console session of %s (%s) signed out: the credential that opened it has changed "
        "or been removed since",
        reading.changed.name,
        reading.changed.role,
    )


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
