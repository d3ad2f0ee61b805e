"""The store's tables (SQLModel); schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


OPEN, ACCEPTED, REJECTED, RECYCLED = "open", "accepted", "rejected", "recycled"
CLOSED_STATES = (REJECTED, RECYCLED)


def _utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json_column(empty: type[list[Any]] | type[dict[str, Any]]) -> Any:
    # pydantic inspects the factory's signature on every construction, and a builtin's signature
    # is parsed from text each time (~70 µs a row); a lambda's is read off its code.
    return Field(
        default_factory=lambda: empty(),
        sa_column=Column(JSON, nullable=False, default=lambda: empty()),
    )


class Lead(SQLModel, table=True):
    """A person marketing handed over; unique on (origin, external_id)."""

    __tablename__ = "leads"
    __table_args__ = (
        UniqueConstraint("origin", "external_id", name="uq_leads_origin_external_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    origin: str = Field(max_length=64)
    external_id: str = Field(max_length=255)
    crm_record_id: str | None = Field(default=None, max_length=64)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=64)
    first_name: str | None = Field(default=None, max_length=255)
    last_name: str | None = Field(default=None, max_length=255)
    company: str | None = Field(default=None, max_length=255)
    title: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=64)
    industry: str | None = Field(default=None, max_length=255)
    employees: int | None = None
    lead_source: str | None = Field(default=None, max_length=255)
    campaign: str | None = Field(default=None, max_length=255)
    signals: list[str] = _json_column(list)
    content: list[str] = _json_column(list)
    extra: dict[str, Any] = _json_column(dict)
    created_at: datetime = _utc_column(nullable=False)
    updated_at: datetime = _utc_column(nullable=False)

    @property
    def display_name(self) -> str:
        """The lead's name, or its company when the name is unknown."""
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.company or self.external_id


