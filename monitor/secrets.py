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

import collections
import json
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from monitor.errors import ConfigError

MASK = "<redacted>"
# Shorter values are not masked in free text: a two-letter "secret" would mangle every
# message. Such a value still never reaches a plan, since plans show references only.
MIN_REDACT_LENGTH = 4
# A part of a secret URL (a path segment, a query value) is masked on its own only when it
# looks like a token: this long and holding a digit, or at least TOKEN_LENGTH long, so
# that "services" in a Slack webhook URL does not mask the word everywhere.
MIN_PART_LENGTH = 8
TOKEN_LENGTH = 20
# Remote error bodies are cut to this many characters before they are stored or sent.
EXCERPT_LENGTH = 512
TRUNCATED = "…(truncated)"

log = logging.getLogger(__name__)


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
            raw = os.environ.get(self.env)
            if raw is None:
                raise ConfigError(
                    f"secret {self.describe()}: environment variable {self.env!r} is not set"
                )
            # A file's one final line break is the POSIX convention; not worth a warning.
            usual = raw
        else:
            assert self.file is not None
            try:
                raw = self.file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(
                    f"secret {self.describe()}: cannot read file: {exc.strerror}"
                ) from None
            except UnicodeDecodeError:
                raise ConfigError(f"secret {self.describe()}: file is not UTF-8 text") from None
            usual = raw.removesuffix("\n").removesuffix("\r")
        value = raw.strip()
        if not value:
            raise ConfigError(f"secret {self.describe()} is empty")
        remember(raw)  # the unstripped form too: it is what a library may echo
        if value != usual:
            log.warning(  # worded so that logs' "token: value" mask leaves it readable
                "surrounding whitespace (%s) removed from the value of secret %s",
                _whitespace(raw, value),
                self.describe(),
            )
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


def _whitespace(raw: str, value: str) -> str:
    """Names (never shows) what was stripped: ``leading 1, trailing 2 characters``."""
    start = raw.index(value)
    end = len(raw) - start - len(value)
    parts = [f"{name} {count}" for name, count in (("leading", start), ("trailing", end)) if count]
    return ", ".join(parts) + " character(s)"


def _percent_lower(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def _looks_like_token(part: str) -> bool:
    return len(part) >= TOKEN_LENGTH or (
        len(part) >= MIN_PART_LENGTH and any(c.isdigit() for c in part)
    )


def _url_parts(value: str) -> set[str]:
    """The parts of a secret URL a server may echo alone: path, query, token-like pieces."""
    try:
        url = urllib.parse.urlsplit(value)
    except ValueError:
        return set()
    if url.scheme not in ("http", "https") or not url.netloc:
        return set()
    parts: set[str] = set()
    if len(url.path) > 1:
        parts.add(url.path)
    if url.query:
        parts.add(url.query)
        parts.update(v for _, v in urllib.parse.parse_qsl(url.query) if _looks_like_token(v))
    if url.password:
        parts.add(url.password)
    parts.update(s for s in url.path.split("/") if _looks_like_token(s))
    return {part for part in parts if len(part) >= MIN_PART_LENGTH or part == url.path}


def forms(value: str) -> set[str]:
    """The ways ``value`` may show up in text: as it is, stripped, escaped and encoded.

    repr() and JSON escaping (an HTTP library's ``Illegal header value b'...\\n'``, a
    JSON error body), percent-encoding (``quote`` with and without ``/``, ``quote_plus``,
    upper- and lower-case hex), and for an http(s) URL the parts a server may echo alone.
    """
    found = {value, value.strip()}
    for item in list(found):
        found.update(_url_parts(item))
    for _ in range(2):  # escaped once, and twice (a repr() inside a JSON error body)
        for item in list(found):
            found.add(repr(item)[1:-1])
            found.add(repr(item.encode())[2:-1])  # b'...' as in "Illegal header value"
            found.add(json.dumps(item)[1:-1])
            found.add(json.dumps(item, ensure_ascii=False)[1:-1])
    for item in list(found):
        for quoted in (
            urllib.parse.quote(item, safe=""),
            urllib.parse.quote(item),
            urllib.parse.quote_plus(item),
        ):
            found.update((quoted, _percent_lower(quoted)))
    return {form for form in found if len(form) >= MIN_REDACT_LENGTH}


class Redactor:
    """Masks known secret values, and their escaped and encoded forms, in text and data."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        for value in values:
            self.add(value)

    def add(self, value: str) -> str:
        if len(value.strip()) >= MIN_REDACT_LENGTH:
            new = forms(value)
            with self._lock:
                if not new <= self._values:
                    self._values |= new
                    self._pattern = None
        return value

    def __len__(self) -> int:
        return len(self._values)

    def _compiled(self) -> re.Pattern[str] | None:
        with self._lock:
            if self._pattern is None and self._values:
                # Longest first, so a value's longer forms win over a shorter one inside it.
                ordered = sorted(self._values, key=len, reverse=True)
                self._pattern = re.compile("|".join(map(re.escape, ordered)))
            return self._pattern

    def text(self, text: str) -> str:
        pattern = self._compiled()
        if pattern is None:
            return text
        return pattern.sub(MASK, text)

    def excerpt(self, text: str, limit: int = EXCERPT_LENGTH) -> str:
        """``text`` masked, then cut to ``limit`` characters (said with "…(truncated)").

        Masking comes first, on a window long enough to hold a secret that straddles the
        cut, so no prefix of a secret survives the cut.
        """
        longest = max(map(len, self._values), default=0)
        masked = self.text(text[: limit + longest])
        if len(masked) <= limit and len(text) <= limit + longest:
            return masked
        return masked[:limit] + TRUNCATED

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


class _Known:
    """The values resolved in this process, the most recently used ``limit`` of them.

    A value resolved again moves to the end; when there are more, the one unused longest
    is forgotten (a rotated secret), never the newest: a full table must not stop masking.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._values: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._redactor = Redactor()
        self._lock = threading.Lock()

    def add(self, value: str) -> None:
        with self._lock:
            if value in self._values:
                self._values.move_to_end(value)
                return
            self._values[value] = None
            if len(self._values) > self.limit:
                self._values.popitem(last=False)
                self._redactor = Redactor(self._values)
            else:
                self._redactor.add(value)

    def __len__(self) -> int:
        return len(self._values)

    def text(self, text: str) -> str:
        return self._redactor.text(text)


# Every value resolved in this process; used by the logging filter below.
_KNOWN = _Known(limit=1000)


def remember(value: str) -> None:
    _KNOWN.add(value)


def mask(text: str) -> str:
    """``text`` with every secret value resolved in this process masked."""
    return _KNOWN.text(text) if len(_KNOWN) else text


class RedactingFilter(logging.Filter):
    """A logging filter that masks every secret value resolved in this process.

    It masks the message and a traceback (``exc_info``) alike; installed on a handler
    it covers every logger that reaches the handler.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if len(_KNOWN):
            message = record.getMessage()
            masked = _KNOWN.text(message)
            if masked != message:
                record.msg, record.args = masked, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                masked = _KNOWN.text(record.exc_text)
                if masked != record.exc_text:
                    # Formatters print exc_text when exc_info is gone (JSON ones too).
                    record.exc_text, record.exc_info = masked, None
            if record.stack_info:
                record.stack_info = _KNOWN.text(record.stack_info)
        return True


_FILTER = RedactingFilter()


def protect_logger(name: str) -> None:
    """Install the redacting filter on logger ``name`` (idempotent)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
