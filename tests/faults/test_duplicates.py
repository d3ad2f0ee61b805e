"""Duplicate and reordered deliveries: every lead carded once, its CRM record written once."""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from xml.sax.saxutils import escape

import pytest
from flask.testing import FlaskClient
from sqlmodel import Session, select

from bot.core.models import Lead, LocalCrmRecord, MqlCycle, OutboxMessage
from bot.http.app import create_web_app
from bot.services import Services
from bot.views.lead_card import ACCEPT
from bot.views.modals import NOTE_BLOCK, REASON_BLOCK, REJECT_VIEW, VALUE
from tests.conftest import FrozenClock, Live, lead_json, make_services, team_playbook, wait_until
from tests.fakes.hubspot_api import FakeHubSpot
from tests.fakes.hubspot_testing import CLIENT_SECRET, hubspot_services, sign_v3
from tests.fakes.salesforce_api import ORG_ID
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import (
    block_action_payload,
    select_state,
    text_state,
    view_submission_payload,
)

from .conftest import PIPELINE, cards_per_lead, drain, fast_pacer, post_signed

SEED = 20261123
DRAIN_EVERY = 50  # deliver as a worker would between requests, below the flood threshold
PUBLIC_URL = "https://revbot.example.com"


def _schedule(unique: list[Any], total: int) -> list[Any]:
    """`unique` deliveries plus repeats of random ones up to `total`, shuffled (seeded)."""
    rng = random.Random(SEED)
    deliveries = unique + [rng.choice(unique) for _ in range(total - len(unique))]
    rng.shuffle(deliveries)
    return deliveries


