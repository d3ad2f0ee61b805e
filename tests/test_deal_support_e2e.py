"""End to end over HTTP: /deal-support -> modal -> card in #deal-support -> Take it (a race of two
marketers: one winner) -> Mark delivered -> CRM note once -> requester told in the thread."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from sqlmodel import Session, select

from bot.core.crm import CrmError, Deal
from bot.core.db import transaction
from bot.core.models import DealSupportRequest, LocalDeal, LocalDealNote, OutboxMessage
from integrations.local import LocalCRM
from jobs import outbox as outbox_job
from tests.conftest import (
    SIGNING_SECRET,
    Live,
    blocks_text,
    make_services,
    start_live,
    wait_until,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import (
    block_action_payload,
    block_suggestion_payload,
    date_state,
    message_shortcut_payload,
    select_state,
    slash_command_form,
    text_state,
    view_submission_payload,
)
from tests.fakes.slack_signing import signed_headers
from tests.test_deal_support_core import ds_playbook


def _today() -> date:
    return datetime.now(UTC).astimezone(ds_playbook().zone).date()


def _seed_deals(engine: Any) -> None:
    with transaction(engine) as session:
        session.add(
            LocalDeal(
                id="D-ACME",
                name="Acme Health expansion",
                account="Acme Health",
                stage="Negotiation",
                amount=150_000,
                currency="USD",
                close_date=date(2026, 12, 15),
            )
        )
        session.add(LocalDeal(id="D-INI", name="Initech renewal", stage="Discovery"))


@pytest.fixture
def ds_live(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    """revbot with a #deal-support playbook and two local deals, against the fake Slack."""
    _seed_deals(engine)
    services = make_services(engine, database_url, fake_slack, playbook=ds_playbook())
    live, stop = start_live(services, fake_slack)
    yield live
    stop()


