"""The closed loop: sync what became of handed-off leads in the CRM (SQL, opportunity, won/lost)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import or_
from sqlmodel import Session, col, select

from bot.core.crm import LeadOutcome
from bot.core.db import transaction
from bot.core.models import Lead, LeadOutcomeRecord, MqlCycle
from bot.core.writeback import lead_ref
from bot.services import Services

log = logging.getLogger(__name__)

LOOKBACK = timedelta(days=180)
BATCH = 200


def run(services: Services, *, now: datetime) -> int:
    """Refresh the outcomes of leads handed off in the last 180 days whose deal is not yet closed."""
    crm = services.crm
    since = now - LOOKBACK
    with transaction(services.engine) as session:
        leads = session.exec(
            select(Lead)
            .where(
                col(Lead.id).in_(
                    select(MqlCycle.lead_id).where(col(MqlCycle.received_at) >= since)
                ),
                or_(col(Lead.crm_record_id).is_not(None), col(Lead.origin) == crm.name),
                col(Lead.id).not_in(
                    select(LeadOutcomeRecord.lead_id).where(
                        col(LeadOutcomeRecord.is_closed).is_(True)
                    )
                ),
            )
            .order_by(col(Lead.id))
        ).all()
        refs = [lead_ref(lead) for lead in leads]
    synced = 0
    for start in range(0, len(refs), BATCH):
        outcomes = crm.fetch_outcomes(refs[start : start + BATCH])
        with transaction(services.engine) as session:
            for outcome in outcomes:
                _store(session, crm.name, outcome, now=now)
        synced += len(outcomes)
    if synced:
        log.info("synced %d lead outcome(s) from %s", synced, crm.name)
    return synced


def _store(session: Session, crm_name: str, outcome: LeadOutcome, *, now: datetime) -> None:
    row = session.get(LeadOutcomeRecord, outcome.lead.lead_id) or LeadOutcomeRecord(
        lead_id=outcome.lead.lead_id, crm=crm_name, synced_at=now
    )
    row.crm = crm_name
    row.converted = outcome.converted
    row.converted_at = outcome.converted_at
    row.lifecycle_stage = outcome.lifecycle_stage
    row.opportunity_id = outcome.opportunity_id
    row.opportunity_stage = outcome.opportunity_stage
    row.amount = outcome.amount
    row.currency = outcome.currency
    row.is_closed = outcome.is_closed
    row.is_won = outcome.is_won
    row.opportunity_created_at = outcome.opportunity_created_at
    row.closed_at = outcome.closed_at
    row.synced_at = now
    session.add(row)
