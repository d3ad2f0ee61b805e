"""CRM search request bodies built only from allow-listed properties and operators.

User and CRM text only ever lands in a filter's `value` / `values`; a property or operator that
is not on the allow-list is refused before anything is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

Operator = Literal["EQ", "GTE", "IN", "HAS_PROPERTY", "CONTAINS_TOKEN"]
OPERATORS: frozenset[str] = frozenset(("EQ", "GTE", "IN", "HAS_PROPERTY", "CONTAINS_TOKEN"))
# Standard properties revbot filters or sorts on; the playbook's MQL fields are added per adapter.
STANDARD_PROPERTIES: frozenset[str] = frozenset(
    (
        "dealname",
        "hs_lastmodifieddate",
        "hs_task_subject",
        "hs_timestamp",
        "associations.contact",
        "associations.deal",
    )
)
MAX_SEARCH_LIMIT = 200
MAX_FILTER_GROUPS = 5
MAX_FILTERS_PER_GROUP = 6
MAX_VALUE_CHARS = 100
_WILDCARDS = re.compile(r"[*\s]+")


class SearchRefused(ValueError):
    """A search named a property or operator that is not on the allow-list."""


class Filter:
    """One search filter; checked against the allow-list when it is built."""

    def __init__(
        self,
        allowed: frozenset[str],
        prop: str,
        operator: Operator,
        value: str | None = None,
        values: Sequence[str] | None = None,
    ) -> None:
        if prop not in allowed:
            raise SearchRefused(f"property {prop!r} is not searchable")
        if operator not in OPERATORS:
            raise SearchRefused(f"operator {operator!r} is not allowed")
        self.body: dict[str, Any] = {"propertyName": prop, "operator": operator}
        if values is not None:
            self.body["values"] = [str(v) for v in values]
        elif value is not None:
            self.body["value"] = str(value)


class SearchBuilder:
    """Builds search bodies from the allow-list (standard properties plus `extra` ones)."""

    def __init__(self, extra: Sequence[str] = ()) -> None:
        self.allowed = STANDARD_PROPERTIES | frozenset(extra)

    def filter(
        self,
        prop: str,
        operator: Operator,
        value: str | None = None,
        values: Sequence[str] | None = None,
    ) -> Filter:
        """A filter on an allow-listed property."""
        return Filter(self.allowed, prop, operator, value, values)

    def body(
        self,
        groups: Sequence[Sequence[Filter]],
        *,
        properties: Sequence[str],
        limit: int = 100,
        sort: tuple[str, Literal["ASCENDING", "DESCENDING"]] | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """A search request body: filter groups (OR of ANDs), one sort, a page size and cursor."""
        if not 1 <= len(groups) <= MAX_FILTER_GROUPS:
            raise SearchRefused(f"a search takes 1 to {MAX_FILTER_GROUPS} filter groups")
        if any(not 1 <= len(g) <= MAX_FILTERS_PER_GROUP for g in groups):
            raise SearchRefused(f"a filter group takes 1 to {MAX_FILTERS_PER_GROUP} filters")
        body: dict[str, Any] = {
            "filterGroups": [{"filters": [f.body for f in group]} for group in groups],
            "properties": list(properties),
            "limit": max(1, min(limit, MAX_SEARCH_LIMIT)),
        }
        if sort is not None:
            if sort[0] not in self.allowed:
                raise SearchRefused(f"property {sort[0]!r} is not sortable")
            body["sorts"] = [{"propertyName": sort[0], "direction": sort[1]}]
        if after is not None:
            body["after"] = after
        return body


def token_value(text: str) -> str | None:
    """User text as a CONTAINS_TOKEN value: wildcards and runs of spaces collapsed, bounded, or
    None when nothing searchable is left."""
    cleaned = _WILDCARDS.sub(" ", text).strip()[:MAX_VALUE_CHARS].strip()
    return f"*{cleaned}*" if cleaned else None
