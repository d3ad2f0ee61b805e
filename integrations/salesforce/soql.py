"""SOQL building blocks: every statement goes through `format_soql`; identifiers are validated."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from simple_salesforce import format_soql

from bot.core.playbook import MqlCriterion

API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")
RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def ident(name: str) -> str:
    """A field or object API name, checked so it can stand in a statement as an identifier."""
    if not API_NAME.match(name):
        raise ValueError(f"not a Salesforce API name: {name!r}")
    return name


def fields_list(names: Iterable[str]) -> str:
    """`A, B, C` from API names (relationship paths like Owner.Name allowed), without repeats."""
    unique = dict.fromkeys(names)
    for name in unique:
        for part in name.split("."):
            ident(part)
    return ", ".join(unique)


def is_record_id(value: str | None) -> bool:
    """True for a 15- or 18-character Salesforce record id."""
    return bool(value) and bool(RECORD_ID.match(value or ""))


def criterion_clause(criterion: MqlCriterion) -> str:
    """The playbook's MQL criterion as a SOQL condition (`Status = 'MQL'`, `MQL__c = true`…)."""
    field = ident(criterion.field)
    if criterion.equals is None:
        return format_soql("{field:literal} != null", field=field)
    return format_soql("{field:literal} = {value}", field=field, value=criterion.equals)


def meets(record: dict[str, Any], criterion: MqlCriterion) -> bool:
    """Whether a record (as sent in an Outbound Message) holds the criterion; True when it lacks
    the field, since the org's own rule decided to send it."""
    if criterion.field not in record:
        return True
    value = record[criterion.field]
    if criterion.equals is None:
        return value not in (None, "")
    if isinstance(criterion.equals, bool):
        return str(value).lower() == str(criterion.equals).lower()
    return str(value) == criterion.equals


def parse_datetime(value: Any) -> datetime | None:
    """A Salesforce datetime (`2026-11-23T15:00:00.000+0000`) as an aware datetime; None if absent."""
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    elif len(text) > 5 and text[-5] in "+-" and text[-4:].isdigit():
        text = f"{text[:-2]}:{text[-2:]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    """A Salesforce date (`2026-11-23`); None if absent or unreadable."""
    if not value or not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    """`items` in consecutive slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
