"""#deal-support SLA: nudge marketing, escalate to its manager, nudge owners of overdue requests."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.core import deal_support_sla
from bot.services import Services

log = logging.getLogger(__name__)


def run(services: Services, *, now: datetime) -> int:
    """Take every deal-support SLA step due now (each exactly once); returns how many were taken."""
    taken = deal_support_sla.sweep(services.engine, services.playbook, now=now)
    total = sum(taken.values())
    if total:
        log.info("deal-support SLA: %s", ", ".join(f"{n} {k}" for k, n in sorted(taken.items())))
        services.notify()
    return total
