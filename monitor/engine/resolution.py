"""When an alert resolves: cancel what waits, count verifications as recovered, schedule
reverts after the stabilisation delay, and run them (or cancel them when the alert fires
again within the delay).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from monitor import policy as policy_mod
from monitor.actions.registry import ActionContext
from monitor.alerts.context import AlertContext
from monitor.engine import verification
from monitor.store import executions as store

if TYPE_CHECKING:
    from monitor.engine.core import Engine

log = logging.getLogger("monitor.engine")


async def on_resolved(engine: Engine, ctx: AlertContext) -> None:
    rows = await asyncio.to_thread(store.for_alert, engine.db, ctx.fingerprint, ctx.starts_at)
    now = engine.clock.now()
    for row in rows:
        policy = engine.policies.get(row["policy"])
        name = row["policy"]
        if row["state"] == "deferred" and await asyncio.to_thread(
            store.transition,
            engine.db,
            row["id"],
            "deferred",
            state="cancelled",
            reason="alert resolved",
            updated_at=now,
        ):
            engine.timers.cancel(f"decide-{row['id']}")
            await engine._audit(
                "cancel",
                "alert resolved before the deferred step ran",
                policy=name,
                ctx=ctx,
                target_key=row["target_key"],
                execution_id=row["id"],
                outcome="cancelled",
            )
        if row["verify_state"] == "pending" and policy is not None:
            engine.timers.cancel(f"verify-{row['id']}")
            await verification.verified(
                engine, row, policy, ctx, "recovered", "Alertmanager sent the alert as resolved"
            )
        if (
            row["state"] == "succeeded"
            and policy is not None
            and policy.revert.enabled
            and row["revert_state"] == "none"
            and any(
                (a.get("outcome") or {}).get("revert_state") is not None for a in row["actions"]
            )
        ):
            at = now + policy.revert.after
            if await asyncio.to_thread(
                store.cas_field,
                engine.db,
                row["id"],
                "revert_state",
                ["none"],
                revert_state="scheduled",
                revert_at=at,
            ):
                engine.timers.at(f"revert-{row['id']}", at, engine.revert, row["id"])
                await engine._audit(
                    "revert",
                    f"alert resolved; reverting at {at.isoformat()} unless it fires again",
                    policy=name,
                    ctx=ctx,
                    target_key=row["target_key"],
                    execution_id=row["id"],
                    outcome="scheduled",
                )


async def cancel_reverts(
    engine: Engine, policy: policy_mod.Policy, ctx: AlertContext, tkey: str, ids: list[int]
) -> None:
    for execution_id in ids:
        if await asyncio.to_thread(
            store.cas_field,
            engine.db,
            execution_id,
            "revert_state",
            ["scheduled"],
            revert_state="cancelled",
        ):
            engine.timers.cancel(f"revert-{execution_id}")
            await engine._audit(
                "revert",
                "the alert fired again within the stabilisation delay: the change stays",
                policy=policy.name,
                ctx=ctx,
                target_key=tkey,
                execution_id=execution_id,
                outcome="cancelled",
            )


async def revert(engine: Engine, execution_id: int) -> None:
    row = await asyncio.to_thread(store.get, engine.db, execution_id)
    if row is None or row["revert_state"] != "scheduled":
        return
    if not await asyncio.to_thread(
        store.cas_field,
        engine.db,
        execution_id,
        "revert_state",
        ["scheduled"],
        revert_state="running",
    ):
        return
    ctx = await engine._context_of(row)
    problems = []
    for entry in reversed(row["actions"]):
        state = (entry.get("outcome") or {}).get("revert_state")
        if state is None:
            continue
        name = entry["action"]
        try:
            action = engine.registry.get(name)
            params = engine.registry.parse_params(name, entry.get("params") or {})
            actx = ActionContext(
                alert=ctx,
                target=row["target"],
                services=engine.services,
                policy=row["policy"],
                step=row["step"],
                execution_id=str(execution_id),
                now=engine.clock.now,
                log=log,
            )
            outcome = await engine._retrying(action.revert, params, actx, state)
            entry["revert"] = outcome.model_dump(mode="json")
            engine.metrics.reverts.labels(row["policy"], name, "succeeded").inc()
            await engine._audit(
                "revert",
                outcome.summary,
                policy=row["policy"],
                ctx=ctx,
                target_key=row["target_key"],
                execution_id=execution_id,
                outcome="succeeded",
                details=entry["revert"],
            )
        except Exception as exc:  # recorded; the other actions are still reverted
            problems.append(f"{name}: {exc}")
            entry["revert_error"] = str(exc)
            engine.metrics.reverts.labels(row["policy"], name, "failed").inc()
            await engine._audit(
                "revert",
                f"reverting {name} failed: {exc}",
                policy=row["policy"],
                ctx=ctx,
                target_key=row["target_key"],
                execution_id=execution_id,
                outcome="failed",
            )
    await asyncio.to_thread(
        store.set_fields,
        engine.db,
        execution_id,
        revert_state="failed" if problems else "done",
        actions=row["actions"],
        updated_at=engine.clock.now(),
    )
