"""Flood control: a backlog of cards beyond a minute of the channel's budget becomes one summary
with the leads listed in its thread; hot leads still reach their owners' DMs."""

from __future__ import annotations

import re
from typing import Any

from sqlmodel import select

from bot.core import flood, outbox
from bot.core.db import transaction
from bot.core.intake import LeadIn, ingest
from bot.core.models import OutboxMessage
from jobs import outbox as outbox_job
from tests.conftest import FrozenClock, lead_json, make_services, outbox_rows, team_playbook
from tests.fakes.slack_api import FakeSlack

LANE = outbox.channel_lane("#revenue-pipeline")


def _ingest(
    engine: Any, clock: FrozenClock, count: int, *, start: int = 0, hot_every: int = 10
) -> None:
    playbook = team_playbook("assign")
    with transaction(engine) as session:
        for i in range(start, start + count):
            score = 95 if i % hot_every == 0 else 30
            lead = LeadIn.model_validate(
                lead_json(
                    f"L-{i:05d}", email=f"p{i}@example.com", last_name=f"Person{i}", score=score
                )
            )
            ingest(session, lead, playbook=playbook, now=clock())


def _rows(engine: Any, kind: str) -> list[OutboxMessage]:
    return outbox_rows(engine, kind)


def _absorb(engine: Any, clock: FrozenClock) -> int:
    with transaction(engine) as session:
        return flood.absorb(session, LANE, now=clock())


def test_a_backlog_within_a_minute_of_budget_stays_cards(engine: Any, clock: FrozenClock) -> None:
    _ingest(engine, clock, flood.FLOOD_BACKLOG)
    assert _absorb(engine, clock) == 0
    assert _rows(engine, outbox.SLACK_FLOOD) == []
    assert {r.state for r in _rows(engine, outbox.SLACK_CARD)} == {outbox.PENDING}


def test_a_bigger_backlog_becomes_one_summary_and_pages_most_urgent_first(
    engine: Any, clock: FrozenClock
) -> None:
    _ingest(engine, clock, 150)
    assert _absorb(engine, clock) == 150

    [summary] = _rows(engine, outbox.SLACK_FLOOD)
    assert summary.payload["total"] == 150
    assert summary.payload["tiers"] == {"hot": 15, "nurture": 135}
    assert summary.priority == outbox.PRIORITY_ALERT
    pages = _rows(engine, outbox.SLACK_FLOOD_PAGE)
    assert [len(p.payload["cycle_ids"]) for p in pages] == [100, 50]
    listed = [c for p in pages for c in p.payload["cycle_ids"]]
    cards = _rows(engine, outbox.SLACK_CARD)
    assert sorted(listed) == sorted(int(c.payload["cycle_id"]) for c in cards)  # each lead once
    hot_cycles = {
        int(c.payload["cycle_id"]) for c in cards if c.priority == outbox.PRIORITY_FIRST_TIER
    }
    assert set(listed[:15]) == hot_cycles  # the hot tier leads the first page
    assert {(c.state, c.result["flood"]) for c in cards} == {(outbox.DONE, summary.dedupe_key)}
    # Hot leads with an owner keep their DMs: flood control touches channel cards only.
    assert len(_rows(engine, outbox.SLACK_DM)) == 15
    assert {r.state for r in _rows(engine, outbox.SLACK_DM)} == {outbox.PENDING}


def _post_pages(engine: Any, clock: FrozenClock) -> None:
    with transaction(engine) as session:
        for row in session.exec(
            select(OutboxMessage).where(
                OutboxMessage.kind == outbox.SLACK_FLOOD_PAGE, OutboxMessage.state == outbox.PENDING
            )
        ).all():
            outbox.complete(session, row, now=clock())


