"""The engine: match, guard, plan, act, verify, escalate, revert — and record all of it.

For each alert of a stored notification (first delivery only; re-deliveries are
repeats) every matching policy is decided (:mod:`.guardrails`). Acting claims the
execution key (policy, step, fingerprint, startsAt) in the store first, so two
deliveries or two replicas never run the same step twice. Every decision, skip, plan,
result, verification, escalation and revert is an audit record and a metric.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

import pydantic

from monitor import policy as policy_mod
from monitor import scope as scope_mod
from monitor.actions.registry import ActionContext, Registry, Services
from monitor.alerts.context import AlertContext, alert_context
from monitor.engine import guardrails, resolution, verification
from monitor.engine.clock import Clock, SystemClock
from monitor.engine.firing import FiringCheck
from monitor.engine.timers import Timers
from monitor.engine.verifier import Verifier
from monitor.errors import ActionError, PolicyError, TemporaryActionError
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store import executions as store
from monitor.store.notifications import StoredNotification

log = logging.getLogger("monitor.engine")
T = TypeVar("T")

LOCK_TTL = timedelta(minutes=10)
CONCURRENCY_RETRY = timedelta(seconds=30)
ACTION_ATTEMPTS = 3
MAX_RETRY_DELAY = 30.0
DECIDING = 16  # decisions in flight at once (guardrails, store reads, the firing re-check)


class Engine:
    def __init__(
        self,
        *,
        db: Any,
        policies: policy_mod.PolicySet,
        registry: Registry,
        services: Services,
        metrics: Metrics,
        automation: AutomationSettings,
        firing: FiringCheck,
        verifier: Verifier | None = None,
        dry_run: bool = False,
        clock: Clock | None = None,
        timers: Timers | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.policies = policies
        self.registry = registry
        self.services = services
        self.metrics = metrics
        self.automation = automation
        self.firing = firing
        self.verifier = verifier
        self.dry_run = dry_run
        self.clock = clock or SystemClock()
        self.timers = timers or Timers()
        self.owner = owner or f"conea-monitor-{uuid.uuid4().hex[:8]}"
        self.scope = scope_mod.Scope.of(automation.namespaces_allow, automation.namespaces_deny)
        self._slots = asyncio.Semaphore(automation.max_concurrent_executions)
        self._deciding = asyncio.Semaphore(DECIDING)
        self.paused_cached = automation.paused

    # Life cycle -------------------------------------------------------------------------

    async def start(self, sweep_seconds: float = 10.0) -> None:
        self.timers.start()
        self.timers.every("sweep", sweep_seconds, self.sweep)
        await self.sweep()
        self.metrics.paused.set(1 if await self.is_paused() else 0)

    async def stop(self) -> None:
        self.timers.shutdown()

    async def sweep(self) -> None:
        """(Re)schedule every timer the store holds: after a restart, or another replica's."""
        rows = await asyncio.to_thread(store.due, self.db)
        for row in rows:
            if row["state"] == "deferred" and row["due_at"] is not None:
                self.timers.ensure(f"decide-{row['id']}", row["due_at"], self.redecide, row["id"])
            if row["verify_state"] == "pending" and row["verify_at"] is not None:
                self.timers.ensure(f"verify-{row['id']}", row["verify_at"], self.verify, row["id"])
            if row["revert_state"] == "scheduled" and row["revert_at"] is not None:
                self.timers.ensure(f"revert-{row['id']}", row["revert_at"], self.revert, row["id"])

    # The kill switch ----------------------------------------------------------------------

    async def is_paused(self) -> bool:
        if self.automation.paused:
            return True
        self.paused_cached = await asyncio.to_thread(store.is_paused, self.db)
        return self.paused_cached

    async def set_paused(self, paused: bool, by: str, reason: str = "") -> None:
        message = await asyncio.to_thread(
            store.set_paused, self.db, paused, by, reason, self.clock.now()
        )
        log.info("%s", message)
        self.paused_cached = paused or self.automation.paused
        self.metrics.paused.set(1 if paused or self.automation.paused else 0)

    # Notifications ------------------------------------------------------------------------

    async def handle(self, stored: StoredNotification) -> None:
        """Decide every new alert of a stored notification, each independently of the
        others: decisions run concurrently (at most ``DECIDING`` at once per engine), so
        one alert's retries and escalations never hold up another's decision. One alert's
        failure does not stop the others; if any failed, the error is raised once all
        were tried (the runtime retries the notification, then parks it as poisoned;
        decisions already made are claimed in the store and are not made twice)."""
        failures: list[BaseException] = []
        work: list[Awaitable[None]] = []
        for item in stored.alerts:
            ctx = alert_context(item.alert)
            if item.alert.status == "resolved":
                if not item.repeat:
                    work.append(self.on_resolved(ctx))
                continue
            if item.repeat:
                continue  # Alertmanager re-sends whole groups; the first delivery decided
            for policy in self.policies.match(ctx.labels):
                work.append(self.decide(policy, ctx, step=0))
        await asyncio.gather(*(self._guarded(failures, one) for one in work))
        if failures:
            raise failures[0]

    async def _guarded(self, failures: list[BaseException], work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:  # the store or a bug; logged, and the rest goes on
            log.exception("deciding an alert failed")
            self.metrics.store_errors.labels("engine").inc()
            failures.append(exc)

    async def decide(
        self, policy: policy_mod.Policy, ctx: AlertContext, step: int, existing: int | None = None
    ) -> None:
        """Decide one step of one policy for one alert, and act on the decision. Deciding
        takes one of ``DECIDING`` slots; acting (and waiting to retry) does not."""
        async with self._deciding:
            claimed = await self._decide(policy, ctx, step, existing)
        if claimed is not None:
            execution_id, target, tkey, dry_run, lock = claimed
            await self._run(execution_id, policy, ctx, step, target, tkey, dry_run, lock)

    async def _decide(
        self, policy: policy_mod.Policy, ctx: AlertContext, step: int, existing: int | None
    ) -> tuple[int, Mapping[str, str], str, bool, store.Lock] | None:
        """The decision, recorded; what to run when it is to act (else None)."""
        try:
            target = policy_mod.render_target(policy, ctx)
        except PolicyError as exc:
            await self._skip(policy, ctx, "", "target", str(exc), existing)
            return None
        tkey = policy_mod.target_key(target)
        now = self.clock.now()
        inputs = await asyncio.to_thread(
            store.decision_inputs,
            self.db,
            tkey,
            now - policy.budget.window,
            (ctx.fingerprint, ctx.starts_at),
            policy.name if step == 0 and existing is None else None,
        )
        if inputs.scheduled_reverts:
            await resolution.cancel_reverts(self, policy, ctx, tkey, inputs.scheduled_reverts)
        self.paused_cached = self.automation.paused or inputs.paused
        decision = guardrails.decide(
            policy,
            target=target,
            starts_at=ctx.starts_at,
            now=now,
            paused=self.paused_cached,
            dry_run=self.dry_run,
            scope=self.scope,
            history=inputs.history,
        )
        if decision.outcome == "skip":
            await self._skip(
                policy, ctx, tkey, decision.guardrail, decision.reason, existing, decision
            )
            return None
        if decision.outcome == "defer":
            assert decision.due_at is not None
            await self._defer(policy, ctx, step, target, tkey, decision, existing)
            return None
        if inputs.resolved:
            state, evidence = "not_firing", "a resolved notification for this alert was received"
        else:
            state, evidence = await self._still_firing(ctx)
        if state != "firing":
            await self._skip(policy, ctx, tkey, "stale", evidence, existing, decision)
            return None
        decision.verdicts.append(guardrails.Verdict("stale", True, evidence))
        lock = store.Lock(tkey, self.owner, now, LOCK_TTL)
        claimed = await self._claim(policy, ctx, step, target, tkey, decision, existing, lock)
        if claimed is None:
            return None
        execution_id, locked = claimed
        if not locked:
            due = now + CONCURRENCY_RETRY
            await asyncio.to_thread(
                store.transition,
                self.db,
                execution_id,
                "running",
                state="deferred",
                due_at=due,
                reason="another execution is acting on the target",
            )
            self.metrics.skips.labels(policy.name, "concurrency").inc()
            await self._audit(
                "defer",
                f"{tkey} is busy with another execution; deciding again at {due.isoformat()}",
                policy=policy.name,
                ctx=ctx,
                target_key=tkey,
                execution_id=execution_id,
                outcome="concurrency",
            )
            self.timers.at(f"decide-{execution_id}", due, self.redecide, execution_id)
            return None
        return execution_id, target, tkey, decision.outcome == "dry_run", lock

    async def redecide(self, execution_id: int) -> None:
        """A deferred decision is due: take it (only one replica can) and decide again."""
        row = await asyncio.to_thread(store.get, self.db, execution_id)
        if row is None or row["state"] != "deferred":
            return
        policy = self.policies.get(row["policy"])
        if policy is None:
            await asyncio.to_thread(
                store.transition,
                self.db,
                execution_id,
                "deferred",
                state="cancelled",
                reason="policy no longer exists",
            )
            return
        if await asyncio.to_thread(
            store.alert_resolved, self.db, row["fingerprint"], row["starts_at"]
        ):
            await asyncio.to_thread(
                store.transition,
                self.db,
                execution_id,
                "deferred",
                state="cancelled",
                reason="alert resolved",
            )
            return
        ctx = await self._context_of(row)
        await self.decide(policy, ctx, row["step"], existing=execution_id)

    # Steps ------------------------------------------------------------------------------

    async def _claim(
        self,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        step: int,
        target: Mapping[str, str],
        tkey: str,
        decision: guardrails.Decision,
        existing: int | None,
        lock: store.Lock,
    ) -> tuple[int, bool] | None:
        """Claim the execution, record the decision and try the target's lock (one commit)."""
        now = self.clock.now()
        fields = {
            "state": "running",
            "dry_run": decision.outcome == "dry_run",
            "reason": decision.reason or None,
            "due_at": None,
            "updated_at": now,
            "created_at": now,
            "owner": self.owner,
        }
        message = f"step {step + 1} of {policy.name!r} on {tkey}: {decision.outcome}"
        record = store.Audit(
            now,
            "decision",
            message,
            policy.name,
            ctx.fingerprint,
            tkey,
            decision.outcome,
            decision.as_dict(),
        )
        key = store.ExecutionKey(policy.name, step, ctx.fingerprint, ctx.starts_at)
        row = fields if existing is not None else self._row(ctx, target, tkey, fields)
        try:
            claimed = await asyncio.to_thread(
                store.start, self.db, key, row, record, lock, existing
            )
        except store.AlreadyClaimed:
            self.metrics.skips.labels(policy.name, "duplicate").inc()
            await self._audit(
                "skip",
                f"step {step + 1} of {policy.name!r} for this alert "
                "is already claimed (re-delivery or another replica)",
                policy=policy.name,
                ctx=ctx,
                target_key=tkey,
                outcome="duplicate",
            )
            return None
        if claimed is None:
            return None  # another replica took the deferred execution
        log.info("decision: %s", message)
        self.metrics.decisions.labels(policy.name, decision.outcome).inc()
        return claimed

    def _row(
        self, ctx: AlertContext, target: Mapping[str, str], tkey: str, fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        return {
            "alertname": ctx.labels.get("alertname", ""),
            "labels": dict(ctx.labels),
            "target_key": tkey,
            "target": dict(target),
            "actions": [],
            **fields,
        }

    async def _run(
        self,
        execution_id: int,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        step: int,
        target: Mapping[str, str],
        tkey: str,
        dry_run: bool,
        lock: store.Lock,
    ) -> None:
        results: list[dict[str, Any]] = []
        failed: str | None = None
        self.metrics.executions_in_flight.inc()
        try:
            for compiled in policy.steps[step]:
                entry: dict[str, Any] = {"action": compiled.action}
                results.append(entry)
                failed = await self._one_action(
                    execution_id, policy, ctx, step, target, tkey, compiled, entry, dry_run
                )
                if failed:
                    break
        finally:
            self.metrics.executions_in_flight.dec()
        now = self.clock.now()
        state = "failed" if failed else ("dry_run" if dry_run else "succeeded")
        if state == "succeeded":
            # Counted once applied: a target named by an alert but not there adds no series.
            self.metrics.target_remediated(policy.name, tkey)
        fields: dict[str, Any] = {
            "state": state,
            "actions": results,
            "finished_at": now,
            "updated_at": now,
            "error": failed,
        }
        if state == "succeeded":
            fields.update(verify_state="pending", verify_at=now + policy.verify.interval)
        await asyncio.to_thread(store.finish, self.db, execution_id, lock, **fields)
        if state == "succeeded":
            self.timers.at(f"verify-{execution_id}", fields["verify_at"], self.verify, execution_id)
        elif state == "failed":
            await verification.escalate(
                self, policy, ctx, step, execution_id, f"step failed: {failed}"
            )

    async def _one_action(
        self,
        execution_id: int,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        step: int,
        target: Mapping[str, str],
        tkey: str,
        compiled: policy_mod.CompiledAction,
        entry: dict[str, Any],
        dry_run: bool,
    ) -> str | None:
        """Plan, then (unless dry-run) apply one action; returns an error message or None."""
        name = compiled.action
        started = asyncio.get_running_loop().time()
        try:
            action = self.registry.get(name)
            params = policy_mod.parse_params(compiled, ctx, self.registry)
            if "history" in action.Params.model_fields and not getattr(params, "history", None):
                # Actions that report (notify) are told what the ladder did so far.
                history = await self._history(policy, ctx, step)
                params = self.registry.parse_params(
                    name, {**params.model_dump(mode="json"), "history": history}
                )
            entry["params"] = params.model_dump(mode="json")
            actx = ActionContext(
                alert=ctx,
                target=target,
                services=self.services,
                policy=policy.name,
                step=step,
                execution_id=str(execution_id),
                dry_run=dry_run,
                now=self.clock.now,
                log=log,
            )
            plan = await self._retrying(action.plan, params, actx)
            entry["plan"] = plan.model_dump(mode="json")
            await self._audit(
                "plan",
                plan.summary,
                policy=policy.name,
                ctx=ctx,
                target_key=tkey,
                execution_id=execution_id,
                outcome=name,
                details=entry["plan"],
            )
            if dry_run:
                self.metrics.executions.labels(policy.name, name, "dry_run").inc()
                return None
            outcome = await self._retrying(action.apply, params, actx, plan)
            entry["outcome"] = outcome.model_dump(mode="json")
            self.metrics.executions.labels(policy.name, name, "succeeded").inc()
            await self._audit(
                "execute",
                outcome.summary,
                policy=policy.name,
                ctx=ctx,
                target_key=tkey,
                execution_id=execution_id,
                outcome="succeeded",
                details=entry["outcome"],
            )
            return None
        except (ActionError, PolicyError, KeyError, pydantic.ValidationError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        except Exception as exc:  # an action's bug must not take the engine down
            log.exception("action %s raised", name)
            message = f"{type(exc).__name__}: {exc}"
        finally:
            self.metrics.execution_duration.labels(name).observe(
                asyncio.get_running_loop().time() - started
            )
        entry["error"] = message
        self.metrics.executions.labels(policy.name, name, "failed").inc()
        await self._audit(
            "execute",
            f"{name} failed: {message}",
            policy=policy.name,
            ctx=ctx,
            target_key=tkey,
            execution_id=execution_id,
            outcome="failed",
        )
        return f"{name}: {message}"

    async def _history(
        self, policy: policy_mod.Policy, ctx: AlertContext, step: int
    ) -> list[dict[str, Any]]:
        """The earlier steps of this alert's ladder, for actions that report them."""
        rows = await asyncio.to_thread(
            store.for_alert, self.db, ctx.fingerprint, ctx.starts_at, policy.name
        )
        history = []
        for row in rows:
            if row["step"] >= step:
                continue
            status = (
                row["state"]
                if row["state"] in ("succeeded", "failed", "dry_run", "skipped")
                else "planned"
            )
            verification = (
                row["verify_state"]
                if row["verify_state"] in ("pending", "recovered", "not_recovered", "error")
                else None
            )
            for entry in row["actions"]:
                plan = entry.get("plan") or {}
                outcome = entry.get("outcome") or {}
                history.append(
                    {
                        "step": row["step"],
                        "action": entry["action"],
                        "status": status,
                        "summary": plan.get("summary", ""),
                        "changes": plan.get("changes", []),
                        "result": outcome.get("summary") or entry.get("error"),
                        "verification": verification,
                        "verification_detail": row["verify_detail"],
                        "at": row["finished_at"].isoformat() if row["finished_at"] else None,
                        "execution_id": str(row["id"]),
                    }
                )
        return history

    async def _retrying(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """The engine owns retries: temporary errors are retried after their delay."""
        for attempt in range(1, ACTION_ATTEMPTS + 1):
            try:
                async with self._slots:  # held while acting, not while waiting to retry
                    return await call(*args)
            except TemporaryActionError as exc:
                if attempt == ACTION_ATTEMPTS:
                    raise
                log.warning("temporary failure (attempt %d): %s", attempt, exc)
                await asyncio.sleep(min(exc.delay, MAX_RETRY_DELAY))
        raise AssertionError("unreachable")

    # Verification, escalation, resolution (monitor/engine/verification.py, resolution.py)

    async def verify(self, execution_id: int) -> None:
        await verification.verify(self, execution_id)

    async def on_resolved(self, ctx: AlertContext) -> None:
        await resolution.on_resolved(self, ctx)

    async def revert(self, execution_id: int) -> None:
        await resolution.revert(self, execution_id)

    # Helpers ----------------------------------------------------------------------------

    async def _skip(
        self,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        tkey: str,
        guardrail: str,
        reason: str,
        existing: int | None,
        decision: guardrails.Decision | None = None,
    ) -> None:
        self.metrics.skips.labels(policy.name, guardrail).inc()
        self.metrics.decisions.labels(policy.name, "skip").inc()
        if existing is not None:
            await asyncio.to_thread(
                store.transition,
                self.db,
                existing,
                "deferred",
                state="skipped",
                reason=f"{guardrail}: {reason}",
                due_at=None,
                updated_at=self.clock.now(),
            )
        await self._audit(
            "skip",
            f"{policy.name!r}: {guardrail}: {reason}",
            policy=policy.name,
            ctx=ctx,
            target_key=tkey or None,
            execution_id=existing,
            outcome=guardrail,
            details=decision.as_dict() if decision is not None else None,
        )

    async def _defer(
        self,
        policy: policy_mod.Policy,
        ctx: AlertContext,
        step: int,
        target: Mapping[str, str],
        tkey: str,
        decision: guardrails.Decision,
        existing: int | None,
    ) -> None:
        due = decision.due_at
        assert due is not None
        now = self.clock.now()
        self.metrics.skips.labels(policy.name, decision.guardrail).inc()
        if existing is not None:
            await asyncio.to_thread(
                store.set_fields,
                self.db,
                existing,
                due_at=due,
                reason=decision.reason,
                updated_at=now,
            )
            execution_id = existing
        else:
            key = store.ExecutionKey(policy.name, step, ctx.fingerprint, ctx.starts_at)
            fields = {
                "state": "deferred",
                "dry_run": self.dry_run,
                "reason": decision.reason,
                "due_at": due,
                "created_at": now,
                "updated_at": now,
                "owner": self.owner,
            }
            try:
                execution_id = await asyncio.to_thread(
                    store.claim, self.db, key, self._row(ctx, target, tkey, fields)
                )
            except store.AlreadyClaimed:
                return
            self.metrics.decisions.labels(policy.name, "defer").inc()
            await self._audit(
                "defer",
                f"{policy.name!r}: {decision.guardrail}: {decision.reason}",
                policy=policy.name,
                ctx=ctx,
                target_key=tkey,
                execution_id=execution_id,
                outcome=decision.guardrail,
                details=decision.as_dict(),
            )
        self.timers.at(f"decide-{execution_id}", due, self.redecide, execution_id)

    async def _still_firing(self, ctx: AlertContext) -> tuple[str, str]:
        """Ask Alertmanager (or Prometheus); the store's own answer came with the inputs."""
        if not self.firing.configured:
            return "firing", "no Alertmanager/Prometheus to re-check; trusting the webhook"
        state, evidence = await self.firing.state(ctx)
        if state == "unknown":
            return "unknown", f"cannot confirm the alert still fires ({evidence})"
        return state, evidence

    async def _context_of(self, row: Mapping[str, Any]) -> AlertContext:
        annotations, generator = await asyncio.to_thread(
            store.alert_annotations, self.db, row["fingerprint"], row["starts_at"]
        )
        return AlertContext(
            labels=row["labels"],
            annotations=annotations,
            status="firing",
            fingerprint=row["fingerprint"],
            starts_at=row["starts_at"],
            generator_url=generator,
        )

    async def _audit(
        self,
        kind: str,
        message: str,
        *,
        policy: str | None = None,
        ctx: AlertContext | None = None,
        target_key: str | None = None,
        execution_id: int | None = None,
        outcome: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        log.info("%s: %s", kind, message)
        await asyncio.to_thread(
            store.record,
            self.db,
            self.clock.now(),
            kind,
            message,
            policy=policy,
            fingerprint=ctx.fingerprint if ctx else None,
            target_key=target_key,
            execution_id=execution_id,
            outcome=outcome,
            details=details,
        )
