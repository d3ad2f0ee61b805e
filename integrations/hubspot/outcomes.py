"""The closed loop from HubSpot: contacts' lifecycle progress and their associated deals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from bot.core.crm import LeadOutcome, LeadRef
from integrations.hubspot.client import HubSpotApi
from integrations.hubspot.deals import DEAL_PROPERTIES, Pipelines, is_closed, is_won
from integrations.hubspot.records import parse_number, parse_time

BATCH_READ = 100
# Lifecycle stages past MQL, in order, with the property HubSpot stamps when a contact enters one.
CONVERTED_STAGES = {
    "salesqualifiedlead": "hs_lifecyclestage_salesqualifiedlead_date",
    "opportunity": "hs_lifecyclestage_opportunity_date",
    "customer": "hs_lifecyclestage_customer_date",
}
CONTACT_PROPERTIES = ("lifecyclestage", *CONVERTED_STAGES.values())


def batch_read(
    api: HubSpotApi, apis: Any, ids: Sequence[str], properties: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Properties of each record HubSpot has among `ids` (missing ones are left out)."""
    found: dict[str, dict[str, Any]] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), BATCH_READ):
        body = {
            "properties": list(properties),
            "propertiesWithHistory": [],
            "inputs": [{"id": i} for i in unique[start : start + BATCH_READ]],
        }
        response = api.call(lambda b, **kw: apis.batch.read(b, archived=False, **kw), body)
        for record in response.results or []:
            found[str(record.id)] = record.properties or {}
    return found


def associated_deals(api: HubSpotApi, contact_ids: Sequence[str]) -> dict[str, list[str]]:
    """Deal ids associated with each contact (v4 associations batch read)."""
    deals: dict[str, list[str]] = {}
    for start in range(0, len(contact_ids), BATCH_READ):
        body = {"inputs": [{"id": i} for i in contact_ids[start : start + BATCH_READ]]}
        response = api.call(
            lambda b, **kw: api.associations.get_page("contacts", "deals", b, **kw), body
        )
        for item in response.results or []:
            deals[str(item._from.id)] = [str(to.to_object_id) for to in item.to or []]
    return deals


def converted_at(properties: dict[str, Any]) -> datetime | None:
    """When the contact first moved past MQL (the earliest later-stage date HubSpot stamped)."""
    times = [t for p in CONVERTED_STAGES.values() if (t := parse_time(properties.get(p)))]
    return min(times) if times else None


def fetch_outcomes(
    api: HubSpotApi,
    apis_contacts: Any,
    apis_deals: Any,
    pipelines: Pipelines,
    leads: Sequence[LeadRef],
) -> list[LeadOutcome]:
    """Outcomes of the leads HubSpot holds: lifecycle stage, and their latest associated deal."""
    by_contact = {
        rid: lead for lead in leads if (rid := lead.record_id_in("hubspot")) and rid.isdigit()
    }
    if not by_contact:
        return []
    contacts = batch_read(api, apis_contacts, list(by_contact), CONTACT_PROPERTIES)
    links = associated_deals(api, list(contacts)) if contacts else {}
    deal_ids = [d for ids in links.values() for d in ids]
    deals = batch_read(api, apis_deals, deal_ids, DEAL_PROPERTIES) if deal_ids else {}
    outcomes = []
    for contact_id, props in contacts.items():
        stage = props.get("lifecyclestage") or None
        linked = [(d, deals[d]) for d in links.get(contact_id, []) if d in deals]
        latest = max(linked, key=lambda pair: _created(pair[1]), default=None)
        outcome = LeadOutcome(
            lead=by_contact[contact_id],
            converted=stage in CONVERTED_STAGES or latest is not None,
            converted_at=converted_at(props),
            lifecycle_stage=stage,
        )
        if latest is not None:
            outcome = _with_deal(outcome, latest[0], latest[1], pipelines)
        outcomes.append(outcome)
    return outcomes


def _created(props: dict[str, Any]) -> datetime:
    return parse_time(props.get("createdate")) or datetime.min.replace(tzinfo=UTC)


def _with_deal(
    outcome: LeadOutcome, deal_id: str, props: dict[str, Any], pipelines: Pipelines
) -> LeadOutcome:
    stage = pipelines.stage(props.get("dealstage"))
    closed = is_closed(props, stage)
    return replace(
        outcome,
        converted_at=outcome.converted_at or parse_time(props.get("createdate")),
        opportunity_id=deal_id,
        opportunity_stage=stage.label if stage else props.get("dealstage"),
        amount=parse_number(props.get("amount")),
        currency=props.get("deal_currency_code") or None,
        is_closed=closed,
        is_won=closed and is_won(props, stage),
        opportunity_created_at=parse_time(props.get("createdate")),
        closed_at=parse_time(props.get("closedate")) if closed else None,
    )
