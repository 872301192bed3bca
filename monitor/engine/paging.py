"""What a page carries and how it ends.

:func:`evidence` turns what the ladder's diagnostics stored (``records.Evidence``) into
the short lines a page shows (:class:`~monitor.actions.registry.EvidenceLine`), newest
first, one per diagnostic.

Every PagerDuty incident the engine opens is recorded in the store
(:mod:`monitor.store.pages`) once PagerDuty accepted its trigger, and resolved when what
it is about ends (:func:`ended`, a pure verdict):

========== ================================ =============================================
kind       dedup key                        resolved when
========== ================================ =============================================
step       ``conea-monitor/<execution>``    its ladder ends: a step at or after it is
                                            verified recovered, a later step is cancelled,
                                            or the alert resolved
approval   ``conea-monitor/approval/<id>``  the request is approved, rejected, expires or
                                            is cancelled
breaker    ``conea-monitor/breaker/<opened  the breaker closes (a resume, or its window)
           at, UTC ISO 8601>``
========== ================================ =============================================

The engine resolves at once where it sees the end (:func:`resolve`, :func:`end`), and
its sweep (:func:`sweep`, at start and every sweep) resolves whatever is still owed: a
resolve pending when a process stopped, or one that failed (tried again after
``RETRY_FIRST``, doubling up to ``RETRY_CAP``). Pages opened within ``WINDOW`` are
looked after; the scan reads the open pages by a partial index, never the executions.

Each resolve is sent in the background (a timer job) through the action runner, like
the trigger (the notifier's timeout and retries), after a claim in the store: of two
replicas one sends it. A replica that stops between PagerDuty's answer and the record of
the resolve leaves its claim to expire (``CLAIM``) and the resolve is sent again: a
resolve is idempotent at PagerDuty, so that rare double is harmless. The resolve is
audited (kind ``page``, outcome ``resolved`` or ``failed``) in the commit that closes
the page; a failure is recorded, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from monitor.actions import notify, pagerduty
from monitor.actions.registry import ActionContext, EvidenceLine
from monitor.alerts.context import AlertContext
from monitor.engine.parts import Parts
from monitor.errors import ActionError, StoreError
from monitor.store.breaker import BreakerState
from monitor.store.pages import Ladder, Page
from monitor.store.records import Evidence, Execution
from monitor.store.states import State, VerifyState

log = logging.getLogger("monitor.engine")

EXCERPT_LINES = 5
CELL_LIMIT = 60
WINDOW = timedelta(days=7)  # pages opened longer ago are left to people
SWEEP_LIMIT = 500  # open pages one sweep reads, oldest first
CLAIM = timedelta(minutes=10)  # a replica's hold on sending a resolve (tries included)
RETRY_FIRST = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)


def may_page(parts: Parts) -> bool:
    """Is a PagerDuty notifier configured (else no execution has a page to resolve)?"""
    return any(getattr(n, "kind", None) == "pagerduty" for n in parts.services.notifiers.values())


def is_pager(parts: Parts, notifier: str | None) -> bool:
    found = parts.services.notifiers.get(notifier) if notifier else None
    return getattr(found, "kind", None) == "pagerduty"


async def opened(parts: Parts, execution_id: int, action: str, outcome: dict[str, Any]) -> None:
    """Record the page a step's action opened (its outcome a PagerDuty trigger), if any.
    A store failure is logged: the step's outcome still names the page."""
    name = notify.paged(action, outcome)
    if name is not None:
        await opened_page(parts, name, _key(execution_id, outcome), "step", execution_id)


def _key(execution_id: int, outcome: dict[str, Any] | None) -> str:
    """The dedup key of a step's trigger: the one PagerDuty answered (the execution's)."""
    key = ((outcome or {}).get("details") or {}).get("dedup_key")
    return str(key) if key else pagerduty.dedup_key(str(execution_id))


