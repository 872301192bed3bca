"""Who may call what: the webhook's credentials (Alertmanager) and the operators' token.

Two roles, two credentials (DESIGN.md #15):

* **webhook** (``POST /webhook/alertmanager``): a bearer token or HTTP basic auth, as
  Alertmanager's ``http_config`` sends it. With none configured, loopback clients only.
* **operator** (pause, resume, reload): a bearer token, ``automation.api_token(_file)``.
  With none configured a random one is generated once in ``<data_dir>/admin-token``
  (mode 0600) and reused. Loopback is never enough: probes and same-pod proxies come
  from loopback too.

Credentials come from the settings, the environment or a file; they are compared in
constant time and never logged. An empty credential is a start-up error (fail closed);
surrounding whitespace is stripped, with a warning.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import ipaddress
import logging
import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from monitor.errors import ConfigError
from monitor.settings import ENV_PREFIX, MAX_CREDENTIAL_CHARS, Settings

log = logging.getLogger(__name__)

OPERATOR_TOKEN_FILE = "admin-token"  # noqa: S105 (a file name)


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


def _bearer(authorization: str | None) -> bytes | None:
    """The token of ``Bearer <token>``; None for any other scheme or an empty token."""
    scheme, _, value = (authorization or "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        return None
    return value.encode()


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

    @property
    def open_to_loopback_only(self) -> bool:
        return self.bearer is None and self.basic is None

    def describe(self) -> str:
        if self.open_to_loopback_only:
            return "no webhook credentials configured: accepting loopback clients only"
        kinds = [k for k, v in (("bearer", self.bearer), ("basic", self.basic)) if v]
        return "webhook authentication: " + " or ".join(kinds)

    def describe_operator(self) -> str:
        if self.operator_file is None:
            return "operator token (pause, resume, reload): from automation.api_token(_file)"
        return (
            f"operator token (pause, resume, reload) in {self.operator_file}: send it as "
            f'-H "Authorization: Bearer $(cat {self.operator_file})"'
        )

    def check(self, authorization: str | None, client_host: str | None) -> bool:
        """The webhook: its credentials from any address, or loopback when it has none."""
        if self.open_to_loopback_only:
            return is_loopback(client_host)
        if not authorization:
            return False
        scheme, _, value = authorization.partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if not value:
            return False
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

    def check_operator(self, authorization: str | None) -> bool:
        """Pause/resume/reload: the operator token, from every address (loopback too)."""
        token = _bearer(authorization)
        return token is not None and hmac.compare_digest(token, self.operator)
