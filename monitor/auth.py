"""Who may call what: three roles, each with credentials of its own (DESIGN.md #15).

* **webhook** (``POST /webhook/alertmanager``): a bearer token or HTTP basic auth, as
  Alertmanager's ``http_config`` sends it (``webhook.*``). With none configured, loopback
  clients only. A webhook credential opens nothing else.
* **viewer** (the read API, ``/api/v1/status``, ``/docs``, the console): ``access.viewer_token
  (_file)`` or an ``access.basic_auth`` user with role viewer. While no viewer, basic or
  webhook credential is configured, loopback clients may read without one (a warning at
  start-up); once any is, reading needs a viewer or operator credential from every address.
* **operator** (pause, resume, reload, approve; reading too): a bearer token,
  ``automation.api_token(_file)``, or an ``access.basic_auth`` user with role operator.
  With no token configured a random one is generated once in ``<data_dir>/admin-token``
  (mode 0600) and reused. Loopback is never enough: probes and same-pod proxies come from
  loopback too.

Credentials come from the settings, the environment or a file; they are compared in
constant time, each against every configured credential (so the time taken does not say
which one matched), and never logged: an :class:`Identity` carries a name such as
``operator-token`` or ``basic:alice``, never the secret. An empty credential is a start-up
error (fail closed); surrounding whitespace is stripped, with a warning.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from pydantic import SecretStr

from monitor.errors import ConfigError
from monitor.settings import ENV_PREFIX, MAX_CREDENTIAL_CHARS, Settings

log = logging.getLogger(__name__)

OPERATOR_TOKEN_FILE = "admin-token"  # noqa: S105 (a file name)


class Role(StrEnum):
    WEBHOOK = "webhook"
    VIEWER = "viewer"
    OPERATOR = "operator"


@dataclass(frozen=True)
class Identity:
    """Who made a request: what audits record as "by" (never a secret)."""

    role: Role
    name: str


OPERATOR_TOKEN = Identity(Role.OPERATOR, "operator-token")
VIEWER_TOKEN = Identity(Role.VIEWER, "viewer-token")
WEBHOOK = Identity(Role.WEBHOOK, "webhook")
LOOPBACK = Identity(Role.VIEWER, "loopback")  # no credential: a loopback reader


def _env_name(setting: str) -> str:
    return ENV_PREFIX + setting.upper().replace(".", "__")


def _clean(text: str, where: str, *, from_file: bool) -> bytes:
    """``text`` stripped of surrounding whitespace (warned about, except a file's final
    line ending); ConfigError naming ``where`` if nothing is left."""
    stripped = text.strip()
    if not stripped:
        raise ConfigError(f"{where}: the credential is empty (that would let anyone in)")
    usual = text.rstrip("\r\n") if from_file else text
    if stripped != usual:
        log.warning("%s: surrounding whitespace stripped from the credential", where)
    return stripped.encode()


def _from_value(value: SecretStr, setting: str) -> bytes:
    return _clean(value.get_secret_value(), f"{setting} (or {_env_name(setting)})", from_file=False)


def _from_file(path: Path, setting: str) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_CREDENTIAL_CHARS * 4 + 3)
    except OSError as exc:
        raise ConfigError(f"cannot read {setting} from {str(path)!r}: {exc.strerror}") from exc
    where = f"{setting} {str(path)!r}"
    if len(raw) > MAX_CREDENTIAL_CHARS * 4 + 2:
        raise ConfigError(f"{where}: longer than {MAX_CREDENTIAL_CHARS} characters")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text") from None
    return _clean(text, where, from_file=True)


def _secret(value: SecretStr | None, path: Path | None, setting: str) -> bytes | None:
    if value is not None:
        return _from_value(value, setting)
    if path is not None:
        return _from_file(path, setting + "_file")
    return None


def _generated_token(data_dir: Path) -> tuple[bytes, Path]:
    """The operator token in ``data_dir/admin-token``: created (0600) if missing, reused."""
    path = (data_dir / OPERATOR_TOKEN_FILE).resolve()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    except OSError as exc:
        raise ConfigError(
            f"cannot create the operator token file {str(path)!r}: {exc.strerror}; "
            "set automation.api_token_file instead"
        ) from exc
    else:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(32) + "\n")
    with contextlib.suppress(OSError):
        if path.stat().st_mode & 0o077:
            log.warning("operator token file %s is readable by others: chmod 600 it", path)
    return _from_file(path, "operator token file"), path


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _credentials(authorization: str | None) -> tuple[str, bytes, bytes] | None:
    """``("bearer", token, b"")`` or ``("basic", user, password)`` from an ``Authorization``
    header; None for no header, another scheme, an empty value or undecodable basic auth."""
    scheme, _, value = (authorization or "").partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if not value:
        return None
    if scheme == "bearer":
        return "bearer", value.encode(), b""
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(b":")
        if not sep:
            return None
        return "basic", user, password
    return None


def _same(given: bytes, expected: bytes | None) -> bool:
    """Constant time; always does the work, even when nothing is configured."""
    return hmac.compare_digest(given, expected if expected is not None else b"\0" * len(given))


class Authenticator:
    """Checks the ``Authorization`` header of a request against configured credentials."""

    def __init__(self, settings: Settings) -> None:
        hook = settings.webhook
        self.bearer = _secret(
            hook.bearer_token,
            settings.resolve(hook.bearer_token_file) if hook.bearer_token_file else None,
            "webhook.bearer_token",
        )
        self.basic: tuple[bytes, bytes] | None = None
        if hook.basic_auth is not None:
            password = _secret(
                hook.basic_auth.password,
                settings.resolve(hook.basic_auth.password_file)
                if hook.basic_auth.password_file
                else None,
                "webhook.basic_auth.password",
            )
            assert password is not None  # the settings require one of the two
            user = _clean(hook.basic_auth.username, "webhook.basic_auth.username", from_file=False)
            self.basic = (user, password)
        auto = settings.automation
        operator = _secret(
            auto.api_token,
            settings.resolve(auto.api_token_file) if auto.api_token_file else None,
            "automation.api_token",
        )
        self.operator_file: Path | None = None
        if operator is None:
            operator, self.operator_file = _generated_token(settings.resolve(settings.data_dir))
        self.operator: bytes = operator
        access = settings.access
        self.viewer = _secret(
            access.viewer_token,
            settings.resolve(access.viewer_token_file) if access.viewer_token_file else None,
            "access.viewer_token",
        )
        self.users: list[tuple[bytes, bytes, Identity]] = []
        for index, entry in enumerate(access.basic_auth):
            where = f"access.basic_auth[{index}].password"
            password = _secret(
                entry.password,
                settings.resolve(entry.password_file) if entry.password_file else None,
                where,
            )
            assert password is not None  # the settings require one of the two
            user = _clean(entry.username, f"access.basic_auth[{index}].username", from_file=False)
            self.users.append(
                (user, password, Identity(Role(entry.role), f"basic:{user.decode()}"))
            )

    @property
    def open_to_loopback_only(self) -> bool:
        """The webhook: no credentials of its own, so loopback clients only."""
        return self.bearer is None and self.basic is None

    @property
    def reading_needs_credentials(self) -> bool:
        """Any viewer, basic or webhook credential configured: no reading without one."""
        return not self.open_to_loopback_only or self.viewer is not None or bool(self.users)

    def describe(self) -> str:
        if self.open_to_loopback_only:
            return "no webhook credentials configured: accepting loopback clients only"
        kinds = [k for k, v in (("bearer", self.bearer), ("basic", self.basic)) if v]
        return "webhook authentication: " + " or ".join(kinds)

    def describe_reading(self) -> str:
        if not self.reading_needs_credentials:
            return (
                "no viewer credentials configured: loopback clients may read the API without "
                "one (set access.viewer_token or access.basic_auth to require one)"
            )
        kinds = [
            kind
            for kind, present in (("viewer token", self.viewer), ("basic auth", self.users))
            if present
        ]
        return "reading the API needs " + " or ".join([*kinds, "the operator token"])

    def describe_operator(self) -> str:
        if self.operator_file is None:
            return "operator token (pause, resume, reload): from automation.api_token(_file)"
        return (
            f"operator token (pause, resume, reload) in {self.operator_file}: send it as "
            f'-H "Authorization: Bearer $(cat {self.operator_file})"'
        )

    def identify_token(self, token: str) -> Identity | None:
        """Whose bearer token this is: the operator's, then a viewer's; None otherwise."""
        given = token.encode()
        is_operator = _same(given, self.operator)
        is_viewer = _same(given, self.viewer)
        if is_operator:
            return OPERATOR_TOKEN
        if is_viewer and self.viewer is not None:
            return VIEWER_TOKEN
        return None

    def identify_basic(self, username: str, password: str) -> Identity | None:
        """The ``access.basic_auth`` user with this name and password; None otherwise."""
        return self._basic_user(username.encode(), password.encode())

    def _basic_user(self, user: bytes, password: bytes) -> Identity | None:
        found: Identity | None = None
        for name, secret, identity in self.users:  # every user, even after a match
            ok_user = hmac.compare_digest(user, name)
            ok_password = hmac.compare_digest(password, secret)
            if ok_user and ok_password and found is None:
                found = identity
        return found

    def _webhook(self, kind: str, first: bytes, second: bytes) -> bool:
        if kind == "bearer":
            return _same(first, self.bearer) and self.bearer is not None
        configured = self.basic or (b"", b"")
        ok_user = hmac.compare_digest(first, configured[0])
        ok_password = hmac.compare_digest(second, configured[1])
        return self.basic is not None and ok_user and ok_password

    def identify(self, authorization: str | None, client_host: str | None) -> Identity | None:
        """Who sent this request: the identity its credential stands for; without one, a
        loopback reader while reading needs no credentials; None otherwise (an unknown or
        malformed credential is never taken for "none", whatever the address)."""
        if not authorization:
            if not self.reading_needs_credentials and is_loopback(client_host):
                return LOOPBACK
            return None
        found = _credentials(authorization)
        if found is None:
            return None
        kind, first, second = found
        if kind == "bearer":
            identity = self.identify_token(first.decode("utf-8", "replace"))
        else:
            identity = self._basic_user(first, second)
        hook = self._webhook(kind, first, second)
        if identity is None and hook:
            return WEBHOOK
        return identity

    def allows(self, identity: Identity | None, needed: Role, client_host: str | None) -> bool:
        """May ``identity`` use a route that needs ``needed``? An operator may read; the
        webhook's credential opens the webhook only; a loopback reader needs loopback and
        no credentials configured (never enough for an operator route)."""
        if identity is None:  # no credential, or one that is nobody's: never
            return False
        if identity == LOOPBACK:
            return (
                needed is Role.VIEWER
                and not self.reading_needs_credentials
                and is_loopback(client_host)
            )
        if needed is Role.VIEWER:
            return identity.role in (Role.VIEWER, Role.OPERATOR)
        return identity.role is needed

    def check(self, authorization: str | None, client_host: str | None) -> bool:
        """The webhook: its credentials from any address, or loopback when it has none."""
        if self.open_to_loopback_only:
            return is_loopback(client_host)
        found = _credentials(authorization)
        return found is not None and self._webhook(*found)

    def fingerprint(self, identity: Identity, key: bytes) -> str | None:
        """A short keyed digest of the credential that stands for ``identity`` now (the
        first 16 hex digits of HMAC-SHA256 under ``key`` over its role, name and secret),
        never the secret; None when no credential stands for it (the loopback reader, the
        webhook, a basic-auth user removed or given another role). A session made when the
        credential was another has another fingerprint (:mod:`monitor.ui.session`)."""
        secret: bytes | None = None
        if identity == OPERATOR_TOKEN:
            secret = self.operator
        elif identity == VIEWER_TOKEN:
            secret = self.viewer
        elif identity.name.startswith("basic:"):
            secret = next((p for _, p, who in self.users if who == identity), None)
        if secret is None:
            return None
        message = json.dumps([str(identity.role), identity.name]).encode() + b"\0" + secret
        return hmac.new(key, message, hashlib.sha256).hexdigest()[:16]
