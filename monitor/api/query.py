"""Read-only API over the audit trail: alerts, executions and audit events (``/api/v1``).

Every listing takes the same window and page parameters (``since``, ``until``, ``before``,
``limit``); each adds its own field filters. Every parameter is bounded (ids within
1..2^63-1, times within 1970..2999, text no longer than its column and without NUL); a
bad one is answered 400 naming it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator

from monitor import yamlfile
from monitor.alerts import payload
from monitor.api import access
from monitor.api.errors import JSONResponse, problem
from monitor.runtime import Runtime
from monitor.store import queries

MAX_ID = 2**63 - 1  # BIGINT


class _Route(APIRoute):
    """A bad query or path parameter is the client's mistake: 400, naming each one."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                details = [
                    {"field": yamlfile.dotted(e["loc"]), "reason": str(e["msg"])}
                    for e in exc.errors()
                ]
                fields = ", ".join(d["field"] for d in details[:5])
                return problem(400, f"invalid request: {fields}", details)

        return route


router = APIRouter(
    prefix="/api/v1",
    route_class=_Route,
    dependencies=[Depends(access.viewer)],
    responses={400: {"description": "A parameter is out of range or malformed (named)"}},
)


def _time(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)  # as the store reads a naive time
    if not payload.EARLIEST <= value < payload.END_OF_RANGE:
        raise ValueError("must be from 1970-01-01T00:00:00Z up to 3000-01-01T00:00:00Z")
    return value


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("NUL character (\\u0000) not allowed")
    return value


Time = Annotated[datetime | None, Query(), AfterValidator(_time)]
# Text no longer than the column it is compared with.
Name = Annotated[str | None, Query(max_length=255), AfterValidator(_no_nul)]
Fingerprint = Annotated[str | None, Query(max_length=64), AfterValidator(_no_nul)]
State = Annotated[str | None, Query(max_length=32), AfterValidator(_no_nul)]


def _window(
    since: Time = None,
    until: Time = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
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
    alertname: Name = None,
    fingerprint: Fingerprint = None,
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
    status: State = None,
    alertname: Name = None,
    fingerprint: Fingerprint = None,
    policy: Name = None,
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
async def get_execution(
    request: Request, execution_id: Annotated[int, Path(ge=1, le=MAX_ID)]
) -> Response:
    rt: Runtime = request.app.state.runtime
    row = await run_in_threadpool(queries.get_execution, rt.db, execution_id)
    if row is None:
        return problem(404, f"no execution with id {execution_id}")
    events = await run_in_threadpool(
        queries.list_audit, rt.db, queries.Filters(limit=1000), execution_id
    )
    row["audit"] = events.items
    row["coalesced"] = await run_in_threadpool(queries.coalesced_into, rt.db, execution_id)
    return JSONResponse(row)


@router.get("/audit", response_class=JSONResponse)
async def list_audit(
    request: Request,
    window: Window,
    kind: State = None,
    fingerprint: Fingerprint = None,
    policy: Name = None,
) -> Response:
    return await _list(
        request, queries.list_audit, window, status=kind, fingerprint=fingerprint, policy=policy
    )
