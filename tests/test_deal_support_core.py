"""#deal-support domain: validation, take (one winner), deliver (one CRM note), decline, listing."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core import deal_support
from bot.core.crm import Deal
from bot.core.db import transaction
from bot.core.deal_support import (
    DS_CARD,
    DS_REFRESH,
    DS_REPLY,
    DealSupportRefused,
    InvalidForm,
    RequestForm,
)
from bot.core.models import DealSupportRequest, OutboxMessage
from bot.core.playbook import Playbook, PlaybookError, parse_playbook
from tests.conftest import TEST_PLAYBOOK

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # Monday 10:00 in New York

DEAL_SUPPORT = """
deal_support:
  marketers: [UMKT1, UMKT2]
  marketer_group: SMKTG
  manager: UMKTMGR
  escalate_after: 2h
  ask_types:
    - {code: battle_card, label: "Battle card / competitor comparison", first_response_within: 4h}
    - {code: case_study, label: "Case study", first_response_within: 2h}
    - {code: rush, label: "Rush job", first_response_within: 30m, clock: wall}
"""

ACME = Deal(
    id="D-ACME",
    name="Acme Health expansion",
    stage="Negotiation",
    amount=150_000,
    currency="USD",
    close_date=date(2026, 12, 15),
    account="Acme Health",
)


def ds_playbook(extra: str = DEAL_SUPPORT) -> Playbook:
    """The test team's playbook with a #deal-support section."""
    return parse_playbook(TEST_PLAYBOOK.replace("MODE", "claim") + extra, "test playbook")


def form(**overrides: Any) -> RequestForm:
    """A valid request form for the Acme deal, with overrides."""
    values: dict[str, Any] = {
        "deal_id": "D-ACME",
        "deal_name": None,
        "ask_type": "battle_card",
        "competitor": "Globex",
        "due_on": date(2026, 11, 25),
        "details": "Up against Globex; need a one-pager for the CFO.",
    }
    values.update(overrides)
    return RequestForm(**values)


def open_one(engine: Any, playbook: Playbook, *, now: datetime = NOW, **overrides: Any) -> int:
    """Store a request from UREP1 and return its id."""
    deal = ACME if overrides.get("deal_id", "D-ACME") else None
    with transaction(engine) as session:
        request = deal_support.open_request(
            session, playbook, "UREP1", form(**overrides), deal, now=now
        )
        assert request.id is not None
        return request.id


def request_of(engine: Any, request_id: int) -> DealSupportRequest:
    with Session(engine) as session:
        found = session.get(DealSupportRequest, request_id)
        assert found is not None
        return found


def outbox_rows(engine: Any) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all())


# --- playbook ----------------------------------------------------------------------------------


def test_the_playbook_refuses_duplicate_ask_types_with_their_line() -> None:
    with pytest.raises(PlaybookError) as err:
        ds_playbook(
            "deal_support:\n  ask_types:\n    - {code: roi, label: ROI}\n    - {code: roi, label: Again}\n"
        )
    assert "deal_support.ask_types[1].code: ask type 'roi' is defined twice" in str(err.value)


def test_without_marketers_or_a_group_anyone_but_the_requester_may_take() -> None:
    playbook = ds_playbook("")
    assert playbook.deal_support.open_to_all
    assert deal_support.is_marketer(playbook, "UANYONE")
    assert not ds_playbook().deal_support.open_to_all


# --- validation --------------------------------------------------------------------------------


def test_validation_names_every_bad_field() -> None:
    playbook = ds_playbook()
    bad = form(
        deal_id=None,
        ask_type="nope",
        due_on=date(2026, 11, 22),
        details="   ",
        competitor="x" * 300,
    )
    errors = deal_support.validate_request(playbook, bad, None, today=date(2026, 11, 23))
    assert set(errors) == {"deal", "ask_type", "due_on", "details", "competitor"}
    assert "past" in errors["due_on"]
    missing_date = deal_support.validate_request(
        playbook, form(due_on=None), ACME, today=date(2026, 11, 23)
    )
    assert set(missing_date) == {"due_on"}


def test_an_unknown_opportunity_id_is_refused_and_nothing_is_stored(engine: Any) -> None:
    playbook = ds_playbook()
    with pytest.raises(InvalidForm) as err, transaction(engine) as session:
        deal_support.open_request(session, playbook, "UREP1", form(deal_id="D-GONE"), None, now=NOW)
    assert set(err.value.errors) == {"deal"}
    with Session(engine) as session:
        assert session.exec(select(DealSupportRequest)).first() is None
    assert outbox_rows(engine) == []


def test_due_today_is_fine_in_the_team_timezone() -> None:
    # 03:00 UTC on the 24th is still the 23rd in New York.
    late_evening = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)
    today = late_evening.astimezone(ds_playbook().zone).date()
    assert (
        deal_support.validate_request(
            ds_playbook(), form(due_on=date(2026, 11, 23)), ACME, today=today
        )
        == {}
    )


