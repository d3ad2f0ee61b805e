"""The built-in `local` CRM: revbot's own tables hold each lead's record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import col, select

from bot.core.crm import (
    CrmTask,
    CrmWrite,
    Deal,
    DealNote,
    LeadOutcome,
    LeadRef,
    MqlPage,
    WriteResult,
)
from bot.core.db import transaction
from bot.core.models import Lead, LocalCrmRecord, LocalDeal, LocalDealNote
from bot.core.sql import LIKE_ESCAPE, insert_ignore, like_escape


class LocalCRM:
    """A CRM with no vendor behind it: dispositions land in the `local_crm_records` table, and
    the `touches` table holds its tasks."""

    name = "local"
    max_batch = 200

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """Upsert every lead's record in one transaction (absolute state, so replays are harmless);
        a lead revbot does not hold is refused on its own."""
        now = self._clock()
        results = []
        with transaction(self._engine) as session:
            for write in writes:
                d = write.disposition
                if session.get(Lead, d.lead.lead_id) is None:
                    results.append(
                        WriteResult(write.key, ok=False, error=f"no lead with id {d.lead.lead_id}")
                    )
                    continue
                record = session.get(LocalCrmRecord, d.lead.lead_id) or LocalCrmRecord(
                    lead_id=d.lead.lead_id, status=d.status_value, updated_at=now
                )
                record.status = d.status_value
                record.owner = d.owner_email or d.owner_slack_id
                record.reason_code = d.reason_code
                record.reason = d.reason_value
                record.note = d.note
                record.revisit_on = d.revisit_on
                record.disposed_at = d.closed_at or d.accepted_at
                record.updated_at = now
                record.writes += 1
                session.add(record)
                results.append(WriteResult(key=write.key, ok=True))
        return results

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """Accept every task: revbot's own `touches` row is the local CRM's task record already."""
        return [WriteResult(key=t.key, ok=True) for t in tasks]

    def add_deal_notes(self, notes: Sequence[DealNote]) -> list[WriteResult]:
        """Store each note once (keyed by its external id); notes on unknown deals are refused."""
        results = []
        with transaction(self._engine) as session:
            for note in notes:
                if session.get(LocalDeal, note.deal_id) is None:
                    results.append(
                        WriteResult(note.key, ok=False, error=f"no deal with id {note.deal_id}")
                    )
                    continue
                insert_ignore(
                    session,
                    LocalDealNote,
                    {
                        "external_id": note.external_id,
                        "deal_id": note.deal_id,
                        "title": note.title,
                        "body": note.body,
                        "author": note.author_email,
                        "created_at": note.created_at,
                    },
                )
                results.append(WriteResult(note.key, ok=True))
        return results

    def poll_mqls(self, watermark: str | None, *, now: datetime) -> MqlPage:
        """The local CRM is not a source of MQLs: leads reach it through intake."""
        return MqlPage(leads=[], watermark=watermark)

    def fetch_mqls(self, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The local CRM holds no MQLs of its own."""
        return []

    def fetch_outcomes(self, leads: Sequence[LeadRef]) -> list[LeadOutcome]:
        """The local CRM does not track conversions: no outcomes."""
        return []

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        """Deals whose name contains `text`, case-insensitively, open ones first."""
        pattern = "%" + like_escape(text.lower()) + "%"
        with transaction(self._engine) as session:
            rows = session.exec(
                select(LocalDeal)
                .where(func.lower(LocalDeal.name).like(pattern, escape=LIKE_ESCAPE))
                .order_by(col(LocalDeal.is_closed), col(LocalDeal.name))
                .limit(limit)
            ).all()
            return [_deal(row) for row in rows]

    def get_deal(self, deal_id: str) -> Deal | None:
        """One local deal by id."""
        with transaction(self._engine) as session:
            row = session.get(LocalDeal, deal_id)
            return _deal(row) if row is not None else None

    def record_url(self, lead: LeadRef) -> str | None:
        """The local CRM has no web page for a record."""
        return None

    def check(self) -> str:
        """Nothing to log in to."""
        return "local CRM (revbot's own database)"


def _deal(row: LocalDeal) -> Deal:
    return Deal(
        id=row.id,
        name=row.name,
        stage=row.stage,
        amount=row.amount,
        currency=row.currency,
        close_date=row.close_date,
        owner=row.owner,
        next_step=row.next_step,
        account=row.account,
        is_closed=row.is_closed,
        is_won=row.is_won,
    )
