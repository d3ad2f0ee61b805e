"""Housekeeping: drop delivered outbox rows after a week (dead letters stay for inspection) and
job-run records after a month (the scheduler looks back eight days at most)."""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.core import outbox
from bot.core.db import transaction
from bot.core.jobruns import purge_runs
from bot.services import Services

KEEP_DELIVERED = timedelta(days=7)
KEEP_JOB_RUNS = timedelta(days=30)


def run(services: Services, *, now: datetime) -> int:
    """Delete outbox rows delivered over a week ago and job runs over a month old; returns how many."""
    with transaction(services.engine) as session:
        purged = outbox.purge_done(session, before=now - KEEP_DELIVERED)
        return purged + purge_runs(session, before=now - KEEP_JOB_RUNS)
