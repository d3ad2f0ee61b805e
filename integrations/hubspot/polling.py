"""MQL intake from HubSpot: the search API polled after a watermark, and batch reads by id.

The watermark is `"<since_ms>"` or `"<since_ms>:<after>"`: the lower bound of the date filter
(epoch milliseconds) and, while a query is being paged, its paging cursor. When a query is done,
the next one starts two minutes before the newest MQL date seen, so a record that reaches the
search index late is still found (dedupe absorbs the overlap). The search API returns at most
10,000 results per query; before paging past that, the query restarts from the last date seen.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from bot.core.crm import MqlPage
from bot.core.playbook import MqlCriterion
from integrations.hubspot.client import HubSpotApi, HubSpotConfigError
from integrations.hubspot.outcomes import batch_read
from integrations.hubspot.records import (
    contact_lead,
    contact_properties,
    criterion_value,
    epoch_ms,
    is_mql,
    parse_time,
)
from integrations.hubspot.search import SearchBuilder

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=2)
PAGE_SIZE = 100
SEARCH_CAP = 10_000


def parse_watermark(watermark: str | None) -> tuple[int, str | None] | None:
    """(since_ms, cursor) from a stored watermark, or None when there is none (or it is not ours)."""
    if not watermark:
        return None
    since, _, after = watermark.partition(":")
    if not since.isdigit() or (after and not after.isdigit()):
        log.warning("ignoring a HubSpot watermark that is not <ms>[:<cursor>]")
        return None
    return int(since), after or None


class MqlPoller:
    """Finds MQL contacts with the search API (one page per call) or by id."""

    def __init__(self, api: HubSpotApi, mql: MqlCriterion) -> None:
        self._api = api
        self._mql = mql
        self._search = SearchBuilder([mql.field, *([mql.date_field] if mql.date_field else [])])
        self._overlap_ms = int(OVERLAP.total_seconds() * 1000)

    def poll(self, watermark: str | None, *, now: datetime) -> MqlPage:
        """One page of MQLs dated at or after the watermark, oldest first."""
        date_field = self._mql.date_field
        if date_field is None:
            raise HubSpotConfigError(
                "polling HubSpot needs crm_fields.hubspot.mql.date_field in the playbook"
            )
        since, after = parse_watermark(watermark) or (epoch_ms(now) - self._overlap_ms, None)
        body = self._search.body(
            [[self._criterion(), self._search.filter(date_field, "GTE", str(since))]],
            properties=contact_properties(self._mql),
            limit=PAGE_SIZE,
            sort=(date_field, "ASCENDING"),
            after=after,
        )
        page = self._api.call(self._api.contacts.search.do_search, body, search=True)
        records = [(str(r.id), r.properties or {}) for r in page.results or []]
        leads = [
            contact_lead(rid, props, self._mql)
            for rid, props in records
            if is_mql(props, self._mql)
        ]
        dates = [epoch_ms(t) for _, props in records if (t := parse_time(props.get(date_field)))]
        newest = max(dates, default=since)
        cursor = page.paging.next.after if page.paging and page.paging.next else None
        if cursor is None:
            return MqlPage(leads, str(max(since, newest - self._overlap_ms)), more=False)
        if int(cursor) + PAGE_SIZE <= SEARCH_CAP:
            return MqlPage(leads, f"{since}:{cursor}", more=True)
        # The next page would pass the search API's 10,000-result cap: restart at the newest date.
        restart = newest if newest > since else since + 1
        if restart == since + 1:
            log.warning("over 10,000 HubSpot MQLs share one timestamp; skipping past it")
        return MqlPage(leads, str(restart), more=True)

    def fetch(self, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The contacts among `record_ids` that meet the MQL criterion now."""
        ids = [i for i in dict.fromkeys(str(r) for r in record_ids) if i.isdigit()]
        if not ids:
            return []
        found = batch_read(self._api, self._api.contacts, ids, contact_properties(self._mql))
        return [
            contact_lead(rid, props, self._mql)
            for rid, props in found.items()
            if is_mql(props, self._mql)
        ]

    def _criterion(self) -> Any:
        value = criterion_value(self._mql)
        if value is None:
            return self._search.filter(self._mql.field, "HAS_PROPERTY")
        return self._search.filter(self._mql.field, "EQ", value)
