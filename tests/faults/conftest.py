"""Shared pieces of the fault-injection suite: fast pacing, table counts, card counts, posters."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, select
from sqlmodel import SQLModel

from bot.core.pacing import Budget, Pacer
from bot.core.playbook import Playbook, parse_playbook
from bot.delivery.slack import CARD_EVENT
from bot.services import Services
from jobs import outbox as outbox_job
from tests.conftest import (
    SIGNING_SECRET,
    TEST_PLAYBOOK,
    Live,
    make_services,
    start_live,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import form_body
from tests.fakes.slack_signing import signed_headers

PIPELINE = "C0PIPELINE"
RACERS = ("UREP1", "UREP2", "UREP4", "UREP5", "UREP6")


def fast_pacer() -> Pacer:
    """Budgets far above Slack's, for tests about correctness rather than pacing."""
    return Pacer(budget_for={}, default=Budget(rate=10_000.0, burst=10_000))


def five_rep_playbook(mode: str = "claim") -> Playbook:
    """The team playbook with five reps in the `sales` pool, so five people may race for a card."""
    members = "".join(f"        - {{slack_id: {rep}, name: Rep {rep}}}\n" for rep in RACERS)
    text = TEST_PLAYBOOK.replace("MODE", mode).replace(
        "        - {slack_id: UREP1, name: Ana, email: ana@example.com, weight: 2}\n"
        "        - {slack_id: UREP2, name: Ben, email: ben@example.com}\n",
        members,
    )
    playbook = parse_playbook(text, "five-rep playbook")
    assert [m.slack_id for m in playbook.routing.pools["sales"].members] == list(RACERS)
    return playbook


def row_counts(engine: Engine) -> dict[str, int]:
    """How many rows every revbot table holds (to prove a refused request changed nothing)."""
    counts = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            counts[table.name] = int(
                conn.execute(select(func.count()).select_from(table)).scalar_one()
            )
    return counts


def cards_per_lead(fake: FakeSlack, channel: str = PIPELINE) -> Counter[int]:
    """How many lead cards the channel shows for each lead id (threads included)."""
    found: Counter[int] = Counter()
    for message in fake.messages(channel):
        metadata = message.get("metadata") or {}
        if metadata.get("event_type") == CARD_EVENT:
            found[int(metadata["event_payload"]["lead_id"])] += 1
    return found


def drain(
    services: Services, *, now: Callable[[], datetime] | None = None, rounds: int = 50
) -> None:
    """Run outbox delivery until a round attempts nothing."""
    for _ in range(rounds):
        if outbox_job.run(services, now=(now or services.clock)()) == 0:
            return
    raise AssertionError(f"the outbox was still busy after {rounds} rounds")


def post_signed(
    url: str,
    payload: dict[str, Any],
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> requests.Response:
    """POST an interactivity payload to /slack/events as Slack signs it (plus extra headers)."""
    raw = form_body(payload) if body is None else body
    sent = {**signed_headers(raw, secret, timestamp=timestamp), **(headers or {})}
    return requests.post(f"{url}/slack/events", data=raw, headers=sent, timeout=30)


def card_text(message: dict[str, Any]) -> str:
    """Everything a person reads on a message."""
    return json.dumps(message.get("blocks") or [], ensure_ascii=False) + message.get("text", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/faults carries the `faults` marker (`pytest -m faults`)."""
    for item in items:
        if "tests/faults/" in item.nodeid:
            item.add_marker(pytest.mark.faults)


@pytest.fixture
def fast_live(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    """revbot in claim mode with a five-rep pool and pacing lifted, serving HTTP with its worker."""
    services = make_services(engine, database_url, fake_slack, playbook=five_rep_playbook())
    services.pacer = fast_pacer()
    live, stop = start_live(services, fake_slack)
    yield live
    stop()
