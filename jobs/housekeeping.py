"""Housekeeping: drop delivered outbox rows after a week (dead letters stay for inspection)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.core import outbox
from bot.core.db import transaction
from bot.services import Services

KEEP_DELIVERED = timedelta(days=7)


def run(services: Services, *, now: datetime) -> int:
    """Delete outbox rows delivered more than a week ago; returns how many."""
    with transaction(services.engine) as session:
        return outbox.purge_done(session, before=now - KEEP_DELIVERED)
