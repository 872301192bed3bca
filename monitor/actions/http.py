"""``http.request``: call an HTTP API (a CDN purge, a feature flag, a runbook hook).

Parameters arrive already templated by the engine; secrets stay references until apply
(``{secret: {env: CF_API_TOKEN}, prefix: "Bearer "}`` in a header or anywhere in the
body, or ``auth: {bearer: {env: CF_API_TOKEN}}``). The plan shows the request with
each secret as ``<secret env:NAME>``; outcomes, errors and logs pass through a
:class:`~monitor.secrets.Redactor` holding the values resolved for the call.

One try is one request (:func:`send`): a transport error, a 429 or a 5xx raises
TemporaryActionError whose ``delay`` is the server's ``Retry-After`` (else ``backoff``);
any other status outside ``expect_status`` is a PermanentActionError. The retries are
the action runner's (:mod:`monitor.actions.runner`), from the parameters: ``retries``
tries after the first, waiting ``backoff`` * 2^(n-1) capped at ``max_backoff``, or the
``Retry-After`` when longer; a ``Retry-After`` beyond ``max_retry_after`` ends the run.
A try may take ``timeout`` + :data:`TIMEOUT_MARGIN` seconds, connect to last byte.

Values from alert labels belong in ``path_params`` (each fills a ``{name}`` of the URL as
one percent-encoded path segment) and ``query`` (percent-encoded query values), not
pasted into ``url``: a label cannot add a path segment, a query parameter or a fragment.
A URL with a dot segment (``/../``, also percent-encoded), a backslash, whitespace or a
control character is refused. At most MAX_BODY bytes of a response are read; error
bodies are masked, then cut to :data:`monitor.secrets.EXCERPT_LENGTH` characters.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator, model_validator

from monitor import durations, secrets
from monitor.actions import registry, runner
from monitor.errors import ConfigError, PermanentActionError, TemporaryActionError

TIMEOUT_MARGIN = 10.0  # seconds a try may run beyond the request timeout
EXCERPT = 2000  # characters of a response body kept in the outcome
MAX_BODY = 65536  # bytes of a response body read at most
MAX_URL = 8192
MAX_PARAM = 1024
MAX_JSON_DEPTH = 32  # a deeper JSON response is kept as text
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
# A dot segment ("." or "..", also percent-encoded) would let a value climb the path.
DOT_SEGMENT = re.compile(r"(?i)(?:^|/)(?:\.|%2e){1,2}(?:[/?#]|$)")
UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")


def check_url(url: str) -> str:
    """ValueError unless ``url`` is an http(s) URL free of dot segments and unsafe bytes."""
    if not re.match(r"https?://[^/\s]+", url):
        raise ValueError(f"invalid URL {url!r}: use http(s)://host/path")
    if len(url) > MAX_URL:
        raise ValueError(f"URL longer than {MAX_URL} characters")
    if UNSAFE_URL.search(url):
        raise ValueError(
            f"invalid URL {url!r}: whitespace, control characters and backslashes are not "
            "allowed (put values from labels in path_params or query)"
        )
    path = urllib.parse.urlsplit(url).path
    if DOT_SEGMENT.search(path):
        raise ValueError(
            f"invalid URL {url!r}: '.' and '..' path segments are not allowed "
            "(put values from labels in path_params or query)"
        )
    return url


def build_url(url: str, path_params: dict[str, str], query: dict[str, str]) -> str:
    """``url`` with each ``{name}`` filled (one encoded segment) and ``query`` appended."""
    if path_params:
        url = PLACEHOLDER.sub(lambda m: urllib.parse.quote(path_params[m.group(1)], safe=""), url)
    if query:
        encoded = urllib.parse.urlencode(query, quote_via=urllib.parse.quote)
        url += ("&" if "?" in url else "?") + encoded
    return url


class BasicAuth(registry.StrictModel):
    username: str
    password: secrets.SecretRef


class Auth(registry.StrictModel):
    """Exactly one of ``bearer`` (a token) or ``basic`` (username and password)."""

    bearer: secrets.SecretRef | None = None
    basic: BasicAuth | None = None

    @model_validator(mode="after")
    def _one(self) -> Auth:
        if (self.bearer is None) == (self.basic is None):
            raise ValueError("auth needs exactly one of 'bearer' or 'basic'")
        return self


class RequestParams(registry.StrictModel):
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str | secrets.SecretValue
    # {name} in url -> the value as one percent-encoded path segment; and query values.
    path_params: dict[str, str] = {}
    query: dict[str, str] = {}
    headers: dict[str, secrets.SecretValue | str] = {}
    auth: Auth | None = None
    # A mapping or list is sent as JSON; a string as text. {secret: ...} anywhere inside
    # is replaced by the secret's value at apply time.
    body: Any = None
    timeout: durations.Seconds = Field(10.0, gt=0, le=300)
    retries: int = Field(3, ge=0, le=10)
    backoff: float = Field(1.0, ge=0, le=60)
    max_backoff: float = Field(30.0, ge=0, le=600)
    max_retry_after: float = Field(60.0, ge=0, le=3600)
    expect_status: list[int] = []

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | secrets.SecretValue) -> str | secrets.SecretValue:
        return check_url(value) if isinstance(value, str) else value

    @field_validator("path_params", "query")
    @classmethod
    def _values(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if len(item) > MAX_PARAM:
                raise ValueError(f"value of {name!r} is longer than {MAX_PARAM} characters")
        return value

    @field_validator("path_params")
    @classmethod
    def _segments(cls, value: dict[str, str]) -> dict[str, str]:
        for name, item in value.items():
            if item in ("", ".", ".."):
                raise ValueError(f"{name!r}: {item!r} is not a path segment")
        return value

    @model_validator(mode="after")
    def _placeholders(self) -> RequestParams:
        if isinstance(self.url, secrets.SecretValue):
            if self.path_params:
                raise ValueError("path_params needs a plain url (a secret url has no {name})")
            return self
        named = set(PLACEHOLDER.findall(self.url))
        if named != set(self.path_params):
            missing = ", ".join(sorted(named - set(self.path_params))) or "none"
            unused = ", ".join(sorted(set(self.path_params) - named)) or "none"
            raise ValueError(
                f"url placeholders and path_params differ (no value for: {missing}; "
                f"not in the url: {unused})"
            )
        return self

    @field_validator("body", mode="before")
    @classmethod
    def _markers(cls, value: Any) -> Any:
        return secrets.parse_markers(value)

    @field_validator("expect_status")
    @classmethod
    def _statuses(cls, value: list[int]) -> list[int]:
        for status in value:
            if not 100 <= status <= 599:
                raise ValueError(f"invalid HTTP status {status!r} in expect_status")
        return value

    def expected(self, status: int) -> bool:
        return status in self.expect_status if self.expect_status else 200 <= status < 300


@dataclass
class Prepared:
    """A request with secrets resolved (never stored) and its shown form (stored)."""

    method: str
    url: str
    headers: dict[str, str]
    content: bytes | None
    shown: dict[str, Any]


def shown_request(params: RequestParams) -> dict[str, Any]:
    """The request as plans show it: every secret as ``<secret env:NAME>``."""
    headers = secrets.show(params.headers)
    if params.auth is not None:
        if params.auth.bearer is not None:
            headers["Authorization"] = f"Bearer <secret {params.auth.bearer.describe()}>"
        elif params.auth.basic is not None:
            headers["Authorization"] = (
                f"Basic {params.auth.basic.username}:"
                f"<secret {params.auth.basic.password.describe()}>"
            )
    url = secrets.show(params.url)
    shown: dict[str, Any] = {
        "method": params.method,
        "url": build_url(url, params.path_params, params.query),
        "headers": headers,
    }
    if params.body is not None:
        shown["body"] = secrets.show(params.body)
    return shown


def check_headers(headers: dict[str, str]) -> None:
    """PermanentActionError naming the header (never its value, maybe a secret) if a value
    holds a line break or NUL: it would split the request, and the HTTP library's error
    would quote the value."""
    for name, value in headers.items():
        if any(c in value for c in "\r\n\0"):
            raise PermanentActionError(f"header {name!r}: a line break or NUL in its value")


def prepare(params: RequestParams, redactor: secrets.Redactor) -> Prepared:
    """Resolve every secret of the request; ActionError if one cannot be read."""
    try:
        url = build_url(secrets.materialize(params.url, redactor), params.path_params, params.query)
        headers = {k: str(v) for k, v in secrets.materialize(params.headers, redactor).items()}
        if params.auth is not None:
            if params.auth.bearer is not None:
                token = redactor.add(params.auth.bearer.resolve())
                headers["Authorization"] = f"Bearer {token}"
            elif params.auth.basic is not None:
                password = redactor.add(params.auth.basic.password.resolve())
                raw = f"{params.auth.basic.username}:{password}".encode()
                token = redactor.add(base64.b64encode(raw).decode())
                secrets.remember(token)  # for the log filter, like every resolved value
                headers["Authorization"] = f"Basic {token}"
        body = secrets.materialize(params.body, redactor)
    except ConfigError as exc:
        raise PermanentActionError(str(exc)) from None
    check_headers(headers)
    content: bytes | None = None
    lower = {k.lower() for k in headers}
    if isinstance(body, str):
        content = body.encode()
        if "content-type" not in lower:
            headers["Content-Type"] = "text/plain; charset=utf-8"
    elif body is not None:
        content = json.dumps(body, separators=(",", ":")).encode()
        if "content-type" not in lower:
            headers["Content-Type"] = "application/json"
    return Prepared(params.method, url, headers, content, shown_request(params))


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@contextlib.asynccontextmanager
async def client_for(shared: httpx.AsyncClient | None) -> AsyncIterator[httpx.AsyncClient]:
    """The app's shared client, or a fresh one closed after the call."""
    if shared is not None:
        yield shared
        return
    async with httpx.AsyncClient() as client:
        yield client


