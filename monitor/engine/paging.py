"""What a page carries and how it ends.

:func:`evidence` turns what the ladder's diagnostics stored (``records.Evidence``) into
the short lines a page shows (:class:`~monitor.actions.registry.EvidenceLine`), newest
first, one per diagnostic. :func:`resolve` closes the PagerDuty incidents that a
ladder's ``notify`` steps opened (an outcome recording a ``trigger``): the engine calls
it when a step is verified as recovered (:mod:`.verification`) and when the alert
resolves (:mod:`.resolution`). A resolve runs in the background (a timer job) through
the action runner like the trigger did (the notifier's timeout and retries); it is
audited (kind ``page``), and a failure is recorded, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from monitor.actions import notify
from monitor.actions.registry import ActionContext, EvidenceLine
from monitor.alerts.context import AlertContext
from monitor.engine.parts import Parts
from monitor.errors import ActionError
from monitor.store.records import Evidence, Execution

log = logging.getLogger("monitor.engine")

EXCERPT_LINES = 5
CELL_LIMIT = 60


def may_page(parts: Parts) -> bool:
    """Is a PagerDuty notifier configured (else no execution has a page to resolve)?"""
    return any(getattr(n, "kind", None) == "pagerduty" for n in parts.services.notifiers.values())


def paged(row: Execution) -> list[str]:
    """The notifiers an execution paged on PagerDuty (a trigger that was sent)."""
    names = {notify.paged(entry.action, entry.outcome) for entry in row.actions}
    return sorted(name for name in names if name is not None)


def resolve(parts: Parts, rows: Sequence[Execution], ctx: AlertContext, why: str) -> None:
    """Resolve every page the executions ``rows`` opened (a rehearsal opened none), each
    in the background (a timer): a slow PagerDuty never holds up the alerts' batch."""
    for row in rows:
        if row.dry_run:
            continue
        for name in paged(row):
            parts.timers.soon(f"page-{row.id}-{name}", _resolve_one, parts, row, name, ctx, why)


async def _resolve_one(
    parts: Parts, row: Execution, notifier: str, ctx: AlertContext, why: str
) -> None:
    actx = ActionContext(
        alert=ctx,
        target=row.target,
        services=parts.services,
        policy=row.policy,
        step=row.step,
        execution_id=str(row.id),
        now=parts.clock.now,
        log=log,
    )
    try:
        action = parts.registry.get("notify")
        params = action.Params.model_validate({"notifier": notifier, "resolve": True})
        retry = action.retry_policy(params, actx)
        plan = await parts.runner.plan(action, params, actx, retry=retry)
        outcome = await parts.runner.apply(action, params, actx, plan, retry=retry)
    except (ActionError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        await parts.ledger.audit(
            parts.ledger.note(
                "page",
                f"resolving the page of step {row.step + 1} on {notifier!r} failed: {message}",
                policy=row.policy,
                ctx=ctx,
                target_key=row.target_key,
                outcome="failed",
            ),
            row.id,
        )
        return
    await parts.ledger.audit(
        parts.ledger.note(
            "page",
            f"{outcome.summary}: {why}",
            policy=row.policy,
            ctx=ctx,
            target_key=row.target_key,
            outcome="resolved",
            details=outcome.details,
        ),
        row.id,
    )


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
