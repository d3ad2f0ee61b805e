"""/pipeline, /lead and /deal end to end: signed slash commands to the real endpoint, answers in
the HTTP response (store lookups) or through the fake Slack's response_url (CRM lookups)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import update
from sqlmodel import Session, col, select

from bot.core import handoff
from bot.core.crm import CrmUnavailable, Deal
from bot.core.db import transaction
from bot.core.models import DealSupportRequest, LocalDeal, MqlCycle
from bot.core.playbook import Playbook, parse_playbook
from bot.listeners import lookup as lookup_listeners
from integrations.local import LocalCRM
from tests.conftest import (
    SIGNING_SECRET,
    TEST_PLAYBOOK,
    Live,
    blocks_text,
    lead_json,
    make_services,
    start_live,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import slash_command_form
from tests.fakes.slack_signing import signed_headers

ACCESS = """
deal_support:
  marketers: [UMKT1]
access:
  reps: pool
  managers: pools
  deals: DEALS
  contact_details: CONTACT
"""


def lookup_playbook(
    *, deals: str = "everyone", contact: str = "[]", reps: str = "pool"
) -> Playbook:
    """The test team in assign mode, with a marketer and the given access rules."""
    text = TEST_PLAYBOOK.replace("MODE", "assign") + ACCESS.replace("DEALS", deals).replace(
        "CONTACT", contact
    ).replace("reps: pool", f"reps: {reps}")
    return parse_playbook(text, "test playbook")


def run_live(
    engine: Any,
    database_url: str,
    fake: FakeSlack,
    playbook: Playbook | None = None,
    crm: Any = None,
) -> tuple[Live, Callable[[], None]]:
    services = make_services(
        engine, database_url, fake, playbook=playbook or lookup_playbook(), crm=crm
    )
    return start_live(services, fake)


@pytest.fixture
def team(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    live, stop = run_live(engine, database_url, fake_slack)
    yield live
    stop()


def slash(live: Live, command: str, user: str, text: str, key: str = "r1") -> requests.Response:
    """Send a signed slash command as Slack does (its text escaped the way Slack escapes it)."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return slash_raw(live, command, user, escaped, key)


