"""Slack delivery through the outbox: cards, DMs, pacing, retries, reconciliation, updates, threads.

Each test drives `jobs.outbox.run` by hand on a frozen clock against the fake Slack Web API, and
asserts on the requests the fake received.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core import db, handoff, outbox
from bot.core.intake import IntakeResult, LeadIn, ingest
from bot.core.models import MqlCycle, OutboxMessage, SlackMessage
from bot.core.pacing import Budget, Pacer
from bot.delivery.slack import SlackDelivery
from bot.services import POSTS_PER_SECOND, Services
from jobs import outbox as outbox_job
from tests.conftest import (
    BOT_TOKEN,
    FrozenClock,
    blocks_text,
    lead_json,
    make_services,
    outbox_rows,
    team_playbook,
)
from tests.fakes.slack_api import FakeSlack, Recorded

PIPELINE = "#revenue-pipeline"
PIPELINE_ID = "C0PIPELINE"
PER_POST = 1 / POSTS_PER_SECOND  # seconds that earn one more post
ALERTS = "#revops-alerts"
ALERTS_ID = "C0ALERTS"


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeSlack]:
    """Fake Slack whose message timestamps follow the frozen clock, as Slack's follow real time."""
    with FakeSlack(bot_token=BOT_TOKEN, clock=lambda: clock().timestamp()) as server:
        yield server


def _services(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock, mode: str = "claim"
) -> Services:
    return make_services(engine, database_url, fake, playbook=team_playbook(mode), clock=clock)


def _ingest(
    services: Services, clock: FrozenClock, external_id: str = "L-1001", **overrides: Any
) -> IntakeResult:
    lead = LeadIn.model_validate(lead_json(external_id, **overrides))
    with db.transaction(services.engine) as session:
        return ingest(session, lead, playbook=services.playbook, now=clock())


def _run(services: Services, clock: FrozenClock) -> int:
    return outbox_job.run(services, now=clock())


def _posts(fake: FakeSlack, channel: str = PIPELINE) -> list[Recorded]:
    return [r for r in fake.calls("chat.postMessage") if r.params.get("channel") == channel]


def _row(engine: Any, key: str) -> OutboxMessage:
    with Session(engine) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).one()
        session.expunge(row)
        return row


def _rows(engine: Any, kind: str) -> list[OutboxMessage]:
    return outbox_rows(engine, kind)


def _slack_messages(engine: Any, cycle_id: int) -> dict[str, SlackMessage]:
    with Session(engine) as session:
        found = session.exec(select(SlackMessage).where(SlackMessage.cycle_id == cycle_id)).all()
        for message in found:
            session.expunge(message)
        return {m.role: m for m in found}


def _cycle_of(recorded: Recorded) -> int:
    return int(recorded.params["metadata"]["event_payload"]["cycle_id"])


def _seconds_until(row: OutboxMessage, clock: FrozenClock) -> float:
    return (row.due_at - clock()).total_seconds()


# -- the card --------------------------------------------------------------------------------


def test_card_is_posted_to_the_pipeline_channel_with_metadata_and_no_contact_details(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)

    _run(services, clock)

    [post] = fake.calls("chat.postMessage")
    params = post.params
    assert params["channel"] == PIPELINE
    assert params["metadata"]["event_type"] == "revbot_lead_card"
    assert params["metadata"]["event_payload"]["cycle_id"] == result.cycle_id
    assert params["unfurl_links"] is False
    assert params["unfurl_media"] is False
    assert isinstance(params["text"], str)
    assert params["text"].strip()
    assert "Ana Diaz" in params["text"] or "Acme Health" in params["text"]
    assert params["blocks"]
    assert all(b.get("type") for b in params["blocks"])
    shown = params["text"] + blocks_text(params["blocks"]) + json.dumps(params["metadata"])
    for secret in ("ana@acme.example", "acme.example", "555 0100", "+1 555"):
        assert secret not in shown, secret
    assert "thread_ts" not in params
    assert len(fake.messages(PIPELINE)) == 1


def test_posted_card_is_recorded_with_the_channel_id_and_ts_slack_returned(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)

    _run(services, clock)

    [message] = fake.messages(PIPELINE)
    stored = _slack_messages(engine, result.cycle_id)
    assert set(stored) == {"card"}
    assert stored["card"].channel == PIPELINE_ID
    assert stored["card"].ts == message["ts"]
    row = _row(engine, f"card:{result.cycle_id}")
    assert row.state == outbox.DONE
    assert row.attempts == 0
    assert (row.result["channel"], row.result["ts"]) == (PIPELINE_ID, message["ts"])


