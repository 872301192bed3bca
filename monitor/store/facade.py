"""The store as the async service sees it: one object owns the hop to a worker thread.

Every method runs one of the store's synchronous functions with :func:`monitor.threads.run`,
turns the database's failures into :class:`~monitor.errors.StoreError` (naming the
operation and the kind of failure, never the URL) and returns typed records
(:mod:`monitor.store.records`) instead of rows. :class:`~monitor.store.executions.
AlreadyClaimed` and :class:`~monitor.store.states.IllegalTransition` pass through.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

import psycopg
from sqlalchemy.exc import SQLAlchemyError

from monitor import threads
from monitor.errors import StoreError
from monitor.store import (
    approvals,
    batch_reads,
    batches,
    breaker,
    coalescing,
    control,
    database,
    evidence,
    executions,
    locks,
    pages,
    queue,
    records,
    states,
)

P = ParamSpec("P")
T = TypeVar("T")

_FAILURES = (SQLAlchemyError, sqlite3.Error, psycopg.Error, OSError)


class Store:
    """The engine's and the runtime's way to the store (``Store(handle)``)."""

    def __init__(self, handle: database.Handle) -> None:
        self.handle = handle

    async def _call(self, operation: str, fn: Callable[P, T], *args: P.args, **kw: P.kwargs) -> T:
        try:
            return await threads.run(functools.partial(fn, *args, **kw))
        except _FAILURES as exc:
            raise StoreError(f"{operation}: {type(exc).__name__}") from exc

    # Deciding ---------------------------------------------------------------------------

    async def decision_inputs(
        self,
        target_key: str,
        since: datetime,
        alert: tuple[str, datetime],
        policy: str | None,
        rehearsal: bool = False,
    ) -> records.DecisionInputs:
        return await self._call(
            "decision_inputs",
            executions.decision_inputs,
            self.handle,
            target_key,
            since,
            alert,
            policy,
            rehearsal,
        )

    async def start(
        self,
        key: records.ExecutionKey,
        row: Mapping[str, Any],
        audit: records.Audit,
        lock: records.Lock,
        existing: int | None = None,
        *,
        limit: breaker.Limit | None = None,
        refused: records.Audit | None = None,
    ) -> tuple[int, bool] | None:
        """Claim (insert, or take a deferred ``existing``), audit, try the lock: one
        commit. Raises AlreadyClaimed; None when another replica took ``existing``; with
        ``limit``, raises breaker.Refused when its count is full (``refused`` written)."""
        return await self._call(
            "start",
            functools.partial(executions.start, limit=limit, refused=refused),
            self.handle,
            key,
            row,
            audit,
            lock,
            existing,
        )

    async def defer(
        self, key: records.ExecutionKey, row: Mapping[str, Any], audit: records.Audit
    ) -> int:
        """A new deferred execution and its audit record, in one commit (AlreadyClaimed)."""
        return await self._call("defer", executions.defer, self.handle, key, row, audit)

    async def move(
        self,
        execution_id: int,
        machine: states.Machine,
        source: StrEnum | Iterable[StrEnum],
        target: StrEnum,
        audit: records.Audit,
        *,
        release: records.Lock | None = None,
        before: Sequence[records.Audit] = (),
        **fields: Any,
    ) -> bool:
        """See :func:`monitor.store.executions.move`: False when another replica won."""
        return await self._call(
            "move",
            functools.partial(executions.move, release=release, before=before, **fields),
            self.handle,
            execution_id,
            machine,
            source,
            target,
            audit,
        )

    async def claim_verify_tick(
        self, execution_id: int, expected: datetime | None, next_at: datetime
    ) -> bool:
        return await self._call(
            "claim_verify_tick",
            executions.claim_verify_tick,
            self.handle,
            execution_id,
            expected,
            next_at,
        )

    # Reading ----------------------------------------------------------------------------

    async def get(self, execution_id: int) -> records.Execution | None:
        row = await self._call("get", executions.get, self.handle, execution_id)
        return records.Execution.from_row(row) if row is not None else None

    async def for_alert(
        self, fingerprint: str, starts_at: datetime, policy: str | None = None
    ) -> list[records.Execution]:
        """The alert's executions (of ``policy``, if given), ordered by step."""
        rows = await self._call(
            "for_alert", executions.for_alert, self.handle, fingerprint, starts_at, policy
        )
        return [records.Execution.from_row(row) for row in rows]

    async def approval_key(self, at: datetime) -> str:
        """The key signing approve/reject links, shared by every replica."""
        return await self._call("approval_key", approvals.signing_key, self.handle, at)

    async def answer_approval(
        self, execution_id: int, *, approve: bool, by: str, reason: str, at: datetime
    ) -> approvals.Answer:
        return await self._call(
            "answer_approval",
            approvals.answer,
            self.handle,
            execution_id,
            approve=approve,
            by=by,
            reason=reason,
            at=at,
        )

    async def due(self) -> list[records.Execution]:
        """Executions with a timer: deferred decisions, pending verifications, reverts."""
        rows = await self._call("due", executions.due, self.handle)
        return [records.Execution.from_row(row) for row in rows]

    async def abandoned(self, now: datetime, grace: timedelta) -> list[records.Execution]:
        """Executions left running by an owner that lost the target's lock (it stopped)."""
        rows = await self._call("abandoned", locks.abandoned, self.handle, now, grace)
        return [records.Execution.from_row(row) for row in rows]

    async def target_history(
        self,
        target_key: str,
        since: datetime,
        exclude: tuple[str, datetime] | None,
        rehearsal: bool = False,
    ) -> records.TargetHistory:
        return await self._call(
            "target_history",
            executions.target_history,
            self.handle,
            target_key,
            since,
            exclude,
            rehearsal,
        )

    async def alert_resolved(self, fingerprint: str, starts_at: datetime) -> bool:
        return await self._call(
            "alert_resolved", executions.alert_resolved, self.handle, fingerprint, starts_at
        )

    async def alert_annotations(
        self, fingerprint: str, starts_at: datetime
    ) -> tuple[dict[str, str], str]:
        return await self._call(
            "alert_annotations", executions.alert_annotations, self.handle, fingerprint, starts_at
        )

    # Evidence (what the policies' diagnostics gathered) ----------------------------------------

    async def add_evidence(self, item: records.Evidence) -> int:
        """Store one diagnostic's result for its execution; returns its id."""
        return await self._call("add_evidence", evidence.add, self.handle, item)

    async def evidence(self, execution_id: int) -> list[records.Evidence]:
        """The execution's evidence, ordered by ``started_at`` then id."""
        return await self._call("evidence", evidence.for_execution, self.handle, execution_id)

    # Audit, locks, the kill switch ---------------------------------------------------------

    async def record(self, audit: records.Audit, execution_id: int | None = None) -> None:
        """One audit record on its own (a move writes its own)."""
        await self._call("record", executions.write, self.handle, audit, execution_id)

    async def renew(self, lock: records.Lock, at: datetime | None = None) -> bool:
        """Extend the lock to ``at + ttl`` (``at``: now); False when it is no longer ours."""
        return await self._call("renew", locks.renew, self.handle, lock, at)

    async def release(self, lock: records.Lock) -> None:
        await self._call("release", locks.release, self.handle, lock)

    async def is_paused(self) -> bool:
        return await self._call("is_paused", control.is_paused, self.handle)

    async def switch(self) -> control.Switch:
        """The kill switch: on or off, since when, who changed it last and why."""
        return await self._call("switch", control.switch, self.handle)

    async def set_paused(self, paused: bool, by: str, reason: str, at: datetime) -> str:
        """The kill switch and its audit record; returns the audit message."""
        return await self._call(
            "set_paused", control.set_paused, self.handle, paused, by, reason, at
        )

    async def resume(
        self, by: str, reason: str, at: datetime, *, catch_up: bool = True
    ) -> control.Resumed:
        """Resume, queuing the alerts skipped during the pause again (unless not
        ``catch_up``): :func:`monitor.store.control.resume`."""
        return await self._call(
            "resume", control.resume, self.handle, by, reason, at, catch_up=catch_up
        )

    # The blast-radius breaker ----------------------------------------------------------------

    async def live_actions(self, since: datetime) -> int:
        """Executions created since ``since`` that acted for real (not dry-run)."""
        return await self._call("live_actions", breaker.live_actions, self.handle, since)

    async def breaker_reading(
        self, now: datetime, window: timedelta
    ) -> tuple[breaker.BreakerState, int]:
        """The breaker's state and the live actions it counts at ``now``: one read."""
        return await self._call("breaker_reading", breaker.reading, self.handle, now, window)

    async def breaker_state(self) -> breaker.BreakerState:
        return await self._call("breaker_state", breaker.breaker_state, self.handle)

    async def open_breaker(self, at: datetime, reason: str) -> bool:
        """Open it, with its audit record; True only for the call that opened it."""
        return await self._call("open_breaker", breaker.open_breaker, self.handle, at, reason)

    async def close_breaker(self, at: datetime, by: str) -> bool:
        """Close it, with its audit record; True if it was open."""
        return await self._call("close_breaker", breaker.close_breaker, self.handle, at, by)

    # Notifications the runtime takes up ------------------------------------------------------

    # The engine's queue and its batches (monitor.store.queue, batches, batch_reads, coalescing)

    async def lease(
        self,
        owner: str,
        now: datetime,
        until: datetime,
        *,
        limit_alerts: int,
        prefer: Sequence[int] = (),
        held: Collection[int] = (),
    ) -> queue.Taken:
        return await self._call(
            "lease",
            functools.partial(queue.lease, limit_alerts=limit_alerts, prefer=prefer, held=held),
            self.handle,
            owner,
            now,
            until,
        )

    async def backlog(self) -> tuple[int, int]:
        """Notifications waiting to be decided, and their alerts."""
        return await self._call("backlog", queue.backlog, self.handle)

    async def retry_later(
        self, failures: Mapping[int, tuple[int, str, datetime | None]], retry_at: datetime
    ) -> None:
        await self._call("retry_later", queue.retry_later, self.handle, failures, retry_at)

    async def first_deliveries(
        self, fingerprints: Sequence[str]
    ) -> dict[tuple[str, datetime, str], int]:
        return await self._call(
            "first_deliveries", queue.first_deliveries, self.handle, fingerprints
        )

    async def batch_inputs(
        self, *, now: datetime, since: datetime, targets: Sequence[str], fingerprints: Sequence[str]
    ) -> batch_reads.Inputs:
        return await self._call(
            "batch_inputs",
            functools.partial(
                batch_reads.inputs, now=now, since=since, targets=targets, fingerprints=fingerprints
            ),
            self.handle,
        )

    async def commit_batch(
        self,
        births: Sequence[batches.Birth],
        joins: Mapping[int, Sequence[coalescing.Member]],
        audits: Sequence[records.Audit],
        processed: Sequence[int] = (),
        at: datetime | None = None,
        limit: breaker.Limit | None = None,
    ) -> list[batches.Born]:
        return await self._call(
            "commit_batch",
            functools.partial(
                batches.commit,
                births=births,
                joins=joins,
                records=audits,
                processed=processed,
                at=at,
                limit=limit,
            ),
            self.handle,
        )

    async def members(self, execution_ids: Sequence[int]) -> dict[int, list[coalescing.Coalesced]]:
        return await self._call("members", coalescing.members, self.handle, execution_ids)

    async def resolved_among(
        self, keys: Sequence[tuple[str, datetime]]
    ) -> set[tuple[str, datetime]]:
        return await self._call("resolved_among", batch_reads.resolved_among, self.handle, keys)

    async def for_alerts(
        self, keys: Sequence[tuple[str, datetime]]
    ) -> dict[tuple[str, datetime], list[records.Execution]]:
        rows = await self._call("for_alerts", batch_reads.for_alerts, self.handle, keys)
        return {k: [records.Execution.from_row(r) for r in v] for k, v in rows.items()}

    # Pages (monitor.store.pages) ---------------------------------------------------------

    async def page_opened(
        self,
        *,
        notifier: str,
        dedup_key: str,
        kind: str,
        execution_id: int | None,
        at: datetime,
        reopen: bool = True,
    ) -> None:
        await self._call(
            "page_opened",
            pages.opened,
            self.handle,
            notifier=notifier,
            dedup_key=dedup_key,
            kind=kind,
            execution_id=execution_id,
            at=at,
            reopen=reopen,
        )

    async def open_pages(self, execution_ids: Sequence[int], kind: str) -> list[pages.Page]:
        return await self._call("open_pages", pages.of_executions, self.handle, execution_ids, kind)

    async def pages_open_since(self, since: datetime, limit: int) -> list[pages.Page]:
        return await self._call("pages_open_since", pages.open_since, self.handle, since, limit)

    async def claim_page(self, page_id: int, now: datetime, until: datetime) -> bool:
        return await self._call("claim_page", pages.claim, self.handle, page_id, now, until)

    async def page_resolved(self, page_id: int, at: datetime, record: records.Audit) -> None:
        await self._call("page_resolved", pages.resolved, self.handle, page_id, at, record)

    async def page_failed(
        self, page_id: int, retry_at: datetime, error: str, record: records.Audit
    ) -> None:
        await self._call("page_failed", pages.failed, self.handle, page_id, retry_at, error, record)

    async def page_ladders(self, execution_ids: Sequence[int]) -> dict[int, pages.Ladder]:
        return await self._call("page_ladders", pages.ladders, self.handle, execution_ids)

    async def checkpoint(self) -> None:
        """Copy SQLite's WAL back into the database (PostgreSQL: nothing to do)."""
        await self._call("checkpoint", database.checkpoint, self.handle)

    async def ping(self) -> None:
        """Does the store answer? StoreError naming the kind of failure if not."""
        try:
            await self._call("ping", database.ping, self.handle)
        except StoreError as exc:
            raise StoreError(f"ping: {exc}") from exc
