"""Wires the periodic jobs to APScheduler triggers; the jobs themselves are plain functions.

Every run is keyed (job, scheduled_for) in `job_runs`, so when leadership moves between workers a
run already taken is skipped, and a run missed while no worker led is caught up, never skipped.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.core.db import transaction
from bot.core.jobruns import claim_run, finish_run, slot
from bot.services import Services
from jobs import crm_intake, deal_support_sla, digest, housekeeping, outcomes, sla

log = logging.getLogger(__name__)

JobFunction = Callable[..., Any]
RUNNER = f"{socket.gethostname()}:{os.getpid()}"
CATCH_UP_WINDOW = timedelta(days=8)
SLA_SWEEP_EVERY = timedelta(minutes=1)
OUTCOME_SYNC_EVERY = timedelta(hours=1)


def last_fire_time(trigger: CronTrigger, now: datetime) -> datetime | None:
    """The latest time at or before `now` that a cron trigger fired (within the last eight days)."""
    moment = trigger.get_next_fire_time(None, now - CATCH_UP_WINDOW)
    last = None
    while moment is not None and moment <= now:
        last = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return last


def run_once(services: Services, name: str, scheduled_for: datetime, job: JobFunction) -> bool:
    """Run `job` for `scheduled_for` unless some worker already did; True when this one ran it."""
    now = services.clock()
    with transaction(services.engine) as session:
        if not claim_run(session, name, scheduled_for, runner=RUNNER, now=now):
            return False
    try:
        job(services, now=now)
    finally:
        with transaction(services.engine) as session:
            finish_run(session, name, scheduled_for, now=services.clock())
    return True


def every(services: Services, name: str, period: timedelta, job: JobFunction) -> Callable[[], None]:
    """A scheduler callable running `job` once per `period` slot."""

    def tick() -> None:
        run_once(services, name, slot(services.clock(), period), job)

    return tick


def on_cron(
    services: Services, name: str, trigger: CronTrigger, job: JobFunction
) -> Callable[[], None]:
    """A scheduler callable (checked often) running `job` once for each cron fire time, late or not."""

    def tick() -> None:
        due = last_fire_time(trigger, services.clock())
        if due is not None and run_once(services, name, due, job):
            log.info("ran %s for %s", name, due.isoformat())

    return tick


def build_scheduler(
    services: Services, jobs: list[tuple[str, IntervalTrigger, Callable[[], None]]] | None = None
) -> BackgroundScheduler:
    """A scheduler with revbot's periodic jobs (not started)."""
    scheduler = BackgroundScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
    )
    for name, trigger, tick in jobs if jobs is not None else default_jobs(services):
        scheduler.add_job(tick, trigger, id=name, name=name)
    return scheduler


def default_jobs(services: Services) -> list[tuple[str, IntervalTrigger, Callable[[], None]]]:
    """revbot's periodic jobs and how often each is checked."""
    playbook = services.playbook
    digest_cron = CronTrigger.from_crontab(playbook.digest.schedule, timezone=playbook.zone)
    return [*_core_jobs(services, digest_cron), *_crm_jobs(services)]


def _crm_jobs(services: Services) -> list[tuple[str, IntervalTrigger, Callable[[], None]]]:
    """Polling for MQLs and syncing outcomes, for a CRM that holds records of its own."""
    crm = services.crm
    if crm.name == "local":
        return []
    field_map = services.playbook.field_map(crm.name)
    jobs = [
        (
            "crm_outcomes",
            IntervalTrigger(minutes=10),
            every(services, "crm_outcomes", OUTCOME_SYNC_EVERY, outcomes.run),
        )
    ]
    if field_map.poll:
        period = field_map.poll_every
        jobs.append(
            (
                "crm_poll",
                IntervalTrigger(seconds=max(period.total_seconds() / 2, 1)),
                every(services, "crm_poll", period, crm_intake.poll),
            )
        )
    return jobs


def _core_jobs(
    services: Services, digest_cron: CronTrigger
) -> list[tuple[str, IntervalTrigger, Callable[[], None]]]:
    return [
        (
            "weekly_digest",
            IntervalTrigger(minutes=5),
            on_cron(services, "weekly_digest", digest_cron, digest.run),
        ),
        (
            "sla_sweep",
            IntervalTrigger(minutes=1),
            every(services, "sla_sweep", SLA_SWEEP_EVERY, sla.run),
        ),
        (
            "deal_support_sla",
            IntervalTrigger(minutes=1),
            every(services, "deal_support_sla", SLA_SWEEP_EVERY, deal_support_sla.run),
        ),
        (
            "outbox_housekeeping",
            IntervalTrigger(hours=1),
            every(services, "outbox_housekeeping", timedelta(hours=1), housekeeping.run),
        ),
    ]