def test_hot_lead_in_assign_mode_also_reaches_the_owner_by_dm(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock, mode="assign")
    hot = _ingest(services, clock, "L-HOT", score=92)
    warm = _ingest(services, clock, "L-WARM", score=60, email="warm@acme.example")

    _run(services, clock)

    with Session(engine) as session:
        cycle = session.get(MqlCycle, hot.cycle_id)
        assert cycle is not None
        assert cycle.owner_slack_id
        owner = cycle.owner_slack_id
    dms = [r for r in fake.calls("chat.postMessage") if r.params["channel"] != PIPELINE]
    assert [r.params["channel"] for r in dms] == [owner]
    dm = dms[0].params
    assert _cycle_of(dms[0]) == hot.cycle_id
    assert dm["text"].strip()
    assert "ana@acme.example" not in dm["text"] + blocks_text(dm.get("blocks") or [])
    dm_channel = "D" + owner[1:]
    [delivered] = fake.messages(dm_channel)
    stored = _slack_messages(engine, hot.cycle_id)
    assert set(stored) == {"card", "dm"}
    assert (stored["dm"].channel, stored["dm"].ts) == (dm_channel, delivered["ts"])
    # A warm lead gets its card but no DM.
    assert set(_slack_messages(engine, warm.cycle_id)) == {"card"}
    assert len(_posts(fake)) == 2


# -- priority and pacing ---------------------------------------------------------------------


