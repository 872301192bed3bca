"""Read-only API over the audit trail: alerts, executions and audit events (``/api/v1``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from monitor.api.errors import JSONResponse, problem
from monitor.runtime import Runtime
from monitor.store import queries

router = APIRouter(prefix="/api/v1")


def _filters(
    status: str | None = None,
    alertname: str | None = None,
    fingerprint: str | None = None,
    policy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: int = 100,
) -> queries.Filters:
    return queries.Filters(status, alertname, fingerprint, policy, since, until, before, limit)


def _json(page: queries.Page) -> dict[str, Any]:
    return {"items": page.items, "next": page.next}


Limit = Annotated[int, Query(ge=1, le=1000)]


@router.get("/alerts", response_class=JSONResponse)
async def list_alerts(
    request: Request,
    status: Literal["firing", "resolved"] | None = None,
    alertname: str | None = None,
    fingerprint: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: Limit = 100,
) -> Response:
    rt: Runtime = request.app.state.runtime
    f = _filters(status, alertname, fingerprint, None, since, until, before, limit)
    page = await run_in_threadpool(queries.list_alerts, rt.db, f)
    return JSONResponse(_json(page))


@router.get("/notifications", response_class=JSONResponse)
async def list_notifications(
    request: Request,
    status: Literal["firing", "resolved"] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: Limit = 100,
) -> Response:
    rt: Runtime = request.app.state.runtime
    f = _filters(status, None, None, None, since, until, before, limit)
    page = await run_in_threadpool(queries.list_notifications, rt.db, f)
    return JSONResponse(_json(page))


@router.get("/executions", response_class=JSONResponse)
async def list_executions(
    request: Request,
    status: str | None = None,
    alertname: str | None = None,
    fingerprint: str | None = None,
    policy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: Limit = 100,
) -> Response:
    rt: Runtime = request.app.state.runtime
    f = _filters(status, alertname, fingerprint, policy, since, until, before, limit)
    page = await run_in_threadpool(queries.list_executions, rt.db, f)
    return JSONResponse(_json(page))


@router.get("/executions/{execution_id}", response_class=JSONResponse)
async def get_execution(request: Request, execution_id: int) -> Response:
    rt: Runtime = request.app.state.runtime
    row = await run_in_threadpool(queries.get_execution, rt.db, execution_id)
    if row is None:
        return problem(404, f"no execution with id {execution_id}")
    events = await run_in_threadpool(
        queries.list_audit, rt.db, queries.Filters(limit=1000), execution_id
    )
    row["audit"] = events.items
    return JSONResponse(row)


@router.get("/audit", response_class=JSONResponse)
async def list_audit(
    request: Request,
    kind: str | None = None,
    fingerprint: str | None = None,
    policy: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: Limit = 100,
) -> Response:
    rt: Runtime = request.app.state.runtime
    f = _filters(kind, None, fingerprint, policy, since, until, before, limit)
    page = await run_in_threadpool(queries.list_audit, rt.db, f)
    return JSONResponse(_json(page))
