"""MQL intake from the fake Salesforce: polling with a watermark and overlap, fetch by id, and
Outbound Messages at POST /webhooks/salesforce (org check, malformed bodies, duplicates, ack
only after the store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlmodel import Session, col, select

from bot.core.models import Lead, MqlCycle
from bot.core.playbook import parse_playbook
from bot.http.app import create_web_app
from jobs import crm_intake
from tests.conftest import TEST_PLAYBOOK, FrozenClock, make_services, team_playbook
from tests.fakes.salesforce_api import ORG_ID, FakeSalesforce, fixture, sf_datetime
from tests.fakes.salesforce_support import salesforce_crm, seed_mql


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeSalesforce]:
    """A running fake org whose record timestamps follow the test clock."""
    with FakeSalesforce(clock=clock) as server:
        yield server


def _leads(engine: Any) -> list[Lead]:
    with Session(engine) as session:
        rows = list(session.exec(select(Lead).order_by(col(Lead.id))).all())
        for row in rows:
            session.expunge(row)
        return rows


def _cycles(engine: Any) -> list[MqlCycle]:
    with Session(engine) as session:
        return list(session.exec(select(MqlCycle).order_by(col(MqlCycle.id))).all())


def test_polling_reads_new_mqls_once_and_advances_the_watermark(
    engine: Any, database_url: str, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    services = make_services(engine, database_url, None, clock=clock, crm=crm)
    fake.seed("Lead", LastName="Old", Company="Before", Status="MQL",
              SystemModstamp=sf_datetime(clock() - timedelta(hours=1)))  # fmt: skip
    clock.advance(seconds=10)
    first = seed_mql(fake, 2, Country="US", NumberOfEmployees=450, Industry="Healthcare")
    fake.seed("Lead", LastName="Not yet", Company="Open", Status="Open - Not Contacted")

    assert crm_intake.poll(services, now=clock()) == 2
    (soql,) = fake.queries()[-1:]
    assert "FROM Lead WHERE SystemModstamp > 2026-11-23T14:55:10+00:00 AND (Status = 'MQL')" in soql
    assert "ORDER BY SystemModstamp, Id LIMIT 200" in soql

    leads = _leads(engine)
    assert [lead.crm_record_id for lead in leads] == first
    assert leads[0].origin == "salesforce"
    assert leads[0].country == "US"
    assert leads[0].employees == 450

    clock.advance(seconds=20)
    later = seed_mql(fake, 1)
    assert crm_intake.poll(services, now=clock()) == 3  # the overlap reads the first two again
    soql = fake.queries()[-1]
    assert "SystemModstamp > 2026-11-23T14:59:40+00:00" in soql  # watermark 15:00:10 minus 30 s
    assert [lead.crm_record_id for lead in _leads(engine)] == [*first, *later]
    assert len(_cycles(engine)) == 3


def test_a_flood_pages_through_without_rereading_forever(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    seeded = seed_mql(fake, 450)  # all in the same second

    seen: list[str] = []
    watermark = None
    for _ in range(5):
        page = crm.poll_mqls(watermark, now=clock())
        seen.extend(lead["external_id"] for lead in page.leads)
        watermark = page.watermark
        if not page.more:
            break

    assert seen == seeded
    assert [("OFFSET 200" in q, "OFFSET 400" in q) for q in fake.queries()] == [
        (False, False),
        (True, False),
        (False, True),
    ]
    assert watermark is not None
    assert "|" not in watermark


def test_a_query_answered_in_pages_is_read_to_the_end(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    mqls = seed_mql(fake, 5)
    fake.query_page_size = 2

    leads = crm.fetch_mqls(mqls)

    assert sorted(lead["external_id"] for lead in leads) == sorted(mqls)
    assert len(fake.queries()) == 1
    follow_ups = [r for r in fake.requests if "/query/01gFAKE" in r.path]
    assert len(follow_ups) == 2  # two nextRecordsUrl pages after the first


def test_fetch_returns_only_records_that_are_mqls_now(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    (mql,) = seed_mql(fake)
    other = fake.seed("Lead", LastName="Lee", Company="Initech", Status="Working - Contacted")

    leads = crm.fetch_mqls([mql, other, "bogus' OR Id != null"])

    assert [lead["external_id"] for lead in leads] == [mql]
    (soql,) = fake.queries()
    assert "'bogus" not in soql


def test_a_custom_checkbox_criterion_with_a_date_field(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    fake.describe("Lead")["fields"] += [
        {**fake.describe("Lead")["fields"][-1], "name": "MQL__c", "type": "boolean"},
        {**fake.describe("Lead")["fields"][-1], "name": "MQL_Date__c", "type": "datetime"},
    ]
    playbook = parse_playbook(
        TEST_PLAYBOOK.replace("MODE", "claim")
        + "crm_fields:\n  salesforce:\n    mql: {field: MQL__c, equals: true, date_field: MQL_Date__c}\n",
        "test",
    )
    crm = salesforce_crm(fake, playbook, clock)
    lead = fake.seed("Lead", LastName="Kim", Company="Hooli", Status="Open - Not Contacted",
                     MQL__c=True, MQL_Date__c="2026-11-23T14:58:00.000+0000")  # fmt: skip
    fake.seed("Lead", LastName="No", Company="Nope", MQL__c=False)

    page = crm.poll_mqls(None, now=clock())

    assert [x["external_id"] for x in page.leads] == [lead]
    assert page.leads[0]["mql_at"].isoformat() == "2026-11-23T14:58:00+00:00"
    assert "AND (MQL__c = true)" in fake.queries()[0]


# -- Outbound Messages -----------------------------------------------------------------------


def _client(engine: Any, database_url: str, clock: FrozenClock, org: str | None = ORG_ID) -> Any:
    services = make_services(engine, database_url, None, clock=clock)
    if org is not None:
        services.settings = services.settings.model_copy(update={"salesforce_org_id": org})
    return create_web_app(services, None).test_client(), services


def _post(client: Any, body: str | bytes) -> Any:
    return client.post(
        "/webhooks/salesforce", data=body, headers={"Content-Type": "text/xml; charset=utf-8"}
    )


def test_an_outbound_message_is_stored_then_acked(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    client, services = _client(engine, database_url, clock)

    reply = _post(client, fixture("outbound_message.xml"))

    assert reply.status_code == 200
    assert b"<Ack>true</Ack>" in reply.data
    assert services.wakeup.is_set()
    leads = _leads(engine)
    assert [(x.crm_record_id, x.origin, x.company) for x in leads] == [
        ("00Q5g00000Ld001EAA", "salesforce", "Acme Health"),
        ("00Q5g00000Ld002EAA", "salesforce", "Globex"),
    ]
    assert leads[0].employees == 450
    assert leads[0].email == "ana@acme.example"
    assert leads[0].phone is None


def test_a_15_character_org_id_setting_matches(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    client, _ = _client(engine, database_url, clock, org=ORG_ID[:15])

    assert _post(client, fixture("outbound_message.xml")).status_code == 200


@pytest.mark.parametrize("org", ["00D5g000009Other", None])
def test_another_org_or_no_org_setting_is_refused(
    engine: Any, database_url: str, clock: FrozenClock, org: str | None
) -> None:
    client, _ = _client(engine, database_url, clock, org=org)

    reply = _post(client, fixture("outbound_message.xml"))

    assert reply.status_code == 403
    assert b"<faultcode>soapenv:Client</faultcode>" in reply.data
    assert b"Ack" not in reply.data
    assert _leads(engine) == []


@pytest.mark.parametrize(
    "body",
    [
        "not xml at all",
        "<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>",
        '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
        "<Envelope><Body/></Envelope>",
        fixture("outbound_message.xml").replace("<sf:Id>00Q5g00000Ld002EAA</sf:Id>", ""),
    ],
    ids=["text", "unclosed", "entities", "not-soap", "no-record-id"],
)
def test_a_malformed_body_is_a_400_fault_and_stores_nothing(
    engine: Any, database_url: str, clock: FrozenClock, body: str
) -> None:
    client, _ = _client(engine, database_url, clock)

    reply = _post(client, body)

    assert reply.status_code == 400
    assert b"<soapenv:Fault>" in reply.data
    assert _leads(engine) == []


def test_an_oversized_body_is_refused(engine: Any, database_url: str, clock: FrozenClock) -> None:
    client, _ = _client(engine, database_url, clock)

    reply = _post(client, b"<x>" + b"a" * (1024 * 1024) + b"</x>")

    assert reply.status_code == 413
    assert _leads(engine) == []


def test_redeliveries_and_late_older_messages_change_nothing(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    client, _ = _client(engine, database_url, clock)
    newer = fixture("outbound_message.xml")
    older = newer.replace("2026-11-23T14:03:00.000Z", "2026-11-23T13:00:00.000Z").replace(
        "Acme Health", "Acme Old Name"
    )

    assert _post(client, newer).status_code == 200
    assert _post(client, newer).status_code == 200
    assert _post(client, older).status_code == 200

    assert len(_leads(engine)) == 2
    assert len(_cycles(engine)) == 2
    assert _leads(engine)[0].company == "Acme Health"


def test_leads_that_are_not_mqls_and_other_objects_are_ignored(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    client, _ = _client(engine, database_url, clock)
    body = (
        fixture("outbound_message.xml")
        .replace("<sf:Status>MQL</sf:Status>\n     <sf:Title>", "<sf:Status>Open</sf:Status>\n     <sf:Title>")
        .replace('xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n     <sf:Id>00Q5g00000Ld002EAA',
                 'xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n     <sf:Id>0035g00000Ld002EAA')
    )  # fmt: skip

    reply = _post(client, body)

    assert reply.status_code == 200
    assert _leads(engine) == []


def test_no_ack_until_the_leads_are_stored(
    database_url: str, clock: FrozenClock, tmp_path: Any
) -> None:
    # A database without revbot's tables: the store fails, so Salesforce must not get its ack.
    broken = create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    client, _ = _client(broken, database_url, clock)

    reply = _post(client, fixture("outbound_message.xml"))

    assert reply.status_code == 500
    assert b"Ack" not in reply.data
    assert b"<faultcode>soapenv:Server</faultcode>" in reply.data
