"""The sandbox's sample team and sample MQLs: a realistic mix of hot, warm and nurture leads."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from importlib import resources
from typing import Any

from sqlmodel import Session

from bot.core.models import LocalDeal
from bot.core.playbook import Playbook, parse_playbook
from bot.core.sql import insert_ignore
from bot.sandbox.workspace import User

SAMPLE_PLAYBOOK = "sample_playbook.yml"
SAMPLE_NAMES = {
    "U0SBREP1": ("Ana Diaz", "Account Executive"),
    "U0SBREP2": ("Ben Okafor", "Sales Development Rep"),
    "U0SBREP3": ("Chloe Martin", "Account Executive, EMEA"),
    "U0SBMGR1": ("Maya Patel", "Sales Manager"),
}
MARKETER = User("U0SBMKT1", "Marco Rossi", "marketer", "Marketing Operations")

_batches = itertools.count(1)

_PEOPLE: list[dict[str, Any]] = [
    {
        "first_name": "Priya",
        "last_name": "Shah",
        "title": "VP Revenue Operations",
        "company": "Northwind Health",
        "industry": "Healthcare",
        "employees": 1800,
        "country": "US",
        "lead_source": "Demo request",
        "campaign": "Website",
        "signals": ["demo_request", "pricing_page"],
        "content": ["ROI calculator"],
    },
    {
        "first_name": "Lukas",
        "last_name": "Becker",
        "title": "Head of Sales",
        "company": "Brightline GmbH",
        "industry": "Manufacturing",
        "employees": 640,
        "country": "DE",
        "lead_source": "Contact sales",
        "campaign": "Pricing page",
        "signals": ["contact_sales"],
        "content": ["Buyer's guide"],
    },
    {
        "first_name": "Grace",
        "last_name": "Okoro",
        "title": "Director of Marketing",
        "company": "Tidewater Labs",
        "industry": "Software",
        "employees": 320,
        "country": "US",
        "lead_source": "Free trial",
        "campaign": "Trial signup",
        "signals": ["free_trial", "pricing_page"],
        "content": [],
    },
    {
        "first_name": "Sam",
        "last_name": "Lee",
        "title": "Sales Manager",
        "company": "Cobalt Freight",
        "industry": "Logistics",
        "employees": 150,
        "country": "CA",
        "lead_source": "Webinar",
        "campaign": "2026 Planning Kit",
        "signals": ["webinar", "pricing_page"],
        "content": ["Planning kit"],
    },
    {
        "first_name": "Elena",
        "last_name": "García",
        "title": "COO",
        "company": "Solaria Energía",
        "industry": "Energy",
        "employees": 90,
        "country": "ES",
        "lead_source": "Content download",
        "campaign": "Benchmark report",
        "signals": [],
        "content": ["Benchmark report", "Case study"],
    },
    {
        "first_name": "Tom",
        "last_name": "Nguyen",
        "title": "Operations Analyst",
        "company": "Pinecrest Retail",
        "industry": "Retail",
        "employees": 45,
        "country": "US",
        "lead_source": "Webinar",
        "campaign": "2026 Planning Kit",
        "signals": ["webinar"],
        "content": [],
    },
]


_DEALS: list[dict[str, Any]] = [
    {
        "id": "SB-OPP-1",
        "name": "Northwind Health - Platform expansion",
        "account": "Northwind Health",
        "stage": "Negotiation",
        "amount": 150_000,
        "currency": "USD",
        "close_date": date(2026, 12, 18),
        "owner": "Ana Diaz",
        "next_step": "Security review with their CISO",
    },
    {
        "id": "SB-OPP-2",
        "name": "Brightline GmbH - New business",
        "account": "Brightline GmbH",
        "stage": "Proposal",
        "amount": 48_000,
        "currency": "EUR",
        "close_date": date(2027, 1, 29),
        "owner": "Chloe Martin",
        "next_step": "Competitive bake-off",
    },
    {
        "id": "SB-OPP-3",
        "name": "Tidewater Labs - Renewal",
        "account": "Tidewater Labs",
        "stage": "Discovery",
        "amount": 22_500,
        "currency": "USD",
        "close_date": date(2027, 2, 26),
        "owner": "Ben Okafor",
    },
]


def seed_deals(session: Session) -> None:
    """The sample opportunities the `local` CRM holds, so #deal-support can search them."""
    for deal in _DEALS:
        insert_ignore(session, LocalDeal, {"next_step": None, **deal})


def sample_playbook() -> Playbook:
    """The built-in sample team's playbook."""
    text = resources.files("bot.sandbox").joinpath(SAMPLE_PLAYBOOK).read_text(encoding="utf-8")
    return parse_playbook(text, "sandbox playbook")


def sandbox_users(playbook: Playbook) -> list[User]:
    """Everyone the page can act as: the playbook's reps and managers, plus a marketer."""
    users: dict[str, User] = {}
    for pool in playbook.routing.pools.values():
        for member in pool.members:
            name, title = SAMPLE_NAMES.get(
                member.slack_id, (member.name or member.slack_id, "Sales")
            )
            users.setdefault(
                member.slack_id, User(member.slack_id, member.name or name, "rep", title)
            )
        if pool.manager:
            name, title = SAMPLE_NAMES.get(pool.manager, (pool.manager, "Sales Manager"))
            users[pool.manager] = User(pool.manager, name, "manager", title)
    if not users:
        users["U0SBREP1"] = User("U0SBREP1", "Ana Diaz", "rep", "Account Executive")
    users[MARKETER.id] = MARKETER
    return list(users.values())


def sample_mqls(now: datetime) -> list[dict[str, Any]]:
    """One batch: a hot, warm and nurture mix, a duplicate, and a small webinar flood."""
    batch = next(_batches)
    leads: list[dict[str, Any]] = []
    for index, person in enumerate(_PEOPLE):
        email = (
            f"{person['first_name'].lower()}.{batch}@{person['company'].split()[0].lower()}.example"
        )
        leads.append(
            {
                **person,
                "external_id": f"SB-{batch}-{index + 1}",
                "source": "sandbox",
                "email": email,
                "mql_at": (now - timedelta(minutes=index)).isoformat(),
            }
        )
    leads.append(dict(leads[0]))  # the same MQL delivered twice: revbot must card it once
    for n in range(1, 9):
        leads.append(
            {
                "external_id": f"SB-{batch}-W{n}",
                "source": "sandbox",
                "first_name": f"Attendee {n}",
                "last_name": "Webinar",
                "company": f"Webinar Co {batch}-{n}",
                "title": "Analyst",
                "employees": 20 + n,
                "country": "US",
                "lead_source": "Webinar",
                "campaign": "2026 Planning Kit",
                "signals": ["webinar"],
                "mql_at": (now - timedelta(seconds=n)).isoformat(),
            }
        )
    return leads
