"""``http.request``: call an HTTP API (a CDN purge, a feature flag, a runbook hook).

Parameters arrive already templated by the engine; secrets stay references until apply
(``{secret: {env: CF_API_TOKEN}, prefix: "Bearer "}`` in a header or anywhere in the
body, or ``auth: {bearer: {env: CF_API_TOKEN}}``). The plan shows the request with
each secret as ``<secret env:NAME>``; outcomes, errors and logs pass through a
:class:`~monitor.secrets.Redactor` holding the values resolved for the call.

Retries: transport errors, 429 and 5xx are retried ``retries`` times with exponential
backoff (``backoff`` * 2^n, capped at ``max_backoff``), or after the server's
``Retry-After`` when it says so. A ``Retry-After`` longer than ``max_retry_after``, or
retries exhausted, raise TemporaryActionError with that delay (the engine may try
again later). Any other status outside ``expect_status`` is a PermanentActionError.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator, model_validator

from monitor import secrets
from monitor.actions import registry
from monitor.errors import ConfigError, PermanentActionError, TemporaryActionError

Sleep = Callable[[float], Awaitable[None]]
EXCERPT = 2000


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
    headers: dict[str, secrets.SecretValue | str] = {}
    auth: Auth | None = None
    # A mapping or list is sent as JSON; a string as text. {secret: ...} anywhere inside
    # is replaced by the secret's value at apply time.
    body: Any = None
    timeout: float = Field(10.0, gt=0, le=300)
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
        if isinstance(value, str) and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(f"invalid URL {value!r}: use http(s)://host/path")
        return value

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
    shown: dict[str, Any] = {
        "method": params.method,
        "url": secrets.show(params.url),
        "headers": headers,
    }
    if params.body is not None:
        shown["body"] = secrets.show(params.body)
    return shown


def prepare(params: RequestParams, redactor: secrets.Redactor) -> Prepared:
    """Resolve every secret of the request; ActionError if one cannot be read."""
    try:
        url = secrets.materialize(params.url, redactor)
        headers = {k: str(v) for k, v in secrets.materialize(params.headers, redactor).items()}
        if params.auth is not None:
            if params.auth.bearer is not None:
                token = redactor.add(params.auth.bearer.resolve())
                headers["Authorization"] = f"Bearer {token}"
            elif params.auth.basic is not None:
                password = redactor.add(params.auth.basic.password.resolve())
                raw = f"{params.auth.basic.username}:{password}".encode()
                token = redactor.add(base64.b64encode(raw).decode())
                headers["Authorization"] = f"Basic {token}"
        body = secrets.materialize(params.body, redactor)
    except ConfigError as exc:
        raise PermanentActionError(str(exc)) from None
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
    response: httpx.Response
    attempts: int
    waited: float


async def send(
    client: httpx.AsyncClient,
    request: Prepared,
    *,
    request_timeout: float,
    retries: int,
    backoff: float,
    max_backoff: float,
    max_retry_after: float,
    expected: Callable[[int], bool],
    redactor: secrets.Redactor,
    log: logging.Logger,
    sleep: Sleep = asyncio.sleep,
) -> Sent:
    """Send with retries on transport errors, 429 and 5xx; return the final response."""
    where = f"{request.method} {redactor.text(str(request.shown['url']))}"
    waited = 0.0
    attempt = 0
    while True:
        attempt += 1
        delay = min(max_backoff, backoff * 2 ** (attempt - 1))
        try:
            response = await client.request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.content,
                timeout=request_timeout,
            )
        except httpx.HTTPError as exc:
            reason = redactor.text(f"{type(exc).__name__}: {exc}")
            log.warning("%s: attempt %d failed: %s", where, attempt, reason)
            if attempt > retries:
                raise TemporaryActionError(
                    f"{where}: {reason} (after {attempt} attempts)", delay=max(delay, 1.0)
                ) from None
        else:
            status = response.status_code
            log.info("%s -> HTTP %d (attempt %d)", where, status, attempt)
            if expected(status) or not (status == 429 or status >= 500):
                return Sent(response, attempt, waited)
            hint = retry_after(response)
            if hint is not None:
                delay = hint
            excerpt = redactor.text(response.text[:300])
            if attempt > retries or delay > max_retry_after:
                raise TemporaryActionError(
                    f"{where}: HTTP {status} after {attempt} attempt(s): {excerpt}",
                    delay=max(delay, 1.0),
                )
        waited += delay
        await sleep(delay)


def response_excerpt(response: httpx.Response, redactor: secrets.Redactor) -> Any:
    """The response body for the audit record: JSON if it parses, text otherwise, short."""
    text = response.text
    if len(text) <= EXCERPT and "json" in response.headers.get("content-type", ""):
        try:
            return redactor.value(json.loads(text))
        except ValueError:
            pass
    return redactor.text(text[:EXCERPT])


class Request(registry.Action[RequestParams]):
    name = "http.request"
    Params = RequestParams
    sleep: Sleep = staticmethod(asyncio.sleep)  # tests inject a recorder

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
                retries=params.retries,
                backoff=params.backoff,
                max_backoff=params.max_backoff,
                max_retry_after=params.max_retry_after,
                expected=params.expected,
                redactor=redactor,
                log=ctx.log,
                sleep=self.sleep,
            )
        status = sent.response.status_code
        body = response_excerpt(sent.response, redactor)
        where = f"{params.method} {request.shown['url']}"
        if not params.expected(status):
            expect = params.expect_status or "2xx"
            excerpt = redactor.text(sent.response.text[:300])
            raise PermanentActionError(f"{where}: HTTP {status}, expected {expect}: {excerpt}")
        return registry.Outcome(
            summary=f"{where} -> HTTP {status}",
            details={
                "request": request.shown,
                "status": status,
                "attempts": sent.attempts,
                "waited_seconds": sent.waited,
                "response": body,
            },
        )


def register(reg: registry.Registry) -> None:
    secrets.protect_logger("httpx")  # it logs request URLs; a webhook URL may be a secret
    secrets.protect_logger("monitor.actions")
    reg.register(Request)