def test_while_a_flood_lasts_new_cards_join_the_page_waiting_to_go_out(
    engine: Any, clock: FrozenClock
) -> None:
    _ingest(engine, clock, 100)
    _absorb(engine, clock)
    [summary] = _rows(engine, outbox.SLACK_FLOOD)

    clock.advance(seconds=30)
    _ingest(engine, clock, 10, start=100)
    assert _absorb(engine, clock) == 10  # the first page is full: a second one starts
    _ingest(engine, clock, 5, start=200)
    assert _absorb(engine, clock) == 5  # and gathers what arrives before it is posted
    pages = _rows(engine, outbox.SLACK_FLOOD_PAGE)
    assert [len(p.payload["cycle_ids"]) for p in pages] == [100, 15]
    assert {p.payload["flood"] for p in pages} == {summary.dedupe_key}
    assert len(_rows(engine, outbox.SLACK_FLOOD)) == 1

    _post_pages(engine, clock)
    _ingest(engine, clock, flood.FLOOD_BURST, start=300)
    assert _absorb(engine, clock) == 0  # nothing waiting to join: a burst still posts as cards
    _ingest(engine, clock, 1, start=350)
    assert _absorb(engine, clock) == flood.FLOOD_BURST + 1  # past a burst: a new page

    _post_pages(engine, clock)
    clock.advance(seconds=flood.FLOOD_QUIET.total_seconds() + 1)
    _ingest(engine, clock, 10, start=400)
    assert _absorb(engine, clock) == 0  # the flood is over: ten cards are ordinary traffic


def test_the_summary_posts_first_and_the_pages_thread_under_it(
    engine: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    services = make_services(
        engine, database_url, fake_slack, clock=clock, playbook=team_playbook("assign")
    )
    _ingest(engine, clock, 120)
    for _ in range(12):
        outbox_job.run(services, now=clock())
        clock.advance(seconds=1)

    messages = fake_slack.messages("#revenue-pipeline")
    summary = messages[0]
    assert "120 new MQLs" in summary["blocks"][0]["text"]["text"]
    replies = [m for m in messages if m.get("thread_ts") == summary["ts"]]
    assert len(replies) == 2
    text = "\n".join(
        b["text"]["text"] for m in replies for b in m["blocks"] if b["type"] == "section"
    )
    listed = re.findall(r"^• \*Ana (Person\d+)\*", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(f"Person{i}" for i in range(120))  # every lead, once
    assert "@example.com" not in text  # no email in the channel, as on cards
    assert len(messages) == 3  # no individual cards were posted
    hot_dms = [
        c
        for c in fake_slack.calls("chat.postMessage")
        if str(c.params.get("channel", "")).startswith("U")
    ]
    assert len(hot_dms) == 12


def test_a_page_whose_answer_was_lost_is_found_in_the_thread_not_posted_again(
    engine: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    services = make_services(
        engine, database_url, fake_slack, clock=clock, playbook=team_playbook("assign")
    )
    _ingest(engine, clock, 120, hot_every=1000)
    while len(fake_slack.messages("#revenue-pipeline")) < 1:
        outbox_job.run(services, now=clock())  # the summary (and the one hot lead's DM)
        clock.advance(seconds=1)
    fake_slack.drop_response_next("chat.postMessage")  # the first page's answer is lost
    for _ in range(10):
        outbox_job.run(services, now=clock())
        clock.advance(seconds=1)
        if any(r.uncertain for r in _rows(engine, outbox.SLACK_FLOOD_PAGE)):
            break
    [lost] = [r for r in _rows(engine, outbox.SLACK_FLOOD_PAGE) if r.uncertain]
    assert lost.state == outbox.PENDING
    for _ in range(30):
        clock.advance(seconds=1)
        outbox_job.run(services, now=clock())

    messages = fake_slack.messages("#revenue-pipeline")
    assert len(messages) == 3, "a page was posted twice"
    text = "\n".join(
        b["text"]["text"] for m in messages[1:] for b in m["blocks"] if b["type"] == "section"
    )
    listed = re.findall(r"^• \*Ana (Person\d+)\*", text, flags=re.MULTILINE)
    assert sorted(listed) == sorted(f"Person{i}" for i in range(120))
    assert fake_slack.calls("conversations.replies"), "the thread was not checked"
    reconciled = [r for r in _rows(engine, outbox.SLACK_FLOOD_PAGE) if r.id == lost.id]
    assert reconciled[0].state == outbox.DONE
    assert reconciled[0].result is not None
    assert reconciled[0].result.get("reconciled") is True
