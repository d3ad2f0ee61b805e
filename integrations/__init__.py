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
    raise CrmNotConfigured(
        f"REVBOT_CRM={name} is not available in this version of revbot; use `local`."
    )
