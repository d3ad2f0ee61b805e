"""The built-in `local` CRM: revbot's own tables hold each lead's record."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from sqlalchemy import Engine

from bot.core.crm import CrmTask, CrmWrite, LeadRef, WriteResult
from bot.core.db import transaction
from bot.core.models import LocalCrmRecord


class LocalCRM:
    """A CRM with no vendor behind it: dispositions land in the `local_crm_records` table, and
    the `touches` table holds its tasks."""

    name = "local"
    max_batch = 200

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self._engine = engine
        self._clock = clock

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """Upsert every lead's record in one transaction (absolute state, so replays are harmless)."""
        now = self._clock()
        with transaction(self._engine) as session:
            for write in writes:
                d = write.disposition
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
        return [WriteResult(key=w.key, ok=True) for w in writes]

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """Accept every task: revbot's own `touches` row is the local CRM's task record already."""
        return [WriteResult(key=t.key, ok=True) for t in tasks]

    def record_url(self, lead: LeadRef) -> str | None:
        """The local CRM has no web page for a record."""
        return None

    def check(self) -> str:
        """Nothing to log in to."""
        return "local CRM (revbot's own database)"
