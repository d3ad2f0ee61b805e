"""HubSpot property values as revbot reads them: times, numbers, and contacts as intake leads."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

from bot.core.playbook import MqlCriterion

# Contact properties read for a lead card, and the intake key each one fills.
CONTACT_FIELDS: dict[str, str] = {
    "email": "email",
    "phone": "phone",
    "firstname": "first_name",
    "lastname": "last_name",
    "company": "company",
    "jobtitle": "title",
    "country": "country",
    "industry": "industry",
    "hs_analytics_source": "lead_source",
    "hs_analytics_first_touch_converting_campaign": "campaign",
}
CONTEXT_PROPERTIES = ("lifecyclestage", "hs_lead_status", "city", "state", "website")
SCORE_PROPERTY = "hubspotscore"
EMPLOYEES_PROPERTY = "numemployees"
_LEADING_NUMBER = re.compile(r"^\s*(\d[\d,]*)")


def contact_properties(mql: MqlCriterion) -> list[str]:
    """Every contact property an intake read asks for."""
    names = [*CONTACT_FIELDS, *CONTEXT_PROPERTIES, SCORE_PROPERTY, EMPLOYEES_PROPERTY, mql.field]
    if mql.date_field:
        names.append(mql.date_field)
    return list(dict.fromkeys(names))


def criterion_value(mql: MqlCriterion) -> str | None:
    """The MQL criterion's value as HubSpot stores it (booleans as "true" / "false")."""
    if mql.equals is None:
        return None
    if isinstance(mql.equals, bool):
        return "true" if mql.equals else "false"
    return mql.equals


def is_mql(properties: dict[str, Any], mql: MqlCriterion) -> bool:
    """True when a record's properties meet the MQL criterion."""
    value = properties.get(mql.field)
    expected = criterion_value(mql)
    if expected is None:
        return value not in (None, "")
    return value is not None and str(value) == expected


def parse_time(value: Any) -> datetime | None:
    """A HubSpot datetime value (ISO 8601 or epoch milliseconds) as aware UTC, else None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_date(value: Any) -> date | None:
    """A HubSpot date value (YYYY-MM-DD, ISO datetime or epoch ms) as a date, else None."""
    moment = parse_time(value)
    return moment.date() if moment else None


def epoch_ms(moment: datetime) -> int:
    """A datetime as HubSpot's epoch milliseconds."""
    return int(moment.timestamp() * 1000)


def parse_number(value: Any) -> float | None:
    """A HubSpot number property as a float, else None."""
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def employees(value: Any) -> int | None:
    """`numemployees` as a head count: a plain number, or the lower end of a band like "25-50"."""
    match = _LEADING_NUMBER.match(str(value or ""))
    return int(match.group(1).replace(",", "")) if match else None


def score(value: Any) -> int | None:
    """`hubspotscore` clamped to revbot's 0-100 scale."""
    number = parse_number(value)
    return None if number is None else max(0, min(100, round(number)))


def contact_lead(record_id: str, properties: dict[str, Any], mql: MqlCriterion) -> dict[str, Any]:
    """A contact as an intake-shaped lead dict (fields HubSpot left empty are omitted)."""
    lead: dict[str, Any] = {
        "external_id": record_id,
        "source": "hubspot",
        "crm_record_id": record_id,
    }
    for prop, key in CONTACT_FIELDS.items():
        value = properties.get(prop)
        if value not in (None, ""):
            lead[key] = str(value)
    for prop in CONTEXT_PROPERTIES:
        value = properties.get(prop)
        if value not in (None, "") and prop not in lead:
            lead[prop] = str(value)
    if (count := employees(properties.get(EMPLOYEES_PROPERTY))) is not None:
        lead["employees"] = count
    if (points := score(properties.get(SCORE_PROPERTY))) is not None:
        lead["score"] = points
    mql_at = parse_time(properties.get(mql.date_field)) if mql.date_field else None
    if mql_at is not None:
        lead["mql_at"] = mql_at
    return lead