def test_hottest_lead_goes_first_when_the_lane_has_budget_for_one(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    services.pacer = Pacer(budget_for={"channel": Budget(rate=1.0, burst=1)})
    nurture = _ingest(services, clock, "L-NURTURE", score=10)
    warm = _ingest(services, clock, "L-WARM", score=60)
    hot = _ingest(services, clock, "L-HOT", score=95)

    _run(services, clock)

    assert [_cycle_of(r) for r in _posts(fake)] == [hot.cycle_id]
    clock.advance(seconds=1)
    _run(services, clock)
    clock.advance(seconds=1)
    _run(services, clock)
    assert [_cycle_of(r) for r in _posts(fake)] == [hot.cycle_id, warm.cycle_id, nurture.cycle_id]


def test_within_a_tier_the_earliest_sla_deadline_goes_first(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    services.pacer = Pacer(budget_for={"channel": Budget(rate=1.0, burst=1)})
    later = _ingest(services, clock, "L-WARM-LATER", score=60)
    clock.advance(minutes=-30)  # this warm lead arrived earlier, so its SLA runs out first
    earlier = _ingest(services, clock, "L-WARM-EARLIER", score=60)
    clock.advance(minutes=30)

    _run(services, clock)

    assert [_cycle_of(r) for r in _posts(fake)] == [earlier.cycle_id]
    clock.advance(seconds=1)
    _run(services, clock)
    assert [_cycle_of(r) for r in _posts(fake)] == [earlier.cycle_id, later.cycle_id]


def test_a_backlog_is_paced_to_the_burst_then_about_one_post_per_second(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    for i in range(10):
        _ingest(services, clock, f"L-{i:03d}", email=f"lead{i}@acme.example")

    _run(services, clock)
    assert len(_posts(fake)) == 3
    _run(services, clock)
    assert len(_posts(fake)) == 3, "the burst is spent; nothing more at the same instant"

    clock.advance(seconds=0.5)
    _run(services, clock)
    assert len(_posts(fake)) == 3, "half a second does not earn a post"

    clock.advance(seconds=PER_POST - 0.5)
    _run(services, clock)
    assert len(_posts(fake)) == 4
    for expected in range(5, 11):
        clock.advance(seconds=PER_POST)
        _run(services, clock)
        assert len(_posts(fake)) == expected

    clock.advance(seconds=5)
    _run(services, clock)
    assert len(_posts(fake)) == 10
    assert len(fake.messages(PIPELINE)) == 10
    assert {_cycle_of(r) for r in _posts(fake)} == {
        r.payload["cycle_id"] for r in _rows(engine, outbox.SLACK_CARD)
    }
    assert all(r.state == outbox.DONE for r in _rows(engine, outbox.SLACK_CARD))


# -- failures --------------------------------------------------------------------------------


def test_retry_after_pauses_the_lane_until_it_has_passed(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    first = _ingest(services, clock, "L-1")
    second = _ingest(services, clock, "L-2", email="second@acme.example")
    start = clock()
    fake.fail_next("chat.postMessage", retry_after=30)

    _run(services, clock)
    assert len(_posts(fake)) == 1  # the 429; the lane then stops for both cards
    assert fake.messages(PIPELINE) == []

    for seconds in (1, 10, 29.5):
        clock.now = start + timedelta(seconds=seconds)
        _run(services, clock)
        assert len(_posts(fake)) == 1, f"posted again {seconds}s after a Retry-After of 30s"

    clock.now = start + timedelta(seconds=30.5)
    _run(services, clock)
    assert len(_posts(fake)) == 3
    assert sorted(_cycle_of(r) for r in _posts(fake)[1:]) == sorted(
        [first.cycle_id, second.cycle_id]
    )
    assert len(fake.messages(PIPELINE)) == 2
    for result in (first, second):
        row = _row(engine, f"card:{result.cycle_id}")
        assert row.state == outbox.DONE
        assert row.attempts == 0, "a rate limit is not a failed attempt"


def test_server_errors_pause_the_channel_longer_each_time_and_deliver_exactly_once(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)
    key = f"card:{result.cycle_id}"
    fake.fail_next("chat.postMessage", times=2, status=500)

    _run(services, clock)
    row = _row(engine, key)
    # Slack failing as a whole is no fault of the row: no attempt is counted against it.
    assert (row.state, row.attempts) == (outbox.PENDING, 0)
    assert "500" in (row.last_error or "")
    assert _seconds_until(row, clock) == 2.0

    clock.advance(seconds=1)
    _run(services, clock)
    assert len(_posts(fake)) == 1, "retried before the pause ended"

    clock.advance(seconds=1)
    _run(services, clock)
    row = _row(engine, key)
    assert (row.state, row.attempts) == (outbox.PENDING, 0)
    assert _seconds_until(row, clock) == 4.0, "the pause doubles while Slack keeps failing"

    clock.advance(seconds=4)
    _run(services, clock)
    row = _row(engine, key)
    assert (row.state, row.attempts) == (outbox.DONE, 0)
    assert len(_posts(fake)) == 3
    [message] = fake.messages(PIPELINE)
    assert _slack_messages(engine, result.cycle_id)["card"].ts == message["ts"]

    clock.advance(minutes=30)
    _run(services, clock)
    assert len(_posts(fake)) == 3
    assert len(fake.messages(PIPELINE)) == 1


def test_non_retryable_error_dead_letters_the_card_and_raises_one_alert(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)
    fake.fail_next("chat.postMessage", error="channel_not_found")

    _run(services, clock)
    row = _row(engine, f"card:{result.cycle_id}")
    assert row.state == outbox.DEAD
    assert "channel_not_found" in (row.last_error or "")

    for _ in range(3):
        _run(services, clock)
        clock.advance(minutes=20)
    assert len(_posts(fake, PIPELINE)) == 1, "a refused card is not retried"
    assert fake.messages(PIPELINE) == []
    alerts = fake.messages(ALERTS)
    assert len(alerts) == 1
    assert "channel_not_found" in alerts[0]["text"]
    assert "slack.card" in alerts[0]["text"]
    assert [r.params["channel"] for r in fake.calls("chat.postMessage")[1:]] == [ALERTS]


@pytest.mark.parametrize("earlier_card", [False, True], ids=["first-card", "after-other-cards"])
def test_lost_response_is_reconciled_from_history_without_posting_again(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock, earlier_card: bool
) -> None:
    services = _services(engine, database_url, fake, clock)
    if earlier_card:
        _ingest(services, clock, "L-EARLIER", email="earlier@acme.example")
        _run(services, clock)
        clock.advance(seconds=5)
    before = len(fake.messages(PIPELINE))
    result = _ingest(services, clock)
    key = f"card:{result.cycle_id}"
    fake.drop_response_next("chat.postMessage")

    _run(services, clock)
    row = _row(engine, key)
    assert (row.state, row.uncertain) == (outbox.PENDING, True)
    assert len(fake.messages(PIPELINE)) == before + 1  # Slack did post it

    clock.advance(seconds=5)
    posts_before = len(_posts(fake))
    _run(services, clock)

    assert len(_posts(fake)) == posts_before, "the card was posted a second time"
    assert fake.calls("conversations.history"), "history was not checked"
    history = fake.calls("conversations.history")[-1].params
    assert history["channel"] == PIPELINE_ID
    messages = fake.messages(PIPELINE)
    assert len(messages) == before + 1
    assert _row(engine, key).state == outbox.DONE
    stored = _slack_messages(engine, result.cycle_id)["card"]
    assert (stored.channel, stored.ts) == (PIPELINE_ID, messages[-1]["ts"])


def test_lost_dm_response_is_reconciled_without_a_second_dm(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock, mode="assign")
    result = _ingest(services, clock)
    dm_row = _row(engine, f"dm:{result.cycle_id}")
    owner = dm_row.payload["user"]
    dm_channel = "D" + owner[1:]
    # Post the channel card first so the only post in flight below is the DM.
    services.pacer.block(dm_row.lane, clock(), 1)
    _run(services, clock)
    assert len(_posts(fake)) == 1
    fake.drop_response_next("chat.postMessage")
    clock.advance(seconds=2)
    _run(services, clock)
    assert len(fake.messages(dm_channel)) == 1
    assert _row(engine, f"dm:{result.cycle_id}").state == outbox.PENDING

    clock.advance(seconds=5)
    _run(services, clock)

    assert len(_posts(fake, owner)) == 1, "the DM was sent twice"
    assert len(fake.messages(dm_channel)) == 1
    assert _row(engine, f"dm:{result.cycle_id}").state == outbox.DONE
    stored = _slack_messages(engine, result.cycle_id)["dm"]
    assert (stored.channel, stored.ts) == (dm_channel, fake.messages(dm_channel)[0]["ts"])


@pytest.mark.parametrize("to", [ALERTS, ALERTS_ID, "UREP1"], ids=["channel", "channel-id", "dm"])
def test_a_message_whose_answer_was_lost_is_not_posted_again(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock, to: str
) -> None:
    services = _services(engine, database_url, fake, clock)
    with db.transaction(engine) as session:
        outbox.enqueue_message(session, key="note:1", to=to, text="Heads up", now=clock())
    fake.drop_response_next("chat.postMessage")
    _run(services, clock)
    assert (_row(engine, "note:1").state, _row(engine, "note:1").uncertain) == (
        outbox.PENDING,
        True,
    )
    conversation = "DREP1" if to == "UREP1" else ALERTS
    assert len(fake.messages(conversation)) == 1  # Slack did post it

    clock.advance(seconds=5)
    _run(services, clock)

    assert len(fake.messages(conversation)) == 1, "the message was posted twice"
    assert len(fake.calls("chat.postMessage")) == 1
    row = _row(engine, "note:1")
    assert row.state == outbox.DONE
    assert row.result is not None
    assert row.result["reconciled"] is True


@pytest.mark.parametrize("earlier_card", [False, True], ids=["first-card", "after-other-cards"])
@pytest.mark.parametrize("posted_before_dying", [True, False], ids=["posted", "not-posted"])
def test_expired_lease_is_reconciled_without_a_duplicate(
    engine: Any,
    database_url: str,
    fake: FakeSlack,
    clock: FrozenClock,
    posted_before_dying: bool,
    earlier_card: bool,
) -> None:
    services = _services(engine, database_url, fake, clock)
    if earlier_card:
        _ingest(services, clock, "L-EARLIER", email="earlier@acme.example")
        _run(services, clock)
        clock.advance(seconds=5)
    before = len(fake.messages(PIPELINE))
    result = _ingest(services, clock)
    key = f"card:{result.cycle_id}"
    # A worker claims the row and dies, with or without having posted, before recording anything.
    with db.transaction(engine) as session:
        [claimed] = outbox.claim(session, outbox.channel_lane(PIPELINE), 10, now=clock())
        session.expunge(claimed)
    if posted_before_dying:
        delivery = SlackDelivery(services.slack, engine, services.playbook, services.crm)  # type: ignore[arg-type]
        delivery.deliver(claimed)
        assert len(fake.messages(PIPELINE)) == before + 1

    clock.advance(seconds=outbox.LEASE.total_seconds() / 2)
    _run(services, clock)
    assert _row(engine, key).state == outbox.IN_FLIGHT, "taken over while its lease was held"
    assert len(fake.messages(PIPELINE)) == before + int(posted_before_dying)

    clock.advance(seconds=outbox.LEASE.total_seconds())
    _run(services, clock)

    messages = fake.messages(PIPELINE)
    assert len(messages) == before + 1, "the card is in the channel exactly once"
    assert sum(_cycle_of(r) == result.cycle_id for r in _posts(fake)) == 1
    if posted_before_dying:
        assert fake.calls("conversations.history"), "history was not checked"
    assert _row(engine, key).state == outbox.DONE
    stored = _slack_messages(engine, result.cycle_id)["card"]
    assert (stored.channel, stored.ts) == (PIPELINE_ID, messages[-1]["ts"])


# -- updates and threads ---------------------------------------------------------------------


def test_accept_updates_the_card_and_the_dm_in_place(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock, mode="assign")
    result = _ingest(services, clock)
    _run(services, clock)
    stored = _slack_messages(engine, result.cycle_id)
    assert set(stored) == {"card", "dm"}
    owner = _row(engine, f"dm:{result.cycle_id}").payload["user"]
    assert fake.calls("chat.update") == []

    clock.advance(minutes=3)
    with db.transaction(engine) as session:
        handoff.accept(session, result.cycle_id, owner, playbook=services.playbook, now=clock())
    _run(services, clock)

    updates = fake.calls("chat.update")
    assert sorted((u.params["channel"], u.params["ts"]) for u in updates) == sorted(
        [(m.channel, m.ts) for m in stored.values()]
    )
    for update in updates:
        shown = blocks_text(update.params["blocks"])
        assert "Accepted" in shown
        assert f"<@{owner}>" in shown
        assert "lead_accept" not in shown
        assert update.params["text"].strip()
        assert "ana@acme.example" not in shown + update.params["text"]
    [card] = fake.messages(PIPELINE)
    assert "Accepted" in blocks_text(card["blocks"])
    assert len(_posts(fake)) == 1, "an update must not post a new card"

    clock.advance(minutes=5)
    _run(services, clock)
    assert len(fake.calls("chat.update")) == 2


def test_refresh_queued_before_the_card_was_posted_waits_then_updates_it(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)
    with db.transaction(engine) as session:
        handoff.accept(session, result.cycle_id, "UREP1", playbook=services.playbook, now=clock())
    [refresh] = _rows(engine, outbox.SLACK_REFRESH)

    _run(services, clock)
    assert len(_posts(fake)) == 1
    assert fake.calls("chat.update") == []
    waiting = _row(engine, refresh.dedupe_key)
    assert (waiting.state, waiting.attempts) == (outbox.PENDING, 0)
    assert waiting.due_at > clock()

    clock.advance(seconds=5)
    _run(services, clock)

    [update] = fake.calls("chat.update")
    [card] = fake.messages(PIPELINE)
    assert (update.params["channel"], update.params["ts"]) == (PIPELINE_ID, card["ts"])
    assert "Accepted" in blocks_text(update.params["blocks"])
    assert _row(engine, refresh.dedupe_key).state == outbox.DONE
    methods = [r.method for r in fake.requests if r.method in ("chat.postMessage", "chat.update")]
    assert methods == ["chat.postMessage", "chat.update"]


def test_requalified_lead_card_is_threaded_under_its_first_card(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    first = _ingest(services, clock, mql_at="2026-11-22T14:03:00Z")
    _run(services, clock)
    [first_card] = fake.messages(PIPELINE)
    with db.transaction(engine) as session:
        handoff.reject(
            session,
            first.cycle_id,
            "UREP1",
            reason_code="not_icp",
            note="No budget this year.",
            playbook=services.playbook,
            now=clock(),
        )
    _run(services, clock)

    clock.advance(days=1)
    again = _ingest(services, clock, mql_at="2026-11-24T09:00:00Z")
    assert again.status == "requalified"
    assert again.lead_id == first.lead_id
    assert again.cycle_id != first.cycle_id
    _run(services, clock)

    posts = _posts(fake)
    assert len(posts) == 2
    second = posts[1].params
    assert second["thread_ts"] == first_card["ts"]
    assert _cycle_of(posts[1]) == again.cycle_id
    stored = _slack_messages(engine, again.cycle_id)["card"]
    assert stored.channel == PIPELINE_ID
    assert stored.ts != first_card["ts"]

    # A line about the re-qualified MQL joins the same thread (a reply cannot be a thread root).
    with db.transaction(engine) as session:
        outbox.enqueue_message(
            session,
            key="note:again",
            to=PIPELINE,
            text="Nudge",
            thread_of=again.cycle_id,
            now=clock(),
        )
    _run(services, clock)
    line = fake.calls("chat.postMessage")[-1].params
    assert line["text"] == "Nudge"
    assert line["thread_ts"] == first_card["ts"]
