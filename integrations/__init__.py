"""CRM adapters; `build_crm` is the one place that reads which CRM is configured."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from bot.core.crm import CRM
from bot.core.playbook import Playbook
from bot.core.settings import Settings


class CrmNotConfigured(Exception):
    """The chosen CRM cannot be built from the settings; the message says what to set."""


def crm_name(settings: Settings, playbook: Playbook) -> str:
    """`REVBOT_CRM` when set, else the playbook's `crm`."""
    return settings.crm or playbook.crm


def build_crm(
    settings: Settings, playbook: Playbook, engine: Engine, clock: Callable[[], datetime]
) -> CRM:
    """The CRM adapter the settings and playbook select."""
    name = crm_name(settings, playbook)
    if name == "local":
        from integrations.local import LocalCRM

        return LocalCRM(engine, clock)
    if name == "hubspot":
        from integrations.hubspot import build_hubspot

        if settings.hubspot_access_token is None:
            raise CrmNotConfigured(
                "REVBOT_CRM=hubspot needs HUBSPOT_ACCESS_TOKEN: create a private app in HubSpot"
                " (Settings > Integrations > Private Apps) and set its access token."
            )
        return build_hubspot(
            settings.hubspot_access_token.get_secret_value(),
            settings.hubspot_api_url,
            playbook.field_map("hubspot"),
            clock,
            portal_id=settings.hubspot_portal_id,
        )
    if name == "salesforce":
        from integrations.salesforce import (
            SalesforceCRM,
            SalesforceNotConfigured,
            config_from_settings,
        )

        try:
            config = config_from_settings(settings)
        except SalesforceNotConfigured as exc:
            raise CrmNotConfigured(f"REVBOT_CRM=salesforce: {exc}") from exc
        return SalesforceCRM(config, playbook, clock)
    raise CrmNotConfigured(
        f"REVBOT_CRM={name} is not available in this version of revbot; use `local`."
    )
