"""``POST /webhook/alertmanager``: authenticate, bound, parse, commit, answer, then process.

The answer is 200 only once the notification and its alerts are committed; processing
(the engine) starts after that. Every bad request gets a 4xx whose body names what was
wrong; Alertmanager does not retry 4xx, and retries the 503 given when the store fails
or does not commit within ``store.write_timeout_seconds``. Values the store could not hold
are refused by the payload model (422), so one request cannot wedge the writer.

This is the hot path (``bench/webhook.py``), so it is a bare ASGI endpoint: no request
object, no dependency solving; the body is parsed straight from bytes by pydantic.
``create_app`` puts it in front of the framework (:func:`in_front`), as ``/probe`` is:
``POST /webhook/alertmanager`` never goes through the middleware and the router, and a
bug inside is answered here as the framework's handler answers one (a JSON 500 naming
the exception, logged). ``router`` serves the same endpoint from inside a FastAPI app.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter
from starlette import routing
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monitor.alerts import payload
from monitor.errors import StoreError
from monitor.runtime import Runtime

log = logging.getLogger(__name__)

JSON = b"application/json"


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    """The body; raises _TooLarge as soon as it grows past ``limit`` bytes."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _answer(
    send: Send, status: int, body: dict[str, Any], extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    data = orjson.dumps(body)
    headers = [(b"content-type", JSON), (b"content-length", str(len(data)).encode())]
    await send(
        {"type": "http.response.start", "status": status, "headers": headers + (extra or [])}
    )
    await send({"type": "http.response.body", "body": data})


async def _problem(
    send: Send,
    status: int,
    message: str,
    details: list[dict[str, str]] | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body: dict[str, Any] = {"error": message}
    if details:
        body["details"] = details
    await _answer(send, status, body, extra)


class WebhookEndpoint:
    """The ASGI app behind ``/webhook/alertmanager``."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        rt: Runtime = scope["app"].state.runtime
        metrics = rt.metrics
        headers = dict(scope["headers"])
        client = scope.get("client")
        authorization = headers.get(b"authorization")
        if not rt.auth.check(
            authorization.decode("latin-1") if authorization else None,
            client[0] if client else None,
        ):
            metrics.webhooks.labels("unauthorized").inc()
            await _problem(
                send,
                401,
                "authentication required: send the configured bearer "
                "token or basic auth credentials",
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        ctype = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if ctype != JSON:
            metrics.webhooks.labels("unsupported_media_type").inc()
            shown = repr(ctype.decode("latin-1")) if ctype else "'none'"
            await _problem(send, 415, f"content type must be application/json, got {shown}")
            return
        limit = rt.settings.webhook.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            metrics.webhooks.labels("too_large").inc()
            await _problem(
                send, 413, f"body of {int(declared)} bytes is over the limit of {limit} bytes"
            )
            return
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            metrics.webhooks.labels("too_large").inc()
            await _problem(send, 413, f"body is over the limit of {limit} bytes")
            return
        try:
            notification = payload.parse(body)
        except payload.PayloadError as exc:
            metrics.webhooks.labels("invalid").inc()
            whole = exc.details and exc.details[0]["field"] in ("(body)", "(top level)")
            await _problem(send, 400 if whole else 422, exc.message, exc.details)
            return
        received = datetime.now(UTC)
        try:
            stored = await rt.writer.submit(
                body, notification, received, rt.needs_processing(notification)
            )
        except StoreError as exc:
            metrics.webhooks.labels("error").inc()
            metrics.store_errors.labels("write_notification").inc()
            await _problem(send, 503, f"{exc}; Alertmanager will retry")
            return
        counts: dict[tuple[str, str], int] = {}
        for item in stored.alerts:
            key = (item.alert.status, "true" if item.repeat else "false")
            counts[key] = counts.get(key, 0) + 1
        for (status, repeat), count in counts.items():
            metrics.alerts_received.labels(status, repeat).inc(count)
        new = counts.get(("firing", "false"), 0) + counts.get(("resolved", "false"), 0)
        metrics.webhooks.labels("accepted").inc()
        rt.dispatch(stored)
        await rt.hold()  # backpressure: a storm cannot outrun deciding
        metrics.webhook_duration.observe(time.perf_counter() - started)
        await _answer(
            send,
            200,
            {
                "status": "stored",
                "notification_id": stored.id,
                "alerts": len(stored.alerts),
                "new": new,
                "repeats": len(stored.alerts) - new,
            },
        )


ENDPOINT = WebhookEndpoint()
PATH = "/webhook/alertmanager"


def in_front(app: ASGIApp) -> ASGIApp:
    """``app`` with ``POST /webhook/alertmanager`` answered before it: the framework's
    middleware and routing never see a notification. Everything else, other methods on
    the path included (405 from the router), goes to ``app``."""

    async def front(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await _guarded(scope, receive, send)
        else:
            await app(scope, receive, send)

    return front


async def _guarded(scope: Scope, receive: Receive, send: Send) -> None:
    """The endpoint, with what the framework's error handling did for it: a bug is
    logged and, unless the answer has begun, answered with a JSON 500 naming it."""
    started = False

    async def tracked(message: Message) -> None:
        nonlocal started
        started = True
        await send(message)

    try:
        await ENDPOINT(scope, receive, tracked)
    except Exception as exc:
        log.exception("unhandled error on POST %s", PATH)
        if not started:
            await _problem(send, 500, f"internal error ({type(exc).__name__}); see the service log")


router = APIRouter()
router.routes.append(routing.Route(PATH, ENDPOINT, methods=["POST"], include_in_schema=False))
