"""``POST /webhook/alertmanager``: authenticate, bound, parse, commit, answer, then process.

The answer is 200 only once the notification and its alerts are committed; processing
(the engine) starts after that. Every bad request gets a 4xx whose body names what was
wrong; Alertmanager does not retry 4xx, and retries the 503 given when the store fails.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from monitor.alerts import payload
from monitor.api.errors import JSONResponse, problem
from monitor.errors import StoreError
from monitor.runtime import Runtime

router = APIRouter()

JSON_TYPES = ("application/json",)


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it grows past ``limit`` bytes (stops reading there)."""
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/webhook/alertmanager", response_class=JSONResponse)
async def alertmanager_webhook(request: Request) -> Response:
    started = time.perf_counter()
    rt: Runtime = request.app.state.runtime
    metrics = rt.metrics
    client = request.client.host if request.client else None
    if not rt.auth.check(request.headers.get("authorization"), client):
        metrics.webhooks.labels("unauthorized").inc()
        return problem(
            401,
            "authentication required: send the configured bearer token or basic auth credentials",
            headers={"WWW-Authenticate": "Bearer"},
        )
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if ctype not in JSON_TYPES:
        metrics.webhooks.labels("unsupported_media_type").inc()
        return problem(415, f"content type must be application/json, got {ctype or 'none'!r}")
    limit = rt.settings.webhook.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        metrics.webhooks.labels("too_large").inc()
        return problem(413, f"body of {int(declared)} bytes is over the limit of {limit} bytes")
    body = await _read_body(request, limit)
    if body is None:
        metrics.webhooks.labels("too_large").inc()
        return problem(413, f"body is over the limit of {limit} bytes")
    try:
        notification = payload.parse(body)
    except payload.PayloadError as exc:
        metrics.webhooks.labels("invalid").inc()
        status = (
            400 if exc.details and exc.details[0]["field"] in ("(body)", "(top level)") else 422
        )
        return problem(status, exc.message, exc.details)
    received = datetime.now(UTC)
    try:
        stored = await rt.writer.submit(body, notification, received)
    except StoreError as exc:
        metrics.webhooks.labels("error").inc()
        metrics.store_errors.labels("write_notification").inc()
        return problem(503, f"{exc}; Alertmanager will retry")
    new = 0
    for item in stored.alerts:
        repeat = "true" if item.repeat else "false"
        metrics.alerts_received.labels(item.alert.status, repeat).inc()
        new += not item.repeat
    metrics.webhooks.labels("accepted").inc()
    rt.dispatch(stored)
    metrics.webhook_duration.observe(time.perf_counter() - started)
    return JSONResponse(
        {
            "status": "stored",
            "notification_id": stored.id,
            "alerts": len(stored.alerts),
            "new": new,
            "repeats": len(stored.alerts) - new,
        }
    )