async def opened_page(
    parts: Parts, notifier: str, dedup_key: str, kind: str, execution_id: int | None
) -> None:
    """Record a page PagerDuty accepted (an approval request's, the breaker's, a step's)."""
    try:
        await parts.store.page_opened(
            notifier=notifier,
            dedup_key=dedup_key,
            kind=kind,
            execution_id=execution_id,
            at=parts.clock.now(),
        )
    except StoreError as exc:
        log.warning("cannot record the page %s on %r: %s", dedup_key, notifier, exc)


async def resolve(parts: Parts, rows: Sequence[Execution], ctx: AlertContext, why: str) -> None:
    """Resolve every page the executions ``rows`` opened (a rehearsal opened none), each
    in the background (a timer): a slow PagerDuty never holds up the alerts' batch."""
    live = {row.id: row for row in rows if not row.dry_run}
    try:
        for row in live.values():  # a page recorded only in the step's outcome (older rows)
            for entry in row.actions:
                name = notify.paged(entry.action, entry.outcome)
                if name is None:
                    continue
                await parts.store.page_opened(
                    notifier=name,
                    dedup_key=_key(row.id, entry.outcome),
                    kind="step",
                    execution_id=row.id,
                    at=row.finished_at or parts.clock.now(),
                    reopen=False,
                )
        found = await parts.store.open_pages(sorted(live), "step")
    except StoreError as exc:  # the sweep resolves them once the store answers
        log.warning("cannot read the pages to resolve (%s): %s", why, exc)
        return
    for page in found:
        assert page.execution_id is not None
        parts.timers.soon(
            f"page-{page.id}", _send, parts, page, live.get(page.execution_id), ctx, why
        )


async def end(parts: Parts, execution_id: int, why: str) -> None:
    """The approval request of an execution was answered, expired or cancelled: its page
    is resolved (in the background)."""
    if not may_page(parts):
        return
    try:
        found = await parts.store.open_pages([execution_id], "approval")
    except StoreError as exc:  # the sweep resolves it once the store answers
        log.warning("cannot read the approval page to resolve (%s): %s", why, exc)
        return
    for page in found:
        parts.timers.soon(f"page-{page.id}", _send, parts, page, None, None, why)


def ended(page: Page, ladder: Ladder | None, breaker: BreakerState | None) -> str | None:
    """Why a page's incident is over (None: it is not)."""
    if page.kind == "breaker":
        if breaker is None or not breaker.open or breaker.opened_at is None:
            return "the breaker closed"
        if pagerduty.breaker_key(breaker.opened_at) != page.dedup_key:
            return "the breaker closed (and opened again since)"
        return None
    if ladder is None:
        return "its execution is gone"
    me = ladder.execution
    if page.kind == "approval":
        if me.state == State.AWAITING_APPROVAL:
            return None
        answer = "approved" if me.approved_by else str(me.state).replace("_", " ")
        return f"the approval request was {answer}"
    if ladder.alert_resolved:
        return "the alert resolved"
    for row in ladder.rows:
        if row.step >= me.step and row.verify_state == VerifyState.RECOVERED:
            return f"step {row.step + 1} verified"
        if row.step > me.step and row.state == State.CANCELLED:
            return f"step {row.step + 1} was cancelled: {row.reason or 'the ladder ended'}"
    return None


async def sweep(parts: Parts) -> int:
    """Resolve the open pages (opened within ``WINDOW``) whose incident is over and whose
    resolve is not being sent or waiting for its next try; returns how many it started."""
    now = parts.clock.now()
    found = await parts.store.pages_open_since(now - WINDOW, SWEEP_LIMIT)
    due = [page for page in found if page.retry_at is None or page.retry_at <= now]
    if not due:
        return 0
    ids = [page.execution_id for page in due if page.execution_id is not None]
    ladders = await parts.store.page_ladders(ids) if ids else {}
    breaker = None
    if any(page.kind == "breaker" for page in due):
        breaker = await parts.store.breaker_state()
    started = 0
    for page in due:
        ladder = ladders.get(page.execution_id) if page.execution_id is not None else None
        why = ended(page, ladder, breaker)
        if why is None:
            continue
        row = ladder.execution if ladder is not None else None
        parts.timers.soon(f"page-{page.id}", _send, parts, page, row, None, why)
        started += 1
    return started


