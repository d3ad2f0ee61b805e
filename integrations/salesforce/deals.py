"""Opportunities as deals: search by name (user text only ever inside a quoted LIKE pattern), get by id."""

from __future__ import annotations

from typing import Any

from simple_salesforce import format_soql

from bot.core.crm import Deal
from integrations.salesforce.session import SalesforceSession
from integrations.salesforce.soql import is_record_id, parse_date

DEAL_FIELDS = (
    "Id, Name, StageName, Amount, CloseDate, NextStep, IsClosed, IsWon, Owner.Name, Account.Name"
)
MAX_LIMIT = 50


def search(
    session: SalesforceSession, text: str, *, limit: int, multi_currency: bool
) -> list[Deal]:
    """Opportunities whose name contains `text`, open first, then the most recently closing."""
    text = text.strip()
    if not text:
        return []
    soql = format_soql(
        "SELECT {fields:literal} FROM Opportunity WHERE Name LIKE '%{text:like}%' "
        "ORDER BY IsClosed, CloseDate DESC NULLS LAST, Name LIMIT {limit}",
        fields=_fields(multi_currency),
        text=text,
        limit=max(1, min(limit, MAX_LIMIT)),
    )
    base = session.instance_url
    return [deal(row, base) for row in session.query(soql)]


def get(session: SalesforceSession, deal_id: str, *, multi_currency: bool) -> Deal | None:
    """One opportunity by id (None for a malformed id, without calling Salesforce)."""
    if not is_record_id(deal_id):
        return None
    soql = format_soql(
        "SELECT {fields:literal} FROM Opportunity WHERE Id = {id} LIMIT 1",
        fields=_fields(multi_currency),
        id=deal_id,
    )
    rows = session.query(soql)
    return deal(rows[0], session.instance_url) if rows else None


def _fields(multi_currency: bool) -> str:
    return DEAL_FIELDS + (", CurrencyIsoCode" if multi_currency else "")


def deal(row: dict[str, Any], base_url: str | None) -> Deal:
    """An Opportunity row as a Deal."""
    owner = row.get("Owner") or {}
    account = row.get("Account") or {}
    return Deal(
        id=str(row["Id"]),
        name=str(row.get("Name") or ""),
        stage=row.get("StageName"),
        amount=float(row["Amount"]) if row.get("Amount") is not None else None,
        currency=row.get("CurrencyIsoCode"),
        close_date=parse_date(row.get("CloseDate")),
        owner=owner.get("Name"),
        next_step=row.get("NextStep"),
        account=account.get("Name"),
        url=f"{base_url}/lightning/r/Opportunity/{row['Id']}/view" if base_url else None,
        is_closed=bool(row.get("IsClosed")),
        is_won=bool(row.get("IsWon")),
    )
