"""Plain records the store returns and takes: no SQLAlchemy, no I/O here, so pure code
(the guardrails) and the engine can name them without importing the store's queries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from monitor.store.states import RevertState, State, VerifyState


class AlreadyClaimed(Exception):
    """Another delivery or another process holds this execution key."""


@dataclass(frozen=True)
class TargetHistory:
    """What the cooldown and budget guardrails need to know about one target."""

    last_started: datetime | None
    attempts_in_window: int


@dataclass(frozen=True)
class DecisionInputs:
    """What the store knows that a decision needs, read in one go."""

    history: TargetHistory
    paused: bool
    resolved: bool
    scheduled_reverts: list[int]


@dataclass(frozen=True)
class ExecutionKey:
    """What makes an execution unique: of two claims for one key, one wins."""

    policy: str
    step: int
    fingerprint: str
    starts_at: datetime


@dataclass(frozen=True)
class Audit:
    """An audit record to write in the same transaction as a state change."""

    at: datetime
    kind: str
    message: str
    policy: str | None = None
    fingerprint: str | None = None
    target_key: str | None = None
    outcome: str | None = None
    details: Mapping[str, Any] | None = None

    def row(
        self, execution_id: int | None, extra: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The audit table's row; ``extra`` is merged into ``details``."""
        details = dict(self.details) if self.details is not None else None
        if extra:
            details = {**(details or {}), **extra}
        return {
            "at": self.at,
            "kind": self.kind,
            "message": self.message,
            "policy": self.policy,
            "fingerprint": self.fingerprint,
            "target_key": self.target_key,
            "execution_id": execution_id,
            "outcome": self.outcome,
            "details": details,
        }


@dataclass(frozen=True)
class Lock:
    """A target's lock: held by ``owner`` until ``now + ttl`` unless released or renewed."""

    key: str
    owner: str
    now: datetime
    ttl: timedelta


class ActionEntry(BaseModel):
    """One element of the ``actions`` JSON column: one action of a step and what became
    of it. Keys written by earlier versions and no longer known are ignored on load."""

    model_config = ConfigDict(extra="ignore")

    action: str
    params: dict[str, Any] | None = None
    plan: dict[str, Any] | None = None
    outcome: dict[str, Any] | None = None
    error: str | None = None
    attempts: int = 0  # how many times plan/apply was tried
    revert: dict[str, Any] | None = None
    revert_error: str | None = None

    @property
    def revert_state(self) -> dict[str, Any] | None:
        """What the action's ``revert`` needs to undo it (None: nothing to undo)."""
        found = (self.outcome or {}).get("revert_state")
        return found if isinstance(found, dict) else None

    def stored(self) -> dict[str, Any]:
        """The JSON the column holds (keys left unset are not written)."""
        return self.model_dump(mode="json", exclude_none=True)


def _aware(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _required(row: Mapping[str, Any], column: str) -> datetime:
    return _required_at(row, "executions", column)


def _required_at(row: Mapping[str, Any], table: str, column: str) -> datetime:
    value = _aware(row[column])
    if value is None:
        raise ValueError(f"{table}.{column} is empty")
    return value


def _strings(value: Mapping[str, Any] | None) -> dict[str, str]:
    return {str(k): str(v) for k, v in (value or {}).items()}


@dataclass(frozen=True)
class Execution:
    """One row of ``executions``, typed."""

    id: int
    policy: str
    step: int
    fingerprint: str
    starts_at: datetime
    alertname: str
    labels: dict[str, str]
    target_key: str
    target: dict[str, str]
    state: State
    reason: str | None
    due_at: datetime | None
    dry_run: bool
    actions: tuple[ActionEntry, ...]
    error: str | None
    verify_state: VerifyState
    verify_at: datetime | None
    verify_detail: str | None
    revert_state: RevertState
    revert_at: datetime | None
    notification_id: int | None
    owner: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    approved_by: str | None = None
    approved_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Execution:
        notification_id = row.get("notification_id")
        return cls(
            id=int(row["id"]),
            policy=str(row["policy"]),
            step=int(row["step"]),
            fingerprint=str(row["fingerprint"]),
            starts_at=_required(row, "starts_at"),
            alertname=str(row["alertname"]),
            labels=_strings(row.get("labels")),
            target_key=str(row["target_key"]),
            target=_strings(row.get("target")),
            state=State(row["state"]),
            reason=row.get("reason"),
            due_at=_aware(row.get("due_at")),
            dry_run=bool(row["dry_run"]),
            actions=tuple(ActionEntry.model_validate(a) for a in row.get("actions") or ()),
            error=row.get("error"),
            verify_state=VerifyState(row.get("verify_state") or VerifyState.NONE),
            verify_at=_aware(row.get("verify_at")),
            verify_detail=row.get("verify_detail"),
            revert_state=RevertState(row.get("revert_state") or RevertState.NONE),
            revert_at=_aware(row.get("revert_at")),
            notification_id=int(notification_id) if notification_id is not None else None,
            owner=row.get("owner"),
            created_at=_required(row, "created_at"),
            updated_at=_required(row, "updated_at"),
            finished_at=_aware(row.get("finished_at")),
            approved_by=row.get("approved_by"),
            approved_at=_aware(row.get("approved_at")),
        )


@dataclass(frozen=True)
class Evidence:
    """What one diagnostic of a policy gathered for an execution.

    ``phase`` is ``"before"`` (when the policy matched), ``"after_verification"``
    (after a failed verification) or ``"after_failure"`` (after a step that failed).
    ``outcome`` is ``"ok"``, ``"failed"`` or ``"timed_out"``. ``result`` is JSON of
    one of three kinds:
    ``{"kind": "table", "columns": [str], "rows": [[...]]}``,
    ``{"kind": "lines", "lines": [str]}`` or
    ``{"kind": "series", "metric": str, "points": [[unix_seconds, float], ...]}``.
    """

    id: int
    execution_id: int
    phase: str
    name: str
    action: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    error: str | None
    summary: str
    result: dict[str, Any] | None
    truncated: bool

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Evidence:
        result = row.get("result")
        return cls(
            id=int(row["id"]),
            execution_id=int(row["execution_id"]),
            phase=str(row["phase"]),
            name=str(row["name"]),
            action=str(row["action"]),
            started_at=_required_at(row, "evidence", "started_at"),
            finished_at=_required_at(row, "evidence", "finished_at"),
            outcome=str(row["outcome"]),
            error=row.get("error"),
            summary=str(row["summary"]),
            result=dict(result) if isinstance(result, Mapping) else None,
            truncated=bool(row["truncated"]),
        )

    def row(self) -> dict[str, Any]:
        """The evidence table's row (without ``id``, which the database assigns)."""
        return {
            "execution_id": self.execution_id,
            "phase": self.phase,
            "name": self.name,
            "action": self.action,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "outcome": self.outcome,
            "error": self.error,
            "summary": self.summary,
            "result": self.result,
            "truncated": self.truncated,
        }
