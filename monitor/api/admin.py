"""Admin routes: the kill switch (``/api/v1/pause``, ``/api/v1/resume``) and ``/-/reload``.

Authenticated like the webhook (or with ``automation.api_token``); every use is an audit
record.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from monitor import wiring
from monitor.api.errors import JSONResponse, problem
from monitor.runtime import Runtime

router = APIRouter()


def _denied(request: Request) -> Response | None:
    rt: Runtime = request.app.state.runtime
    client = request.client.host if request.client else None
    if rt.auth.check_admin(request.headers.get("authorization"), client):
        return None
    return problem(401, "authentication required", headers={"WWW-Authenticate": "Bearer"})


async def _reason(request: Request) -> str:
    if not await request.body():
        return ""
    try:
        body: Any = await request.json()
    except ValueError:
        return ""
    return str(body.get("reason", "")) if isinstance(body, dict) else ""


async def _switch(request: Request, paused: bool) -> Response:
    denied = _denied(request)
    if denied is not None:
        return denied
    rt: Runtime = request.app.state.runtime
    engine = rt.extras.get("engine")
    if engine is None:
        return problem(503, "the engine is not running")
    client = request.client.host if request.client else "unknown"
    await engine.set_paused(paused, f"api ({client})", await _reason(request))
    return JSONResponse({"paused": await engine.is_paused()})


@router.post("/api/v1/pause", response_class=JSONResponse)
async def pause(request: Request) -> Response:
    return await _switch(request, True)


@router.post("/api/v1/resume", response_class=JSONResponse)
async def resume(request: Request) -> Response:
    return await _switch(request, False)


@router.get("/api/v1/status", response_class=JSONResponse)
async def status(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    engine = rt.extras.get("engine")
    if engine is None:
        return problem(503, "the engine is not running")
    return JSONResponse(
        {
            "paused": await engine.is_paused(),
            "dry_run": engine.dry_run,
            "policies": [p.name for p in engine.policies],
            "timers": len(engine.timers.pending()),
        }
    )


@router.post("/-/reload", response_class=JSONResponse)
async def reload(request: Request) -> Response:
    denied = _denied(request)
    if denied is not None:
        return denied
    rt: Runtime = request.app.state.runtime
    ok, errors = await wiring.reload(rt)
    if not ok:
        return problem(
            422,
            "reload failed; the last good policies stay in force",
            [{"field": "policies", "reason": e} for e in errors],
        )
    return JSONResponse({"status": "reloaded", "policies": len(rt.extras["engine"].policies)})