def test_parse_deal_choice() -> None:
    assert deal_support.parse_deal_choice("deal:006ABC") == ("006ABC", None)
    assert deal_support.parse_deal_choice("name:Acme renewal") == (None, "Acme renewal")
    assert deal_support.parse_deal_choice("  Typed by hand ") == (None, "Typed by hand")
    assert deal_support.parse_deal_choice(None) == (None, None)


# --- the request and its card ------------------------------------------------------------------


def test_a_request_snapshots_the_deal_and_queues_its_card(engine: Any) -> None:
    playbook = ds_playbook()
    request_id = open_one(engine, playbook)
    request = request_of(engine, request_id)
    assert (request.deal_id, request.deal_name, request.deal_stage) == (
        "D-ACME",
        "Acme Health expansion",
        "Negotiation",
    )
    assert (request.deal_amount, request.deal_currency, request.deal_close_date) == (
        150_000,
        "USD",
        date(2026, 12, 15),
    )
    # 4 business hours from Monday 10:00 New York.
    assert request.first_response_due_at == datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
    rows = outbox_rows(engine)
    assert [(r.kind, r.dedupe_key, r.lane) for r in rows] == [
        (DS_CARD, f"ds:{request_id}:card", "channel:#deal-support")
    ]


def test_first_response_time_runs_on_business_hours_or_the_wall_clock(engine: Any) -> None:
    playbook = ds_playbook()
    friday_evening = datetime(2026, 11, 27, 21, 30, tzinfo=UTC)  # Fri 16:30 New York
    due = date(2026, 12, 2)
    business = open_one(engine, playbook, now=friday_evening, ask_type="case_study", due_on=due)
    wall = open_one(engine, playbook, now=friday_evening, ask_type="rush", due_on=due)
    # 30 minutes on Friday, the other 90 on Monday morning.
    assert request_of(engine, business).first_response_due_at == datetime(
        2026, 11, 30, 15, 30, tzinfo=UTC
    )
    assert request_of(engine, wall).first_response_due_at == friday_evening + timedelta(minutes=30)


# --- take ------------------------------------------------------------------------------------


def test_take_claims_refreshes_the_card_and_tells_the_requester(engine: Any) -> None:
    playbook = ds_playbook()
    request_id = open_one(engine, playbook)
    with transaction(engine) as session:
        deal_support.take(session, playbook, request_id, "UMKT1", now=NOW + timedelta(minutes=5))
    request = request_of(engine, request_id)
    assert (request.state, request.claimed_by, request.version) == ("claimed", "UMKT1", 2)
    keys = {r.dedupe_key: r for r in outbox_rows(engine)}
    assert keys[f"ds:{request_id}:refresh:v2"].kind == DS_REFRESH
    assert keys[f"ds:{request_id}:reply:taken"].kind == DS_REPLY


def test_non_marketers_are_refused_and_nothing_changes(engine: Any) -> None:
    playbook = ds_playbook()
    request_id = open_one(engine, playbook)
    with pytest.raises(DealSupportRefused) as err, transaction(engine) as session:
        deal_support.take(session, playbook, request_id, "UREP2", now=NOW)
    assert "Only the marketers in the playbook or members of <!subteam^SMKTG>" in err.value.message
    with transaction(engine) as session:
        deal_support.take(session, playbook, request_id, "UGROUP", in_group=True, now=NOW)
    assert request_of(engine, request_id).claimed_by == "UGROUP"


