"""Helpers for tests against the fake Salesforce: settings, a wired adapter, seeded MQL leads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from bot.core.playbook import Playbook
from bot.core.settings import Settings
from integrations.salesforce import SalesforceCRM, config_from_settings
from tests.fakes.salesforce_api import FakeSalesforce


def salesforce_settings(fake: FakeSalesforce, mode: str = "password", **extra: Any) -> Settings:
    """Settings that point revbot's Salesforce adapter at the fake (plus any extra variables)."""
    return Settings(_env_file=None, **{**fake.env(mode), **extra})  # type: ignore[call-arg]


def salesforce_crm(
    fake: FakeSalesforce,
    playbook: Playbook,
    clock: Callable[[], datetime],
    mode: str = "password",
) -> SalesforceCRM:
    """The real adapter, logged in (lazily) against the fake."""
    return SalesforceCRM(config_from_settings(salesforce_settings(fake, mode)), playbook, clock)


def seed_mql(fake: FakeSalesforce, n: int = 1, **fields: Any) -> list[str]:
    """Seed `n` MQL Leads; returns their ids."""
    return [
        fake.seed(
            "Lead",
            **{
                "FirstName": "Lead",
                "LastName": f"Number{i}",
                "Company": f"Company {i}",
                "Email": f"lead{i}@example.org",
                "Status": "MQL",
                **fields,
            },
        )
        for i in range(n)
    ]
