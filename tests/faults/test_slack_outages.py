"""Slack down (5xx, timeouts) and rate-limited (429 + Retry-After): nothing lost, nothing early,
and the backlog goes out hot first, then by nearest SLA deadline."""

from __future__ import annotations

from typing import Any

import pytest
from slack_sdk import WebClient
from sqlmodel import Session, select

from bot.core.db import transaction
from bot.core.intake import LeadIn, ingest, validate_lead
from bot.core.models import MqlCycle, OutboxMessage
from bot.services import Services
from jobs import outbox as outbox_job
from tests.conftest import BOT_TOKEN, FrozenClock, lead_json, make_services
from tests.fakes.slack_api import FakeSlack

from .conftest import PIPELINE, cards_per_lead

# Scores of the backlog, in arrival order: tiers mixed so arrival order is not priority order.
SCORES = [10, 60, 90, 30, 85, 55, 95, 5, 70]
TIER_RANK = {"hot": 0, "warm": 1, "nurture": 2}


@pytest.fixture
def services(engine: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock) -> Services:
    """Claim mode on the frozen clock; a Slack client that gives up after 0.3 s (for timeouts)."""
    services = make_services(engine, database_url, fake_slack, clock=clock)
    services.slack = WebClient(
        token=BOT_TOKEN, base_url=fake_slack.url, timeout=0.3, retry_handlers=[]
    )
    return services


def _backlog(services: Services, clock: FrozenClock) -> None:
    """Leads of mixed tiers, one a minute, so their SLA deadlines differ within each tier."""
    for n, score in enumerate(SCORES):
        lead = validate_lead(lead_json(f"O-{n}", email=f"o{n}@acme.example", score=score))
        assert isinstance(lead, LeadIn)
        with transaction(services.engine) as session:
            ingest(session, lead, playbook=services.playbook, now=clock())
        clock.advance(minutes=1)


def _priority_order(services: Services) -> list[int]:
    """Lead ids as they should go out: hot first, then the nearest SLA deadline."""
    with Session(services.engine) as session:
        cycles = session.exec(select(MqlCycle)).all()
    ranked = sorted(cycles, key=lambda c: (TIER_RANK[c.tier], c.sla_due_at, c.id))
    return [c.lead_id for c in ranked]


def _posted_order(fake: FakeSlack) -> list[int]:
    return [
        int(m["metadata"]["event_payload"]["lead_id"])
        for m in fake.messages(PIPELINE)
        if m.get("metadata")
    ]


def _run_for(services: Services, clock: FrozenClock, seconds: int) -> None:
    """Run the outbox once a (frozen) second, as the worker loop would."""
    for _ in range(seconds):
        outbox_job.run(services, now=clock())
        clock.advance(seconds=1)


def _states(services: Services) -> dict[str, int]:
    with Session(services.engine) as session:
        rows = session.exec(select(OutboxMessage)).all()
    states: dict[str, int] = {}
    for row in rows:
        states[row.state] = states.get(row.state, 0) + 1
    return states


def _outage_then_recovery(
    services: Services, fake: FakeSlack, clock: FrozenClock, *, down: int, hanging: int
) -> int:
    """Slack answers 503 for `down` seconds, then times out for `hanging`; returns posts tried."""
    _backlog(services, clock)
    start = clock().timestamp()
    fake.outage("chat.postMessage", until=start + down, status=503)
    _run_for(services, clock, down)
    fake.outage("chat.postMessage", until=start + down + hanging, hang=0.5)
    _run_for(services, clock, hanging)
    assert fake.messages(PIPELINE) == []
    return len(fake.calls("chat.postMessage"))


def test_slack_down_then_timing_out_for_2_5_minutes_loses_nothing(
    services: Services, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    tried = _outage_then_recovery(services, fake_slack, clock, down=90, hanging=60)

    # The lane pauses 2 s after the first failure, doubling while Slack keeps failing: one try
    # at 0, 2, 6, 14, 30, 62 and 122 s into the outage, not one per card and attempt.
    assert tried == 7
    assert _states(services) == {"pending": len(SCORES)}  # nothing dead-lettered
    _run_for(services, clock, 20 * 60)

    assert sorted(cards_per_lead(fake_slack).values()) == [1] * len(SCORES)
    assert _states(services) == {"done": len(SCORES)}


def test_after_an_outage_the_backlog_goes_out_hot_first_then_by_sla_deadline(
    services: Services, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    _outage_then_recovery(services, fake_slack, clock, down=90, hanging=60)
    _run_for(services, clock, 20 * 60)

    assert sorted(cards_per_lead(fake_slack).values()) == [1] * len(SCORES)
    assert _posted_order(fake_slack) == _priority_order(services)


def test_a_ten_minute_slack_outage_loses_nothing(
    services: Services, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    _outage_then_recovery(services, fake_slack, clock, down=600, hanging=0)
    _run_for(services, clock, 20 * 60)

    assert _states(services) == {"done": len(SCORES)}
    assert sorted(cards_per_lead(fake_slack).values()) == [1] * len(SCORES)


def test_a_429_with_retry_after_30_pauses_the_channel_for_30_seconds_then_posts_in_priority_order(
    services: Services, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    _backlog(services, clock)
    fake_slack.fail_next("chat.postMessage", retry_after=30)

    outbox_job.run(services, now=clock())
    assert len(fake_slack.calls("chat.postMessage")) == 1
    limited_at = clock()
    for second in range(1, 30):
        clock.advance(seconds=1)
        outbox_job.run(services, now=clock())
        assert len(fake_slack.calls("chat.postMessage")) == 1, f"a post {second}s after the 429"
    clock.advance(seconds=1)
    assert (clock() - limited_at).total_seconds() == 30
    outbox_job.run(services, now=clock())
    assert len(fake_slack.calls("chat.postMessage")) > 1

    _run_for(services, clock, 60)

    cards = cards_per_lead(fake_slack)
    assert sorted(cards.values()) == [1] * len(SCORES)
    assert _posted_order(fake_slack) == _priority_order(services)
    assert _states(services) == {"done": len(SCORES)}
    assert len(fake_slack.calls("chat.postMessage")) == len(SCORES) + 1  # the 429'd attempt


def test_429s_for_a_period_are_all_honoured_and_nothing_is_lost(
    services: Services, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    _backlog(services, clock)
    start = clock().timestamp()
    fake_slack.outage("chat.postMessage", until=start + 95, retry_after=30)
    sent_at: list[float] = []

    for _ in range(200):
        before = len(fake_slack.calls("chat.postMessage"))
        outbox_job.run(services, now=clock())
        sent_at += [clock().timestamp() - start] * (
            len(fake_slack.calls("chat.postMessage")) - before
        )
        clock.advance(seconds=1)

    limited = [t for t in sent_at if t < 95]
    # Each 429 closes the channel for its full 30 s: one try at 0, 30, 60 and 90 s, no more.
    assert limited == [0, 30, 60, 90]
    assert sorted(cards_per_lead(fake_slack).values()) == [1] * len(SCORES)
    assert _posted_order(fake_slack) == _priority_order(services)
    assert _states(services) == {"done": len(SCORES)}
