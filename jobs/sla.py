"""SLA chasing: nudge, escalate, reassign and un-limbo open leads whose time has come."""

from __future__ import annotations

import logging
from datetime import datetime

from bot.core import sla
from bot.services import Services
from bot.views.sla import build_sla_message

log = logging.getLogger(__name__)


def run(services: Services, *, now: datetime) -> int:
    """Take every SLA step due now (each exactly once); returns how many were taken."""
    report = sla.sweep(services.engine, services.playbook, build_sla_message, now=now)
    if report.total:
        log.info("SLA sweep: %s", ", ".join(f"{n} {k}" for k, n in sorted(report.taken.items())))
        services.notify()
    return report.total
