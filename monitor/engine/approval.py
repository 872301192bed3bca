"""Approval: a person says yes or no before a step acts.

A step that needs approval (:meth:`Parts.needs_approval`: ``approval: required`` on the
policy or the step, or ``automation.mode: approval``) is decided as any other: the
guardrails and the "still firing?" check pass first. Then, instead of acting, its plan
is made (read-only, from live state) and the execution waits in ``awaiting_approval``
until ``automation.approval.timeout``; the policy's diagnostics gather their evidence
(phase ``before``, :mod:`.diagnosing`) and the approval notifier gets the plan and that
evidence with an approve and a reject link (unless the request was answered meanwhile:
the API and the console can answer it while the evidence is gathered). Each link is
signed (itsdangerous, with a key every replica shares), names one execution and one
answer, and expires with the request; it counts once, because an answer is a guarded
move of the row (:mod:`monitor.store.approvals`).

Approved, the execution is decided again at once (``deferred``, approved): the
guardrails, the still-firing check and the breaker run again and the plan is made
again from live state before acting; the approver is recorded. Rejected, nothing
acts. Unanswered, it expires and the ladder's next step is decided (typically a page).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import itsdangerous

from monitor import policy as policy_mod
from monitor.actions import pagerduty
from monitor.actions.registry import ActionContext
from monitor.actions.runner import RetryPolicy
from monitor.engine import paging
from monitor.engine.attempt import Attempt, context_of
from monitor.engine.deciding import identity
from monitor.engine.parts import Parts
from monitor.errors import StoreError
from monitor.store.states import State

log = logging.getLogger("monitor.engine")

Escalate = Callable[[Attempt, str], Awaitable[None]]
Gather = Callable[[Attempt, int], Awaitable[object]]  # the diagnostics of an execution
SALT = "conea-monitor approval"
VERDICTS = ("approve", "reject")
MAX_TOKEN = 512  # characters: a link's token is far shorter; longer is refused unread


class LinkError(Exception):
    """A link that is not one of ours (tampered, truncated) or has expired."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Links:
    """Signed approve/reject links: ``public_url``/approvals/<token>."""

    key: str
    public_url: str
    max_age: float  # seconds: the request's timeout (links are read to the second)

    def _serializer(self) -> itsdangerous.URLSafeTimedSerializer:
        return itsdangerous.URLSafeTimedSerializer(self.key, salt=SALT)

    def token(self, execution_id: int, verdict: str) -> str:
        assert verdict in VERDICTS
        return str(self._serializer().dumps([execution_id, verdict]))

    def url(self, execution_id: int, verdict: str) -> str:
        return f"{self.public_url.rstrip('/')}/approvals/{self.token(execution_id, verdict)}"

    def read(self, token: str) -> tuple[int, str]:
        """The execution and the answer a token stands for; LinkError (403 or 410)."""
        if len(token) > MAX_TOKEN:
            raise LinkError(403, "not a valid approval link")
        try:
            value = self._serializer().loads(token, max_age=max(1, round(self.max_age)))
        except itsdangerous.SignatureExpired:
            raise LinkError(410, "this approval link has expired") from None
        except itsdangerous.BadData:
            raise LinkError(403, "not a valid approval link") from None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not isinstance(value[0], int)
            or value[1] not in VERDICTS
        ):
            raise LinkError(403, "not a valid approval link")
        return value[0], value[1]


