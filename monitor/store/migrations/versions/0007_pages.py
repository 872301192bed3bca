"""pages: the PagerDuty incidents conea-monitor opened, until their resolve is sent

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN_PAGE = "resolved_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "pages",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("notifier", sa.String(length=255), nullable=False),
        sa.Column("dedup_key", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("execution_id", Id, nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retry_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name=op.f("fk_pages_execution_id_executions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pages")),
        sa.UniqueConstraint("notifier", "dedup_key", name=op.f("uq_pages_notifier_dedup_key")),
    )
    op.create_index("ix_pages_execution_id", "pages", ["execution_id"], unique=False)
    op.create_index(
        "ix_pages_open",
        "pages",
        ["opened_at"],
        unique=False,
        sqlite_where=sa.text(OPEN_PAGE),
        postgresql_where=sa.text(OPEN_PAGE),
    )


def downgrade() -> None:
    op.drop_index("ix_pages_open", table_name="pages")
    op.drop_index("ix_pages_execution_id", table_name="pages")
    op.drop_table("pages")
