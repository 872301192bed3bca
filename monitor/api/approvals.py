"""Approving and rejecting a step that awaits approval (docs/policy.md#approval).

- ``GET /approvals/<token>``: the signed link sent with the request. It shows what would
  be done and a button; it changes nothing (chat tools open links to preview them).
- ``POST /approvals/<token>``: the button: the answer the link stands for, with an
  optional name and reason (a form). The signed token is the credential; it names one
  execution and one answer, expires with the request and counts once.
- ``POST /api/v1/executions/<id>/approve`` and ``.../reject``: the same with an
  operator credential (``monitor.api.access``), ``{"reason": "...", "by": "..."}``; the
  audit records the name given followed by the credential's (``alice (operator-token)``).

A link that is not one of ours is a 403, an expired one a 410, an answer to a step no
longer awaiting approval (answered, expired, cancelled) a 409; none changes anything.
"""

from __future__ import annotations

import html
import unicodedata
import urllib.parse
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from monitor.api import access
from monitor.api.admin import MAX_REASON_CHARS, _body, _invalid, _Refused
from monitor.api.errors import JSONResponse, problem
from monitor.auth import Identity
from monitor.engine.approval import LinkError
from monitor.runtime import Runtime
from monitor.store.records import Execution
from monitor.store.states import State

router = APIRouter()

MAX_NAME_CHARS = 100


def _engine(request: Request) -> Any:
    rt: Runtime = request.app.state.runtime
    return rt.extras.get("engine")


def _text(value: Any, field: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(field, "must be a string")
    if len(value) > limit:
        raise _invalid(field, f"must be at most {limit} characters")
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise _invalid(field, "must not contain NUL or other control characters")
    return value.strip()


def _page(status: int, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family: sans-serif; "
        f"max-width: 40em; margin: 1em auto; padding: 0 1em'><h1>{html.escape(title)}</h1>"
        f"{body}</body></html>",
        status_code=status,
        headers={"cache-control": "no-store", "referrer-policy": "no-referrer"},
    )


def _describe(row: Execution) -> str:
    plans = "".join(
        f"<li><code>{html.escape(a.action)}</code>: "
        f"{html.escape(str((a.plan or {}).get('summary') or (a.plan or {}).get('error') or ''))}"
        "</li>"
        for a in row.actions
    )
    labels = ", ".join(f"{k}={v}" for k, v in sorted(row.labels.items()))
    return (
        f"<p>Execution #{row.id}: step {row.step + 1} of policy "
        f"<b>{html.escape(row.policy)}</b> on <b>{html.escape(row.target_key)}</b>.</p>"
        f"<p>Alert: {html.escape(labels)}</p><p>Plan:</p><ul>{plans}</ul>"
    )


async def _link(request: Request, token: str) -> tuple[Any, int, str] | Response:
    engine = _engine(request)
    if engine is None:
        return _page(503, "Not ready", "<p>The engine is not running; try again shortly.</p>")
    try:
        execution_id, verdict = (await engine.approvals.links()).read(token)
    except LinkError as exc:
        return _page(exc.status, "Approval link refused", f"<p>{html.escape(str(exc))}</p>")
    return engine, execution_id, verdict


@router.get("/approvals/{token}", response_class=HTMLResponse)
async def show(request: Request, token: str) -> Response:
    found = await _link(request, token)
    if isinstance(found, Response):
        return found
    engine, execution_id, verdict = found
    row = await engine.store.get(execution_id)
    if row is None:
        return _page(404, "No such execution", f"<p>No execution #{execution_id}.</p>")
    if row.state != State.AWAITING_APPROVAL:
        return _page(
            409,
            "Already answered",
            f"<p>Execution #{row.id} is {html.escape(str(row.state))}, not awaiting approval."
            "</p>" + _describe(row),
        )
    word = "Approve" if verdict == "approve" else "Reject"
    form = (
        f"<form method='post'><p><label>Your name <input name='by' maxlength='{MAX_NAME_CHARS}'>"
        f"</label></p><p><label>Reason <input name='reason' maxlength='{MAX_REASON_CHARS}'>"
        f"</label></p><p><button type='submit'>{word}</button></p></form>"
    )
    return _page(200, f"{word} this step?", _describe(row) + form)


@router.post("/approvals/{token}", response_class=HTMLResponse)
async def answer_link(request: Request, token: str) -> Response:
    found = await _link(request, token)
    if isinstance(found, Response):
        return found
    engine, execution_id, verdict = found
    try:
        form = urllib.parse.parse_qs(
            (await _body(request)).decode("utf-8", "replace"), max_num_fields=10
        )
        name = _text((form.get("by") or [""])[0], "by", MAX_NAME_CHARS)
        reason = _text((form.get("reason") or [""])[0], "reason", MAX_REASON_CHARS)
    except _Refused as refused:
        return refused.response
    except ValueError:
        return _page(422, "Invalid form", "<p>The form could not be read.</p>")
    by = f"{name} (signed link)" if name else "signed link"
    result = await engine.answer(execution_id, approve=verdict == "approve", by=by, reason=reason)
    if not result.ok:
        status = 404 if result.state is None else 409
        return _page(status, "Not answered", f"<p>{html.escape(result.message)}</p>")
    return _page(200, "Recorded", f"<p>{html.escape(result.message)}</p>")


async def _answer_api(
    request: Request, execution_id: int, approve: bool, who: Identity
) -> Response:
    if not 0 < execution_id < 2**63:
        return problem(404, f"no execution #{execution_id}")
    try:
        body = await _body(request)
        data: Any = orjson.loads(body) if body.strip() else {}
        if not isinstance(data, dict):
            raise _invalid("(body)", 'must be a JSON object such as {"reason": "..."}')
        unknown = sorted(set(data) - {"reason", "by"})
        if unknown:
            raise _invalid(str(unknown[0])[:64], "unknown field; 'reason' and 'by' are accepted")
        reason = _text(data.get("reason"), "reason", MAX_REASON_CHARS)
        name = _text(data.get("by"), "by", MAX_NAME_CHARS)
    except orjson.JSONDecodeError as exc:
        return problem(422, "invalid request", [{"field": "(body)", "reason": f"not JSON: {exc}"}])
    except _Refused as refused:
        return refused.response
    engine = _engine(request)
    if engine is None:
        return problem(503, "the engine is not running")
    by = f"{name} ({who.name})" if name else who.name
    result = await engine.answer(execution_id, approve=approve, by=by, reason=reason)
    if not result.ok:
        return problem(404 if result.state is None else 409, result.message)
    return JSONResponse(
        {"execution": execution_id, "state": result.state, "message": result.message}
    )


@router.post("/api/v1/executions/{execution_id}/approve", response_class=JSONResponse)
async def approve(request: Request, execution_id: int, who: access.Operator) -> Response:
    return await _answer_api(request, execution_id, True, who)


@router.post("/api/v1/executions/{execution_id}/reject", response_class=JSONResponse)
async def reject(request: Request, execution_id: int, who: access.Operator) -> Response:
    return await _answer_api(request, execution_id, False, who)
