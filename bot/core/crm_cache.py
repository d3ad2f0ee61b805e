"""A short-lived cache in front of CRM deal searches, with one CRM call per search at a time."""

from __future__ import annotations

import threading
from collections.abc import Callable

from cachetools import TTLCache

from bot.core.crm import CRM, Deal

DEFAULT_TTL_SECONDS = 60.0
DEFAULT_MAX_ENTRIES = 512

_Key = tuple[str, int]


class _Flight:
    """One CRM call in progress; callers asking the same thing meanwhile wait for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.deals: list[Deal] = []
        self.error: BaseException | None = None

    def wait(self) -> list[Deal]:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.deals


class CachedDealSearch:
    """`crm.search_deals` answered from memory for `ttl` seconds (bounded, least recently used
    dropped first); concurrent identical searches share one CRM call. Errors are not cached."""

    def __init__(
        self,
        crm: CRM,
        *,
        timer: Callable[[], float],
        ttl: float = DEFAULT_TTL_SECONDS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._crm = crm
        self._cache: TTLCache[_Key, list[Deal]] = TTLCache(max_entries, ttl, timer=timer)
        self._flights: dict[_Key, _Flight] = {}
        self._lock = threading.Lock()
        self.crm_calls = 0

    def search_deals(self, text: str, *, limit: int) -> list[Deal]:
        """Deals whose name contains `text`, from the cache when a recent search asked the same."""
        key = (" ".join(text.casefold().split()), limit)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                return list(cached)
            flight = self._flights.get(key)
            leading = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self.crm_calls += 1
        if not leading:
            return list(flight.wait())
        try:
            flight.deals = self._crm.search_deals(text, limit=limit)
        except BaseException as error:
            flight.error = error
            raise
        else:
            with self._lock:
                self._cache[key] = flight.deals
            return list(flight.deals)
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
