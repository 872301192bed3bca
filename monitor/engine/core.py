"""The engine: match, guard, plan, act, verify, escalate, revert — and record all of it.

For each alert of a stored notification (first delivery only; re-deliveries are
repeats) every matching policy is decided. The work is split by job, and this facade
only wires the parts together:

========================= ==========================================================
:mod:`.deciding`          match, guardrails, "still firing?", claim, defer, skip
:mod:`.executing`         plan and apply each action through the action runner
:mod:`.verification`      did the step work? escalate to the next step if not
:mod:`.resolution`        the alert resolved: cancel what waits, revert changes
:mod:`.ledger`            every audit record and state change (one commit each)
========================= ==========================================================

An execution's states and the transitions between them are declared in
:mod:`monitor.store.states`; the store refuses any other. Acting claims the execution
key (policy, step, fingerprint, startsAt) in the store first, so two deliveries or two
replicas never run the same step twice.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence

from monitor import policy as policy_mod
from monitor import scope as scope_mod
from monitor.actions import pagerduty
from monitor.actions.registry import ActionContext, Registry, Services
from monitor.actions.runner import ActionRunner, RetryPolicy
from monitor.alerts.context import AlertContext
from monitor.engine import paging
from monitor.engine.approval import Approvals
from monitor.engine.attempt import Attempt
from monitor.engine.batch import BatchDecider
from monitor.engine.breaker import Breaker
from monitor.engine.clock import Clock, SystemClock
from monitor.engine.deciding import LOCK_TTL, Decider, Gate
from monitor.engine.diagnosing import AFTER_FAILURE, AFTER_VERIFICATION, BEFORE, Diagnoser
from monitor.engine.executing import Executor
from monitor.engine.firing import FiringCheck
from monitor.engine.ledger import Ledger
from monitor.engine.pairs import Busy
from monitor.engine.parts import Parts
from monitor.engine.resolution import Resolution
from monitor.engine.timers import Timers
from monitor.engine.verification import Verification
from monitor.engine.verifier import Verifier
from monitor.metrics import Metrics
from monitor.settings import AutomationSettings
from monitor.store.approvals import Answer
from monitor.store.control import Resumed
from monitor.store.facade import Store
from monitor.store.notifications import StoredNotification
from monitor.store.records import Execution
from monitor.store.states import RevertState, State, VerifyState

log = logging.getLogger("monitor.engine")

# The runner's rules for a step's actions (a policy step may override attempts and the
# timeout; an action may declare its own): 3 tries, waits of 1 s, 2 s... capped at 30 s
# or the error's own delay hint, everything within 5 minutes.
ACTION_RETRY = RetryPolicy(attempts=3, first=1.0, factor=2.0, cap=30.0, deadline=300.0)


class Engine:
    def __init__(
        self,
        *,
        store: Store,
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
        runner: ActionRunner | None = None,
        gate: Gate | None = None,
    ) -> None:
        clock = clock or SystemClock()
        runner = runner or ActionRunner(
            retry=ACTION_RETRY,
            slots=asyncio.Semaphore(automation.max_concurrent_executions),
            observe=lambda action, seconds: metrics.execution_duration.labels(action).observe(
                seconds
            ),
        )
        self.parts = parts = Parts(
            store=store,
            ledger=Ledger(store, metrics, clock),
            runner=runner,
            policies=policies,
            registry=registry,
            services=services,
            metrics=metrics,
            automation=automation,
            firing=firing,
            verifier=verifier,
            clock=clock,
            timers=timers or Timers(),
            owner=owner or f"conea-monitor-{uuid.uuid4().hex[:8]}",
            scope=scope_mod.Scope.of(automation.namespaces_allow, automation.namespaces_deny),
            dry_run=dry_run,
        )
        self.diagnoser = Diagnoser(parts)
        self.verification = Verification(parts, decide=self.decide, investigate=self._investigate)
        self.resolution = Resolution(parts, verified=self.verification.verified)
        self.executor = Executor(
            parts,
            verify=self.verification.verify,
            escalate=self.verification.escalate,
            diagnose=self.diagnoser.start,
            investigate=self._investigate_failure,
        )
        max_actions = automation.max_actions
        self.breaker = Breaker(
            max_actions,
            store,
            metrics,
            notify=self._tell if max_actions is not None and max_actions.notifier else None,
        )
        self.gate: Gate = gate or self.breaker
        self.approvals = Approvals(
            parts, escalate=self.verification.escalate, expired=self.expire, gather=self._ask
        )
        self.decider = Decider(
            parts,
            run=self.executor.run,
            cancel_reverts=self.resolution.cancel_reverts,
            gate=self.gate,
            request=self.approvals.request,
        )
        self.busy = Busy()
        self.batch = BatchDecider(
            parts,
            self.decider,
            gate=self.gate,
            busy=self.busy,
            cancel_reverts=self.resolution.cancel_reverts,
            resolved=self.resolution.on_resolved_many,
            redecide=self.redecide,
        )
        self._runs: set[asyncio.Task[None]] = set()

    # What the API, the CLI and the wiring read ---------------------------------------------

    @property
    def store(self) -> Store:
        return self.parts.store

    @property
    def policies(self) -> policy_mod.PolicySet:
        return self.parts.policies

    @policies.setter
    def policies(self, policies: policy_mod.PolicySet) -> None:
        self.parts.policies = policies  # a reload: every part sees the new set at once

    @property
    def registry(self) -> Registry:
        return self.parts.registry

    @property
    def services(self) -> Services:
        return self.parts.services

    @property
    def runner(self) -> ActionRunner:
        return self.parts.runner

    @property
    def clock(self) -> Clock:
        return self.parts.clock

    @property
    def timers(self) -> Timers:
        return self.parts.timers

    @property
    def scope(self) -> scope_mod.Scope:
        return self.parts.scope

    @property
    def dry_run(self) -> bool:
        return self.parts.dry_run

    @property
    def paused_cached(self) -> bool:
        """The kill switch as last read (config or store), without a store read."""
        return self.decider.paused_cached

    async def _tell(self, message: str) -> None:
        """Tell the breaker's notifier (through the action runner: its timeout and
        retries bound the wait)."""
        settings = self.parts.automation.max_actions
        assert settings is not None and settings.notifier is not None
        ctx = ActionContext(
            alert=None,
            target={"kind": "Breaker", "name": "max_actions"},
            services=self.services,
            policy="automation.max_actions",
            now=self.clock.now,
        )
        opened_at = self.breaker.state.opened_at  # set as it opened, before telling
        key = pagerduty.breaker_key(opened_at) if opened_at is not None else None
        await self.parts.tell(settings.notifier, ctx, message, dedup_key=key)
        if key is not None and paging.is_pager(self.parts, settings.notifier):
            await paging.opened_page(self.parts, settings.notifier, key, "breaker", None)

    async def _investigate(
        self, row: Execution, policy: policy_mod.Policy, ctx: AlertContext
    ) -> None:
        """The policy's diagnostics again, after a failed verification of ``row``."""
        await self.diagnoser.gather(policy, ctx, row.target, row.id, AFTER_VERIFICATION)

    async def _ask(self, attempt: Attempt, execution_id: int) -> None:
        """The policy's diagnostics for a step that now waits for approval."""
        await self.diagnoser.gather(
            attempt.policy, attempt.ctx, attempt.target, execution_id, BEFORE
        )

    async def _investigate_failure(self, attempt: Attempt) -> None:
        """The policy's diagnostics again, after ``attempt``'s step failed outright."""
        if attempt.execution_id is not None:
            await self.diagnoser.gather(
                attempt.policy, attempt.ctx, attempt.target, attempt.execution_id, AFTER_FAILURE
            )

    # Life cycle -------------------------------------------------------------------------

    async def start(self, sweep_seconds: float = 10.0) -> None:
        self.timers.start()
        self.timers.every("sweep", sweep_seconds, self.sweep)
        await self.sweep()
        self.parts.metrics.paused.set(1 if await self.is_paused() else 0)

    async def stop(self, within: float = 5.0) -> None:
        """Stop the timers; give the steps in flight ``within`` seconds to finish, then
        interrupt them (each is recorded as failed, "interrupted", and its lock freed).
        Diagnostics still gathering share the same ``within``: they run beside the steps."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        self.timers.shutdown()
        runs = set(self._runs)
        if runs:
            _, late = await asyncio.wait(runs, timeout=within)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=2.0)
        await self.diagnoser.settle(within=max(0.0, deadline - loop.time()))
        self.diagnoser.close()

    async def sweep(self) -> None:
        """(Re)schedule every timer the store holds: after a restart, or another replica's;
        fail the steps a stopped replica left running (their lock expired); and resolve
        the PagerDuty pages still owed (:func:`.paging.sweep`)."""
        await self.breaker.watch(self.clock.now())  # an idle replica's metric follows too
        for stale in await self.store.abandoned(self.clock.now(), LOCK_TTL):
            await self.executor.reap(stale)
        for row in await self.store.due():
            if row.state == State.DEFERRED and row.due_at is not None:
                self.timers.ensure(f"decide-{row.id}", row.due_at, self.redecide, row.id)
            if row.state == State.AWAITING_APPROVAL and row.due_at is not None:
                self.timers.ensure(f"approval-{row.id}", row.due_at, self.expire, row.id)
            if row.verify_state == VerifyState.PENDING and row.verify_at is not None:
                self.timers.ensure(f"verify-{row.id}", row.verify_at, self.verify, row.id)
            if row.revert_state == RevertState.SCHEDULED and row.revert_at is not None:
                self.timers.ensure(f"revert-{row.id}", row.revert_at, self.revert, row.id)
        if paging.may_page(self.parts):  # resolves still owed (a restart, a failure)
            await paging.sweep(self.parts)

    # The kill switch (one store function, shared with the API and the command line) -------

    async def is_paused(self) -> bool:
        if self.parts.automation.paused:
            return True
        self.decider.paused_cached = await self.store.is_paused()
        return self.decider.paused_cached

    async def set_paused(self, paused: bool, by: str, reason: str = "") -> None:
        message = await self.store.set_paused(paused, by, reason, self.clock.now())
        log.info("%s", message)
        paused = paused or self.parts.automation.paused
        self.decider.paused_cached = paused
        self.parts.metrics.paused.set(1 if paused else 0)

    async def resume(self, by: str, reason: str = "", *, catch_up: bool = True) -> Resumed:
        """Resume; the alerts skipped during the pause that still fire are queued to be
        decided again, unless not ``catch_up`` (:func:`monitor.store.control.resume`)."""
        resumed = await self.store.resume(by, reason, self.clock.now(), catch_up=catch_up)
        log.info("%s", resumed.message)
        paused = self.parts.automation.paused
        self.decider.paused_cached = paused
        self.parts.metrics.paused.set(1 if paused else 0)
        return resumed

    # Notifications ------------------------------------------------------------------------

    async def handle(self, stored: StoredNotification) -> None:
        """Decide one notification and run what was claimed, to the end of each step
        (tests and tools; the service decides in batches, :meth:`decide_batch`). Raises
        the first failure once everything else was done."""
        outcome = await self.batch.decide([stored])
        results = await asyncio.gather(
            *(self.executor.run(attempt) for attempt in outcome.claimed), return_exceptions=True
        )
        await self.diagnoser.settle()  # the evidence gathered beside the steps, too
        failures = [*outcome.failures.values()]
        failures += [r for r in results if isinstance(r, BaseException)]
        if failures:
            raise failures[0]

    async def decide_batch(self, notes: Sequence[StoredNotification]) -> dict[int, BaseException]:
        """Decide a batch of notifications (one read, one commit) and start running what
        was claimed in the background; returns the notifications whose deciding raised."""
        outcome = await self.batch.decide(notes, mark=True)
        for attempt in outcome.claimed:
            task = asyncio.get_running_loop().create_task(self._run(attempt))
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)
        return outcome.failures

    async def _run(self, attempt: Attempt) -> None:
        try:
            await self.executor.run(attempt)
        except Exception:  # the store or a bug; the step's row says what it got to
            log.exception("running %s failed", attempt.where)
            self.parts.metrics.store_errors.labels("engine").inc()

    def urgent(self, stored: StoredNotification) -> bool:
        """Is the notification about a target nothing works on (decided ahead of the
        queue)?"""
        return self.batch.urgent(stored)

    @property
    def running(self) -> int:
        """Steps being run by this replica now."""
        return len(self._runs)

    # The parts' entry points, for timers and callers ----------------------------------

    async def decide(
        self, policy: policy_mod.Policy, ctx: AlertContext, step: int, existing: int | None = None
    ) -> None:
        await self.decider.decide(policy, ctx, step, existing)

    async def expire(self, execution_id: int) -> None:
        await self.approvals.expire(execution_id)

    async def answer(
        self, execution_id: int, *, approve: bool, by: str, reason: str = ""
    ) -> Answer:
        """Approve or reject an execution awaiting approval (the API and the links);
        approved, it is decided again at once, guardrails and all."""
        answer = await self.store.answer_approval(
            execution_id, approve=approve, by=by, reason=reason, at=self.clock.now()
        )
        if answer.ok:
            self.timers.cancel(f"approval-{execution_id}")
            verdict = "approved" if approve else "rejected"
            self.parts.metrics.approvals.labels(answer.policy, verdict).inc()
            await paging.end(self.parts, execution_id, f"the approval request was {verdict}")
            if approve:
                self.timers.at(
                    f"decide-{execution_id}", self.clock.now(), self.redecide, execution_id
                )
        return answer

    async def redecide(self, execution_id: int) -> None:
        await self.decider.redecide(execution_id)

    async def verify(self, execution_id: int) -> None:
        await self.verification.verify(execution_id)

    async def on_resolved(self, ctx: AlertContext) -> None:
        await self.resolution.on_resolved(ctx)

    async def revert(self, execution_id: int) -> None:
        await self.resolution.revert(execution_id)