def outbound_message(record_id: str, n: int) -> bytes:
    """A Salesforce Outbound Message about one MQL Lead."""
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>{ORG_ID}</OrganizationId>
   <ActionId>04k5g000000AbCdAAK</ActionId>
   <Notification>
    <Id>04l5g{n:010d}AA</Id>
    <sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>{record_id}</sf:Id>
     <sf:Company>{escape(f"Company {n}")}</sf:Company>
     <sf:Country>US</sf:Country>
     <sf:Email>sf{n}@acme.example</sf:Email>
     <sf:LastModifiedDate>2026-11-23T14:03:00.000Z</sf:LastModifiedDate>
     <sf:LastName>Lead{n}</sf:LastName>
     <sf:Status>MQL</sf:Status>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>""".encode()


@pytest.fixture
def assign_services(
    engine: Any, database_url: str, fake_slack: FakeSlack, clock: FrozenClock
) -> Services:
    """Assign mode on the local CRM: intake itself queues a CRM write of the owner."""
    services = make_services(
        engine, database_url, fake_slack, playbook=team_playbook("assign"), clock=clock
    )
    services.settings = services.settings.model_copy(update={"salesforce_org_id": ORG_ID})
    services.pacer = fast_pacer()
    return services


def _deliver_all(deliveries: list[Callable[[], str]], services: Services) -> Counter[str]:
    statuses: Counter[str] = Counter()
    for index, deliver in enumerate(deliveries, 1):
        statuses[deliver()] += 1
        if index % DRAIN_EVERY == 0:
            drain(services)
    drain(services)
    return statuses


@pytest.mark.slow
def test_2000_intake_and_salesforce_deliveries_with_repeats_card_and_write_each_lead_once(
    assign_services: Services, fake_slack: FakeSlack
) -> None:
    services = assign_services
    client: FlaskClient = create_web_app(services, None).test_client()
    auth = {"Authorization": "Bearer intake-test-token"}

    def intake(n: int) -> Callable[[], str]:
        body = lead_json(f"I-{n}", email=f"in{n}@acme.example", score=40 + n % 60)

        def send() -> str:
            reply = client.post("/intake/leads", json=body, headers=auth)
            return f"{reply.status_code} {reply.get_json()['results'][0]['status']}"

        return send

    def salesforce(n: int) -> Callable[[], str]:
        body = outbound_message(f"00Q5g{n:010d}", n)
        headers = {"Content-Type": "text/xml; charset=utf-8"}

        def send() -> str:
            reply = client.post("/webhooks/salesforce", data=body, headers=headers)
            return f"{reply.status_code} {'ack' if b'<Ack>true</Ack>' in reply.data else 'no ack'}"

        return send

    unique = [intake(n) for n in range(1000)] + [salesforce(n) for n in range(600)]
    deliveries = _schedule(unique, 2000)
    assert len(deliveries) == 2000
    assert len(set(map(id, deliveries))) == 1600  # 400 deliveries (20%) repeat an earlier one

    statuses = _deliver_all(deliveries, services)

    intake_sent = sum(1 for d in deliveries if d in unique[:1000])
    assert statuses == Counter(
        {"202 created": 1000, "202 duplicate": intake_sent - 1000, "200 ack": 2000 - intake_sent}
    )
    with Session(services.engine) as session:
        leads = session.exec(select(Lead)).all()
        cycles = session.exec(select(MqlCycle)).all()
        writes = {r.lead_id: r.writes for r in session.exec(select(LocalCrmRecord)).all()}
        syncs = Counter(
            int(r.payload["lead_id"])
            for r in session.exec(select(OutboxMessage).where(OutboxMessage.kind == "crm.sync"))
        )
        undelivered = session.exec(select(OutboxMessage).where(OutboxMessage.state != "done")).all()
    lead_ids = {lead.id for lead in leads}
    assert Counter(lead.origin for lead in leads) == {"hubspot-form": 1000, "salesforce": 600}
    assert len(cycles) == 1600
    assert undelivered == []
    cards = cards_per_lead(fake_slack)
    assert set(cards) == lead_ids
    assert [lead for lead, n in cards.items() if n > 1] == []  # duplicate cards: 0 of 1,600
    assert writes == dict.fromkeys(lead_ids, 1)  # duplicate CRM writes: 0 of 1,600
    assert syncs == Counter(dict.fromkeys(lead_ids, 1))


@pytest.fixture
def fake_hubspot(clock: FrozenClock) -> Iterator[FakeHubSpot]:
    """A running fake HubSpot API."""
    with FakeHubSpot(clock=clock) as fake:
        yield fake


def hubspot_event(event_id: int, contact: int, *, creation: bool) -> dict[str, Any]:
    """One HubSpot webhook event about a contact (a creation, or becoming an MQL)."""
    event: dict[str, Any] = {
        "eventId": event_id,
        "subscriptionId": 2881778,
        "portalId": 7654321,
        "appId": 1160452,
        "occurredAt": 1795446000000 + event_id,
        "attemptNumber": 0,
        "objectId": contact,
    }
    if creation:
        event.update(subscriptionType="contact.creation", changeFlag="CREATED")
    else:
        event.update(
            subscriptionType="contact.propertyChange",
            propertyName="lifecyclestage",
            propertyValue="marketingqualifiedlead",
            changeFlag="UPDATED",
        )
    return event


def test_hubspot_webhook_redeliveries_and_repeat_events_card_and_write_each_contact_once(
    engine: Any,
    database_url: str,
    fake_hubspot: FakeHubSpot,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> None:
    services = hubspot_services(
        engine,
        database_url,
        fake_hubspot,
        clock,
        slack_url=fake_slack.url,
        playbook=team_playbook("assign"),
        REVBOT_PUBLIC_URL=PUBLIC_URL,
    )
    services.pacer = fast_pacer()
    contacts = [str(9000 + n) for n in range(350)]
    for n, contact in enumerate(contacts):
        fake_hubspot.seed_mql(
            contact,
            mql_at=clock.now,
            email=f"hs{n}@acme.example",
            firstname="Hub",
            lastname=f"Contact{n}",
            company=f"Company {n}",
            country="US",
        )
    # 400 distinct events: a creation for each contact, and a second, MQL event for 50 of them.
    events = [hubspot_event(n + 1, int(c), creation=True) for n, c in enumerate(contacts)]
    events += [hubspot_event(1000 + n, int(c), creation=False) for n, c in enumerate(contacts[:50])]
    deliveries = _schedule(events, 500)
    client: FlaskClient = create_web_app(services, None).test_client()

    def send(event: dict[str, Any]) -> Callable[[], str]:
        def post() -> str:
            body = json.dumps([event]).encode()
            ts = int(clock().timestamp() * 1000)
            headers = {
                "X-HubSpot-Signature-v3": sign_v3(
                    CLIENT_SECRET, "POST", f"{PUBLIC_URL}/webhooks/hubspot", body, ts
                ),
                "X-HubSpot-Request-Timestamp": str(ts),
                "Content-Type": "application/json",
            }
            reply = client.post("/webhooks/hubspot", data=body, headers=headers)
            return f"{reply.status_code} queued {reply.get_json()['queued']}"

        return post

    statuses = _deliver_all([send(e) for e in deliveries], services)

    assert statuses == Counter({"200 queued 1": 400, "200 queued 0": 100})
    with Session(engine) as session:
        leads = session.exec(select(Lead)).all()
        cycles = session.exec(select(MqlCycle)).all()
        undelivered = session.exec(select(OutboxMessage).where(OutboxMessage.state != "done")).all()
    assert sorted(lead.crm_record_id or "" for lead in leads) == contacts
    assert len(cycles) == 350
    assert undelivered == []
    cards = cards_per_lead(fake_slack)
    assert set(cards) == {lead.id for lead in leads}
    assert [lead for lead, n in cards.items() if n > 1] == []  # duplicate cards: 0 of 350
    written = Counter(
        item["id"]
        for call in fake_hubspot.calls("/crm/v3/objects/contacts/batch/update")
        for item in call.body["inputs"]
    )
    assert written == Counter(dict.fromkeys(contacts, 1))  # duplicate CRM writes: 0 of 350


RETRY = {"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"}


def _one_card(live: Live) -> tuple[int, str]:
    assert live.intake(lead_json("RETRY-1", score=90)).status_code == 202
    live.fake.wait_for("chat.postMessage", timeout=10)
    with Session(live.services.engine) as session:
        cycle = session.exec(select(MqlCycle)).one()
    assert cycle.id is not None
    return cycle.id, live.fake.messages(PIPELINE)[0]["ts"]


def _effects(live: Live) -> tuple[MqlCycle, Counter[str]]:
    with Session(live.services.engine) as session:
        cycle = session.exec(select(MqlCycle)).one()
        kinds = Counter(r.kind for r in session.exec(select(OutboxMessage)).all())
    return cycle, kinds


def test_a_retried_accept_click_is_handled_once(fast_live: Live) -> None:
    live = fast_live
    cycle_id, ts = _one_card(live)
    click = block_action_payload(
        user_id="UREP1",
        action_id=ACCEPT,
        value=str(cycle_id),
        message_ts=ts,
        response_url=live.fake.response_url("accept"),
    )

    assert post_signed(live.url, click).status_code == 200
    wait_until(lambda: live.fake.calls("chat.update"), what="the card update")
    assert post_signed(live.url, click, headers=RETRY).status_code == 200
    wait_until(lambda: live.fake.calls("response_url"), what="the answer to the retry")
    time.sleep(0.3)

    cycle, kinds = _effects(live)
    assert (cycle.state, cycle.accepted_by, cycle.version) == ("accepted", "UREP1", 2)
    assert kinds["slack.refresh"] == 1
    assert kinds["crm.sync"] == 1
    assert len(live.fake.calls("chat.update")) == 1
    with Session(live.services.engine) as session:
        assert session.exec(select(LocalCrmRecord)).one().writes == 1
    assert [c.params["text"] for c in live.fake.calls("response_url")] == [
        "This lead was already accepted by you."
    ]


def test_a_retried_reject_submission_is_handled_once(fast_live: Live) -> None:
    live = fast_live
    cycle_id, _ = _one_card(live)
    submission = view_submission_payload(
        user_id="UREP1",
        callback_id=REJECT_VIEW,
        private_metadata=json.dumps({"cycle_id": cycle_id}),
        values={
            REASON_BLOCK: {VALUE: select_state("not_icp")},
            NOTE_BLOCK: {VALUE: text_state("Student, not a buyer.")},
        },
    )

    first = post_signed(live.url, submission)
    retried = post_signed(live.url, submission, headers=RETRY)

    assert first.status_code == 200
    assert first.content == b""  # accepted: the modal closes
    assert retried.status_code == 200
    if retried.content:
        assert "already rejected by you" in retried.json()["errors"][REASON_BLOCK]
    wait_until(lambda: live.fake.calls("chat.update"), what="the card update")
    time.sleep(0.3)
    cycle, kinds = _effects(live)
    assert (cycle.state, cycle.closed_by, cycle.version) == ("rejected", "UREP1", 2)
    assert (kinds["slack.refresh"], kinds["crm.sync"]) == (1, 1)
    assert len(live.fake.calls("chat.update")) == 1
    with Session(live.services.engine) as session:
        assert session.exec(select(LocalCrmRecord)).one().writes == 1
    # A retry that passed the check before the first save landed loses its own save; the lead is
    # already as the rep asked, so nobody is told it was "not saved".
    assert [
        c for c in live.fake.calls("chat.postMessage") if c.params.get("channel") == "UREP1"
    ] == []


def test_a_retried_app_home_opened_event_publishes_the_home_tab_once_and_unseen_retries_run(
    fast_live: Live,
) -> None:
    live = fast_live
    event = {
        "token": "legacy",
        "team_id": "T0TEAM",
        "api_app_id": "A0REVBOT",
        "type": "event_callback",
        "event_id": "Ev0HOME0001",
        "event_time": 1795446000,
        "event": {
            "type": "app_home_opened",
            "user": "UREP1",
            "channel": "DREP1",
            "tab": "home",
            "event_ts": "1795446000.000100",
        },
    }
    body = json.dumps(event).encode()
    json_type = {"Content-Type": "application/json"}

    assert post_signed(live.url, {}, body=body, headers=json_type).status_code == 200
    live.fake.wait_for("views.publish")
    retried = post_signed(live.url, {}, body=body, headers={**json_type, **RETRY})
    assert retried.status_code == 200
    time.sleep(0.5)
    assert len(live.fake.calls("views.publish")) == 1

    # A retry of a delivery that never reached revbot is the first it sees: it still runs.
    unseen = json.dumps({**event, "event_id": "Ev0HOME0002"}).encode()
    assert post_signed(live.url, {}, body=unseen, headers={**json_type, **RETRY}).status_code == 200
    live.fake.wait_for("views.publish", count=2)
