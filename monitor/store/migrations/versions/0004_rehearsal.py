"""rehearsal: the final state of a rehearsed step is 'rehearsed' (was 'dry_run')

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE executions SET state = 'rehearsed' WHERE state = 'dry_run'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE executions SET state = 'dry_run' WHERE state = 'rehearsed'"))
