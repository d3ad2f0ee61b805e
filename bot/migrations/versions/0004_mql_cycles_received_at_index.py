"""mql_cycles: an index on received_at covering the digest's times

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["received_at", "accepted_at", "closed_at", "first_touch_at"]


def upgrade() -> None:
    with op.batch_alter_table("mql_cycles", schema=None) as batch_op:
        batch_op.create_index("ix_mql_cycles_received", COLUMNS, unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mql_cycles", schema=None) as batch_op:
        batch_op.drop_index("ix_mql_cycles_received")