async def _send(
    parts: Parts, page: Page, row: Execution | None, ctx: AlertContext | None, why: str
) -> None:
    """Claim the page's resolve, send it, and record what happened (one commit)."""
    try:
        await _claim_and_send(parts, page, row, ctx, why)
    except StoreError as exc:  # its claim expires, and a later sweep sends it again
        log.warning("resolving the page %s on %r: %s", page.dedup_key, page.notifier, exc)


async def _claim_and_send(
    parts: Parts, page: Page, row: Execution | None, ctx: AlertContext | None, why: str
) -> None:
    now = parts.clock.now()
    if not await parts.store.claim_page(page.id, now, now + CLAIM):
        return  # resolved, another replica sends it, or a failed one waits for its time
    actx = ActionContext(
        alert=ctx,
        target=row.target if row is not None else {},
        services=parts.services,
        policy=row.policy if row is not None else "",
        step=row.step if row is not None else 0,
        execution_id=str(page.execution_id) if page.execution_id is not None else None,
        now=parts.clock.now,
        log=log,
    )
    policy = row.policy if row is not None else None
    fingerprint = row.fingerprint if row is not None else None
    target_key = row.target_key if row is not None else None
    try:
        action = parts.registry.get("notify")
        params = action.Params.model_validate(
            {"notifier": page.notifier, "resolve": True, "dedup_key": page.dedup_key}
        )
        retry = action.retry_policy(params, actx)
        plan = await parts.runner.plan(action, params, actx, retry=retry)
        outcome = await parts.runner.apply(action, params, actx, plan, retry=retry)
    except (ActionError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        wait = min(RETRY_CAP, RETRY_FIRST * 2 ** min(page.attempts, 10))
        retry_at = parts.clock.now() + wait
        what = f"the page of step {row.step + 1}" if page.kind == "step" and row else "the page"
        record = parts.ledger.note(
            "page",
            f"resolving {what} ({page.dedup_key}) on {page.notifier!r} failed: {message}; "
            f"tried again from {retry_at.isoformat()}",
            outcome="failed",
            details={"notifier": page.notifier, "dedup_key": page.dedup_key, "why": why},
            policy=policy,
            fingerprint=fingerprint,
            target_key=target_key,
        )
        log.info("%s: %s", record.kind, record.message)
        await parts.store.page_failed(page.id, retry_at, message, record)
        return
    record = parts.ledger.note(
        "page",
        f"{outcome.summary}: {why}",
        outcome="resolved",
        details=outcome.details,
        policy=policy,
        fingerprint=fingerprint,
        target_key=target_key,
    )
    log.info("%s: %s", record.kind, record.message)
    await parts.store.page_resolved(page.id, parts.clock.now(), record)


async def evidence(parts: Parts, rows: Sequence[Execution]) -> tuple[EvidenceLine, ...]:
    """What the diagnostics of these executions found, newest first, one line each per
    diagnostic name (its newest result)."""
    found: list[Evidence] = []
    for row in rows:
        found += await parts.store.evidence(row.id)
    found.sort(key=lambda item: (item.started_at, item.id), reverse=True)
    seen: set[str] = set()
    lines = []
    for item in found:
        if item.name in seen:
            continue
        seen.add(item.name)
        summary = item.summary if item.outcome == "ok" else item.error or item.summary
        lines.append(EvidenceLine(item.name, item.outcome, summary, excerpt(item.result)))
    return tuple(lines)


def excerpt(result: dict[str, Any] | None) -> tuple[str, ...]:
    """A few short lines of a diagnostic's result: table rows, the last log lines."""
    if not result:
        return ()
    if result.get("kind") == "table":
        rows = result.get("rows") or []
        return tuple(
            " ".join(str(cell)[:CELL_LIMIT] for cell in row)
            for row in rows[:EXCERPT_LINES]
            if isinstance(row, list)
        )
    if result.get("kind") == "lines":
        return tuple(str(line) for line in (result.get("lines") or [])[-EXCERPT_LINES:])
    return ()
