"""the console's lists: executions by state, policy (and state) or alert name, newest first

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_executions_state_id": ["state", "id"],
    "ix_executions_policy_id": ["policy", "id"],
    "ix_executions_policy_state_id": ["policy", "state", "id"],
    "ix_executions_alertname_id": ["alertname", "id"],
}


def upgrade() -> None:
    for name, columns in INDEXES.items():
        op.create_index(name, "executions", columns, unique=False)


def downgrade() -> None:
    for name in INDEXES:
        op.drop_index(name, table_name="executions")
