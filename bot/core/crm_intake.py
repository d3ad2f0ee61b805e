"""MQLs that come from a CRM (polling, webhooks): store each once, whatever fields it lacks."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from bot.core import outbox
from bot.core.intake import FieldError, IntakeResult, LeadIn, ingest, validate_lead
from bot.core.models import CrmWatermark
from bot.core.playbook import Playbook

log = logging.getLogger(__name__)


@dataclass
class CrmIntakeSummary:
    """What storing a batch of CRM records did: results by status, and the records refused."""

    results: list[IntakeResult] = field(default_factory=list)
    refused: list[tuple[str, list[FieldError]]] = field(default_factory=list)

    @property
    def counts(self) -> Counter[str]:
        """How many records were created, duplicates or re-qualified."""
        return Counter(r.status for r in self.results)


def store_crm_leads(
    session: Session,
    crm_name: str,
    leads: Iterable[dict[str, Any]],
    *,
    playbook: Playbook,
    now: datetime,
) -> CrmIntakeSummary:
    """Ingest intake-shaped lead dicts from `crm_name` (origin = the CRM's name) in this session.

    A field the CRM filled with something intake refuses (too long, wrong type) is dropped so the
    card shows what is known; only a record with no usable id is refused.
    """
    summary = CrmIntakeSummary()
    for data in leads:
        lead_in = _usable(data)
        if isinstance(lead_in, list):
            record = str(data.get("external_id") or "(no id)")
            log.warning(
                "%s record %s refused: %s",
                crm_name,
                record,
                "; ".join(f"{e.field}: {e.message}" for e in lead_in),
            )
            summary.refused.append((record, lead_in))
            continue
        summary.results.append(
            ingest(session, lead_in, playbook=playbook, now=now, origin=crm_name)
        )
    return summary


def _usable(data: dict[str, Any]) -> LeadIn | list[FieldError]:
    checked = validate_lead(data, identified=True)
    # Each pass drops the fields refused so far; pydantic reports some problems (a bad email)
    # only once the others are gone, so this takes a few passes at most.
    while isinstance(checked, list):
        bad = {e.field.split(".")[0] for e in checked}
        if bad & {"external_id", "(lead)"} or not bad & data.keys():
            return checked
        log.info(
            "dropping unusable field(s) %s of CRM record %s", sorted(bad), data.get("external_id")
        )
        data = {k: v for k, v in data.items() if k not in bad}
        checked = validate_lead(data, identified=True)
    return checked


def read_watermark(session: Session, source: str) -> str | None:
    """Where the last poll of `source` got to (None before the first poll)."""
    row = session.get(CrmWatermark, source)
    return row.value if row is not None else None


def save_watermark(session: Session, source: str, value: str, *, now: datetime) -> None:
    """Remember where polling `source` got to."""
    row = session.get(CrmWatermark, source) or CrmWatermark(
        source=source, value=value, updated_at=now
    )
    row.value = value
    row.updated_at = now
    session.add(row)


def enqueue_record_check(
    session: Session, crm_name: str, record_id: str, *, event_key: str, now: datetime
) -> bool:
    """Queue a look at one CRM record a webhook named (once per event key); True when queued.

    The worker fetches queued records in batches and stores those that are MQLs, so a webhook
    is answered as soon as its events are durably queued.
    """
    return outbox.enqueue(
        session,
        kind=outbox.CRM_INTAKE,
        key=f"{crm_name}:event:{event_key}",
        lane=outbox.CRM_INTAKE_LANE,
        now=now,
        payload={"record_id": record_id},
        priority=outbox.PRIORITY_FIRST_TIER,
    )
