"""MQL intake from Salesforce Leads: the record → intake mapping, polling on SystemModstamp, fetch by id."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from simple_salesforce import format_soql

from bot.core.crm import MqlPage
from bot.core.playbook import DEFAULT_FIELD_MAPS, CrmFieldMap, MqlCriterion
from integrations.salesforce.session import SalesforceSession
from integrations.salesforce.soql import (
    chunks,
    criterion_clause,
    fields_list,
    is_record_id,
    parse_datetime,
)

log = logging.getLogger(__name__)

SOURCE = "salesforce"
PAGE_SIZE = 200
OVERLAP = timedelta(seconds=30)
FIRST_POLL_WINDOW = timedelta(minutes=5)
MAX_OFFSET = 2000  # SOQL's OFFSET ceiling
# Lead API name → intake key (see LeadIn in bot/core/intake.py).
INTAKE_FIELDS = {
    "Email": "email",
    "Phone": "phone",
    "FirstName": "first_name",
    "LastName": "last_name",
    "Company": "company",
    "Title": "title",
    "Country": "country",
    "Industry": "industry",
    "NumberOfEmployees": "employees",
    "LeadSource": "lead_source",
}
LEAD_FIELDS = ("Id", *INTAKE_FIELDS, "Status", "LastModifiedDate", "SystemModstamp")


def mql_criterion(field_map: CrmFieldMap) -> MqlCriterion:
    """What makes a Lead an MQL: the playbook's criterion, else `Status = 'MQL'`."""
    criterion = field_map.mql or DEFAULT_FIELD_MAPS["salesforce"].mql
    assert criterion is not None
    return criterion


def select_fields(criterion: MqlCriterion) -> str:
    """The Lead fields polling and fetching read."""
    extra = [criterion.field] + ([criterion.date_field] if criterion.date_field else [])
    return fields_list([*LEAD_FIELDS, *extra])


def to_intake(record: dict[str, Any], criterion: MqlCriterion) -> dict[str, Any]:
    """A Lead record (REST or Outbound Message) as an intake lead dict; absent fields left out.

    The MQL time is the criterion's `date_field` when the playbook names one, else the record's
    last modification (so a lead that qualifies again later starts a new MQL cycle).
    """
    lead: dict[str, Any] = {
        "external_id": record["Id"],
        "source": SOURCE,
        "crm_record_id": record["Id"],
    }
    for api_name, key in INTAKE_FIELDS.items():
        value = record.get(api_name)
        if value is None or value == "":
            continue
        if key == "employees":
            try:
                value = int(float(value))
            except (TypeError, ValueError):
                continue
        lead[key] = value
    if record.get("Status"):
        lead["crm_status"] = record["Status"]
    mql_at = parse_datetime(record.get(criterion.date_field)) if criterion.date_field else None
    mql_at = mql_at or parse_datetime(record.get("LastModifiedDate"))
    if mql_at is not None:
        lead["mql_at"] = mql_at
    return lead


def _since(watermark: str | None, now: datetime) -> tuple[datetime, int, bool]:
    """Where a poll starts: (time, offset, continuing a full page?)."""
    if watermark:
        stamp, _, offset = watermark.partition("|offset=")
        start = parse_datetime(stamp)
        if start is not None:
            if offset.isdigit():
                return start, int(offset), True
            return start - OVERLAP, 0, False
        log.warning("ignoring an unreadable Salesforce poll watermark")
    return now - FIRST_POLL_WINDOW, 0, False


def poll(
    session: SalesforceSession, criterion: MqlCriterion, watermark: str | None, *, now: datetime
) -> MqlPage:
    """One page of MQL Leads changed after the watermark, oldest first.

    A plain watermark is the last SystemModstamp seen; the next poll starts OVERLAP before it
    (records committed late are caught again; intake's dedupe absorbs the repeats). A full page
    hands back `stamp|offset=n` (the page's last second and how many of its records fell in it),
    so the next call continues after them instead of re-reading a crowded overlap forever.
    """
    start, offset, continuing = _since(watermark, now)
    soql = format_soql(
        "SELECT {fields:literal} FROM Lead WHERE SystemModstamp {after:literal} {start} "
        "AND ({criterion:literal}) ORDER BY SystemModstamp, Id LIMIT {limit} OFFSET {offset}",
        fields=select_fields(criterion),
        after=">=" if continuing else ">",
        start=start,
        criterion=criterion_clause(criterion),
        limit=PAGE_SIZE,
        offset=min(offset, MAX_OFFSET),
    )
    records = session.query(soql)
    leads = [to_intake(r, criterion) for r in records]
    stamps = [s for r in records if (s := parse_datetime(r.get("SystemModstamp"))) is not None]
    if len(records) < PAGE_SIZE or not stamps:
        last = max([*stamps, start + (OVERLAP if not continuing and watermark else timedelta(0))])
        return MqlPage(leads=leads, watermark=last.isoformat(), more=False)
    last_second = stamps[-1].replace(microsecond=0)
    in_last_second = sum(1 for s in stamps if s.replace(microsecond=0) == last_second)
    next_offset = in_last_second + (offset if continuing and last_second == start else 0)
    return MqlPage(
        leads=leads, watermark=f"{last_second.isoformat()}|offset={next_offset}", more=True
    )


def fetch(
    session: SalesforceSession, criterion: MqlCriterion, record_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The Leads among `record_ids` that meet the MQL criterion now, as intake lead dicts."""
    ids = [i for i in dict.fromkeys(record_ids) if is_record_id(i)]
    leads: list[dict[str, Any]] = []
    for part in chunks(ids, PAGE_SIZE):
        soql = format_soql(
            "SELECT {fields:literal} FROM Lead WHERE Id IN {ids} AND ({criterion:literal})",
            fields=select_fields(criterion),
            ids=part,
            criterion=criterion_clause(criterion),
        )
        leads.extend(to_intake(r, criterion) for r in session.query(soql))
    return leads
