"""The closed loop: which handed-off Leads converted, and how their opportunities are doing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from simple_salesforce import format_soql

from bot.core.crm import LeadOutcome, LeadRef
from integrations.salesforce.session import SalesforceSession
from integrations.salesforce.soql import (
    chunks,
    fields_list,
    is_record_id,
    parse_date,
    parse_datetime,
)

BATCH = 200
OPPORTUNITY_FIELDS = ("StageName", "Amount", "IsClosed", "IsWon", "CreatedDate", "CloseDate")


def _lead_fields(multi_currency: bool) -> str:
    opportunity = [*OPPORTUNITY_FIELDS, *(["CurrencyIsoCode"] if multi_currency else [])]
    return fields_list(
        ["Id", "IsConverted", "ConvertedDate", "ConvertedOpportunityId"]
        + [f"ConvertedOpportunity.{f}" for f in opportunity]
    )


def fetch(
    session: SalesforceSession, leads: Sequence[LeadRef], *, multi_currency: bool
) -> list[LeadOutcome]:
    """One relationship query per 200 leads; leads Salesforce does not hold are left out."""
    by_id: dict[str, list[LeadRef]] = {}
    for lead in leads:
        record_id = lead.record_id_in("salesforce")
        if is_record_id(record_id):
            assert record_id is not None
            by_id.setdefault(record_id, []).append(lead)
    outcomes: list[LeadOutcome] = []
    for part in chunks(list(by_id), BATCH):
        rows = session.query(
            format_soql(
                "SELECT {fields:literal} FROM Lead WHERE Id IN {ids}",
                fields=_lead_fields(multi_currency),
                ids=part,
            )
        )
        for row in rows:
            for lead in by_id.get(str(row["Id"]), []):
                outcomes.append(outcome(lead, row))
    return outcomes


def outcome(lead: LeadRef, row: dict[str, Any]) -> LeadOutcome:
    """A Lead row (with its ConvertedOpportunity) as a LeadOutcome."""
    opp = row.get("ConvertedOpportunity") or {}
    converted = bool(row.get("IsConverted"))
    closed_on = parse_date(opp.get("CloseDate")) if opp.get("IsClosed") else None
    converted_on = parse_date(row.get("ConvertedDate"))
    return LeadOutcome(
        lead=lead,
        converted=converted,
        converted_at=parse_datetime(f"{converted_on.isoformat()}T00:00:00Z")
        if converted_on
        else None,
        lifecycle_stage="converted" if converted else None,
        opportunity_id=row.get("ConvertedOpportunityId"),
        opportunity_stage=opp.get("StageName"),
        amount=float(opp["Amount"]) if opp.get("Amount") is not None else None,
        currency=opp.get("CurrencyIsoCode"),
        is_closed=bool(opp.get("IsClosed")),
        is_won=bool(opp.get("IsWon")),
        opportunity_created_at=parse_datetime(opp.get("CreatedDate")),
        closed_at=parse_datetime(f"{closed_on.isoformat()}T00:00:00Z") if closed_on else None,
    )
