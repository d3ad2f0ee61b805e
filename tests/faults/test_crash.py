"""kill -9 at random moments while 1,000 leads flow: after the last restart every lead is shown in
the channel (as a card, or listed in a flood thread), every disposition is written, and a lead
is shown twice at most once per 1,000."""

from __future__ import annotations

import random
import re
import threading
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

from bot.core import db, handoff
from bot.core.models import Lead, LocalCrmRecord, MqlCycle, OutboxMessage
from bot.delivery.slack import CARD_EVENT
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, TEST_PLAYBOOK, lead_json, team_playbook
from tests.fakes.slack_api import FakeSlack
from tests.faults.conftest import PIPELINE, cards_per_lead
from tests.processes import RevbotProcess, revbot_env

pytestmark = pytest.mark.slow

LEADS = 1000
BATCH = 20
FEED_SECONDS = 20.0
KILLS = 4
DISPOSE_EVERY = 10  # one lead in ten is accepted while the flow runs
NAME = re.compile(r"Crash(\d{4})")
UNFINISHED = ("pending", "in_flight")


@pytest.fixture
def realtime_slack() -> Iterator[FakeSlack]:
    """A fake Slack on wall-clock time, for real processes."""
    with FakeSlack(bot_token=BOT_TOKEN, clock=time.time) as fake:
        yield fake


def _lead(n: int) -> dict[str, Any]:
    return lead_json(
        f"CR-{n:04d}",
        first_name="Lead",
        last_name=f"Crash{n:04d}",
        company=f"Company {n}",
        email=f"lead{n}@crash.example",
        score=40 + n % 55,
    )


class Feeder(threading.Thread):
    """Posts the leads to intake in batches at a steady pace, retrying a batch until it is taken
    (intake is idempotent on external_id, so a batch the dying process half-took is harmless)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.retries = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pause = FEED_SECONDS / (LEADS / BATCH)
            for start in range(0, LEADS, BATCH):
                body = {"leads": [_lead(n) for n in range(start, start + BATCH)]}
                while not self._post(body):
                    self.retries += 1
                    time.sleep(0.2)
                time.sleep(pause)
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def _post(self, body: dict[str, Any]) -> bool:
        try:
            response = requests.post(
                f"{self.url}/intake/leads",
                json=body,
                headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
                timeout=10,
            )
        except requests.RequestException:
            return False
        return response.status_code in (200, 202)


class Disposer(threading.Thread):
    """Accepts one lead in ten (as UREP1, through the handoff core) once it is stored."""

    def __init__(self, engine: Engine, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.engine = engine
        self.stop_event = stop
        self.wanted = {f"CR-{n:04d}" for n in range(0, LEADS, DISPOSE_EVERY)}
        self.accepted: set[str] = set()
        self.error: BaseException | None = None

    def run(self) -> None:
        playbook = team_playbook()
        try:
            while self.wanted - self.accepted and not self.stop_event.is_set():
                with Session(self.engine) as session:
                    stored = session.exec(
                        select(Lead.external_id, MqlCycle.id)
                        .join(MqlCycle, col(MqlCycle.lead_id) == col(Lead.id))
                        .where(col(Lead.external_id).in_(self.wanted - self.accepted))
                    ).all()
                for external_id, cycle_id in stored:
                    assert cycle_id is not None
                    with db.transaction(self.engine) as session:
                        handoff.accept(
                            session, cycle_id, "UREP1", playbook=playbook, now=datetime.now(UTC)
                        )
                    self.accepted.add(external_id)
                time.sleep(0.3)
        except BaseException as exc:  # reported by the test thread
            self.error = exc


def _unfinished(engine: Engine) -> int:
    with Session(engine) as session:
        return len(
            session.exec(
                select(OutboxMessage.id).where(col(OutboxMessage.state).in_(UNFINISHED))
            ).all()
        )


def _listed(fake: FakeSlack) -> Counter[str]:
    """How often each lead (by external id) is listed in the channel's flood threads."""
    listed: Counter[str] = Counter()
    for message in fake.messages(PIPELINE):
        if (message.get("metadata") or {}).get("event_type") == CARD_EVENT:
            continue  # a card: counted by its metadata instead
        listed.update(f"CR-{m}" for m in NAME.findall(str(message.get("blocks") or "")))
    return listed


