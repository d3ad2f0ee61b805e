"""The HubSpot CRM adapter: revbot's CRM protocol over hubspot-api-client."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

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
from bot.core.playbook import CrmFieldMap
from integrations.hubspot import check as checks
from integrations.hubspot.client import HubSpotApi, HubSpotConfigError
from integrations.hubspot.deals import DealReader, Pipelines
from integrations.hubspot.engagements import Engagements
from integrations.hubspot.outcomes import fetch_outcomes
from integrations.hubspot.owners import OwnerDirectory
from integrations.hubspot.polling import MqlPoller
from integrations.hubspot.writeback import MAX_INPUTS, ContactWriter

APP_URL = "https://app.hubspot.com/contacts"
CONTACT_TYPE = "0-1"
DEAL_TYPE = "0-3"


class HubSpotCRM:
    """Contacts are revbot's leads; dispositions, tasks and notes are written back in batches."""

    name = "hubspot"
    max_batch = MAX_INPUTS

    def __init__(
        self,
        api: HubSpotApi,
        fields: CrmFieldMap,
        clock: Callable[[], datetime],
        *,
        portal_id: str | None = None,
    ) -> None:
        if fields.mql is None:
            raise HubSpotConfigError("crm_fields.hubspot needs an MQL criterion")
        self.api = api
        api.use_clock(clock)
        self.fields = fields
        self.portal_id = portal_id
        self.owners = OwnerDirectory(api, dict(fields.owners), clock)
        self.pipelines = Pipelines(api, clock)
        self._writer = ContactWriter(api, fields, self.owners)
        self._engagements = Engagements(api, self.owners)
        self._poller = MqlPoller(api, fields.mql)
        self._deals = DealReader(api, self.pipelines, self.owners, self._deal_url)

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """Write dispositions to contacts, 100 a call."""
        return self._writer.apply(writes)

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """Write touches as completed tasks on their contacts (never twice)."""
        return self._engagements.log_tasks(tasks)

    def add_deal_notes(self, notes: Sequence[DealNote]) -> list[WriteResult]:
        """Write notes on deals (never twice)."""
        return self._engagements.add_deal_notes(notes)

    def poll_mqls(self, watermark: str | None, *, now: datetime) -> MqlPage:
        """One page of contacts that became MQLs at or after the watermark."""
        return self._poller.poll(watermark, now=now)

    def fetch_mqls(self, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The contacts among `record_ids` that are MQLs now."""
        return self._poller.fetch(record_ids)

    def fetch_outcomes(self, leads: Sequence[LeadRef]) -> list[LeadOutcome]:
        """Lifecycle progress and the latest associated deal of each lead HubSpot holds."""
        return fetch_outcomes(self.api, self.api.contacts, self.api.deals, self.pipelines, leads)

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        """Deals whose name contains `text` (only ever a filter value)."""
        return self._deals.search(text, limit)

    def get_deal(self, deal_id: str) -> Deal | None:
        """One deal by numeric id."""
        return self._deals.get(deal_id)

    def record_url(self, lead: LeadRef) -> str | None:
        """The contact's page in HubSpot (needs HUBSPOT_PORTAL_ID)."""
        record_id = lead.record_id_in(self.name)
        if not self.portal_id or not record_id or not record_id.isdigit():
            return None
        return f"{APP_URL}/{self.portal_id}/record/{CONTACT_TYPE}/{record_id}"

    def check(self) -> str:
        """Read contact property definitions and report what is missing."""
        return checks.check(self.api, self.fields)

    def _deal_url(self, deal_id: str) -> str | None:
        if not self.portal_id:
            return None
        return f"{APP_URL}/{self.portal_id}/record/{DEAL_TYPE}/{deal_id}"


def build_hubspot(
    access_token: str,
    api_url: str,
    fields: CrmFieldMap,
    clock: Callable[[], datetime],
    *,
    portal_id: str | None = None,
) -> HubSpotCRM:
    """The adapter for one HubSpot account."""
    return HubSpotCRM(HubSpotApi(access_token, api_url), fields, clock, portal_id=portal_id)
