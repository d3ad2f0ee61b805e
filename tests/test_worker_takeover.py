"""Two real `revbot worker` processes on one PostgreSQL database: one leads, and when it is killed
with SIGKILL the other takes over the scheduled jobs within 30 seconds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.core.models import JobRun
from tests.processes import RevbotProcess, revbot_env

pytestmark = pytest.mark.slow

LEADING = "this worker now runs the scheduled jobs"
TAKEOVER_BAR_SECONDS = 30


def _leader_of(workers: list[RevbotProcess], timeout: float = 30) -> RevbotProcess:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        leading = [w for w in workers if LEADING in w.log.read_text()]
        if leading:
            assert len(leading) == 1, "two workers claimed leadership at once"
            return leading[0]
        time.sleep(0.1)
    raise AssertionError("no worker took the lead")


def test_the_other_worker_takes_over_within_30_seconds_of_a_kill(
    engine: Any, database_url: str, tmp_path: Path, fake_slack: Any
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite runs one worker only (a second is refused)")
    env = revbot_env(tmp_path, slack_url=fake_slack.url, database_url=database_url)
    workers = [RevbotProcess({**env, "PORT": str(i + 1)}, tmp_path, "worker") for i in range(2)]
    try:
        for w in workers:
            w.wait_log("worker running")
        leader = _leader_of(workers)
        other = next(w for w in workers if w is not leader)
        time.sleep(6)  # a full leadership check later, the other still waits
        assert LEADING not in other.log.read_text()

        leader.kill()
        killed_at = time.monotonic()
        other.wait_log(LEADING, timeout=TAKEOVER_BAR_SECONDS + 5)
        takeover = time.monotonic() - killed_at
        assert takeover < TAKEOVER_BAR_SECONDS, f"takeover took {takeover:.1f} s"

        # The new leader's scheduler is live: its first SLA sweep is recorded under its name.
        runner = f":{other.proc.pid}"
        deadline = time.monotonic() + 75
        while time.monotonic() < deadline:
            with Session(engine) as session:
                runs = session.exec(select(JobRun).where(col(JobRun.job) == "sla_sweep")).all()
            if any(r.runner.endswith(runner) for r in runs):
                break
            time.sleep(1)
        else:
            raise AssertionError("the new leader never ran the SLA sweep")
        slots = [r.scheduled_for for r in runs]
        assert len(slots) == len(set(slots))
    finally:
        for w in workers:
            if w.proc.poll() is None:
                w.stop()
