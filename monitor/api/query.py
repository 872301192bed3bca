"""Read-only API over the audit trail: alerts, executions and audit events (``/api/v1``).

Every listing takes the same window and page parameters (``since``, ``until``, ``before``,
``limit``); each adds its own field filters. ``since`` and ``until`` are a duration back
from now (``1h``, ``2d``) or an ISO 8601 time (:func:`monitor.durations.since`);
``before`` is the page cursor, a page's ``next``. Every parameter is bounded (ids within
1..2^63-1, times within 1970..2999, text no longer than its column and without NUL); a
closed filter (``status``, ``mode``, ``kind``) takes only the values
:data:`monitor.store.queries.CHOICES` lists. A bad parameter is answered 400 naming it
(and, for a closed filter, the values it takes). Steps are numbered from 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator

from monitor import durations, yamlfile
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
                    {"field": yamlfile.dotted(e["loc"]), "reason": _reason(e)} for e in exc.errors()
                ]
                fields = ", ".join(d["field"] for d in details[:5])
                return problem(400, f"invalid request: {fields}", details)

        return route


def _reason(error: Any) -> str:
    if tuple(error["loc"]) == ("query", "before") and error["type"] == "int_parsing":
        return "not a page cursor: give a page's next (an id); for a time, use until"
    return str(error["msg"])


Route = _Route  # for the other /api/v1 routers


router = APIRouter(
    prefix="/api/v1",
    route_class=_Route,
    dependencies=[Depends(access.viewer)],
    responses={400: {"description": "A parameter is out of range or malformed (named)"}},
)


def _no_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("NUL character (\\u0000) not allowed")
    return value


def _one_of(allowed: tuple[str, ...]) -> Callable[[str | None], str | None]:
    """A closed filter's check: one of ``allowed``, else an error that lists them."""

    def check(value: str | None) -> str | None:
        if value is not None and value not in allowed:
            shown = value[:32] + ("..." if len(value) > 32 else "")
            raise ValueError(f"unknown value {shown!r}; one of: {', '.join(allowed)}")
        return value

    return check


def _closed(allowed: tuple[str, ...]) -> Any:
    return Query(max_length=32, json_schema_extra={"enum": list(allowed)})  # the column's


_CHOICES = queries.CHOICES
Status = Annotated[
    str | None,
    _closed(_CHOICES["alerts"]["status"]),
    AfterValidator(_one_of(_CHOICES["alerts"]["status"])),
]
ExecutionStatus = Annotated[
    str | None,
    _closed(_CHOICES["executions"]["status"]),
    AfterValidator(_one_of(_CHOICES["executions"]["status"])),
]
Mode = Annotated[
    str | None,
    _closed(_CHOICES["executions"]["mode"]),
    AfterValidator(_one_of(_CHOICES["executions"]["mode"])),
]
Kind = Annotated[
    str | None,
    _closed(_CHOICES["audit"]["kind"]),
    AfterValidator(_one_of(_CHOICES["audit"]["kind"])),
]
# Text no longer than the column it is compared with.
Name = Annotated[str | None, Query(max_length=255), AfterValidator(_no_nul)]
Fingerprint = Annotated[str | None, Query(max_length=64), AfterValidator(_no_nul)]
Time = Annotated[
    str | None,
    Query(
        max_length=durations.MAX_TEXT,
        description="a duration back from now (1h, 30m, 2d) or an ISO 8601 time",
    ),
]


def _now(request: Request) -> datetime:
    """The engine's clock when one runs here (the one that stamps the records)."""
    engine = request.app.state.runtime.extras.get("engine")
    now: datetime = engine.clock.now() if engine is not None else datetime.now(UTC)
    return now


def _window(
    request: Request,
    since: Time = None,
    until: Time = None,
    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> queries.Filters:
    now = _now(request)
    times: dict[str, datetime | None] = {}
    errors = []
    for name, value in (("since", since), ("until", until)):
        try:
            times[name] = None if value is None else durations.since(value, now)
        except ValueError as exc:
            msg = f"Value error, {exc}"
            errors.append({"loc": ("query", name), "msg": msg, "type": "value_error"})
    if errors:
        raise RequestValidationError(errors)
    return queries.Filters(since=times["since"], until=times["until"], before=before, limit=limit)


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
    status: Status = None,
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
async def list_notifications(request: Request, window: Window, status: Status = None) -> Response:
    return await _list(request, queries.list_notifications, window, status=status)


@router.get("/executions", response_class=JSONResponse)
async def list_executions(
    request: Request,
    window: Window,
    status: ExecutionStatus = None,
    mode: Mode = None,
    alertname: Name = None,
    fingerprint: Fingerprint = None,
    policy: Name = None,
) -> Response:
    return await _list(
        request,
        queries.list_executions,
        window,
        status=status,
        mode=mode,
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
    kind: Kind = None,
    fingerprint: Fingerprint = None,
    policy: Name = None,
) -> Response:
    return await _list(
        request, queries.list_audit, window, status=kind, fingerprint=fingerprint, policy=policy
    )
