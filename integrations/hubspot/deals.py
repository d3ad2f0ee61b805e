"""HubSpot deals as revbot shows them: stage labels from the pipelines API (cached), owners' names."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bot.core.crm import Deal
from integrations.hubspot.client import HubSpotApi, HubSpotApiError
from integrations.hubspot.owners import OwnerDirectory
from integrations.hubspot.records import parse_date, parse_number
from integrations.hubspot.search import SearchBuilder, token_value

DEAL_PROPERTIES = (
    "dealname",
    "dealstage",
    "pipeline",
    "amount",
    "deal_currency_code",
    "closedate",
    "createdate",
    "hubspot_owner_id",
    "hs_next_step",
    "hs_is_closed_won",
    "hs_is_closed",
)
PIPELINES_CACHE_FOR = timedelta(minutes=10)
MISS_REFRESH = timedelta(seconds=30)
MAX_DEAL_ID_DIGITS = 20


@dataclass(frozen=True)
class Stage:
    """A deal stage as its pipeline defines it."""

    label: str
    is_closed: bool
    probability: float | None


class Pipelines:
    """Deal stages by id (from every deal pipeline), refreshed every ten minutes or on a miss."""

    def __init__(self, api: HubSpotApi, clock: Callable[[], datetime]) -> None:
        self._api = api
        self._clock = clock
        self._stages: dict[str, Stage] = {}
        self._loaded_at: datetime | None = None
        self._lock = threading.Lock()

    def stage(self, stage_id: str | None) -> Stage | None:
        """The stage with this id, or None when no pipeline has it."""
        if not stage_id:
            return None
        now = self._clock()
        loaded = self._loaded_at
        # A stage added since the last load is picked up on a miss, at most twice a minute.
        if (
            loaded is None
            or now - loaded > PIPELINES_CACHE_FOR
            or (stage_id not in self._stages and now - loaded > MISS_REFRESH)
        ):
            self._load(now)
        return self._stages.get(stage_id)

    def _load(self, now: datetime) -> None:
        page = self._api.call(lambda **kw: self._api.pipelines.get_all("deals", **kw))
        stages: dict[str, Stage] = {}
        for pipeline in page.results or []:
            for stage in pipeline.stages or []:
                metadata = stage.metadata or {}
                stages[str(stage.id)] = Stage(
                    label=str(stage.label),
                    is_closed=str(metadata.get("isClosed", "")).lower() == "true",
                    probability=parse_number(metadata.get("probability")),
                )
        with self._lock:
            self._stages = stages
            self._loaded_at = now


def is_won(properties: dict[str, Any], stage: Stage | None) -> bool:
    """Closed won: `hs_is_closed_won`, else a closed stage with probability 1.0."""
    flag = properties.get("hs_is_closed_won")
    if flag not in (None, ""):
        return str(flag).lower() == "true"
    return bool(stage and stage.is_closed and stage.probability == 1.0)


def is_closed(properties: dict[str, Any], stage: Stage | None) -> bool:
    """Closed (won or lost): the stage's `isClosed`, else `hs_is_closed`."""
    if stage is not None:
        return stage.is_closed
    return str(properties.get("hs_is_closed") or "").lower() == "true"


class DealReader:
    """Searches and reads deals, with stage labels and owner names."""

    def __init__(
        self,
        api: HubSpotApi,
        pipelines: Pipelines,
        owners: OwnerDirectory,
        url_of: Callable[[str], str | None],
    ) -> None:
        self._api = api
        self._pipelines = pipelines
        self._owners = owners
        self._url_of = url_of
        self._search = SearchBuilder()

    def search(self, text: str, limit: int) -> list[Deal]:
        """Deals whose name contains `text` (a value only), open ones first, then most recent."""
        value = token_value(text)
        if value is None or limit < 1:
            return []
        body = self._search.body(
            [[self._search.filter("dealname", "CONTAINS_TOKEN", value)]],
            properties=DEAL_PROPERTIES,
            limit=limit,
            sort=("hs_lastmodifieddate", "DESCENDING"),
        )
        page = self._api.call(self._api.deals.search.do_search, body, search=True)
        deals = [self.deal(str(r.id), r.properties or {}) for r in page.results or []]
        return sorted(deals, key=lambda d: d.is_closed)

    def get(self, deal_id: str) -> Deal | None:
        """One deal by its numeric id; None for a non-numeric id or a deal HubSpot does not have."""
        deal_id = deal_id.strip()
        if not deal_id.isdigit() or len(deal_id) > MAX_DEAL_ID_DIGITS:
            return None
        try:
            record = self._api.call(
                lambda **kw: self._api.deals.basic.get_by_id(
                    deal_id, properties=list(DEAL_PROPERTIES), archived=False, **kw
                )
            )
        except HubSpotApiError as exc:
            if exc.status == 404:
                return None
            raise
        return self.deal(str(record.id), record.properties or {})

    def deal(self, deal_id: str, properties: dict[str, Any]) -> Deal:
        """A deal record as revbot's Deal (stage label, owner name)."""
        stage = self._pipelines.stage(properties.get("dealstage"))
        return Deal(
            id=deal_id,
            name=str(properties.get("dealname") or f"Deal {deal_id}"),
            stage=stage.label if stage else properties.get("dealstage"),
            amount=parse_number(properties.get("amount")),
            currency=properties.get("deal_currency_code") or None,
            close_date=parse_date(properties.get("closedate")),
            owner=self._owners.name(properties.get("hubspot_owner_id")),
            next_step=properties.get("hs_next_step") or None,
            url=self._url_of(deal_id),
            is_closed=is_closed(properties, stage),
            is_won=is_won(properties, stage),
        )
