"""mql_cycles: the lead source of each MQL, and an index on received_at covering the digest's times

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["received_at", "accepted_at", "closed_at", "first_touch_at"]


def upgrade() -> None:
    with op.batch_alter_table("mql_cycles", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lead_source", sa.String(length=255), nullable=True))
        batch_op.create_index("ix_mql_cycles_received", COLUMNS, unique=False)
    # Cycles stored before this revision take their lead's source as it stands now.
    op.execute(
        "UPDATE mql_cycles SET lead_source = "
        "(SELECT leads.lead_source FROM leads WHERE leads.id = mql_cycles.lead_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("mql_cycles", schema=None) as batch_op:
        batch_op.drop_index("ix_mql_cycles_received")
        batch_op.drop_column("lead_source")
