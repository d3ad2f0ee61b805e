"""MQL intake: validate an incoming lead, dedupe it, score, route, and queue its card."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.handoff import enqueue_crm_sync
from bot.core.models import OPEN, Lead, MqlCycle
from bot.core.playbook import Playbook
from bot.core.routing import assign
from bot.core.scoring import ScoreInput, score_lead
from bot.core.sql import insert_new

IDENTITY_FIELDS = "email or (last_name and company)"
IDENTITY_MESSAGE = "give an email, or a last name and a company"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CONTEXT_FIELDS = (
    "email",
    "phone",
    "first_name",
    "last_name",
    "company",
    "title",
    "country",
    "industry",
    "employees",
    "lead_source",
    "campaign",
)


def _id_text(value: Any) -> Any:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


Text = Annotated[StrictStr, Field(max_length=255)]
ShortText = Annotated[StrictStr, Field(max_length=64)]


class LeadIn(BaseModel):
    """One MQL as the intake endpoint and CSV import accept it; unknown keys are kept as context."""

    model_config = ConfigDict(extra="allow", str_strip_whitespace=True, frozen=True)

    external_id: Annotated[
        StrictStr, BeforeValidator(_id_text), Field(min_length=1, max_length=255)
    ]
    source: Annotated[StrictStr, Field(min_length=1, max_length=64)] = "intake"
    email: Annotated[StrictStr, Field(max_length=320)] | None = None
    phone: ShortText | None = None
    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    title: Text | None = None
    country: ShortText | None = None
    industry: Text | None = None
    employees: Annotated[StrictInt, Field(ge=0, le=10_000_000)] | None = None
    lead_source: Text | None = None
    campaign: Text | None = None
    score: Annotated[StrictInt, Field(ge=0, le=100)] | None = None
    signals: list[Annotated[StrictStr, Field(max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    content: list[Annotated[StrictStr, Field(max_length=255)]] = Field(
        default_factory=list, max_length=50
    )
    mql_at: AwareDatetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _blank_is_absent(cls, data: Any) -> Any:
        # Exports often send "" for an empty column; that means "not given", not a bad value.
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (k != "external_id" and v == "")}
        return data

    @model_validator(mode="after")
    def _identifiable(self, info: ValidationInfo) -> LeadIn:
        if self.email is not None and not EMAIL.match(self.email):
            raise ValueError("email: not an email address")
        # A CRM record is identified by its record id; only other senders must name the person.
        identified = bool(info.context and info.context.get("identified"))
        if not identified and not _identifiable(self.email, self.last_name, self.company):
            raise ValueError(f"{IDENTITY_FIELDS}: {IDENTITY_MESSAGE}")
        return self

    @property
    def extra_context(self) -> dict[str, Any]:
        """Unknown keys the sender included, kept as extra context for routing and the card."""
        return dict(self.model_extra or {})


@dataclass(frozen=True)
class FieldError:
    """One problem with one field of an incoming lead."""

    field: str
    message: str


def validate_lead(data: Any, *, identified: bool = False) -> LeadIn | list[FieldError]:
    """Validate one incoming lead; a list of field errors when it is not acceptable.

    `identified`: the lead comes from a CRM record, whose id identifies it without an email or
    a name and company.
    """
    if not isinstance(data, dict):
        return [FieldError("(lead)", "expected a JSON object")]
    try:
        return LeadIn.model_validate(data, context={"identified": identified})
    except ValidationError as exc:
        errors = [_field_error(err) for err in exc.errors()]
    if identified:
        return errors
    # Field errors stop pydantic before the whole-lead check; report that problem too.
    given = {
        k: v
        for k in ("email", "last_name", "company")
        if isinstance(v := data.get(k), str) and v.strip()
    }
    if not any(e.field == IDENTITY_FIELDS for e in errors) and not _identifiable(**given):
        errors.append(FieldError(IDENTITY_FIELDS, IDENTITY_MESSAGE))
    return errors


def _identifiable(
    email: str | None = None, last_name: str | None = None, company: str | None = None
) -> bool:
    return bool(email) or bool(last_name and company)


def _field_error(err: Any) -> FieldError:
    loc = ".".join(str(p) for p in err["loc"]) or "(lead)"
    message = err["msg"]
    if message.startswith("Value error, "):
        field, _, message = message[len("Value error, ") :].partition(": ")
        return FieldError(field, message)
    if err["type"] == "missing":
        message = "required"
    return FieldError(loc, message)


IntakeStatus = Literal["created", "duplicate", "requalified"]


@dataclass(frozen=True)
class IntakeResult:
    """What intake did with one lead."""

    external_id: str
    lead_id: int
    cycle_id: int
    status: IntakeStatus


def ingest(
    session: Session,
    lead_in: LeadIn,
    *,
    playbook: Playbook,
    now: datetime,
    origin: str | None = None,
) -> IntakeResult:
    """Store an MQL once: a new lead, a duplicate (nothing changes) or a re-qualification (new cycle)."""
    origin = origin or lead_in.source
    lead = _find(session, origin, lead_in.external_id)
    inserted = False
    if lead is None:
        lead, inserted = _insert_lead(session, lead_in, origin, now)
    cycles = [] if inserted else _cycles(session, lead)
    if not cycles:
        return _start_cycle(
            session, lead, lead_in, [], playbook=playbook, now=now, status="created"
        )
    latest = cycles[-1]
    if latest.state == OPEN or lead_in.mql_at is None or lead_in.mql_at <= latest.mql_at:
        return IntakeResult(lead_in.external_id, _id(lead), _id(latest), "duplicate")
    _update_context(lead, lead_in, now, only_given=True)
    session.add(lead)
    return _start_cycle(
        session, lead, lead_in, cycles, playbook=playbook, now=now, status="requalified"
    )


def _id(row: Lead | MqlCycle) -> int:
    assert row.id is not None
    return row.id


def _find(session: Session, origin: str, external_id: str) -> Lead | None:
    # Locking the lead serialises concurrent deliveries of it, so only one can start a new cycle.
    return session.exec(
        select(Lead).where(Lead.origin == origin, Lead.external_id == external_id).with_for_update()
    ).first()


def _cycles(session: Session, lead: Lead) -> list[MqlCycle]:
    return list(
        session.exec(
            select(MqlCycle).where(MqlCycle.lead_id == lead.id).order_by(col(MqlCycle.seq))
        ).all()
    )


def _insert_lead(
    session: Session, lead_in: LeadIn, origin: str, now: datetime
) -> tuple[Lead, bool]:
    lead = Lead(origin=origin, external_id=lead_in.external_id, created_at=now, updated_at=now)
    _update_context(lead, lead_in, now, only_given=False)
    # One INSERT that skips a lead stored meanwhile, instead of a savepoint around the ORM's.
    lead.id = insert_new(session, Lead, lead.model_dump(exclude={"id"}))
    if lead.id is None:
        # Another request stored the same lead between our read and our write.
        existing = _find(session, origin, lead_in.external_id)
        assert existing is not None
        return existing, False
    make_transient_to_detached(lead)  # the row exists: the session takes it as loaded
    session.add(lead)
    return lead, True


def _update_context(lead: Lead, lead_in: LeadIn, now: datetime, *, only_given: bool) -> None:
    """Copy the lead's context; on a re-qualification only the fields this MQL carried."""
    given = lead_in.model_fields_set if only_given else set(LeadIn.model_fields)
    for name in CONTEXT_FIELDS:
        if name in given:
            setattr(lead, name, getattr(lead_in, name))
    if "signals" in given:
        lead.signals = list(lead_in.signals)
    if "content" in given:
        lead.content = list(lead_in.content)
    lead.extra = {**(lead.extra if only_given else {}), **lead_in.extra_context}
    if "crm_record_id" in lead.extra and isinstance(lead.extra["crm_record_id"], str):
        lead.crm_record_id = lead.extra["crm_record_id"]
    lead.updated_at = now


