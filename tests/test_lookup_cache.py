"""The CRM deal-search cache: answers from memory for its TTL, one CRM call per search at a time."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

from bot.core.crm import CrmUnavailable, Deal
from bot.core.crm_cache import CachedDealSearch


class FakeDeals:
    """Just the CRM's deal search: records each call, optionally slow or failing."""

    def __init__(self, deals: Sequence[Deal] = (), *, delay: float = 0.0) -> None:
        self.deals = list(deals)
        self.delay = delay
        self.calls: list[tuple[str, int]] = []
        self.fail = False

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        self.calls.append((text, limit))
        time.sleep(self.delay)
        if self.fail:
            raise CrmUnavailable("down")
        return [d for d in self.deals if text.lower() in d.name.lower()][:limit]


class Ticker:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def cached(crm: FakeDeals, ticker: Ticker, **options: Any) -> CachedDealSearch:
    return CachedDealSearch(crm, timer=ticker, **options)  # type: ignore[arg-type]


def test_a_search_is_answered_from_memory_until_its_ttl_runs_out() -> None:
    crm, ticker = FakeDeals([Deal("D-1", "Acme renewal")]), Ticker()
    search = cached(crm, ticker, ttl=60)
    assert [d.id for d in search.search_deals("acme", limit=5)] == ["D-1"]
    ticker.now = 59
    assert [d.id for d in search.search_deals("  ACME ", limit=5)] == ["D-1"]
    assert crm.calls == [("acme", 5)]
    ticker.now = 61
    search.search_deals("acme", limit=5)
    assert len(crm.calls) == 2
    search.search_deals("acme", limit=6)  # a different limit is a different question
    assert len(crm.calls) == 3


def test_the_cache_is_bounded() -> None:
    crm, ticker = FakeDeals(), Ticker()
    search = cached(crm, ticker, max_entries=2)
    for text in ("a", "b", "c", "a"):
        search.search_deals(text, limit=5)
    assert [c[0] for c in crm.calls] == ["a", "b", "c", "a"]


def test_errors_are_not_cached() -> None:
    crm, ticker = FakeDeals([Deal("D-1", "Acme")]), Ticker()
    search = cached(crm, ticker)
    crm.fail = True
    with pytest.raises(CrmUnavailable):
        search.search_deals("acme", limit=5)
    crm.fail = False
    assert [d.id for d in search.search_deals("acme", limit=5)] == ["D-1"]


def test_concurrent_identical_searches_share_one_crm_call() -> None:
    crm, ticker = FakeDeals([Deal("D-1", "Acme")], delay=0.3), Ticker()
    search = cached(crm, ticker)
    results: list[list[str]] = []

    def ask() -> None:
        results.append([d.id for d in search.search_deals("acme", limit=5)])

    threads = [threading.Thread(target=ask) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [["D-1"]] * 5
    assert len(crm.calls) == 1
    assert search.crm_calls == 1


def test_concurrent_waiters_see_the_leaders_error() -> None:
    crm, ticker = FakeDeals(delay=0.3), Ticker()
    crm.fail = True
    search = cached(crm, ticker)
    errors: list[str] = []

    def ask() -> None:
        try:
            search.search_deals("acme", limit=5)
        except CrmUnavailable as error:
            errors.append(str(error))

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == ["down"] * 3
    assert len(crm.calls) == 1