class Approvals:
    def __init__(
        self,
        parts: Parts,
        *,
        escalate: Escalate,
        expired: Callable[[int], Any],
        gather: Gather | None = None,
    ) -> None:
        self.parts = parts
        self.escalate = escalate
        self.expired = expired  # the timer's callback (the engine's, for one entry point)
        self.gather = gather  # the evidence the approver sees with the plan
        self._links: Links | None = None

    async def links(self) -> Links:
        if self._links is None:
            parts = self.parts
            settings = parts.automation.approval
            if settings.key_file is not None:
                key = settings.key_file.read_text(encoding="utf-8").strip()
            else:
                key = await parts.store.approval_key(parts.clock.now())
            self._links = Links(key, parts.services.public_url, settings.timeout.total_seconds())
        return self._links

    async def request(self, attempt: Attempt) -> None:
        """Ask for approval of a deferred step the guardrails let act: its plan, the
        move to ``awaiting_approval``, the expiry timer, the diagnostics' evidence, the
        notification."""
        parts, policy = self.parts, attempt.policy
        assert attempt.existing is not None and attempt.decision is not None
        now = parts.clock.now()
        until = now + parts.automation.approval.timeout
        plans = await self._plans(attempt)
        summary = "; ".join(p.get("summary") or f"cannot plan: {p.get('error')}" for p in plans)
        moved = await parts.ledger.move(
            attempt.existing,
            "state",
            State.DEFERRED,
            State.AWAITING_APPROVAL,
            parts.ledger.note(
                "approval",
                f"{attempt.where}: awaiting approval until {until.isoformat()}: {summary}",
                attempt=attempt,
                outcome="requested",
                details={**attempt.decision.as_dict(), "plans": plans},
            ),
            **identity(attempt, {}),
            actions=[{"action": p["action"], "plan": p} for p in plans],
            due_at=until,
            reason=f"awaiting approval until {until.isoformat()}",
            updated_at=now,
        )
        if not moved:  # another replica asked first
            return
        parts.metrics.approvals.labels(policy.name, "requested").inc()
        parts.timers.at(f"approval-{attempt.existing}", until, self.expired, attempt.existing)
        if self.gather is not None and policy.diagnostics:  # each bounded by its timeout
            await self.gather(attempt, attempt.existing)
            if not await self._still_asked(attempt.existing):
                return  # answered (the API, the console) while the evidence was gathered
        await self._tell(attempt, attempt.existing, summary, until)

    async def _still_asked(self, execution_id: int) -> bool:
        """Does the request still await an answer (else nobody is asked any more)? A
        store that cannot say: yes (a request too many beats one never sent)."""
        try:
            row = await self.parts.store.get(execution_id)
        except StoreError as exc:
            log.warning("approval: cannot read execution %s: %s", execution_id, exc)
            return True
        if row is not None and row.state == State.AWAITING_APPROVAL:
            return True
        log.info("approval: execution %s was answered before its request was sent", execution_id)
        return False

    async def expire(self, execution_id: int) -> None:
        """Nobody answered in time: expired, and the ladder's next step is decided."""
        parts = self.parts
        row = await parts.store.get(execution_id)
        if row is None or row.state != State.AWAITING_APPROVAL:
            return
        now = parts.clock.now()
        if row.due_at is not None and row.due_at > now:  # a timer early (clock skew)
            parts.timers.at(f"approval-{execution_id}", row.due_at, self.expired, execution_id)
            return
        timeout = parts.automation.approval.timeout
        why = f"nobody approved or rejected it within {timeout}"
        moved = await parts.ledger.move(
            execution_id,
            "state",
            State.AWAITING_APPROVAL,
            State.EXPIRED,
            parts.ledger.note(
                "approval",
                f"step {row.step + 1} of {row.policy!r} on {row.target_key}: expired: {why}",
                policy=row.policy,
                fingerprint=row.fingerprint,
                target_key=row.target_key,
                outcome="expired",
            ),
            due_at=None,
            reason=f"approval expired: {why}",
            updated_at=now,
        )
        policy = parts.policies.get(row.policy)
        if not moved or policy is None:
            return
        parts.metrics.approvals.labels(policy.name, "expired").inc()
        await paging.end(parts, execution_id, "the approval request expired")
        annotations, generator = await parts.store.alert_annotations(row.fingerprint, row.starts_at)
        ctx = context_of(row, annotations, generator)
        attempt = Attempt(policy, ctx, row.step, target_key=row.target_key, execution_id=row.id)
        await self.escalate(attempt, f"approval expired: {why}")

    async def _plans(self, attempt: Attempt) -> list[dict[str, Any]]:
        """The step's plan, read from live state and changing nothing (one try each)."""
        parts = self.parts
        plans: list[dict[str, Any]] = []
        for compiled in attempt.policy.steps[attempt.step]:
            try:
                action = parts.registry.get(compiled.action)
                params = policy_mod.parse_params(compiled, attempt.ctx, parts.registry)
                assert attempt.existing is not None
                ctx = self._context(attempt, attempt.existing, dry_run=True)
                plan = await parts.runner.plan(
                    action, params, ctx, timeout=compiled.timeout, retry=RetryPolicy(attempts=1)
                )
                plans.append({"action": compiled.action, **plan.model_dump(mode="json")})
            except Exception as exc:  # a plan that cannot be made is part of the request
                plans.append({"action": compiled.action, "error": f"{type(exc).__name__}: {exc}"})
        return plans

    def _context(self, attempt: Attempt, execution_id: int, dry_run: bool = False) -> ActionContext:
        return ActionContext(
            alert=attempt.ctx,
            target=attempt.target,
            services=self.parts.services,
            policy=attempt.policy.name,
            step=attempt.step,
            execution_id=str(execution_id),
            dry_run=dry_run,
            now=self.parts.clock.now,
            log=log,
        )

    async def _tell(self, attempt: Attempt, execution_id: int, summary: str, until: Any) -> None:
        parts, policy, step = self.parts, attempt.policy, attempt.step
        notifier = parts.automation.approval.notifier
        if notifier is None:
            log.warning(
                "approval: %s awaits approval, but automation.approval.notifier is not set: "
                "approve it with the API or `conea-monitor approve %d`",
                attempt.where,
                execution_id,
            )
            return
        links = await self.links()
        labels = json.dumps(dict(attempt.ctx.labels), sort_keys=True)
        message = (
            f"Approval needed for {attempt.where} (alert {attempt.ctx.labels.get('alertname')} "
            f"{labels}).\nPlan: {summary}\n"
            f"Approve: {links.url(execution_id, 'approve')}\n"
            f"Reject: {links.url(execution_id, 'reject')}\n"
            f"Unanswered by {until.isoformat()}, the request expires and the next step of the "
            "ladder is decided."
        )
        ctx = self._context(attempt, execution_id)
        try:  # what the ladder's diagnostics found (without it if it cannot be read)
            alert = attempt.ctx
            rows = await parts.store.for_alert(alert.fingerprint, alert.starts_at, policy.name)
            ctx.evidence = await paging.evidence(parts, [r for r in rows if r.step <= step])
        except StoreError as exc:
            log.warning("approval: cannot read the evidence of %s: %s", attempt.where, exc)
        try:
            page_key = pagerduty.approval_key(execution_id)  # resolved once answered
            title = f"Approve? {attempt.where}"
            await parts.tell(notifier, ctx, message, title=title, dedup_key=page_key)
            if paging.is_pager(parts, notifier):
                await paging.opened_page(parts, notifier, page_key, "approval", execution_id)
        except Exception as exc:  # the request stands; the API and the CLI can answer it
            log.warning("approval: cannot notify %s: %s", notifier, exc)
            await parts.ledger.audit(
                parts.ledger.note(
                    "approval",
                    f"{attempt.where}: the approval request could not be sent to "
                    f"{notifier!r}: {exc}",
                    attempt=attempt,
                    outcome="not_sent",
                ),
                execution_id,
            )
