"""notification attempts, last error and poisoned_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

OLD = "processed_at IS NULL"
NEW = "processed_at IS NULL AND poisoned_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("poisoned_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_index(
            "ix_notifications_unprocessed",
            sqlite_where=sa.text(OLD),
            postgresql_where=sa.text(OLD),
        )
        batch_op.create_index(
            "ix_notifications_unprocessed",
            ["id"],
            unique=False,
            sqlite_where=sa.text(NEW),
            postgresql_where=sa.text(NEW),
        )


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_notifications_unprocessed",
            sqlite_where=sa.text(NEW),
            postgresql_where=sa.text(NEW),
        )
        batch_op.create_index(
            "ix_notifications_unprocessed",
            ["id"],
            unique=False,
            sqlite_where=sa.text(OLD),
            postgresql_where=sa.text(OLD),
        )
        batch_op.drop_column("poisoned_at")
        batch_op.drop_column("last_error")
        batch_op.drop_column("attempts")