def test_racing_marketers_have_exactly_one_winner(engine: Any) -> None:
    playbook = ds_playbook()
    request_id = open_one(engine, playbook)
    outcomes: dict[str, str] = {}
    users = ["UMKT1", "UMKT2", "UMKTMGR"]
    barrier = threading.Barrier(len(users))

    def click(user: str) -> None:
        barrier.wait()
        try:
            with transaction(engine) as session:
                deal_support.take(session, playbook, request_id, user, now=NOW)
            outcomes[user] = "won"
        except DealSupportRefused as refused:
            outcomes[user] = refused.message

    threads = [threading.Thread(target=click, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [u for u, outcome in outcomes.items() if outcome == "won"]
    assert len(winners) == 1
    request = request_of(engine, request_id)
    assert (request.claimed_by, request.version) == (winners[0], 2)
    for user, outcome in outcomes.items():
        if user != winners[0]:
            assert f"already taken by <@{winners[0]}>" in outcome
    refreshes = [r for r in outbox_rows(engine) if r.kind == DS_REFRESH]
    assert len(refreshes) == 1


# --- deliver and decline -----------------------------------------------------------------------


def test_deliver_needs_a_link_and_the_owner_then_queues_one_crm_note(engine: Any) -> None:
    playbook = ds_playbook()
    request_id = open_one(engine, playbook)
    with pytest.raises(DealSupportRefused) as err, transaction(engine) as session:
        deal_support.deliver(
            session,
            playbook,
            request_id,
            "UMKT1",
            asset_url="https://x.example",
            note=None,
            now=NOW,
        )
    assert "Take the request first" in err.value.message
    with transaction(engine) as session:
        deal_support.take(session, playbook, request_id, "UMKT1", now=NOW)
    for url, problem in ((None, "Paste the link"), ("not a link", "not a link")):
        with pytest.raises(InvalidForm) as invalid, transaction(engine) as session:
            deal_support.deliver(
                session, playbook, request_id, "UMKT1", asset_url=url, note=None, now=NOW
            )
        assert problem in invalid.value.errors["asset_url"]
    with pytest.raises(DealSupportRefused) as err, transaction(engine) as session:
        deal_support.deliver(
            session,
            playbook,
            request_id,
            "UMKT2",
            asset_url="https://x.example",
            note=None,
            now=NOW,
        )
    assert "<@UMKT1> has this request" in err.value.message

    done_at = NOW + timedelta(hours=3)
    with transaction(engine) as session:
        deal_support.deliver(
            session,
            playbook,
            request_id,
            "UMKT1",
            asset_url="https://cdn.example/globex-vs-us.pdf",
            note="Lead with slide 2.",
            author="marco",
            now=done_at,
        )
    request = request_of(engine, request_id)
    assert (request.state, request.delivered_at, request.asset_url) == (
        "delivered",
        done_at,
        "https://cdn.example/globex-vs-us.pdf",
    )
    notes = [r for r in outbox_rows(engine) if r.kind == "crm.note"]
    assert len(notes) == 1
    payload = notes[0].payload
    assert notes[0].lane == "crm:notes"
    assert payload["external_id"] == f"revbot-deal-support-{request_id}"
    assert payload["deal_id"] == "D-ACME"
    assert "https://cdn.example/globex-vs-us.pdf" in payload["body"]
    assert "marco (Slack UMKT1)" in payload["body"]
    assert "Lead with slide 2." in payload["body"]
    assert payload["created_at"] == done_at.isoformat()

    with pytest.raises(DealSupportRefused) as err, transaction(engine) as session:
        deal_support.deliver(
            session,
            playbook,
            request_id,
            "UMKT1",
            asset_url="https://y.example",
            note=None,
            now=NOW,
        )
    assert "already delivered by you" in err.value.message
    assert len([r for r in outbox_rows(engine) if r.kind == "crm.note"]) == 1


def test_a_typed_opportunity_gets_no_crm_note(engine: Any) -> None:
    playbook = ds_playbook()
    request_id = open_one(engine, playbook, deal_id=None, deal_name="Initech renewal")
    with transaction(engine) as session:
        deal_support.take(session, playbook, request_id, "UMKT2", now=NOW)
        deal_support.deliver(
            session,
            playbook,
            request_id,
            "UMKT2",
            asset_url="https://a.example",
            note=None,
            now=NOW,
        )
    assert request_of(engine, request_id).deal_name == "Initech renewal"
    assert not [r for r in outbox_rows(engine) if r.kind == "crm.note"]


def test_decline_needs_a_reason_and_closes_the_request(engine: Any) -> None:
    playbook = ds_playbook()
    request_id = open_one(engine, playbook)
    with pytest.raises(InvalidForm) as invalid, transaction(engine) as session:
        deal_support.decline(session, playbook, request_id, "UMKT2", reason="  ", now=NOW)
    assert set(invalid.value.errors) == {"reason"}
    with pytest.raises(DealSupportRefused), transaction(engine) as session:
        deal_support.decline(session, playbook, request_id, "UREP2", reason="no", now=NOW)
    with transaction(engine) as session:
        deal_support.decline(
            session, playbook, request_id, "UMKT2", reason="No Globex content yet.", now=NOW
        )
    request = request_of(engine, request_id)
    assert (request.state, request.declined_by, request.decline_reason) == (
        "declined",
        "UMKT2",
        "No Globex content yet.",
    )
    with pytest.raises(DealSupportRefused) as err, transaction(engine) as session:
        deal_support.take(session, playbook, request_id, "UMKT1", now=NOW)
    assert "declined by <@UMKT2>" in err.value.message


# --- listing ----------------------------------------------------------------------------------


def test_listing_shows_my_requests_and_marketers_the_queue_soonest_due_first(engine: Any) -> None:
    playbook = ds_playbook()
    late = open_one(engine, playbook, due_on=date(2026, 12, 10))
    soon_newer = open_one(engine, playbook, now=NOW + timedelta(hours=1), due_on=date(2026, 11, 24))
    soon_older = open_one(engine, playbook, due_on=date(2026, 11, 24))
    taken = open_one(engine, playbook, due_on=date(2026, 11, 30))
    with transaction(engine) as session:
        deal_support.take(session, playbook, taken, "UMKT1", now=NOW)
        rep = deal_support.listing(session, "UREP1", marketer=False)
        marketer = deal_support.listing(session, "UMKT1", marketer=True)
        other = deal_support.listing(session, "UREP2", marketer=False)
    assert [r.id for r in rep.mine] == [late, soon_older, taken, soon_newer]
    assert rep.queue is None
    assert [r.id for r in marketer.working] == [taken]
    assert marketer.queue is not None
    assert [r.id for r in marketer.queue] == [soon_older, soon_newer, late]
    assert marketer.queue_total == 3
    assert other.mine == []
