"""Read-only API over the audit trail: alerts, executions and audit events (``/api/v1``).

Every listing takes the same window and page parameters (``since``, ``until``, ``before``,
``limit``); each adds its own field filters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from monitor.api.errors import JSONResponse, problem
from monitor.runtime import Runtime
from monitor.store import queries

router = APIRouter(prefix="/api/v1")


def _window(
    since: datetime | None = None,
    until: datetime | None = None,
    before: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> queries.Filters:
    return queries.Filters(since=since, until=until, before=before, limit=limit)


Window = Annotated[queries.Filters, Depends(_window)]


async def _list(
    request: Request,
    lister: Callable[[Any, queries.Filters], queries.Page],
    window: queries.Filters,
    **fields: str | None,
) -> Response:
    rt: Runtime = request.app.state.runtime
    f = dataclasses.replace(window, **dict[str, Any](fields))
    page = await run_in_threadpool(lister, rt.db, f)
    return JSONResponse({"items": page.items, "next": page.next})


@router.get("/alerts", response_class=JSONResponse)
async def list_alerts(
    request: Request,
    window: Window,
    status: Literal["firing", "resolved"] | None = None,
    alertname: str | None = None,
    fingerprint: str | None = None,
) -> Response:
    return await _list(
        request,
        queries.list_alerts,
        window,
        status=status,
        alertname=alertname,
        fingerprint=fingerprint,
    )


@router.get("/notifications", response_class=JSONResponse)
async def list_notifications(
    request: Request, window: Window, status: Literal["firing", "resolved"] | None = None
) -> Response:
    return await _list(request, queries.list_notifications, window, status=status)


@router.get("/executions", response_class=JSONResponse)
async def list_executions(
    request: Request,
    window: Window,
    status: str | None = None,
    alertname: str | None = None,
    fingerprint: str | None = None,
    policy: str | None = None,
) -> Response:
    return await _list(
        request,
        queries.list_executions,
        window,
        status=status,
        alertname=alertname,
        fingerprint=fingerprint,
        policy=policy,
    )


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
    window: Window,
    kind: str | None = None,
    fingerprint: str | None = None,
    policy: str | None = None,
) -> Response:
    return await _list(
        request, queries.list_audit, window, status=kind, fingerprint=fingerprint, policy=policy
    )
