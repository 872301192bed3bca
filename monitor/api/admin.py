"""Admin routes: the kill switch (``/api/v1/pause``, ``/api/v1/resume``, which also closes
the blast-radius breaker), ``/api/v1/status`` and ``/-/reload``.

They change what the service does, so they need an operator credential
(``monitor.api.access``) from every address, loopback included; every use is an audit
record that names who (the credential's name, never the secret). Status needs a viewer.
Bodies are bounded (``MAX_BODY_BYTES``) and the pause reason is checked before anything
changes. Resume queues the alerts skipped during the pause to be decided again
(``{"catch_up": false}`` does not) and says how many.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request, Response

from monitor import durations, wiring
from monitor.api import access
from monitor.api.errors import JSONResponse, problem
from monitor.auth import Identity
from monitor.engine.breaker import Breaker
from monitor.runtime import Runtime
from monitor.store.breaker import BreakerState
from monitor.store.control import Switch

router = APIRouter()

MAX_BODY_BYTES = 64 * 1024
MAX_REASON_CHARS = 1000


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


async def _body(request: Request) -> bytes:
    """The body, refused with 413 as soon as it is over ``MAX_BODY_BYTES``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _Refused(problem(413, f"body is over the limit of {MAX_BODY_BYTES} bytes"))
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _Refused(problem(413, f"body is over the limit of {MAX_BODY_BYTES} bytes"))
        chunks.append(chunk)
    return b"".join(chunks)


def _invalid(field: str, reason: str) -> _Refused:
    return _Refused(problem(422, "invalid request", [{"field": field, "reason": reason}]))


def _fields(body: bytes, accepted: tuple[str, ...]) -> dict[str, Any]:
    """The optional ``{"reason": "..."}`` (and, to resume, ``"catch_up": false``): a
    reason is printable text of at most 1,000 characters (it goes into the audit trail
    and the store); ``catch_up`` a boolean."""
    if not body.strip():
        return {}
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise _invalid("(body)", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _invalid("(body)", 'must be a JSON object such as {"reason": "..."}')
    unknown = sorted(set(data) - set(accepted))
    if unknown:
        name = unknown[0]
        only = " and ".join(repr(a) for a in accepted)
        only = f"only {only} {'is' if len(accepted) == 1 else 'are'} accepted"
        if name.isidentifier() and len(name) <= 64:
            raise _invalid(name, f"unknown field; {only}")
        shown = repr(name[:64]) + ("..." if len(name) > 64 else "")
        raise _invalid("(body)", f"unknown field {shown}; {only}")
    why = reason_error(data.get("reason", ""))
    if why is not None:
        raise _invalid("reason", why)
    if not isinstance(data.get("catch_up", True), bool):
        raise _invalid("catch_up", "must be true or false")
    return data


def reason_error(reason: object) -> str | None:
    """Why a reason is refused, or None: printable text of at most 1,000 characters."""
    if not isinstance(reason, str):
        return "must be a string"
    if len(reason) > MAX_REASON_CHARS:
        return f"must be at most {MAX_REASON_CHARS} characters"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in reason):
        return "must not contain NUL or other control characters"
    return None


async def _switch(request: Request, paused: bool, who: Identity) -> Response:
    try:
        fields = _fields(await _body(request), ("reason",) if paused else ("reason", "catch_up"))
    except _Refused as refused:
        return refused.response
    rt: Runtime = request.app.state.runtime
    answer = await switch(
        rt, paused, who.name, fields.get("reason", ""), fields.get("catch_up", True)
    )
    if answer is None:
        return problem(503, "the engine is not running")
    return JSONResponse(answer)


async def switch(
    rt: Runtime, paused: bool, by: str, reason: str, catch_up: bool = True
) -> dict[str, Any] | None:
    """Pause or resume (resume closes the breaker too) for ``by``, with a checked
    ``reason``: the API's answer, or None when the engine is not running. The console
    calls this too."""
    engine = rt.extras.get("engine")
    if engine is None:
        return None
    answer: dict[str, Any] = {}
    if paused:
        await engine.set_paused(True, by, reason)
    else:
        resumed = await engine.resume(by, reason, catch_up=catch_up)
        if resumed.was_paused:  # what became of the alerts skipped during the pause
            answer.update(caught_up=resumed.caught_up, message=resumed.summary)
    answer = {"paused": await engine.is_paused(), **answer}
    if not paused and await _close_breaker(rt, engine.clock.now(), by):
        answer["breaker"] = "closed"
    return answer


async def _close_breaker(rt: Runtime, now: datetime, by: str) -> bool:
    """Resume closes the blast-radius breaker too: through the engine's breaker when one
    runs here (its metric and its count follow at once), else in the store."""
    breaker = rt.extras.get("breaker")
    if isinstance(breaker, Breaker):
        return await breaker.close(now, by)
    closed = await rt.store.close_breaker(now, by)
    rt.metrics.breaker_open.set(0)
    return closed


def _breaker_status(rt: Runtime, state: BreakerState) -> dict[str, Any]:
    limit = rt.settings.automation.max_actions
    return {
        "open": state.open,
        "opened_at": state.opened_at.isoformat() if state.opened_at else None,
        "reason": state.reason or None,
        "closed_at": state.closed_at.isoformat() if state.closed_at else None,
        "closed_by": state.closed_by,
        "count": limit.count if limit else None,
        "window": durations.format(limit.window) if limit else None,
        "reset": limit.reset if limit else None,
    }


def _pause_status(switch: Switch, by_config: bool) -> dict[str, Any]:
    """Who paused, when and why (``since``: when the pause in force began; ``by``, ``at``
    and ``reason``: the switch's last change, a pause or a resume); ``config``: the
    config's ``automation.paused`` holds automation paused whatever the switch says."""
    return {
        "paused": switch.paused or by_config,
        "since": switch.since.isoformat() if switch.since else None,
        "by": switch.by,
        "at": switch.at.isoformat() if switch.at else None,
        "reason": switch.reason or None,
        "config": by_config,
    }


@router.post("/api/v1/pause", response_class=JSONResponse)
async def pause(request: Request, who: access.Operator) -> Response:
    return await _switch(request, True, who)


@router.post("/api/v1/resume", response_class=JSONResponse)
async def resume(request: Request, who: access.Operator) -> Response:
    return await _switch(request, False, who)


@router.get("/api/v1/status", response_class=JSONResponse, dependencies=[Depends(access.viewer)])
async def status(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    engine = rt.extras.get("engine")
    if engine is None:
        return problem(503, "the engine is not running")
    automation = rt.settings.automation
    mode = "rehearsal" if engine.dry_run else automation.mode or "live"
    return JSONResponse(
        {
            "paused": await engine.is_paused(),
            "pause": _pause_status(await rt.store.switch(), automation.paused),
            "mode": mode,
            "dry_run": engine.dry_run,
            "policies": [p.name for p in engine.policies],
            "timers": len(engine.timers.pending()),
            "breaker": _breaker_status(rt, await rt.store.breaker_state()),
        }
    )


@router.post("/-/reload", response_class=JSONResponse)
async def reload(request: Request, who: access.Operator) -> Response:
    try:
        await _body(request)  # none expected; bounded all the same
    except _Refused as refused:
        return refused.response
    rt: Runtime = request.app.state.runtime
    ok, errors = await wiring.reload(rt, by=who.name)
    if not ok:
        return problem(
            422,
            "reload failed; the last good policies stay in force",
            [{"field": "policies", "reason": e} for e in errors],
        )
    return JSONResponse({"status": "reloaded", "policies": len(rt.extras["engine"].policies)})
