"""Deal support end to end against the fake Salesforce and HubSpot (and the fake Slack):
/deal-support searches the CRM's opportunities, the card shows the CRM's stage, amount and close
date, and delivery writes exactly one note on the CRM's opportunity, even when delivered twice."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import select

from bot.core.db import transaction
from bot.core.models import OutboxMessage
from bot.services import Services, default_pacer, slack_client
from jobs import outbox as outbox_job
from tests.conftest import FrozenClock, Live, blocks_text, make_settings, start_live, wait_until
from tests.contract.conftest import VENDORS, CrmBackend, SeenNote, open_backend
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import block_suggestion_payload, text_state
from tests.test_deal_support_core import ds_playbook
from tests.test_deal_support_e2e import (
    card_of,
    click,
    command,
    ephemeral,
    replies,
    request_values,
    requests_in,
    submit,
)

ASSET = "https://cdn.example/globex-vs-us.pdf"


@pytest.fixture(params=VENDORS)
def vendor(
    request: pytest.FixtureRequest, engine: Engine, clock: FrozenClock
) -> Iterator[CrmBackend]:
    """Salesforce, then HubSpot, each behind its fake."""
    with open_backend(request.param, engine, clock, ds_playbook()) as backend:
        yield backend


@pytest.fixture
def vendor_live(
    vendor: CrmBackend, engine: Engine, database_url: str, fake_slack: FakeSlack
) -> Iterator[Live]:
    """revbot with a #deal-support playbook whose CRM is the vendor's fake."""
    settings = make_settings(database_url, fake_slack.url, REVBOT_CRM=vendor.name)
    services = Services(
        settings=settings,
        playbook=vendor.playbook,
        engine=engine,
        crm=vendor.crm,
        slack=slack_client(settings),
        clock=lambda: datetime.now(UTC),
        pacer=default_pacer(),
    )
    live, stop = start_live(services, fake_slack)
    yield live
    stop()


def _search(live: Live, text: str) -> list[dict[str, Any]]:
    answer = live.slack(
        block_suggestion_payload(
            user_id="UREP1",
            action_id="ds_deal_search",
            block_id="deal",
            value=text,
            callback_id="deal_support_request",
        )
    ).json()
    return list(answer["options"])


def test_request_to_delivered_note_through_the_vendor_crm(
    vendor: CrmBackend, vendor_live: Live
) -> None:
    live = vendor_live
    acme = vendor.seed_deal(
        "Acme Health expansion",
        stage="Contract Sent",
        amount=150_000.0,
        close_date=date(2026, 12, 15),
    )
    vendor.seed_deal("Initech renewal", stage="Qualified To Buy")

    command(live, "UREP1")
    view = live.fake.wait_for("views.open")[0].params["view"]
    deal_block = next(b for b in view["blocks"] if b.get("block_id") == "deal")
    assert deal_block["element"]["type"] == "external_select"

    options = _search(live, "ACME")
    assert [o["value"] for o in options if o["value"].startswith("deal:")] == [f"deal:{acme}"]
    assert "Contract Sent" in options[0]["text"]["text"]
    assert any("acme" in searched.lower() for searched in vendor.deal_searches())

    # An opportunity the CRM does not hold: the rep is told in a DM; nothing is stored.
    gone = submit(
        live, "UREP1", "deal_support_request", request_values(f"deal:{vendor.absent_deal_id}")
    )
    assert not gone.content.strip()
    dm = live.fake.wait_for("chat.postMessage")[0].params
    assert dm["channel"] == "UREP1"
    assert "cannot find the opportunity" in dm["text"]
    assert requests_in(live) == []

    submit(live, "UREP1", "deal_support_request", request_values(f"deal:{acme}"))
    card = card_of(live)
    request_id = int(card["metadata"]["event_payload"]["request_id"])
    shown = blocks_text(card["blocks"])
    for expected in (
        "Acme Health expansion",
        "Contract Sent",
        "150,000",
        "closes Tue Dec 15, 2026",
    ):
        assert expected in shown, expected
    (stored,) = requests_in(live)
    assert (stored.deal_id, stored.deal_stage, stored.deal_amount) == (
        acme,
        "Contract Sent",
        150_000.0,
    )

    # Two marketers race for it: one winner.
    racers = [
        threading.Thread(target=click, args=(live, user, "ds_take", request_id, f"take-{user}"))
        for user in ("UMKT1", "UMKT2")
    ]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    winner = wait_until(
        lambda: next((r.claimed_by for r in requests_in(live) if r.claimed_by), None),
        what="the claim",
    )
    loser = ({"UMKT1", "UMKT2"} - {winner}).pop()
    assert f"already taken by <@{winner}>" in ephemeral(live, f"take-{loser}")

    click(live, winner, "ds_deliver", request_id, "deliver")
    modal = live.fake.wait_for("views.open", count=2)[1].params["view"]
    values = {
        "asset_url": {"value": text_state(ASSET)},
        "note": {"value": text_state("Lead with slide 2.")},
    }
    submit(live, winner, "deal_support_deliver", values, modal["private_metadata"])

    def notes() -> list[SeenNote]:
        return vendor.deal_notes(acme)

    (note,) = wait_until(notes, what="the note on the CRM opportunity")
    assert note.external_id == f"revbot-deal-support-{request_id}"
    assert ASSET in note.text
    delivered = wait_until(lambda: len(replies(live)) >= 2 and replies(live), what="delivery")[1]
    assert delivered["text"].startswith("<@UREP1>")
    assert ASSET in delivered["text"]

    # The outbox delivers the same row again (its answer was lost): the CRM is asked again,
    # and still holds one note.
    wait_until(lambda: _note_row_state(live) == "done", what="the note row done")
    before = vendor.requests_received()
    with transaction(live.services.engine) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "crm.note")).one()
        row.state = "pending"
        session.add(row)
    outbox_job.run(live.services, now=datetime.now(UTC))  # or the running worker gets it first
    wait_until(lambda: _note_row_state(live) == "done", what="the note row delivered again")
    assert vendor.requests_received() > before
    assert [n.external_id for n in notes()] == [note.external_id]


def _note_row_state(live: Live) -> str:
    with transaction(live.services.engine) as session:
        row = session.exec(select(OutboxMessage).where(OutboxMessage.kind == "crm.note")).one()
        return row.state