class MqlCycle(SQLModel, table=True):
    """One MQL handoff of a lead: scored, routed, carded, then accepted, rejected or recycled."""

    __tablename__ = "mql_cycles"
    __table_args__ = (
        UniqueConstraint("lead_id", "seq", name="uq_mql_cycles_lead_seq"),
        # The digest reads weeks by received_at; the times it reports on come from the index
        # alone, so its cost follows the weeks reported, not the table's whole history.
        Index(
            "ix_mql_cycles_received", "received_at", "accepted_at", "closed_at", "first_touch_at"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    seq: int = 1
    mql_at: datetime = _utc_column(nullable=False)
    received_at: datetime = _utc_column(nullable=False)
    score: int = 0
    score_reasons: list[str] = _json_column(list)
    tier: str = Field(max_length=64)
    # The lead's source when this MQL arrived: the digest counts MQLs by it without a join.
    lead_source: str | None = Field(default=None, max_length=255)
    sla_due_at: datetime = _utc_column(nullable=False)
    pool: str = Field(max_length=64)
    owner_slack_id: str | None = Field(default=None, max_length=32)
    state: str = Field(default="open", max_length=16, index=True)
    accepted_by: str | None = Field(default=None, max_length=32)
    accepted_at: datetime | None = _utc_column()
    closed_by: str | None = Field(default=None, max_length=32)
    closed_at: datetime | None = _utc_column()
    reason_code: str | None = Field(default=None, max_length=64)
    note: str | None = Field(default=None, max_length=2000)
    revisit_on: date | None = None
    assigned_at: datetime | None = _utc_column()
    reassignments: int = 0
    first_touch_at: datetime | None = _utc_column()
    version: int = 1

    @property
    def is_open(self) -> bool:
        """True while nobody has accepted, rejected or recycled this MQL."""
        return self.state == OPEN

    @property
    def first_response_at(self) -> datetime | None:
        """When someone first acted on the card (accept, or a reject/recycle straight away)."""
        return self.accepted_at or self.closed_at


class SlackMessage(SQLModel, table=True):
    """Where a cycle's card (or the owner's DM) was posted, so it can be updated in place."""

    __tablename__ = "slack_messages"
    __table_args__ = (UniqueConstraint("cycle_id", "role", name="uq_slack_messages_cycle_role"),)

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="mql_cycles.id", index=True)
    role: str = Field(max_length=16)
    channel: str = Field(max_length=32)
    ts: str = Field(max_length=32)
    created_at: datetime = _utc_column(nullable=False)


class OutboxMessage(SQLModel, table=True):
    """A side effect (Slack post/update/DM, CRM write) committed with the state change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "state", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)
    dedupe_key: str = Field(max_length=255, unique=True)
    lane: str = Field(max_length=128)
    payload: dict[str, Any] = _json_column(dict)
    priority: int = 5
    deadline_at: datetime | None = _utc_column()
    due_at: datetime = _utc_column(nullable=False)
    state: str = Field(default="pending", max_length=16)
    attempts: int = 0
    uncertain: bool = False
    lease_until: datetime | None = _utc_column()
    last_error: str | None = Field(default=None, max_length=2000)
    result: dict[str, Any] = _json_column(dict)
    created_at: datetime = _utc_column(nullable=False)
    completed_at: datetime | None = _utc_column()


class RoutingWeight(SQLModel, table=True):
    """Smooth weighted round-robin state of one rep in one pool."""

    __tablename__ = "routing_weights"

    pool: str = Field(primary_key=True, max_length=64)
    slack_id: str = Field(primary_key=True, max_length=32)
    current: int = 0


class LocalCrmRecord(SQLModel, table=True):
    """The built-in `local` CRM: a lead's record as revbot's own tables keep it."""

    __tablename__ = "local_crm_records"

    lead_id: int = Field(primary_key=True, foreign_key="leads.id")
    status: str = Field(max_length=64)
    owner: str | None = Field(default=None, max_length=320)
    reason_code: str | None = Field(default=None, max_length=64)
    reason: str | None = Field(default=None, max_length=255)
    note: str | None = Field(default=None, max_length=2000)
    revisit_on: date | None = None
    disposed_at: datetime | None = _utc_column()
    updated_at: datetime = _utc_column(nullable=False)
    writes: int = 0


class SlaEvent(SQLModel, table=True):
    """An SLA step taken for a cycle (nudge, escalation, reassignment, limbo); unique so it happens once."""

    __tablename__ = "sla_events"
    __table_args__ = (
        UniqueConstraint("cycle_id", "kind", "step", name="uq_sla_events_cycle_kind_step"),
    )

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="mql_cycles.id", index=True)
    kind: str = Field(max_length=16)
    step: int = 0
    owner_slack_id: str | None = Field(default=None, max_length=32)
    created_at: datetime = _utc_column(nullable=False)


class JobRun(SQLModel, table=True):
    """One scheduled run of a job; keyed by its scheduled time so a second runner does nothing."""

    __tablename__ = "job_runs"

    job: str = Field(primary_key=True, max_length=64)
    scheduled_for: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    runner: str = Field(max_length=128)
    started_at: datetime = _utc_column(nullable=False)
    finished_at: datetime | None = _utc_column()


class RepAvailability(SQLModel, table=True):
    """A rep who said they are away (until a date, or until they say they are back)."""

    __tablename__ = "rep_availability"

    slack_id: str = Field(primary_key=True, max_length=32)
    away: bool = False
    away_until: datetime | None = _utc_column()
    updated_at: datetime = _utc_column(nullable=False)


class Touch(SQLModel, table=True):
    """A call, email or LinkedIn touch a rep logged on an accepted lead."""

    __tablename__ = "touches"

    id: int | None = Field(default=None, primary_key=True)
    cycle_id: int = Field(foreign_key="mql_cycles.id", index=True)
    lead_id: int = Field(foreign_key="leads.id", index=True)
    rep_slack_id: str = Field(max_length=32)
    kind: str = Field(max_length=32)
    note: str | None = Field(default=None, max_length=2000)
    touched_at: datetime = _utc_column(nullable=False)


class CrmWatermark(SQLModel, table=True):
    """Where polling a CRM for MQLs got to, so the next poll (in any process) starts there."""

    __tablename__ = "crm_watermarks"

    source: str = Field(primary_key=True, max_length=64)
    value: str = Field(max_length=255)
    updated_at: datetime = _utc_column(nullable=False)


class LeadOutcomeRecord(SQLModel, table=True):
    """What became of a lead in the CRM (SQL, opportunity, won/lost), synced for the digest."""

    __tablename__ = "lead_outcomes"

    lead_id: int = Field(primary_key=True, foreign_key="leads.id")
    crm: str = Field(max_length=16)
    converted: bool = False
    converted_at: datetime | None = _utc_column(index=True)
    lifecycle_stage: str | None = Field(default=None, max_length=64)
    opportunity_id: str | None = Field(default=None, max_length=64)
    opportunity_stage: str | None = Field(default=None, max_length=255)
    amount: float | None = None
    currency: str | None = Field(default=None, max_length=8)
    is_closed: bool = False
    is_won: bool = False
    opportunity_created_at: datetime | None = _utc_column()
    closed_at: datetime | None = _utc_column()
    synced_at: datetime = _utc_column(nullable=False)


class LocalDeal(SQLModel, table=True):
    """An opportunity in the built-in `local` CRM (the sandbox seeds a few)."""

    __tablename__ = "local_deals"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=255, index=True)
    account: str | None = Field(default=None, max_length=255)
    stage: str = Field(max_length=64)
    amount: float | None = None
    currency: str | None = Field(default=None, max_length=8)
    close_date: date | None = None
    owner: str | None = Field(default=None, max_length=255)
    next_step: str | None = Field(default=None, max_length=255)
    is_closed: bool = False
    is_won: bool = False


class LocalDealNote(SQLModel, table=True):
    """A note the `local` CRM holds on one of its deals; unique on its external id."""

    __tablename__ = "local_deal_notes"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=128, unique=True)
    deal_id: str = Field(max_length=64, index=True)
    title: str = Field(max_length=255)
    body: str = Field(max_length=4000)
    author: str | None = Field(default=None, max_length=320)
    created_at: datetime = _utc_column(nullable=False)


class DealSupportRequest(SQLModel, table=True):
    """A rep's ask for marketing help on a live deal, from request to delivery (or refusal)."""

    __tablename__ = "deal_support_requests"

    id: int | None = Field(default=None, primary_key=True)
    requester_slack_id: str = Field(max_length=32, index=True)
    deal_id: str | None = Field(default=None, max_length=64)
    deal_name: str = Field(max_length=255)
    deal_stage: str | None = Field(default=None, max_length=255)
    deal_amount: float | None = None
    deal_currency: str | None = Field(default=None, max_length=8)
    deal_close_date: date | None = None
    ask_type: str = Field(max_length=64)
    competitor: str | None = Field(default=None, max_length=255)
    due_on: date | None = None
    details: str = Field(max_length=3000)
    source_permalink: str | None = Field(default=None, max_length=500)
    state: str = Field(default="open", max_length=16, index=True)
    claimed_by: str | None = Field(default=None, max_length=32)
    claimed_at: datetime | None = _utc_column()
    delivered_at: datetime | None = _utc_column()
    asset_url: str | None = Field(default=None, max_length=1000)
    delivery_note: str | None = Field(default=None, max_length=2000)
    declined_by: str | None = Field(default=None, max_length=32)
    declined_at: datetime | None = _utc_column()
    decline_reason: str | None = Field(default=None, max_length=2000)
    first_response_due_at: datetime = _utc_column(nullable=False)
    card_channel: str | None = Field(default=None, max_length=32)
    card_ts: str | None = Field(default=None, max_length=32)
    created_at: datetime = _utc_column(nullable=False, index=True)
    version: int = 1


class DealSupportEvent(SQLModel, table=True):
    """An SLA step taken for a deal-support request (nudge, escalation, overdue); happens once."""

    __tablename__ = "deal_support_events"
    __table_args__ = (
        UniqueConstraint("request_id", "kind", "step", name="uq_deal_support_events_kind_step"),
    )

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="deal_support_requests.id", index=True)
    kind: str = Field(max_length=16)
    step: int = 0
    created_at: datetime = _utc_column(nullable=False)
