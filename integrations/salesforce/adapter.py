"""The Salesforce CRM adapter: the CRM protocol over one shared, self-renewing session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

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
from bot.core.playbook import CrmFieldMap, MqlCriterion, Playbook
from integrations.salesforce import activities, check, deals, leads, outcomes, writeback
from integrations.salesforce.config import SalesforceConfig
from integrations.salesforce.owners import OwnerDirectory
from integrations.salesforce.session import SalesforceRequestRefused, SalesforceSession
from integrations.salesforce.soql import is_record_id

T = TypeVar("T")


class SalesforceCRM:
    """Salesforce behind the CRM protocol; logs in lazily on the first call."""

    name = "salesforce"
    max_batch = 200

    def __init__(
        self, config: SalesforceConfig, playbook: Playbook, clock: Callable[[], datetime]
    ) -> None:
        self.session = SalesforceSession(config, clock)
        self.field_map: CrmFieldMap = playbook.field_map("salesforce")
        self.owners = OwnerDirectory(self.session, clock)
        self._multi_currency: bool | None = None

    @property
    def criterion(self) -> MqlCriterion:
        """What makes a Lead an MQL (the playbook's, else `Status = 'MQL'`)."""
        return leads.mql_criterion(self.field_map)

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """Write dispositions to their Leads, 200 a call."""
        return writeback.apply(self.session, self.owners, self.field_map, writes)

    def log_tasks(self, tasks: Sequence[CrmTask]) -> list[WriteResult]:
        """Upsert touches as completed Tasks on their Leads."""
        return activities.log_tasks(self.session, self.owners, self.field_map.owners, tasks)

    def add_deal_notes(self, notes: Sequence[DealNote]) -> list[WriteResult]:
        """Upsert notes as completed Tasks on their Opportunities."""
        return activities.add_deal_notes(self.session, self.owners, notes)

    def poll_mqls(self, watermark: str | None, *, now: datetime) -> MqlPage:
        """One page of MQL Leads changed since the watermark."""
        return leads.poll(self.session, self.criterion, watermark, now=now)

    def fetch_mqls(self, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The Leads among `record_ids` that are MQLs now."""
        return leads.fetch(self.session, self.criterion, record_ids)

    def fetch_outcomes(self, leads: Sequence[LeadRef]) -> list[LeadOutcome]:
        """Conversion and opportunity outcomes of these leads."""
        return self._currency_aware(
            lambda multi: outcomes.fetch(self.session, leads, multi_currency=multi)
        )

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        """Opportunities whose name contains `text`, open ones first."""
        return self._currency_aware(
            lambda multi: deals.search(self.session, text, limit=limit, multi_currency=multi)
        )

    def get_deal(self, deal_id: str) -> Deal | None:
        """One Opportunity by id (None for a malformed id, without calling Salesforce)."""
        if not is_record_id(deal_id):
            return None
        return self._currency_aware(
            lambda multi: deals.get(self.session, deal_id, multi_currency=multi)
        )

    def record_url(self, lead: LeadRef) -> str | None:
        """`{instance}/lightning/r/Lead/{id}/view`, when the lead is a Salesforce Lead."""
        record_id = lead.record_id_in(self.name)
        base = self.session.instance_url
        if not is_record_id(record_id) or base is None:
            return None
        return f"{base}/lightning/r/Lead/{record_id}/view"

    def check(self) -> str:
        """Log in, describe Lead and Task, and report what is missing."""
        return check.check(self.session, self.field_map)

    def _currency_aware(self, run: Callable[[bool], T]) -> T:
        # CurrencyIsoCode exists only in multi-currency orgs: ask for it until the org says no.
        if self._multi_currency is False:
            return run(False)
        try:
            value = run(True)
        except SalesforceRequestRefused as exc:
            if "CurrencyIsoCode" not in str(exc):
                raise
            self._multi_currency = False
            return run(False)
        self._multi_currency = True
        return value
