"""The ledger: every audit record the engine writes and every state change it makes.

A state change (:meth:`Ledger.move`) goes to the store's one transition function, which
checks it against the table in :mod:`monitor.store.states`, guards the UPDATE with the
current state (of two replicas, one moves the row) and writes the audit record in the
same commit. Records that change no state (a plan, a retry, an escalation) go through
:meth:`Ledger.audit`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from monitor.alerts.context import AlertContext
from monitor.engine.attempt import Attempt
from monitor.engine.clock import Clock
from monitor.metrics import Metrics
from monitor.store.facade import Store
from monitor.store.records import Audit, Lock
from monitor.store.states import Machine

log = logging.getLogger("monitor.engine")


class Ledger:
    def __init__(self, store: Store, metrics: Metrics, clock: Clock) -> None:
        self.store = store
        self.metrics = metrics
        self.clock = clock

    def note(
        self,
        kind: str,
        message: str,
        *,
        attempt: Attempt | None = None,
        policy: str | None = None,
        ctx: AlertContext | None = None,
        fingerprint: str | None = None,
        target_key: str | None = None,
        outcome: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> Audit:
        """An audit record, about ``attempt`` or the loose fields given."""
        if attempt is not None:
            policy = policy or attempt.policy.name
            ctx = ctx or attempt.ctx
            target_key = target_key or attempt.target_key
        return Audit(
            self.clock.now(),
            kind,
            message,
            policy,
            ctx.fingerprint if ctx else fingerprint,
            target_key or None,
            outcome,
            details,
        )

    async def audit(self, record: Audit, execution_id: int | None = None) -> None:
        log.info("%s: %s", record.kind, record.message)
        await self.store.record(record, execution_id)

    async def move(
        self,
        execution_id: int,
        machine: Machine,
        source: StrEnum | Iterable[StrEnum],
        target: StrEnum,
        record: Audit,
        *,
        release: Lock | None = None,
        before: Sequence[Audit] = (),
        **fields: Any,
    ) -> bool:
        """Move one of the execution's machines from ``source`` to ``target`` with its audit
        record (one commit); False when the row was not in ``source`` (another replica or
        another path moved it first)."""
        moved = await self.store.move(
            execution_id, machine, source, target, record, release=release, before=before, **fields
        )
        if moved:
            for one in (*before, record):
                log.info("%s: %s", one.kind, one.message)
        return moved
