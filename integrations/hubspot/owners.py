"""HubSpot owners: a rep's owner id (playbook mapping first, else by email) and owners' names."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from integrations.hubspot.client import HubSpotApi, HubSpotApiError

log = logging.getLogger(__name__)

CACHE_FOR = timedelta(hours=1)


class OwnerDirectory:
    """Resolves Slack users to HubSpot owner ids and owner ids to names, caching both for an hour
    (a miss too, so an unknown email costs one lookup an hour, not one per write)."""

    def __init__(
        self, api: HubSpotApi, mapping: dict[str, str], clock: Callable[[], datetime]
    ) -> None:
        self._api = api
        self._mapping = mapping
        self._clock = clock
        self._by_email: dict[str, tuple[str | None, datetime]] = {}
        self._names: dict[str, tuple[str | None, datetime]] = {}
        self._lock = threading.Lock()

    def owner_id(self, slack_id: str | None, email: str | None) -> str | None:
        """The owner id for a rep: the playbook's `owners` mapping, else the owners API by email."""
        if slack_id and slack_id in self._mapping:
            return self._mapping[slack_id]
        if not email:
            return None
        key = email.strip().lower()
        cached = self._cached(self._by_email, key)
        if cached is not None:
            return cached[0]
        page = self._api.call(
            lambda **kw: self._api.owners.get_page(email=key, limit=1, archived=False, **kw)
        )
        found = next((o for o in page.results or [] if (o.email or "").lower() == key), None)
        owner = str(found.id) if found is not None else None
        if owner is None:
            log.info("no HubSpot owner has the email of Slack user %s", slack_id or "(unknown)")
        self._remember(self._by_email, key, owner)
        return owner

    def name(self, owner_id: str | None) -> str | None:
        """An owner's display name ("First Last"), or None when HubSpot has no such owner."""
        if not owner_id or not owner_id.isdigit():
            return None
        cached = self._cached(self._names, owner_id)
        if cached is not None:
            return cached[0]
        try:
            owner = self._api.call(
                lambda **kw: self._api.owners.get_by_id(owner_id, id_property="id", **kw)
            )
        except HubSpotApiError as exc:
            if exc.status != 404:
                raise
            owner = None
        name = None
        if owner is not None:
            name = " ".join(p for p in (owner.first_name, owner.last_name) if p) or None
        self._remember(self._names, owner_id, name)
        return name

    def _cached(
        self, cache: dict[str, tuple[str | None, datetime]], key: str
    ) -> tuple[str | None] | None:
        with self._lock:
            hit = cache.get(key)
        if hit is None or self._clock() - hit[1] > CACHE_FOR:
            return None
        return (hit[0],)

    def _remember(
        self, cache: dict[str, tuple[str | None, datetime]], key: str, value: str | None
    ) -> None:
        with self._lock:
            cache[key] = (value, self._clock())
