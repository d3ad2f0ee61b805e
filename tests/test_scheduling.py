"""Scheduled jobs run once per slot across workers; one leader on PostgreSQL; one worker on SQLite."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apscheduler.triggers.cron import CronTrigger
from sqlmodel import Session, select

from bot.core import db
from bot.core.intake import LeadIn, ingest
from bot.core.jobruns import slot
from bot.core.leadership import PostgresLeader, SecondWorkerError, SqliteWorkerLock
from bot.core.models import JobRun, OutboxMessage, SlaEvent
from jobs import housekeeping
from jobs.scheduler import default_jobs, last_fire_time, on_cron, run_once
from tests.conftest import FrozenClock, lead_json, make_services, team_playbook
from tests.processes import RevbotProcess, revbot_env


def test_slots_are_aligned_periods() -> None:
    moment = datetime(2026, 11, 23, 15, 7, 42, tzinfo=UTC)
    assert slot(moment, timedelta(minutes=1)) == datetime(2026, 11, 23, 15, 7, tzinfo=UTC)
    assert slot(moment, timedelta(hours=1)) == datetime(2026, 11, 23, 15, 0, tzinfo=UTC)


def test_last_fire_time_of_a_weekly_cron_in_the_team_timezone() -> None:
    trigger = CronTrigger.from_crontab("0 9 * * mon", timezone="America/New_York")
    tuesday = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert last_fire_time(trigger, tuesday) == datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    just_before = datetime(2026, 11, 23, 13, 59, tzinfo=UTC)
    assert last_fire_time(trigger, just_before) == datetime(2026, 11, 16, 14, 0, tzinfo=UTC)


def test_a_slot_runs_once_even_with_racing_workers(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = make_services(engine, database_url, None, clock=clock)
    calls: list[datetime] = []
    results: list[bool] = []

    def job(_: Any, *, now: datetime) -> None:
        calls.append(now)

    scheduled = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    threads = [
        threading.Thread(target=lambda: results.append(run_once(services, "sweep", scheduled, job)))
        for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert sorted(results) == [False] * 5 + [True]
    with Session(engine) as session:
        [run] = session.exec(select(JobRun)).all()
    assert run.finished_at is not None


def test_a_missed_cron_run_is_caught_up_once(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = make_services(engine, database_url, None, clock=clock)
    ran: list[datetime] = []
    tick = on_cron(
        services,
        "digest",
        CronTrigger.from_crontab("0 9 * * mon", timezone="America/New_York"),
        lambda _, *, now: ran.append(now),
    )
    clock.now = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # two and a half hours late
    tick()
    tick()
    clock.advance(days=1)
    tick()
    assert ran == [datetime(2026, 11, 23, 16, 30, tzinfo=UTC)]
    clock.now = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    tick()
    assert len(ran) == 2


def test_sqlite_refuses_a_second_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'revbot.db'}"
    first, second = SqliteWorkerLock(url), SqliteWorkerLock(url)
    first.acquire()
    with pytest.raises(SecondWorkerError, match="SQLite supports one worker"):
        second.acquire()
    first.release()
    second.acquire()
    second.release()


def test_a_second_worker_process_on_sqlite_exits_with_a_clear_message(
    tmp_path: Path, fake_slack: Any
) -> None:
    env = revbot_env(tmp_path, slack_url=fake_slack.url)
    first = RevbotProcess({**env, "PORT": "1"}, tmp_path, "worker")
    try:
        first.wait_log("worker running")
        second = RevbotProcess({**env, "PORT": "2"}, tmp_path, "worker")
        assert second.proc.wait(30) == 2
        second.stop()
        assert "another revbot worker is already running" in second.log.read_text()
    finally:
        first.stop()


def test_postgres_leadership_moves_when_the_leader_goes(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's")
    from bot.core.db import make_engine

    engine_a, engine_b = make_engine(database_url), make_engine(database_url)
    a, b = PostgresLeader(engine_a), PostgresLeader(engine_b)
    try:
        assert a.try_lead() is True
        assert b.try_lead() is False
        assert a.try_lead() is True  # still held
        a.resign()
        deadline = time.monotonic() + 5
        while not b.try_lead():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert b.is_leader
    finally:
        a.resign()
        b.resign()
        engine_a.dispose()
        engine_b.dispose()


def test_the_scheduled_sla_sweep_chases_leads_once_per_slot(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = make_services(
        engine, database_url, None, clock=clock, playbook=team_playbook("assign")
    )
    with db.transaction(engine) as session:
        ingest(session, LeadIn.model_validate(lead_json()), playbook=services.playbook, now=clock())
    tick = dict((name, job) for name, _, job in default_jobs(services))["sla_sweep"]
    clock.advance(minutes=11)  # a hot lead (15 minutes) is nudged in its last third
    tick()
    tick()
    with Session(engine) as session:
        kinds = [e.kind for e in session.exec(select(SlaEvent)).all()]
        runs = session.exec(select(JobRun).where(JobRun.job == "sla_sweep")).all()
    assert kinds == ["nudge"]
    assert len(runs) == 1


def test_the_weekly_digest_is_queued_once_for_its_cron_time(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = make_services(
        engine, database_url, None, clock=clock, playbook=team_playbook("assign")
    )
    tick = dict((name, job) for name, _, job in default_jobs(services))["weekly_digest"]
    clock.now = datetime(
        2026, 11, 23, 14, 3, tzinfo=UTC
    )  # Monday 09:03 in New York, just after the cron
    tick()
    tick()
    with Session(engine) as session:
        digests = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == "slack.file")
        ).all()
    assert [d.payload["week"] for d in digests] == ["2026-W47"]


def test_housekeeping_forgets_job_runs_after_a_month_but_not_recent_ones(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services = make_services(engine, database_url, None, clock=clock)
    old, recent = clock() - timedelta(days=31), clock() - timedelta(days=9)
    for when in (old, recent):
        run_once(services, "weekly_digest_test", when, lambda services, now: None)

    housekeeping.run(services, now=clock())

    with Session(engine) as session:
        kept = [r.scheduled_for for r in session.exec(select(JobRun)).all()]
    assert kept == [recent]
    assert run_once(services, "weekly_digest_test", recent, lambda services, now: None) is False
