"""The console's pages under ``/ui/`` (docs/console.md); its forms are
:mod:`.controls`.

Reading needs a viewer (with no viewer credential configured, loopback may read). The
lists take their filters from the query string, each bounded and a bad one a 400 page
naming it, and page by id (``before``), never by offset.
"""

from __future__ import annotations

import json
import urllib.parse
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from monitor import durations
from monitor.api.admin import MAX_REASON_CHARS
from monitor.store import queries
from monitor.store.states import State
from monitor.ui import controls, pages, views

router = APIRouter(prefix="/ui", include_in_schema=False)
router.include_router(controls.router)


PAGE = 50  # rows per list page, unless ?limit= says otherwise


MAX_PAGE = 500


STATES = [s.value for s in State]


def _text(request: Request, name: str, limit: int) -> str | None:
    value = request.query_params.get(name, "").strip()
    if not value:
        return None
    if len(value) > limit or "\x00" in value:
        raise pages.refused(
            request, 400, "Invalid filter", f"{name}: at most {limit} characters, no NUL"
        )
    return value


def _before(request: Request) -> int | None:
    value = _text(request, "before", 20)
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= pages.MAX_ID:
        raise pages.refused(request, 400, "Invalid filter", "before: an execution id (1, 2, ...)")
    return int(value)


def _limit(request: Request) -> int:
    value = _text(request, "limit", 4)
    if value is None:
        return PAGE
    if not value.isdigit() or not 1 <= int(value) <= MAX_PAGE:
        raise pages.refused(request, 400, "Invalid filter", f"limit: 1 to {MAX_PAGE} rows")
    return int(value)


def _since(request: Request) -> datetime | None:
    value = _text(request, "since", durations.MAX_TEXT)
    if value is None:
        return None
    try:
        return durations.since(value, datetime.now(UTC))
    except ValueError as exc:
        raise pages.refused(request, 400, "Invalid filter", f"since: {exc}") from None


@router.get("/", response_class=HTMLResponse)
@pages.guarded
async def overview(request: Request) -> Response:
    ctx = await pages.context(request)
    ctx["view"] = await views.overview(pages.runtime(request))
    ctx["max_reason"] = MAX_REASON_CHARS
    return pages.render(request, "overview.html", ctx)


@router.get("/executions", response_class=HTMLResponse)
@pages.guarded
async def executions(request: Request) -> Response:
    ctx = await pages.context(request)
    state = _text(request, "state", 32)
    if state is not None and state not in STATES:
        raise pages.refused(
            request, 400, "Invalid filter", f"state {state!r}: one of {', '.join(STATES)}"
        )
    f = queries.Filters(
        status=state,
        policy=_text(request, "policy", 255),
        target=_text(request, "target", 512),
        alertname=_text(request, "alertname", 255),
        since=_since(request),
        before=_before(request),
        limit=_limit(request),
    )

    page = await run_in_threadpool(queries.list_executions, pages.runtime(request).db, f, True)
    shown = {k: v for k, v in request.query_params.items() if k != "before" and v}
    more = urllib.parse.urlencode({**shown, "before": page.next}) if page.next else None
    ctx.update(rows=page.items, more=more, states=STATES, filters=shown)
    return pages.render(request, "executions.html", ctx)


@router.get("/executions/{ident}", response_class=HTMLResponse)
@pages.guarded
async def execution(request: Request, ident: str) -> Response:
    ctx = await pages.context(request)
    execution_id = pages.execution_id(request, ident)
    detail = await views.detail(pages.runtime(request), execution_id)
    if detail is None:
        raise pages.refused(request, 404, "Not found", f"no execution #{execution_id}")
    ctx.update(d=detail, e=detail.row, max_reason=MAX_REASON_CHARS)
    return pages.render(request, "execution.html", ctx)


@router.get("/alerts", response_class=HTMLResponse)
@pages.guarded
async def alerts(request: Request) -> Response:
    ctx = await pages.context(request)
    status = _text(request, "status", 16)
    if status is not None and status not in ("firing", "resolved"):
        raise pages.refused(request, 400, "Invalid filter", "status: one of firing, resolved")
    f = queries.Filters(
        status=status,
        alertname=_text(request, "alertname", 255),
        since=_since(request),
        before=_before(request),
        limit=_limit(request),
    )
    rows, after = await views.alerts(pages.runtime(request), f)
    shown = {k: v for k, v in request.query_params.items() if k != "before" and v}
    more = urllib.parse.urlencode({**shown, "before": after}) if after else None
    ctx.update(rows=rows, more=more, filters=shown)
    return pages.render(request, "alerts.html", ctx)


@router.get("/policies", response_class=HTMLResponse)
@pages.guarded
async def policies(request: Request) -> Response:
    """The loaded policies; ``?alert=<id>`` fills the explain form with a stored alert."""
    ctx = await pages.context(request)
    pasted = ""
    ident = _text(request, "alert", 20)
    if ident is not None:
        if not ident.isdigit() or not 1 <= int(ident) <= pages.MAX_ID:
            raise pages.refused(request, 400, "Invalid alert", "alert: an alert's id (1, 2, ...)")
        f = queries.Filters(before=int(ident) + 1, limit=1)
        page = await run_in_threadpool(queries.list_alerts, pages.runtime(request).db, f)
        if not page.items or page.items[0]["id"] != int(ident):
            raise pages.refused(request, 404, "Not found", f"no alert #{ident}")
        pasted = json.dumps(_as_received(page.items[0]), indent=2)
    ctx.update(policies=views.loaded(pages.runtime(request)), pasted=pasted, report=None)
    return pages.render(request, "policies.html", ctx)


def _as_received(row: dict[str, Any]) -> dict[str, Any]:
    """A stored alert as Alertmanager sent it."""
    ends = row["ends_at"]
    return {
        "status": row["status"],
        "labels": row["labels"],
        "annotations": row["annotations"],
        "startsAt": row["starts_at"].isoformat(),
        "endsAt": ends.isoformat() if ends else "0001-01-01T00:00:00Z",
        "generatorURL": row["generator_url"],
        "fingerprint": row["fingerprint"],
    }
