"""The documented PostgreSQL layout under load: two `revbot web` and two `revbot worker`
processes on one database. Killing the leading worker hands the scheduled jobs to the other
within 30 seconds, no job slot runs twice, and the SLA sweep nudges each lead exactly once."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.models import JobRun, MqlCycle, SlaEvent
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, lead_json
from tests.fakes.slack_api import FakeSlack
from tests.faults.conftest import cards_per_lead
from tests.processes import RevbotProcess, revbot_env

pytestmark = pytest.mark.slow

LEADING = "this worker now runs the scheduled jobs"
TAKEOVER_BAR_SECONDS = 30
WAVE = 30  # leads per wave: one before the kill, one after
REPS = ("UREP1", "UREP2")
NUDGE = re.compile(r"Reminder:.*?(Nudge\d{3})")
SWEEP_NUDGES = re.compile(r"SLA sweep: .*?(\d+) nudge")
# Assign mode, a wall-clock SLA of 20 minutes, nudged from the start: every lead is nudged at
# the first sweep after it arrives (sweeps run once a minute) and never breaches during the test.
PLAYBOOK = """
channels: {pipeline: "#revenue-pipeline", alerts: "#revops-alerts"}
tiers:
  - {name: hot, min_score: 90, accept_within: 20m, clock: wall, nudge_before: 20m}
  - {name: warm, min_score: 0, accept_within: 20m, clock: wall, nudge_before: 20m}
reasons:
  reject: [{code: not_icp, label: Not our ICP}]
  recycle: [{code: timing, label: Timing}]
routing:
  mode: assign
  default_pool: sales
  pools:
    sales:
      manager: UMGR1
      members: [{slack_id: UREP1, name: Ana}, {slack_id: UREP2, name: Ben}]
"""


@pytest.fixture
def paced_slack() -> Iterator[FakeSlack]:
    """A fake Slack on wall-clock time that enforces ~1 post/s per channel (429 beyond)."""
    with FakeSlack(bot_token=BOT_TOKEN, clock=time.time, rate_limit=True) as fake:
        yield fake


def _feed(webs: list[RevbotProcess], first: int, count: int) -> None:
    """Post leads one by one, alternating between the web processes."""
    for n in range(first, first + count):
        web = webs[n % len(webs)]
        body = lead_json(f"NU-{n:03d}", last_name=f"Nudge{n:03d}", first_name="Lead", score=60)
        response = requests.post(
            f"{web.url}/intake/leads",
            json=body,
            headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
            timeout=10,
        )
        assert response.status_code in (200, 202), response.text


def _nudged(engine: Engine) -> Counter[int]:
    with Session(engine) as session:
        return Counter(
            session.exec(select(SlaEvent.cycle_id).where(SlaEvent.kind == "nudge")).all()
        )


def _nudge_dms(fake: FakeSlack) -> Counter[str]:
    """Nudge DMs per lead name, as the reps' DM channels show them."""
    found: Counter[str] = Counter()
    for rep in REPS:
        for message in fake.messages(rep):
            match = NUDGE.search(message.get("text", ""))
            if match:
                found[match.group(1)] += 1
    return found


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_two_web_and_two_worker_processes_share_one_database_and_survive_a_leader_kill(
    engine: Engine, database_url: str, tmp_path: Path, paced_slack: FakeSlack
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("several processes on one database need PostgreSQL")
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(PLAYBOOK)
    env = revbot_env(
        tmp_path,
        slack_url=paced_slack.url,
        database_url=database_url,
        REVBOT_PLAYBOOK=str(playbook),
    )
    webs = [RevbotProcess(revbot_env(tmp_path, **_keep(env)), tmp_path, "web") for _ in range(2)]
    workers = [RevbotProcess({**env, "PORT": str(i + 1)}, tmp_path, "worker") for i in range(2)]
    try:
        for web in webs:
            web.wait_ready()
        for worker in workers:
            worker.wait_log("worker started")
        _wait(lambda: any(LEADING in w.log.read_text() for w in workers), 30, "a leader")
        leader, other = sorted(workers, key=lambda w: LEADING not in w.log.read_text())
        assert LEADING not in other.log.read_text()

        _feed(webs, 0, WAVE)
        _wait(lambda: len(_nudged(engine)) >= WAVE, 90, "the leader's sweep to nudge wave 1")
        leader.kill()
        killed_at = time.monotonic()
        killed_wall = datetime.now(UTC)
        _feed(webs, WAVE, WAVE)
        other.wait_log(LEADING, timeout=TAKEOVER_BAR_SECONDS + 5)
        takeover = time.monotonic() - killed_at
        _wait(lambda: len(_nudged(engine)) >= 2 * WAVE, 100, "the new leader to nudge wave 2")
        _wait(lambda: len(_nudge_dms(paced_slack)) >= 2 * WAVE, 60, "every nudge DM")
        time.sleep(2)  # room for a second nudge to show up
    finally:
        for proc in [*webs, *workers]:
            if proc.proc.poll() is None:
                proc.stop()

    with Session(engine) as session:
        runs = session.exec(select(JobRun).where(col(JobRun.job) == "sla_sweep")).all()
        cycles = session.exec(select(MqlCycle)).all()
    dms = _nudge_dms(paced_slack)
    leader_runner, other_runner = f":{leader.proc.pid}", f":{other.proc.pid}"
    by_leader = [r for r in runs if r.runner.endswith(leader_runner)]
    by_other = [r for r in runs if r.runner.endswith(other_runner)]
    logged_nudges = sum(int(n) for w in workers for n in SWEEP_NUDGES.findall(w.log.read_text()))
    cards = cards_per_lead(paced_slack)
    print(
        f"\ntakeover {takeover:.1f} s; sla_sweep slots: {len(by_leader)} by the first leader, "
        f"{len(by_other)} by the second; nudge DMs per lead: {sorted(set(dms.values()))}; "
        f"Slack 429s provoked: {paced_slack.rate_limited_count}"
    )
    assert takeover < TAKEOVER_BAR_SECONDS, f"takeover took {takeover:.1f} s"
    assert len(cycles) == 2 * WAVE
    assert set(cards.values()) == {1}
    assert len(cards) == 2 * WAVE  # intake on both web processes, one card per lead
    assert by_leader
    assert by_other
    assert len(by_leader) + len(by_other) == len(runs)
    assert all(r.scheduled_for < killed_wall for r in by_leader)
    assert len({r.scheduled_for for r in runs}) == len(runs)
    assert set(_nudged(engine).values()) == {1}
    assert logged_nudges == 2 * WAVE, "a sweep step was taken twice (or not at all)"
    assert dms == Counter({f"Nudge{n:03d}": 1 for n in range(2 * WAVE)})


def _keep(env: dict[str, str]) -> dict[str, str]:
    """The settings of `env` a second process shares (a fresh PORT is picked for each)."""
    return {k: v for k, v in env.items() if k.startswith(("SLACK_", "REVBOT_", "DATABASE_URL"))}
