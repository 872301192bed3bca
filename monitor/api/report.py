"""The incident record of an execution: ``GET /api/v1/executions/{id}/report``.

``format=json`` (the default) answers :meth:`monitor.report.Report.as_json`;
``format=markdown`` the same as a postmortem draft, ``text/markdown``. An unknown id is
404, a bad id or format 400 naming it. Reading it needs a viewer credential
(:mod:`monitor.api.access`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from monitor import report
from monitor.api import access, query
from monitor.api.errors import JSONResponse, problem
from monitor.runtime import Runtime

router = APIRouter(
    prefix="/api/v1",
    route_class=query.Route,
    dependencies=[Depends(access.viewer)],
    responses={400: {"description": "A parameter is out of range or malformed (named)"}},
)

MARKDOWN = "text/markdown; charset=utf-8"


@router.get(
    "/executions/{execution_id}/report",
    response_class=JSONResponse,
    responses={
        200: {"content": {"text/markdown": {}}, "description": "The incident record"},
        404: {"description": "No execution with this id"},
    },
)
async def get_report(
    request: Request,
    execution_id: Annotated[int, Path(ge=1, le=query.MAX_ID)],
    format: Annotated[Literal["json", "markdown"], Query()] = "json",
) -> Response:
    rt: Runtime = request.app.state.runtime
    found = await run_in_threadpool(report.build, rt.db, execution_id)
    if found is None:
        return problem(404, f"no execution with id {execution_id}")
    if format == "markdown":
        return Response(report.render_markdown(found), media_type=MARKDOWN)
    return JSONResponse(found.as_json())