def _crash_and_recover(
    tmp_path: Path, engine: Engine, database_url: str, fake: FakeSlack, *, separate: bool
) -> None:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(TEST_PLAYBOOK.replace("MODE", "claim"))
    env = revbot_env(
        tmp_path, slack_url=fake.url, database_url=database_url, REVBOT_PLAYBOOK=str(playbook)
    )
    web = RevbotProcess(env, tmp_path, "web") if separate else None
    worker_env = {**env, "PORT": "1"} if separate else env
    command = "worker" if separate else "run"

    def start_worker() -> RevbotProcess:
        proc = RevbotProcess(worker_env, tmp_path, command)
        proc.wait_log("worker started")
        return proc

    rng = random.Random(20261123)
    kill_at = sorted(rng.uniform(1.0, FEED_SECONDS) for _ in range(KILLS))
    worker = start_worker()
    front = web or worker
    front.wait_ready()
    stop = threading.Event()
    feeder = Feeder(front.url)
    disposer = Disposer(engine, stop)
    processes = [worker] + ([web] if web else [])
    began = time.monotonic()
    try:
        feeder.start()
        disposer.start()
        for moment in kill_at:
            time.sleep(max(0.0, moment - (time.monotonic() - began)))
            worker.kill()
            worker = start_worker()
            processes.append(worker)
            if not separate:
                worker.wait_ready()
        feeder.join(120)
        assert feeder.error is None, feeder.error
        assert not feeder.is_alive(), "intake never took every lead"
        disposer.join(60)
        assert disposer.error is None, disposer.error
        assert not disposer.is_alive(), "some leads were never stored to accept"
        deadline = time.monotonic() + 120
        while _unfinished(engine) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _unfinished(engine) == 0, "the outbox never drained after the last restart"
        time.sleep(1.5)  # room for a late duplicate to show
    finally:
        stop.set()
        for proc in processes:
            if proc.proc.poll() is None:
                proc.stop()

    listed, carded = _listed(fake), cards_per_lead(fake)
    with Session(engine) as session:
        lead_ids = dict(session.exec(select(Lead.id, Lead.external_id)).all())
        records = {lead_ids[r.lead_id]: r for r in session.exec(select(LocalCrmRecord)).all()}
        dead = session.exec(select(OutboxMessage).where(OutboxMessage.state == "dead")).all()
    shown = listed + Counter({lead_ids[i]: n for i, n in carded.items()})
    expected = {f"CR-{n:04d}" for n in range(LEADS)}
    assert len(lead_ids) == LEADS
    assert set(lead_ids.values()) == expected
    assert set(shown) == expected, f"never shown: {sorted(expected - set(shown))[:10]}"
    duplicates = sum(n - 1 for n in shown.values())
    accepted = {f"CR-{n:04d}" for n in range(0, LEADS, DISPOSE_EVERY)}
    assert set(records) == accepted
    assert {r.owner for r in records.values()} == {"ana@example.com"}
    assert not dead, [(r.kind, r.last_error) for r in dead]
    print(
        f"\n{'web+worker' if separate else 'run'}: {KILLS} kills at "
        f"{', '.join(f'{t:.1f}' for t in kill_at)} s; {feeder.retries} intake retries; "
        f"{sum(carded.values())} cards, {sum(listed.values())} flood lines; "
        f"{duplicates} lead(s) shown twice per {LEADS}; {len(records)} dispositions written"
    )
    assert duplicates <= LEADS // 1000, f"{duplicates} duplicate(s) per {LEADS} leads"


def test_kill_9_revbot_run_while_1000_leads_flow_on_sqlite(
    tmp_path: Path, engine: Engine, database_url: str, realtime_slack: FakeSlack
) -> None:
    """SQLite: one `revbot run` (web and worker) killed four times and restarted."""
    if not database_url.startswith("sqlite"):
        pytest.skip("the single-process layout is the SQLite one")
    _crash_and_recover(tmp_path, engine, database_url, realtime_slack, separate=False)


def test_kill_9_the_worker_while_1000_leads_flow_on_postgresql(
    tmp_path: Path, engine: Engine, database_url: str, realtime_slack: FakeSlack
) -> None:
    """PostgreSQL: `revbot web` keeps taking leads while `revbot worker` is killed four times."""
    if not database_url.startswith("postgresql"):
        pytest.skip("separate web and worker processes need PostgreSQL")
    _crash_and_recover(tmp_path, engine, database_url, realtime_slack, separate=True)
