"""the engine's queue lease, coalesced alerts, one deferred first step per target,
an index for the breaker's window

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

DEFERRED_FIRST_STEP = "state = 'deferred' AND step = 0"
Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lease_owner", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    # Older versions deferred every alert on its own: keep the newest deferred first step
    # per (policy, target) and cancel the others before the unique index goes in.
    op.execute(
        sa.text(
            "UPDATE executions SET state = 'cancelled', due_at = NULL, "
            "reason = 'superseded: one deferred decision per target' "
            f"WHERE {DEFERRED_FIRST_STEP} AND id NOT IN ("
            f"SELECT max(id) FROM executions WHERE {DEFERRED_FIRST_STEP} "
            "GROUP BY policy, target_key)"
        )
    )
    op.create_index(
        "uq_executions_deferred_target",
        "executions",
        ["policy", "target_key"],
        unique=True,
        sqlite_where=sa.text(DEFERRED_FIRST_STEP),
        postgresql_where=sa.text(DEFERRED_FIRST_STEP),
    )
    op.create_index("ix_executions_created_at", "executions", ["created_at"], unique=False)
    op.create_table(
        "coalesced",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("execution_id", Id, nullable=False),
        sa.Column("policy", sa.String(length=255), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_coalesced_execution_id_executions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_coalesced")),
        sa.UniqueConstraint(
            "policy",
            "step",
            "fingerprint",
            "starts_at",
            name=op.f("uq_coalesced_policy_step_fingerprint_starts_at"),
        ),
    )
    op.create_index("ix_coalesced_execution_id", "coalesced", ["execution_id"], unique=False)
    op.create_index("ix_coalesced_fingerprint", "coalesced", ["fingerprint"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_coalesced_fingerprint", table_name="coalesced")
    op.drop_index("ix_coalesced_execution_id", table_name="coalesced")
    op.drop_table("coalesced")
    op.drop_index("ix_executions_created_at", table_name="executions")
    op.drop_index(
        "uq_executions_deferred_target",
        table_name="executions",
        sqlite_where=sa.text(DEFERRED_FIRST_STEP),
        postgresql_where=sa.text(DEFERRED_FIRST_STEP),
    )
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
        batch_op.drop_column("lease_owner")