@pytest.fixture
def bare_live(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    """The same, with no deals in the local CRM (opportunities are typed by hand)."""
    services = make_services(engine, database_url, fake_slack, playbook=ds_playbook())
    live, stop = start_live(services, fake_slack)
    yield live
    stop()


def command(live: Live, user: str, text: str = "", key: str = "cmd") -> requests.Response:
    form = slash_command_form(
        command="/deal-support",
        text=text,
        user_id=user,
        response_url=live.fake.response_url(key),
    )
    body = urlencode(form).encode()
    headers = signed_headers(body, SIGNING_SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return requests.post(f"{live.url}/slack/events", data=body, headers=headers, timeout=10)


def request_values(
    deal: str | None, *, details: str | None = "Need a Globex comparison for the CFO.", **more: Any
) -> dict[str, Any]:
    due = more.get("due", (_today() + timedelta(days=2)).isoformat())
    deal_state = (
        {"ds_deal_search": select_state(deal)}
        if more.get("search", True)
        else {"value": text_state(deal)}
    )
    return {
        "deal": deal_state,
        "ask_type": {"value": select_state(more.get("ask", "battle_card"))},
        "competitor": {"value": text_state(more.get("competitor", "Globex"))},
        "due_on": {"value": date_state(due)},
        "details": {"value": text_state(details)},
    }


def submit(
    live: Live, user: str, callback: str, values: dict[str, Any], metadata: str = "{}"
) -> Any:
    payload = view_submission_payload(
        user_id=user, callback_id=callback, private_metadata=metadata, values=values
    )
    return live.slack(payload)


def click(live: Live, user: str, action: str, request_id: int, key: str) -> Any:
    payload = block_action_payload(
        user_id=user,
        action_id=action,
        value=str(request_id),
        channel_id="C0DEALSUP",
        block_id="ds_actions",
        response_url=live.fake.response_url(key),
    )
    return live.slack(payload)


def requests_in(live: Live) -> list[DealSupportRequest]:
    with Session(live.services.engine) as session:
        return list(session.exec(select(DealSupportRequest)).all())


def card_of(live: Live) -> dict[str, Any]:
    """The first request card posted in #deal-support."""
    return wait_until(
        lambda: [
            r.params
            for r in live.fake.calls("chat.postMessage")
            if r.params.get("channel") == "#deal-support" and not r.params.get("thread_ts")
        ],
        what="the request card",
    )[0]


def replies(live: Live) -> list[dict[str, Any]]:
    return [r.params for r in live.fake.calls("chat.postMessage") if r.params.get("thread_ts")]


def ephemeral(live: Live, key: str) -> str:
    found = wait_until(
        lambda: [r for r in live.fake.calls("response_url") if r.path.endswith(f"/{key}")],
        what=f"the ephemeral reply {key}",
    )
    assert found[0].params.get("response_type") == "ephemeral"
    return str(found[0].params["text"])


def test_request_take_race_deliver_note_and_thread(ds_live: Live) -> None:
    live = ds_live
    assert command(live, "UREP1").status_code == 200
    view = live.fake.wait_for("views.open")[0].params["view"]
    assert view["callback_id"] == "deal_support_request"
    deal_block = next(b for b in view["blocks"] if b.get("block_id") == "deal")
    assert deal_block["element"]["type"] == "external_select"
    asks = next(b for b in view["blocks"] if b.get("block_id") == "ask_type")
    assert [o["value"] for o in asks["element"]["options"]] == ["battle_card", "case_study", "rush"]

    found = live.slack(
        block_suggestion_payload(
            user_id="UREP1",
            action_id="ds_deal_search",
            block_id="deal",
            value="acme",
            callback_id="deal_support_request",
        )
    ).json()
    assert [o["value"] for o in found["options"]] == ["deal:D-ACME"]
    assert "Negotiation" in found["options"][0]["text"]["text"]

    # Bad input: inline errors, nothing stored or posted.
    bad = submit(
        live,
        "UREP1",
        "deal_support_request",
        request_values("deal:D-GONE", details="  ", due=(_today() - timedelta(days=1)).isoformat()),
    ).json()
    assert bad["response_action"] == "errors"
    assert set(bad["errors"]) == {"due_on", "details"}
    assert requests_in(live) == []

    answer = submit(live, "UREP1", "deal_support_request", request_values("deal:D-ACME"))
    assert answer.status_code == 200
    assert not answer.content.strip()
    card = card_of(live)
    assert card["channel"] == "#deal-support"
    request_id = int(card["metadata"]["event_payload"]["request_id"])
    shown = blocks_text(card["blocks"])
    for expected in (
        "<@UREP1>",
        "Acme Health expansion",
        "Negotiation",
        "150,000 USD",
        "closes Tue Dec 15, 2026",
        "Battle card / competitor comparison",
        "Globex",
        "Need a Globex comparison for the CFO.",
        "ds_take",
        "ds_decline",
    ):
        assert expected in shown, expected

    # A rep who is not a marketer is refused; two marketers race: one winner.
    click(live, "UREP2", "ds_take", request_id, "outsider")
    assert "Only the marketers" in ephemeral(live, "outsider")
    threads = [
        threading.Thread(target=click, args=(live, user, "ds_take", request_id, f"take-{user}"))
        for user in ("UMKT1", "UMKT2")
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stored = wait_until(lambda: [r for r in requests_in(live) if r.claimed_by], what="the claim")[0]
    winner, loser = stored.claimed_by, ({"UMKT1", "UMKT2"} - {stored.claimed_by}).pop()
    assert stored.version == 2
    assert f"already taken by <@{winner}>" in ephemeral(live, f"take-{loser}")
    update = live.fake.wait_for("chat.update")[0].params
    assert update["ts"] == stored.card_ts
    assert f"Taken* by <@{winner}>" in blocks_text(update["blocks"])
    assert "ds_deliver" in blocks_text(update["blocks"])
    taken = wait_until(lambda: replies(live), what="the thread line")[0]
    assert taken["thread_ts"] == stored.card_ts
    assert f"<@UREP1> <@{winner}> is on it" in taken["text"]

    # Mark delivered: only the owner; the link is checked; the CRM note is written once.
    click(live, loser, "ds_deliver", request_id, "not-owner")
    assert f"<@{winner}> has this request" in ephemeral(live, "not-owner")
    click(live, winner, "ds_deliver", request_id, "deliver")
    modal = live.fake.wait_for("views.open", count=2)[1].params["view"]
    assert modal["callback_id"] == "deal_support_deliver"
    values = {"asset_url": {"value": text_state("ftp:/nope")}, "note": {"value": text_state(None)}}
    invalid = submit(live, winner, "deal_support_deliver", values, modal["private_metadata"])
    assert set(invalid.json()["errors"]) == {"asset_url"}
    values["asset_url"] = {"value": text_state("https://cdn.example/globex-vs-us.pdf")}
    values["note"] = {"value": text_state("Lead with slide 2.")}
    assert not submit(
        live, winner, "deal_support_deliver", values, modal["private_metadata"]
    ).content.strip()

    delivered = wait_until(lambda: len(replies(live)) >= 2 and replies(live), what="delivery")[1]
    assert "https://cdn.example/globex-vs-us.pdf" in delivered["text"]
    assert delivered["text"].startswith("<@UREP1>")
    final = wait_until(
        lambda: [
            u.params
            for u in live.fake.calls("chat.update")
            if "Delivered" in blocks_text(u.params["blocks"])
        ],
        what="the delivered card",
    )[0]
    assert "ds_take" not in blocks_text(final["blocks"])
    assert "ds_deliver" not in blocks_text(final["blocks"])

    def notes() -> list[LocalDealNote]:
        with Session(live.services.engine) as session:
            return list(session.exec(select(LocalDealNote)).all())

    note = wait_until(notes, what="the CRM note")[0]
    assert (note.deal_id, note.external_id) == ("D-ACME", f"revbot-deal-support-{request_id}")
    assert "https://cdn.example/globex-vs-us.pdf" in note.body
    # Delivering the same outbox row again (a retry after a lost answer) writes nothing more.
    with transaction(live.services.engine) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "crm.note")).one()
        row.state = "pending"
        session.add(row)
    outbox_job.run(live.services, now=datetime.now(UTC))
    assert len(notes()) == 1
    click(live, winner, "ds_deliver", request_id, "again")
    assert "already delivered by you" in ephemeral(live, "again")


def picked(deal_id: str, label: str) -> dict[str, Any]:
    """An opportunity chosen in the external select: its id as the value, its label as the text."""
    option = {"text": {"type": "plain_text", "text": label}, "value": f"deal:{deal_id}"}
    return {"ds_deal_search": {"type": "external_select", "selected_option": option}}


class GatedCRM(LocalCRM):
    """The local CRM whose deal reads wait for `release` (or fail when `failure` is set)."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine, lambda: datetime.now(UTC))
        self.release = threading.Event()
        self.reads: list[str] = []
        self.failure: CrmError | None = None

    def get_deal(self, deal_id: str) -> Deal | None:
        """Record the read, wait for the test to release it, then answer (or fail)."""
        self.reads.append(deal_id)
        assert self.release.wait(10), "the test never released the deal read"
        if self.failure is not None:
            raise self.failure
        return super().get_deal(deal_id)


@pytest.fixture
def gated(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[tuple[Live, GatedCRM]]:
    """revbot with two local deals whose reads the test releases, against the fake Slack."""
    _seed_deals(engine)
    crm = GatedCRM(engine)
    services = make_services(engine, database_url, fake_slack, playbook=ds_playbook(), crm=crm)
    live, stop = start_live(services, fake_slack)
    yield live, crm
    crm.release.set()
    stop()


def test_a_deal_no_search_offered_is_acked_first_then_read_for_the_card(
    gated: tuple[Live, GatedCRM],
) -> None:
    live, crm = gated
    values = request_values(None)
    values["deal"] = picked("D-INI", "Initech renewal — Discovery")
    answer = submit(live, "UREP1", "deal_support_request", values)
    # The ack came back while the CRM read was still held: the modal closes at once.
    assert answer.status_code == 200
    assert not answer.content.strip()
    wait_until(lambda: crm.reads == ["D-INI"], what="the deal read after the ack")
    assert requests_in(live) == []
    crm.release.set()
    shown = blocks_text(card_of(live)["blocks"])
    assert "Initech renewal" in shown
    assert "Discovery" in shown
    (stored,) = requests_in(live)
    assert (stored.deal_id, stored.deal_stage) == ("D-INI", "Discovery")


def test_a_failing_crm_keeps_the_ask_with_the_name_picked(
    gated: tuple[Live, GatedCRM],
) -> None:
    live, crm = gated
    crm.failure = CrmError("CRM unavailable")
    crm.release.set()
    values = request_values(None)
    values["deal"] = picked("D-ACME", "Acme Health expansion — Negotiation")
    assert not submit(live, "UREP1", "deal_support_request", values).content.strip()
    assert "Acme Health expansion — Negotiation" in blocks_text(card_of(live)["blocks"])
    (stored,) = requests_in(live)
    assert (stored.deal_id, stored.deal_stage) == ("D-ACME", None)


def test_a_deal_the_crm_no_longer_holds_is_dmed_not_posted(
    gated: tuple[Live, GatedCRM],
) -> None:
    live, crm = gated
    crm.release.set()
    values = request_values(None, details="Pricing sheet for Globex")
    values["deal"] = picked("D-GONE", "Gone Corp renewal")
    assert not submit(live, "UREP1", "deal_support_request", values).content.strip()
    dm = live.fake.wait_for("chat.postMessage")[0].params
    assert dm["channel"] == "UREP1"
    assert "cannot find the opportunity “Gone Corp renewal”" in dm["text"]
    assert "Pricing sheet for Globex" in dm["text"]
    assert requests_in(live) == []


def test_a_group_member_may_take_and_decline_needs_a_reason(ds_live: Live) -> None:
    live = ds_live
    live.fake.usergroups["SMKTG"] = ["UGROUP1"]
    command(live, "UREP1")
    live.fake.wait_for("views.open")
    submit(live, "UREP1", "deal_support_request", request_values("deal:D-INI", competitor=None))
    request_id = int(card_of(live)["metadata"]["event_payload"]["request_id"])
    click(live, "UGROUP1", "ds_decline", request_id, "decline")
    modal = live.fake.wait_for("views.open", count=2)[1].params["view"]
    empty = submit(
        live,
        "UGROUP1",
        "deal_support_decline",
        {"reason": {"value": text_state(" ")}},
        modal["private_metadata"],
    ).json()
    assert set(empty["errors"]) == {"reason"}
    submit(
        live,
        "UGROUP1",
        "deal_support_decline",
        {"reason": {"value": text_state("No Initech material yet; try the generic deck.")}},
        modal["private_metadata"],
    )
    line = wait_until(lambda: replies(live), what="the decline line")[0]
    assert "<@UREP1> <@UGROUP1> says marketing can't do this one" in line["text"]
    assert live.fake.calls("usergroups.users.list")[0].params["usergroup"] == "SMKTG"
    assert requests_in(live)[0].state == "declined"


def test_the_shortcut_prefills_the_details_and_refuses_unreadable_messages(ds_live: Live) -> None:
    live = ds_live
    live.slack(
        message_shortcut_payload(
            user_id="UREP1",
            callback_id="deal_support_from_message",
            message={"text": "", "files": [{"id": "F1"}], "ts": "1700000000.000300"},
            response_url=live.fake.response_url("unreadable"),
        )
    )
    assert "can't read that message" in ephemeral(live, "unreadable")
    assert live.fake.calls("views.open") == []

    live.slack(
        message_shortcut_payload(
            user_id="UREP1",
            callback_id="deal_support_from_message",
            message={"text": "Anyone have a Globex one-pager?", "ts": "1700000000.000400"},
            channel_id="C0PIPELINE",
        )
    )
    view = live.fake.wait_for("views.open")[0].params["view"]
    details = next(b for b in view["blocks"] if b.get("block_id") == "details")
    assert details["element"]["initial_value"] == "Anyone have a Globex one-pager?"
    permalink = "https://sandbox.slack.com/archives/C0PIPELINE/p1700000000000400"
    assert json.loads(view["private_metadata"]) == {"source": permalink}
    submit(
        live,
        "UREP1",
        "deal_support_request",
        request_values("deal:D-ACME"),
        view["private_metadata"],
    )
    assert permalink in blocks_text(card_of(live)["blocks"])


def test_without_crm_deals_the_opportunity_is_typed_and_list_shows_the_queue(
    bare_live: Live,
) -> None:
    live = bare_live
    command(live, "UREP1")
    view = live.fake.wait_for("views.open")[0].params["view"]
    deal_block = next(b for b in view["blocks"] if b.get("block_id") == "deal")
    assert deal_block["element"]["type"] == "plain_text_input"
    submit(
        live,
        "UREP1",
        "deal_support_request",
        request_values("Globex bake-off at Umbrella", search=False),
    )
    assert "Globex bake-off at Umbrella" in blocks_text(card_of(live)["blocks"])

    command(live, "UREP1", "list", key="rep-list")
    mine = wait_until(
        lambda: [r for r in live.fake.calls("response_url") if r.path.endswith("/rep-list")],
        what="the rep's list",
    )[0].params
    assert "Globex bake-off at Umbrella" in blocks_text(mine["blocks"])
    assert "Unclaimed queue" not in blocks_text(mine["blocks"])
    command(live, "UMKT1", "list", key="mkt-list")
    queue = wait_until(
        lambda: [r for r in live.fake.calls("response_url") if r.path.endswith("/mkt-list")],
        what="the marketer's list",
    )[0].params
    assert "Unclaimed queue (1)" in blocks_text(queue["blocks"])
    usage = command(live, "UREP1", "bogus").json()
    assert "`/deal-support bogus` is not something revbot knows" in usage["text"]
