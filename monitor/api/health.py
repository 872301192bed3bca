"""``/healthz`` (alive), ``/readyz`` and ``/metrics``.

Ready means: the store answers, the configuration is loaded, and every worker thread
(the store writer, ...) and the engine's consumer are making progress; otherwise 503
with the problems named. Permissions the cluster denies the policies (or could not say
it grants: :mod:`monitor.k8s.access`) are listed under ``permissions``, and what did not
answer at start-up (:mod:`monitor.reachability`) under ``unreachable``, without making the
service unready: it still serves every other policy.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from monitor.api.errors import JSONResponse
from monitor.errors import StoreError
from monitor.runtime import Runtime
from monitor.store import database

router = APIRouter()


@router.get("/healthz", response_class=JSONResponse)
async def healthz() -> Response:
    return JSONResponse({"status": "ok"})


@router.get("/readyz", response_class=JSONResponse)
async def readyz(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    problems = []
    try:
        await run_in_threadpool(database.ping, rt.db)
    except StoreError as exc:
        rt.metrics.store_errors.labels("ping").inc()
        problems.append(f"store unreachable: {exc}")
    if not rt.config_loaded:
        problems.append("configuration not loaded")
    for beat in rt.heartbeats:
        stalled = beat.problem()
        if stalled is not None:
            problems.append(stalled)
    consumer = rt.consumer_stalled()
    if consumer is not None:
        problems.append(f"engine consumer stalled: {consumer}")
    body: dict[str, object] = {}
    permissions = rt.extras.get("permissions")
    if permissions:
        body["permissions"] = list(permissions)
    unreachable = rt.extras.get("unreachable")
    if unreachable:
        body["unreachable"] = list(unreachable)
    if problems:
        return JSONResponse({"status": "not ready", "problems": problems, **body}, status_code=503)
    return JSONResponse({"status": "ready", **body})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    rt: Runtime = request.app.state.runtime
    return Response(generate_latest(rt.metrics.registry), media_type=CONTENT_TYPE_LATEST)
