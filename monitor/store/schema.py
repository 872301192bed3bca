"""Tables of the store. Times are stored as UTC; every column works on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)

from monitor.store.states import RevertState, VerifyState


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


DEFERRED_FIRST_STEP = "state = 'deferred' AND step = 0"

Id = BigInteger().with_variant(Integer, "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("receiver", String(255), nullable=False),
    Column("status", String(16), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("truncated_alerts", Integer, nullable=False),
    Column("notification_reason", String(64)),
    Column("alert_count", Integer, nullable=False),
    # The body as received, for notifications the engine processes (to resume after a
    # crash, and as the record of what led to an action); for those no policy matches,
    # their content is in ``alerts`` only.
    Column("payload", Text),
    Column("processed_at", UTCDateTime()),
    # Processing that raised: tried again with a backoff; after MAX_ATTEMPTS the
    # notification is parked (poisoned_at) and no longer taken up, at start or after.
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text),
    Column("poisoned_at", UTCDateTime()),
    # The engine's queue: a replica leases a batch of unprocessed notifications until
    # ``lease_until`` (a failed one is leased back to no one until its retry time).
    Column("lease_owner", String(255)),
    Column("lease_until", UTCDateTime()),
    Index(
        "ix_notifications_unprocessed",
        "id",
        sqlite_where=text("processed_at IS NULL AND poisoned_at IS NULL"),
        postgresql_where=text("processed_at IS NULL AND poisoned_at IS NULL"),
    ),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("alertname", String(255), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("ends_at", UTCDateTime()),
    Column("generator_url", Text, nullable=False),
    Column("deliveries", Integer, nullable=False),
    Column("first_notification_id", Id, ForeignKey("notifications.id"), nullable=False),
    Column("last_notification_id", Id, ForeignKey("notifications.id"), nullable=False),
    Column("first_received_at", UTCDateTime(), nullable=False),
    Column("last_received_at", UTCDateTime(), nullable=False),
    UniqueConstraint("fingerprint", "starts_at", "status"),
    Index(None, "alertname"),
    Index(None, "last_received_at"),
)

executions = Table(
    "executions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("policy", String(255), nullable=False),
    Column("step", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("alertname", String(255), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("target_key", String(512), nullable=False),
    Column("target", JSON, nullable=False),
    # The three state columns hold monitor.store.states.State, VerifyState and
    # RevertState; states.TRANSITIONS lists the moves the store allows (docs/states.md).
    Column("state", String(32), nullable=False),
    Column("reason", Text),
    Column("due_at", UTCDateTime()),  # when a deferred execution is decided again
    Column("dry_run", Boolean, nullable=False),
    Column("actions", JSON, nullable=False),  # [records.ActionEntry, ...] as JSON
    Column("error", Text),
    Column("verify_state", String(32), nullable=False, default=VerifyState.NONE.value),
    Column("verify_at", UTCDateTime()),
    Column("verify_detail", Text),
    Column("revert_state", String(32), nullable=False, default=RevertState.NONE.value),
    Column("revert_at", UTCDateTime()),
    Column("notification_id", Id, ForeignKey("notifications.id")),
    Column("owner", String(255)),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime()),
    # Who approved the step (approval mode) and when; the audit trail has the reason.
    Column("approved_by", String(255)),
    Column("approved_at", UTCDateTime()),
    UniqueConstraint("policy", "step", "fingerprint", "starts_at"),
    Index(None, "target_key", "created_at"),
    Index(None, "fingerprint"),
    Index(None, "verify_state", "verify_at"),
    Index(None, "revert_state", "revert_at"),
    Index(None, "state", "due_at"),
    Index(None, "created_at"),  # the breaker's live actions of a window, across targets
    # The console's and the API's lists, newest first (bench/console.py)
    Index(None, "state", "id"),
    Index(None, "policy", "id"),
    Index(None, "policy", "state", "id"),
    Index(None, "alertname", "id"),
    # At most one deferred first step per (policy, target): alerts that arrive while it
    # waits are coalesced into it (table ``coalesced``), not deferred each on their own.
    Index(
        "uq_executions_deferred_target",
        "policy",
        "target_key",
        unique=True,
        sqlite_where=text(DEFERRED_FIRST_STEP),
        postgresql_where=text(DEFERRED_FIRST_STEP),
    ),
)

# Alerts recorded against another alert's execution of the same policy and target (in
# flight, or waiting for its cooldown): "coalesced into #N". The key is an execution
# key, so an alert's step is either its own execution or a member of one, never both
# twice.
coalesced = Table(
    "coalesced",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("execution_id", Id, ForeignKey("executions.id"), nullable=False),
    Column("policy", String(255), nullable=False),
    Column("step", Integer, nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", UTCDateTime(), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("reason", Text, nullable=False),
    Column("at", UTCDateTime(), nullable=False),
    UniqueConstraint("policy", "step", "fingerprint", "starts_at"),
    Index(None, "execution_id"),
    Index(None, "fingerprint"),
)

locks = Table(
    "locks",
    metadata,
    Column("key", String(512), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("expires_at", UTCDateTime(), nullable=False),
)

audit = Table(
    "audit",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", UTCDateTime(), nullable=False),
    Column("kind", String(32), nullable=False),  # decision, skip, plan, execute, verify, ...
    Column("policy", String(255)),
    Column("fingerprint", String(64)),
    Column("target_key", String(512)),
    Column("execution_id", Id, ForeignKey("executions.id")),
    Column("outcome", String(64)),
    Column("message", Text, nullable=False),
    Column("details", JSON),
    Index(None, "at"),
    Index(None, "execution_id"),
    Index(None, "fingerprint"),
)

# What a policy's diagnostics gathered for an execution (records.Evidence): when the
# policy matched ("before"), after a failed verification ("after_verification") and
# after a step that failed ("after_failure").
evidence = Table(
    "evidence",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("execution_id", Id, ForeignKey("executions.id"), nullable=False),
    Column("phase", String(32), nullable=False),
    Column("name", String(255), nullable=False),
    Column("action", String(255), nullable=False),
    Column("started_at", UTCDateTime(), nullable=False),
    Column("finished_at", UTCDateTime(), nullable=False),
    Column("outcome", String(16), nullable=False),  # ok | failed | timed_out
    Column("error", Text),
    Column("summary", Text, nullable=False),
    Column("result", JSON),  # {"kind": "table" | "lines" | "series", ...}
    Column("truncated", Boolean, nullable=False),
    Index(None, "execution_id"),
)

# Every PagerDuty incident conea-monitor opened (a step's page, an approval request, the
# breaker's message), until its resolve is sent (monitor.store.pages). ``retry_at`` is a
# replica's claim on sending the resolve, or when a failed one is tried again.
OPEN_PAGE = "resolved_at IS NULL"

pages = Table(
    "pages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("notifier", String(255), nullable=False),
    Column("dedup_key", String(255), nullable=False),
    Column("kind", String(16), nullable=False),  # step | approval | breaker
    Column("execution_id", Id, ForeignKey("executions.id")),
    Column("opened_at", UTCDateTime(), nullable=False),
    Column("resolved_at", UTCDateTime()),
    Column("retry_at", UTCDateTime()),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text),
    UniqueConstraint("notifier", "dedup_key"),
    Index(None, "execution_id"),
    Index(
        "ix_pages_open",
        "opened_at",
        sqlite_where=text(OPEN_PAGE),
        postgresql_where=text(OPEN_PAGE),
    ),
)

control = Table(
    "control",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", JSON, nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("updated_by", String(255)),
)