def routing_fields(lead: Lead, *, score: int) -> dict[str, Any]:
    """The lead facts routing rules may test, extra context included."""
    fields: dict[str, Any] = {k: v for k, v in lead.extra.items() if isinstance(v, str | int)}
    fields.update({name: getattr(lead, name) for name in CONTEXT_FIELDS})
    fields.update(source=lead.origin, score=score)
    return fields


def _start_cycle(
    session: Session,
    lead: Lead,
    lead_in: LeadIn,
    previous: list[MqlCycle],
    *,
    playbook: Playbook,
    now: datetime,
    status: IntakeStatus,
) -> IntakeResult:
    scored = score_lead(
        ScoreInput(
            score=lead_in.score,
            source=lead.origin,
            title=lead.title,
            industry=lead.industry,
            country=lead.country,
            employees=lead.employees,
            lead_source=lead.lead_source,
            signals=tuple(lead.signals),
            content=tuple(lead.content),
        ),
        playbook.scoring,
    )
    tier = playbook.tier_for(scored.score)
    routed = assign(session, playbook, routing_fields(lead, score=scored.score), now=now)
    cycle = MqlCycle(
        lead_id=_id(lead),
        seq=len(previous) + 1,
        mql_at=lead_in.mql_at or now,
        received_at=now,
        score=scored.score,
        score_reasons=list(scored.reasons),
        tier=tier.name,
        lead_source=lead.lead_source,
        sla_due_at=playbook.deadline(tier, now),
        pool=routed.pool,
        owner_slack_id=routed.owner,
        assigned_at=now if routed.owner else None,
    )
    session.add(cycle)
    session.flush()
    cycle_id = _id(cycle)
    priority = tier_priority(playbook, tier.name)
    pipeline = playbook.channels.pipeline
    outbox.enqueue(
        session,
        kind=outbox.SLACK_CARD,
        key=f"card:{cycle_id}",
        lane=outbox.channel_lane(pipeline),
        now=now,
        priority=priority,
        deadline_at=cycle.sla_due_at,
        payload={
            "cycle_id": cycle_id,
            "channel": pipeline,
            "thread_of": _id(previous[0]) if previous else None,
        },
    )
    if routed.owner and tier.name == playbook.tiers_by_rank[0].name:
        outbox.enqueue(
            session,
            kind=outbox.SLACK_DM,
            key=f"dm:{cycle_id}",
            lane=outbox.dm_lane(routed.owner),
            now=now,
            priority=priority,
            deadline_at=cycle.sla_due_at,
            payload={"cycle_id": cycle_id, "user": routed.owner},
        )
    if routed.owner:
        enqueue_crm_sync(session, cycle, now=now)
    return IntakeResult(lead_in.external_id, _id(lead), cycle_id, status)


def tier_priority(playbook: Playbook, tier_name: str) -> int:
    """Outbox priority of a tier's cards: the hottest tier goes first."""
    names = [t.name for t in playbook.tiers_by_rank]
    rank = names.index(tier_name) if tier_name in names else len(names)
    return outbox.PRIORITY_FIRST_TIER + rank
