"""crm watermarks, lead outcomes, local deals, deal support

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crm_watermarks",
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source"),
    )
    op.create_table(
        "deal_support_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("requester_slack_id", sa.String(length=32), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=True),
        sa.Column("deal_name", sa.String(length=255), nullable=False),
        sa.Column("deal_stage", sa.String(length=255), nullable=True),
        sa.Column("deal_amount", sa.Float(), nullable=True),
        sa.Column("deal_currency", sa.String(length=8), nullable=True),
        sa.Column("deal_close_date", sa.Date(), nullable=True),
        sa.Column("ask_type", sa.String(length=64), nullable=False),
        sa.Column("competitor", sa.String(length=255), nullable=True),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("details", sa.String(length=3000), nullable=False),
        sa.Column("source_permalink", sa.String(length=500), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("claimed_by", sa.String(length=32), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("asset_url", sa.String(length=1000), nullable=True),
        sa.Column("delivery_note", sa.String(length=2000), nullable=True),
        sa.Column("declined_by", sa.String(length=32), nullable=True),
        sa.Column("declined_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decline_reason", sa.String(length=2000), nullable=True),
        sa.Column("first_response_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("card_channel", sa.String(length=32), nullable=True),
        sa.Column("card_ts", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("deal_support_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deal_support_requests_created_at"), ["created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_deal_support_requests_requester_slack_id"),
            ["requester_slack_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_deal_support_requests_state"), ["state"], unique=False)

    op.create_table(
        "local_deal_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=128), nullable=False),
        sa.Column("deal_id", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("body", sa.String(length=4000), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    with op.batch_alter_table("local_deal_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_local_deal_notes_deal_id"), ["deal_id"], unique=False)

    op.create_table(
        "local_deals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("account", sa.String(length=255), nullable=True),
        sa.Column("stage", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("owner", sa.String(length=255), nullable=True),
        sa.Column("next_step", sa.String(length=255), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("local_deals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_local_deals_name"), ["name"], unique=False)

    op.create_table(
        "deal_support_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["deal_support_requests.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("request_id", "kind", "step", name="uq_deal_support_events_kind_step"),
    )
    with op.batch_alter_table("deal_support_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_deal_support_events_request_id"), ["request_id"], unique=False
        )

    op.create_table(
        "lead_outcomes",
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("crm", sa.String(length=16), nullable=False),
        sa.Column("converted", sa.Boolean(), nullable=False),
        sa.Column("converted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=64), nullable=True),
        sa.Column("opportunity_id", sa.String(length=64), nullable=True),
        sa.Column("opportunity_stage", sa.String(length=255), nullable=True),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("currency", sa.String(length=8), nullable=True),
        sa.Column("is_closed", sa.Boolean(), nullable=False),
        sa.Column("is_won", sa.Boolean(), nullable=False),
        sa.Column("opportunity_created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
        ),
        sa.PrimaryKeyConstraint("lead_id"),
    )
    with op.batch_alter_table("lead_outcomes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_lead_outcomes_converted_at"), ["converted_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("lead_outcomes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_outcomes_converted_at"))

    op.drop_table("lead_outcomes")
    with op.batch_alter_table("deal_support_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deal_support_events_request_id"))

    op.drop_table("deal_support_events")
    with op.batch_alter_table("local_deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_local_deals_name"))

    op.drop_table("local_deals")
    with op.batch_alter_table("local_deal_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_local_deal_notes_deal_id"))

    op.drop_table("local_deal_notes")
    with op.batch_alter_table("deal_support_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deal_support_requests_state"))
        batch_op.drop_index(batch_op.f("ix_deal_support_requests_requester_slack_id"))
        batch_op.drop_index(batch_op.f("ix_deal_support_requests_created_at"))

    op.drop_table("deal_support_requests")
    op.drop_table("crm_watermarks")