@dataclass
class Sent:
    response: httpx.Response  # its body already read (and closed): use ``text``
    text: str = ""  # at most MAX_BODY bytes of the body, decoded
    truncated: bool = False  # the body was longer than MAX_BODY

    def excerpt(self, redactor: secrets.Redactor) -> str:
        """The start of the body for an error message: masked, then cut."""
        text = self.text + (secrets.TRUNCATED if self.truncated else "")
        return redactor.excerpt(text)


async def read_body(response: httpx.Response, limit: int = MAX_BODY) -> tuple[str, bool]:
    """At most ``limit`` bytes of a streamed body, decoded; and whether there was more."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    data = b"".join(chunks)
    try:
        text = data[:limit].decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # an unknown charset in Content-Type
        text = data[:limit].decode("utf-8", errors="replace")
    return text, size > limit


async def send(
    client: httpx.AsyncClient,
    request: Prepared,
    *,
    request_timeout: float,
    expected: Callable[[int], bool],
    redactor: secrets.Redactor,
    log: logging.Logger,
    default_delay: float = 1.0,
) -> Sent:
    """Send once. A transport error, or a 429/5xx that ``expected`` does not accept,
    raises TemporaryActionError (``delay``: the Retry-After, else ``default_delay``);
    any other response is returned for the caller to judge."""
    where = f"{request.method} {redactor.text(str(request.shown['url']))}"
    try:
        outgoing = client.build_request(
            request.method,
            request.url,
            headers=request.headers,
            content=request.content,
            timeout=request_timeout,
        )
        response = await client.send(outgoing, stream=True)
        try:
            text, truncated = await read_body(response)
        finally:
            await response.aclose()
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        reason = redactor.excerpt(f"{type(exc).__name__}: {exc}")
        log.warning("%s: %s", where, reason)
        raise TemporaryActionError(f"{where}: {reason}", delay=default_delay) from None
    status = response.status_code
    log.info("%s -> HTTP %d", where, status)
    sent = Sent(response, text, truncated)
    if expected(status) or not (status == 429 or status >= 500):
        return sent
    hint = retry_after(response)
    raise TemporaryActionError(
        f"{where}: HTTP {status}: {sent.excerpt(redactor)}",
        delay=default_delay if hint is None else hint,
    )


def retry_policy(
    retries: int,
    *,
    first: float,
    cap: float,
    max_hint: float,
    request_timeout: float = 10.0,
) -> runner.RetryPolicy:
    """The runner's policy for ``retries`` retries of a request: ``first`` * 2^(n-1)
    capped at ``cap``, a Retry-After up to ``max_hint`` waited in full; the deadline
    leaves room for every try and every wait."""
    attempts = retries + 1
    needed = attempts * (request_timeout + TIMEOUT_MARGIN) + retries * max(cap, max_hint)
    return runner.RetryPolicy(
        attempts=attempts,
        first=first,
        factor=2.0,
        cap=cap,
        deadline=max(runner.RetryPolicy().deadline, needed),
        max_hint=max_hint,
    )


def response_excerpt(sent: Sent, redactor: secrets.Redactor) -> Any:
    """The response body for the audit record: JSON if it parses, text otherwise, short."""
    text = sent.text
    content_type = sent.response.headers.get("content-type", "")
    if not sent.truncated and len(text) <= EXCERPT and "json" in content_type:
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):  # 2000 characters nest 1000 deep
            pass
        else:
            if not _deeper(data, MAX_JSON_DEPTH):
                return redactor.value(data)
    return redactor.excerpt(text + (secrets.TRUNCATED if sent.truncated else ""), EXCERPT)


def _deeper(data: Any, limit: int) -> bool:
    """True if ``data`` nests lists and mappings more than ``limit`` deep."""
    if isinstance(data, dict | list):
        if limit == 0:
            return True
        items = data.values() if isinstance(data, dict) else data
        return any(_deeper(item, limit - 1) for item in items)
    return False


class Request(registry.Action[RequestParams]):
    name = "http.request"
    Params = RequestParams
    timeout = 300.0 + TIMEOUT_MARGIN  # the longest request timeout, and a margin

    def attempt_timeout(self, params: RequestParams, ctx: registry.ActionContext) -> float:
        return params.timeout + TIMEOUT_MARGIN

    def retry_policy(
        self, params: RequestParams, ctx: registry.ActionContext
    ) -> runner.RetryPolicy | None:
        return retry_policy(
            params.retries,
            first=params.backoff,
            cap=params.max_backoff,
            max_hint=params.max_retry_after,
            request_timeout=params.timeout,
        )

    async def plan(self, params: RequestParams, ctx: registry.ActionContext) -> registry.Plan:
        shown = shown_request(params)
        expect = params.expect_status or "2xx"
        return registry.Plan(
            action=self.name,
            summary=f"{params.method} {shown['url']} (expect {expect})",
            details={"request": shown, "retries": params.retries, "timeout": params.timeout},
        )

    async def apply(
        self, params: RequestParams, ctx: registry.ActionContext, plan: registry.Plan
    ) -> registry.Outcome:
        redactor = secrets.Redactor()
        request = prepare(params, redactor)
        async with client_for(ctx.services.http) as client:
            sent = await send(
                client,
                request,
                request_timeout=params.timeout,
                expected=params.expected,
                redactor=redactor,
                log=ctx.log,
                default_delay=params.backoff,
            )
        status = sent.response.status_code
        body = response_excerpt(sent, redactor)
        where = f"{params.method} {redactor.text(str(request.shown['url']))}"
        if not params.expected(status):
            expect = params.expect_status or "2xx"
            excerpt = sent.excerpt(redactor)
            raise PermanentActionError(f"{where}: HTTP {status}, expected {expect}: {excerpt}")
        return registry.Outcome(
            summary=f"{where} -> HTTP {status}",
            details={"request": request.shown, "status": status, "response": body},
        )


def register(reg: registry.Registry) -> None:
    secrets.protect_logger("httpx")  # it logs request URLs; a webhook URL may be a secret
    secrets.protect_logger("monitor.actions")
    reg.register(Request)