def slash_raw(live: Live, command: str, user: str, text: str, key: str = "r1") -> requests.Response:
    form = slash_command_form(
        command=command, text=text, user_id=user, response_url=live.fake.response_url(key)
    )
    body = urlencode(form).encode()
    headers = signed_headers(body, SIGNING_SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return requests.post(f"{live.url}/slack/events", data=body, headers=headers, timeout=10)


def answer(live: Live, command: str, user: str, text: str, *, raw: bool = False) -> dict[str, Any]:
    response = (slash_raw if raw else slash)(live, command, user, text)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["response_type"] == "ephemeral"
    return body


def shown(body: dict[str, Any]) -> str:
    return str(body.get("text", "")) + blocks_text(body.get("blocks", []))


def add_lead(live: Live, external_id: str, **fields: Any) -> MqlCycle:
    result = live.intake(lead_json(external_id, **fields)).json()["results"][0]
    assert result["status"] == "created", result
    with Session(live.services.engine) as session:
        return session.exec(select(MqlCycle).where(MqlCycle.lead_id == result["lead_id"])).one()


def set_cycle(live: Live, cycle_id: int | None, **values: Any) -> None:
    with transaction(live.services.engine) as session:
        session.execute(update(MqlCycle).where(col(MqlCycle.id) == cycle_id).values(**values))


# --- /lead ----------------------------------------------------------------------------------------


def test_lead_lists_matches_with_status_owner_tier_source_and_history(team: Live) -> None:
    first = add_lead(team, "L-1", email="ana@acme.example", first_name="Ana", company="Acme Health")
    second = add_lead(
        team, "L-2", email="raj@acme.example", first_name="Raj", company="Acme Health", score=55
    )
    with transaction(team.services.engine) as session:
        handoff.reject(
            session,
            second.id or 0,
            second.owner_slack_id or "",
            reason_code="not_icp",
            note="Student project, no budget; mail raj@acme.example",
            playbook=team.services.playbook,
            now=datetime.now(UTC),
        )
    body = answer(team, "/lead", "UMGR1", "acme")
    text = shown(body)
    assert "*2 leads* match" in text
    for expected in (
        "Ana Diaz",
        "Raj Diaz",
        "VP Operations at Acme Health",
        "Hot",
        "Warm",
        "Webinar",
        f"Open · <@{first.owner_slack_id}>",
        f"Rejected by <@{second.owner_slack_id}>",
        "Not our ICP (`not_icp`)",
        "Student project, no budget",
        "left (by <!date^",
    ):
        assert expected in text, expected
    for secret in ("@acme.example", "555 0100"):
        assert secret not in text, secret
    assert "[email hidden]" in text


def test_one_match_shows_the_full_card_with_its_buttons_and_history(team: Live) -> None:
    add_lead(team, "L-1", first_name="Ana", last_name="Diaz", company="Acme Health")
    add_lead(team, "L-2", first_name="Bo", last_name="Berg", company="Globex")
    body = answer(team, "/lead", "UREP1", "ana diaz")
    actions = [b for b in body["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in actions[0]["elements"]] == [
        "lead_accept",
        "lead_reject",
        "lead_recycle",
    ]
    text = shown(body)
    assert "*History*" in text
    assert "MQL #1" in text
    assert "Globex" not in text
    assert "ana@acme.example" not in text


def test_a_denied_lookup_reads_like_one_that_found_nothing(team: Live) -> None:
    add_lead(team, "L-1", first_name="Greta", last_name="Sales", company="Northwind")
    add_lead(team, "L-2", first_name="Hans", country="DE", company="Emea Werke")
    hidden = answer(team, "/lead", "UREP3", "northwind")  # emea rep; the lead is in sales
    missing = answer(team, "/lead", "UREP3", "southwind")  # no such lead at all
    assert shown(hidden).replace("northwind", "X") == shown(missing).replace("southwind", "X")
    assert "No lead you can see matches" in shown(hidden)
    assert "Northwind" not in shown(hidden)
    assert "Emea Werke" in shown(answer(team, "/lead", "UREP3", "werke"))
    # a marketer follows every MQL; someone with no role sees nothing but their own
    assert "Northwind" in shown(answer(team, "/lead", "UMKT1", "northwind"))
    assert "No lead you can see" in shown(answer(team, "/lead", "UOTHER", "northwind"))


def test_contact_details_show_only_for_roles_the_playbook_allows(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    live, stop = run_live(engine, database_url, fake_slack, lookup_playbook(contact="[manager]"))
    try:
        add_lead(live, "L-1", email="ana@acme.example", phone="+1 555 0100", company="Acme")
        add_lead(live, "L-2", email="bo@acme.example", first_name="Bo", company="Acme")
        manager = shown(answer(live, "/lead", "UMGR1", "acme"))
        assert "ana@acme.example" in manager
        assert "+1 555 0100" in manager
        rep = shown(answer(live, "/lead", "UREP1", "acme"))
        assert "@acme.example" not in rep
        assert "555 0100" not in rep
        # without contact rights an email finds its lead only when typed in full
        assert "No lead you can see" in shown(answer(live, "/lead", "UREP1", "acme.example"))
        exact = shown(answer(live, "/lead", "UREP1", "ANA@acme.example"))
        assert "*History*" in exact
        assert "ana@acme.example" not in exact
        assert "*2 leads*" in shown(answer(live, "/lead", "UMGR1", "acme.example"))
    finally:
        stop()


def test_lead_text_is_checked_before_any_search(team: Live) -> None:
    assert "Type `/lead` and an email" in answer(team, "/lead", "UREP1", "   ")["text"]
    long = answer(team, "/lead", "UREP1", "x" * 201)["text"]
    assert "201 characters" in long
    assert "at most 200" in long
    assert "control characters" in answer(team, "/lead", "UREP1", "acme\ttab")["text"]
    # a mailto link Slack made of a typed address is read as the address
    add_lead(team, "L-1", email="ana@acme.example")
    body = slash_raw(team, "/lead", "UREP1", "<mailto:ana@acme.example|ana@acme.example>").json()
    assert "*History*" in shown(body)


def test_more_than_ten_matches_show_the_newest_ten_and_the_count(team: Live) -> None:
    for n in range(12):
        add_lead(
            team, f"L-{n}", email=f"p{n}@initech.example", first_name=f"P{n:02d}", company="Initech"
        )
    text = shown(answer(team, "/lead", "UMGR1", "initech"))
    assert "*12 leads* match" in text
    assert "newest 10" in text
    assert "2 more" in text
    assert text.count("Initech") >= 10


# --- /pipeline ------------------------------------------------------------------------------------


def test_pipeline_lists_open_leads_most_urgent_first_and_untouched_accepted_ones(
    team: Live,
) -> None:
    warm = add_lead(team, "L-warm", first_name="Walt", company="Warmco", score=60)
    hot = add_lead(team, "L-hot", first_name="Hedy", company="Hotco", score=95)
    late = add_lead(team, "L-late", first_name="Lars", company="Lateco", score=60)
    owner = hot.owner_slack_id or ""
    for cycle in (warm, late):
        set_cycle(team, cycle.id, owner_slack_id=owner)
    set_cycle(team, late.id, sla_due_at=datetime.now(UTC) - timedelta(minutes=30))
    taken = add_lead(team, "L-taken", first_name="Tess", company="Takenco", score=60)
    set_cycle(team, taken.id, owner_slack_id=owner)
    with transaction(team.services.engine) as session:
        handoff.accept(
            session, taken.id or 0, owner, playbook=team.services.playbook, now=datetime.now(UTC)
        )
    text = shown(answer(team, "/pipeline", owner, ""))
    assert "Your open leads* (3)" in text
    assert text.index("Lateco") < text.index("Hotco") < text.index("Warmco")
    assert "30m" in text
    assert "past SLA" in text
    assert "Accepted, no touch logged yet* (1)" in text
    assert "Takenco" in text
    other = "UREP2" if owner == "UREP1" else "UREP1"
    assert "Your pipeline is clear" in answer(team, "/pipeline", other, "")["text"]


def test_pipeline_team_counts_by_state_and_tier_with_breaches_and_holders(team: Live) -> None:
    one = add_lead(team, "L-1", score=90)
    two = add_lead(team, "L-2", score=60)
    add_lead(team, "L-3", score=10, country="DE")  # emea: not in the sales manager's view
    set_cycle(team, two.id, sla_due_at=datetime.now(UTC) - timedelta(minutes=5))
    with transaction(team.services.engine) as session:
        handoff.accept(
            session,
            one.id or 0,
            one.owner_slack_id or "",
            playbook=team.services.playbook,
            now=datetime.now(UTC),
        )
    text = shown(answer(team, "/pipeline", "UMGR1", "team"))
    assert "Pool `sales`" in text
    assert "emea" not in text
    assert "Open: *1* (Warm 1) · unclaimed 0" in text
    assert "Past SLA: *1*" in text
    assert "accepted, untouched: 1" in text
    assert f"<@{two.owner_slack_id}>: 1 open (1 past SLA)" in text
    assert f"<@{one.owner_slack_id}>: 0 open, 1 untouched" in text
    assert "Pool `sales`" in shown(answer(team, "/pipeline", "UREP1", "team"))
    assert "not in any pool" in answer(team, "/pipeline", "UMKT1", "team")["text"]


def test_pipeline_team_is_refused_to_reps_who_may_see_only_their_own(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    live, stop = run_live(engine, database_url, fake_slack, lookup_playbook(reps="own"))
    try:
        assert "only their own" in answer(live, "/pipeline", "UREP1", "team")["text"]
        assert "Pool `sales`" in shown(answer(live, "/pipeline", "UMGR1", "team"))
    finally:
        stop()


def test_pipeline_for_a_rep_is_for_their_managers_only(team: Live) -> None:
    cycle = add_lead(team, "L-1", company="Repco")
    rep = cycle.owner_slack_id or ""
    mention = f"<@{rep}|{rep.lower()}>"  # how Slack sends a mention with escaping on
    assert "Repco" in shown(answer(team, "/pipeline", "UMGR1", mention, raw=True))
    other = "UREP2" if rep == "UREP1" else "UREP1"
    refused = answer(team, "/pipeline", other, mention, raw=True)["text"]
    assert refused == "Only managers can look at another rep's pipeline."
    assert (
        "pools you manage (`emea`)" in answer(team, "/pipeline", "UMGR2", mention, raw=True)["text"]
    )
    assert "doesn't know that" in answer(team, "/pipeline", "UMGR1", "everything")["text"]


# --- /deal ----------------------------------------------------------------------------------------


def seed_deals(live: Live) -> None:
    with transaction(live.services.engine) as session:
        session.add(
            LocalDeal(
                id="D-1",
                name="Acme Health renewal",
                account="Acme Health",
                stage="Negotiation/Review",
                amount=48000,
                currency="USD",
                close_date=date(2026, 12, 15),
                owner="Ana Diaz",
                next_step="Security review call; questions to cfo@acme.example",
            )
        )
        session.add(LocalDeal(id="D-2", name="Globex expansion", stage="Prospecting"))
        session.add(
            DealSupportRequest(
                requester_slack_id="UREP1",
                deal_id="D-1",
                deal_name="Acme Health renewal",
                ask_type="security_docs",
                details="SOC 2 report",
                state="claimed",
                claimed_by="UMKT1",
                due_on=date(2026, 12, 1),
                first_response_due_at=datetime.now(UTC),
                created_at=datetime.now(UTC),
            )
        )


def followups(live: Live, count: int, timeout: float = 5.0) -> list[dict[str, Any]]:
    return [r.params for r in live.fake.wait_for("response_url", count, timeout=timeout)]


def test_deal_acks_at_once_then_answers_from_the_crm_through_response_url(team: Live) -> None:
    seed_deals(team)
    ack = answer(team, "/deal", "UREP1", "acme")
    assert "Looking up deals matching" in ack["text"]
    (final,) = followups(team, 1)
    assert final["response_type"] == "ephemeral"
    assert final["replace_original"] is True
    text = shown(final)
    for expected in (
        "Acme Health renewal",
        "Negotiation/Review",
        "48,000 USD",
        "2026-12-15",
        "Ana Diaz",
        "Security review call",
        "Security or procurement docs · claimed · <@UMKT1> · due 2026-12-01",
        "asked by <@UREP1>",
    ):
        assert expected in text, expected
    assert "cfo@acme.example" not in text
    assert "Globex" not in text


def test_deal_with_no_match_says_so(team: Live) -> None:
    seed_deals(team)
    answer(team, "/deal", "UREP1", "nothing like it")
    (final,) = followups(team, 1)
    assert "No deal in the CRM matches" in final["text"]


def test_deal_lookups_the_playbook_denies_never_reach_the_crm(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    crm = CountingCRM(engine)
    live, stop = run_live(engine, database_url, fake_slack, lookup_playbook(deals="sales"), crm)
    try:
        seed_deals(live)
        assert "only reps and their managers" in answer(live, "/deal", "UMKT1", "acme")["text"]
        assert "Looking up" in answer(live, "/deal", "UMGR1", "acme")["text"]
        followups(live, 1)
        time.sleep(0.2)
        assert crm.searches == ["acme"]
        assert len(live.fake.calls("response_url")) == 1
    finally:
        stop()


class CountingCRM(LocalCRM):
    """The local CRM, counting searches and optionally slow or failing."""

    def __init__(self, engine: Any, *, delay: float = 0.0, fail: bool = False) -> None:
        super().__init__(engine, lambda: datetime.now(UTC))
        self.delay = delay
        self.fail = fail
        self.searches: list[str] = []

    def search_deals(self, text: str, *, limit: int = 10) -> list[Deal]:
        self.searches.append(text)
        time.sleep(self.delay)
        if self.fail:
            raise CrmUnavailable("503 from the CRM")
        return super().search_deals(text, limit=limit)


def test_repeated_deal_lookups_within_a_minute_reuse_one_crm_call(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    crm = CountingCRM(engine)
    live, stop = run_live(engine, database_url, fake_slack, crm=crm)
    try:
        seed_deals(live)
        answer(live, "/deal", "UREP1", "acme")
        followups(live, 1)
        answer(live, "/deal", "UREP2", "ACME")
        (_, second) = followups(live, 2)
        assert "Acme Health renewal" in shown(second)
        assert crm.searches == ["acme"]
    finally:
        stop()


@pytest.fixture
def short_patience(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lookup_listeners, "CRM_PATIENCE_SECONDS", 0.3)
    monkeypatch.setattr(lookup_listeners, "CRM_GIVE_UP_SECONDS", 1.2)


@pytest.mark.usefixtures("short_patience")
def test_a_slow_crm_gets_a_still_waiting_note_then_the_answer(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    live, stop = run_live(engine, database_url, fake_slack, crm=CountingCRM(engine, delay=0.7))
    try:
        seed_deals(live)
        started = time.monotonic()
        response = slash(live, "/deal", "UREP1", "acme")
        assert time.monotonic() - started < 0.6, "the ack never waits for the CRM"
        assert "Looking up" in response.json()["text"]
        waiting, final = followups(live, 2)
        assert "has not answered in 0 s" in waiting["text"] or "still waiting" in waiting["text"]
        assert "Acme Health renewal" in shown(final)
    finally:
        stop()


@pytest.mark.usefixtures("short_patience")
def test_a_crm_that_never_answers_in_time_still_gets_a_clear_answer(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    live, stop = run_live(engine, database_url, fake_slack, crm=CountingCRM(engine, delay=3.0))
    try:
        answer(live, "/deal", "UREP1", "acme")
        waiting, final = followups(live, 2)
        assert "still waiting" in waiting["text"]
        assert "the CRM did not answer within 1 s" in final["text"]
        assert "Try again in a minute" in final["text"]
    finally:
        stop()


def test_a_failing_crm_gets_a_clear_answer(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    live, stop = run_live(engine, database_url, fake_slack, crm=CountingCRM(engine, fail=True))
    try:
        answer(live, "/deal", "UREP1", "acme")
        (final,) = followups(live, 1)
        assert "the CRM is unavailable or busy right now" in final["text"]
    finally:
        stop()


def test_deal_text_is_checked_before_the_crm_is_asked(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    crm = CountingCRM(engine)
    live, stop = run_live(engine, database_url, fake_slack, crm=crm)
    try:
        assert "at most 200" in answer(live, "/deal", "UREP1", "d" * 5000)["text"]
        assert "Type `/deal`" in answer(live, "/deal", "UREP1", "")["text"]
        assert crm.searches == []
    finally:
        stop()
