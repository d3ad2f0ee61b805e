"""Wires the periodic jobs to APScheduler triggers; the jobs themselves are plain functions."""

from __future__ import annotations

import logging

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.services import Services
from jobs import housekeeping

log = logging.getLogger(__name__)


def build_scheduler(services: Services) -> BackgroundScheduler:
    """A scheduler with revbot's periodic jobs (not started)."""
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
    )
    scheduler.add_job(
        lambda: housekeeping.run(services, now=services.clock()),
        IntervalTrigger(hours=1),
        id="outbox_housekeeping",
        name="purge delivered outbox rows",
    )
    return scheduler
