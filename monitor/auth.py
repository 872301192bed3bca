"""Webhook and admin authentication, as Alertmanager's ``http_config`` sends it.

Bearer (``authorization``) and HTTP basic (``basic_auth``) credentials come from the
settings, the environment or a file; they are compared in constant time and never
logged. With no credentials configured only loopback clients are accepted.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
from pathlib import Path

from pydantic import SecretStr

from monitor.errors import ConfigError
from monitor.settings import Settings

log = logging.getLogger(__name__)


def _secret(value: SecretStr | None, path: Path | None, what: str) -> bytes | None:
    if value is not None:
        return value.get_secret_value().encode()
    if path is not None:
        try:
            return path.read_text(encoding="utf-8").strip().encode()
        except OSError as exc:
            raise ConfigError(f"cannot read {what} from {str(path)!r}: {exc.strerror}") from exc
    return None


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Authenticator:
    """Checks the ``Authorization`` header of a request against configured credentials."""

    def __init__(self, settings: Settings) -> None:
        hook = settings.webhook
        self.bearer = _secret(
            hook.bearer_token,
            settings.resolve(hook.bearer_token_file) if hook.bearer_token_file else None,
            "webhook.bearer_token_file",
        )
        self.basic: tuple[bytes, bytes] | None = None
        if hook.basic_auth is not None:
            password = _secret(
                hook.basic_auth.password,
                settings.resolve(hook.basic_auth.password_file)
                if hook.basic_auth.password_file
                else None,
                "webhook.basic_auth.password_file",
            )
            self.basic = (hook.basic_auth.username.encode(), password or b"")
        admin = settings.automation.api_token
        self.admin_bearer = admin.get_secret_value().encode() if admin else self.bearer

    @property
    def open_to_loopback_only(self) -> bool:
        return self.bearer is None and self.basic is None

    def describe(self) -> str:
        if self.open_to_loopback_only:
            return "no webhook credentials configured: accepting loopback clients only"
        kinds = [k for k, v in (("bearer", self.bearer), ("basic", self.basic)) if v]
        return "webhook authentication: " + " or ".join(kinds)

    def check(self, authorization: str | None, client_host: str | None) -> bool:
        if self.open_to_loopback_only:
            return is_loopback(client_host)
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer" and self.bearer is not None:
            return hmac.compare_digest(value.encode(), self.bearer)
        if scheme == "basic" and self.basic is not None:
            try:
                decoded = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                return False
            user, sep, password = decoded.partition(b":")
            ok_user = hmac.compare_digest(user, self.basic[0])
            ok_password = hmac.compare_digest(password, self.basic[1])
            return bool(sep) and ok_user and ok_password
        return False

    def check_admin(self, authorization: str | None, client_host: str | None) -> bool:
        """Pause/resume/reload: the admin token (or the webhook's bearer), else loopback."""
        if self.admin_bearer is None:
            return self.check(authorization, client_host)
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(value.strip().encode(), self.admin_bearer)
