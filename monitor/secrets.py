"""Secret references, resolved when they are used and kept out of everything recorded.

A secret is never written in the config or in a policy; they hold a *reference*::

    password_env: PGPASSWORD                      # targets: an environment variable
    url: {env: SLACK_WEBHOOK_URL}                 # a SecretRef: {env: NAME} or {file: PATH}
    Authorization: {secret: {env: CF_API_TOKEN}, prefix: "Bearer "}   # a SecretValue

The value is read at use time (``SecretRef.resolve()``), so a rotated file or a
restarted pod's new environment is picked up without a reload. Whatever may be
stored or logged (plans, outcomes, error messages) passes through a :class:`Redactor`
that knows the values resolved for that call; the process-wide redactor also backs a
logging filter installed on the HTTP client's logger (it logs request URLs, and a
Slack webhook URL is itself a secret).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from monitor.errors import ConfigError

MASK = "<redacted>"
# Shorter values are not masked in free text: a two-letter "secret" would mangle every
# message. Such a value still never reaches a plan, since plans show references only.
MIN_REDACT_LENGTH = 4


class SecretRef(BaseModel):
    """``{env: NAME}`` or ``{file: PATH}``: where a secret's value is read at use time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    env: str | None = None
    file: Path | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference needs exactly one of 'env' or 'file'")
        if self.env is not None and not self.env:
            raise ValueError("'env' must name an environment variable")
        return self

    def describe(self) -> str:
        """``env:NAME`` or ``file:PATH``: safe to show, log and store."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"

    def resolve(self) -> str:
        """The secret's value; ConfigError (naming the reference, never a value) if unset."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(
                    f"secret {self.describe()}: environment variable {self.env!r} is not set"
                )
        else:
            assert self.file is not None
            try:
                value = self.file.read_text(encoding="utf-8").rstrip("\r\n")
            except OSError as exc:
                raise ConfigError(
                    f"secret {self.describe()}: cannot read file: {exc.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(f"secret {self.describe()}: file is not UTF-8 text") from None
        if not value:
            raise ConfigError(f"secret {self.describe()} is empty")
        remember(value)
        return value


class SecretValue(BaseModel):
    """An inline secret in a header or body: ``{secret: {env: X}, prefix: "Bearer "}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretRef
    prefix: str = ""

    def placeholder(self) -> str:
        """What plans show in place of the value: ``Bearer <secret env:X>``."""
        return f"{self.prefix}<secret {self.secret.describe()}>"

    def resolve(self, redactor: Redactor | None = None) -> str:
        value = self.secret.resolve()
        if redactor is not None:
            redactor.add(value)
        return self.prefix + value


def is_marker(value: Any) -> bool:
    """True for a raw mapping shaped like a :class:`SecretValue` (``{secret: {...}}``)."""
    return isinstance(value, dict) and "secret" in value and set(value) <= {"secret", "prefix"}


def parse_markers(value: Any) -> Any:
    """``value`` with every ``{secret: ...}`` mapping (at any depth) parsed to SecretValue."""
    if isinstance(value, SecretValue):
        return value
    if is_marker(value):
        return SecretValue.model_validate(value)
    if isinstance(value, dict):
        return {key: parse_markers(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [parse_markers(item) for item in value]
    return value


def show(value: Any) -> Any:
    """``value`` with every SecretValue replaced by its placeholder (for plans)."""
    if isinstance(value, SecretValue):
        return value.placeholder()
    if isinstance(value, SecretRef):
        return f"<secret {value.describe()}>"
    if isinstance(value, dict):
        return {key: show(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [show(item) for item in value]
    return value


def materialize(value: Any, redactor: Redactor) -> Any:
    """``value`` with every SecretValue resolved; each value is added to ``redactor``."""
    if isinstance(value, SecretValue):
        return value.resolve(redactor)
    if isinstance(value, SecretRef):
        return redactor.add(value.resolve())
    if isinstance(value, dict):
        return {key: materialize(item, redactor) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [materialize(item, redactor) for item in value]
    return value


class Redactor:
    """Masks known secret values in text and in nested data (dicts, lists, strings)."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        for value in values:
            self.add(value)

    def add(self, value: str) -> str:
        if len(value) >= MIN_REDACT_LENGTH:
            with self._lock:
                self._values.add(value)
        return value

    def __len__(self) -> int:
        return len(self._values)

    def text(self, text: str) -> str:
        if not self._values:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            if value in text:
                text = text.replace(value, MASK)
        return text

    def value(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {
                self.text(str(k)) if isinstance(k, str) else k: self.value(v)
                for k, v in data.items()
            }
        if isinstance(data, list | tuple):
            return [self.value(item) for item in data]
        return data


# Every value resolved in this process; used by the logging filter below.
_KNOWN = Redactor()
_MAX_KNOWN = 1000


def remember(value: str) -> None:
    if len(_KNOWN) < _MAX_KNOWN:
        _KNOWN.add(value)


class RedactingFilter(logging.Filter):
    """A logging filter that masks every secret value resolved in this process."""

    def filter(self, record: logging.LogRecord) -> bool:
        if len(_KNOWN):
            message = record.getMessage()
            masked = _KNOWN.text(message)
            if masked != message:
                record.msg, record.args = masked, None
        return True


_FILTER = RedactingFilter()


def protect_logger(name: str) -> None:
    """Install the redacting filter on logger ``name`` (idempotent)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
