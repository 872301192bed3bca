"""Verification and escalation: did the step work? If not, the next step of the ladder.

A pending verification is a row with a due time (``verify_at``); each check is taken by
one replica only (compare-and-set on ``verify_at``). Recovered when the policy's PromQL
returns no series, or by default when the alert itself is no longer firing (a resolved
notification, Alertmanager, or Prometheus's ``ALERTS``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from monitor import policy as policy_mod
from monitor.alerts.context import AlertContext
from monitor.engine.verifier import QueryError
from monitor.errors import PolicyError
from monitor.store import executions as store

if TYPE_CHECKING:
    from monitor.engine.core import Engine


async def verify(engine: Engine, execution_id: int) -> None:
    row = await asyncio.to_thread(store.get, engine.db, execution_id)
    if row is None or row["verify_state"] != "pending":
        return
    policy = engine.policies.get(row["policy"])
    now = engine.clock.now()
    if policy is None:
        await asyncio.to_thread(
            store.cas_field,
            engine.db,
            execution_id,
            "verify_state",
            ["pending"],
            verify_state="error",
            verify_detail="policy no longer exists",
        )
        return
    # Claim this check so only one replica evaluates it.
    next_at = now + policy.verify.interval
    if not await asyncio.to_thread(_claim_tick, engine, execution_id, row["verify_at"], next_at):
        return
    ctx = await engine._context_of(row)
    recovered, evidence = await _recovered(engine, policy, ctx)
    deadline = row["finished_at"] + policy.verify.window
    if recovered:
        await verified(engine, row, policy, ctx, "recovered", evidence)
    elif now >= deadline:
        await verified(engine, row, policy, ctx, "not_recovered", evidence)
        await escalate(
            engine,
            policy,
            ctx,
            row["step"],
            execution_id,
            f"not recovered within {policy.verify.window}: {evidence}",
        )
    else:
        engine.timers.at(f"verify-{execution_id}", next_at, engine.verify, execution_id)


def _claim_tick(
    engine: Engine, execution_id: int, expected: datetime | None, next_at: datetime
) -> bool:
    return store.claim_verify_tick(engine.db, execution_id, expected, next_at)


async def _recovered(
    engine: Engine, policy: policy_mod.Policy, ctx: AlertContext
) -> tuple[bool, str]:
    if await asyncio.to_thread(store.alert_resolved, engine.db, ctx.fingerprint, ctx.starts_at):
        return True, "Alertmanager sent the alert as resolved"
    try:
        promql = policy_mod.render_promql(policy, ctx)
    except PolicyError as exc:
        return False, str(exc)
    if promql is not None:
        if engine.verifier is None:
            return False, "no prometheus_url configured to evaluate the verify query"
        try:
            holds = await engine.verifier.holds(promql)
        except QueryError as exc:
            return False, str(exc)
        if holds:
            return False, f"{promql} still returns series"
        return True, f"{promql} returns no series"
    state, evidence = await engine.firing.state(ctx)
    return state == "not_firing", evidence


async def verified(
    engine: Engine,
    row: Mapping[str, Any],
    policy: policy_mod.Policy,
    ctx: AlertContext,
    result: str,
    evidence: str,
) -> None:
    if not await asyncio.to_thread(
        store.cas_field,
        engine.db,
        row["id"],
        "verify_state",
        ["pending"],
        verify_state=result,
        verify_detail=evidence,
        verify_at=None,
    ):
        return
    engine.metrics.verifications.labels(policy.name, result).inc()
    if result == "recovered":
        engine.metrics.time_to_recover.labels(policy.name).observe(
            max(0.0, (engine.clock.now() - ctx.starts_at).total_seconds())
        )
    await engine._audit(
        "verify",
        f"{result.replace('_', ' ')}: {evidence}",
        policy=policy.name,
        ctx=ctx,
        target_key=row["target_key"],
        execution_id=row["id"],
        outcome=result,
    )


async def escalate(
    engine: Engine,
    policy: policy_mod.Policy,
    ctx: AlertContext,
    step: int,
    execution_id: int,
    why: str,
) -> None:
    following = step + 1
    if following >= len(policy.steps):
        await engine._audit(
            "escalate",
            f"{why}; no step left after step {step + 1} of "
            f"{policy.name!r}: a person must take over",
            policy=policy.name,
            ctx=ctx,
            execution_id=execution_id,
            outcome="exhausted",
        )
        return
    engine.metrics.escalations.labels(policy.name).inc()
    await engine._audit(
        "escalate",
        f"{why}; escalating to step {following + 1} of {policy.name!r}",
        policy=policy.name,
        ctx=ctx,
        execution_id=execution_id,
        outcome=f"step {following + 1}",
    )
    await engine.decide(policy, ctx, following)
