"""Dispositions to HubSpot through the outbox: batch update mapping, owners, partial failures, 429s."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import Any

import pytest
import requests
from sqlmodel import Session, col, select

from bot.core import db, handoff, outbox
from bot.core.crm import CrmWrite, LeadDisposition, LeadRef
from bot.core.crm_intake import store_crm_leads
from bot.core.models import OutboxMessage
from bot.core.playbook import Playbook, parse_playbook
from bot.core.writeback import deliver_batch
from bot.services import Services
from integrations.hubspot.client import HubSpotApi
from integrations.hubspot.crm import HubSpotCRM
from tests.conftest import TEST_PLAYBOOK, FrozenClock
from tests.fakes.hubspot_api import FakeHubSpot
from tests.fakes.hubspot_testing import hubspot_crm, hubspot_services

UPDATE = "/crm/v3/objects/contacts/batch/update"
OWNERS = "/crm/v3/owners/"


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(clock=clock) as server:
        yield server
        assert server.schema_errors == []


def _playbook(extra: str = "") -> Playbook:
    return parse_playbook(TEST_PLAYBOOK.replace("MODE", "claim") + extra, "test playbook")


def _services(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock, extra: str = ""
) -> Services:
    return hubspot_services(engine, database_url, fake, clock, playbook=_playbook(extra))


def _lead(services: Services, fake: FakeHubSpot, clock: FrozenClock, contact: str) -> int:
    """A HubSpot MQL stored through CRM intake; returns its cycle id."""
    fake.seed_mql(contact, mql_at=clock.now, email=f"c{contact}@acme.example")
    lead = {"external_id": contact, "source": "hubspot", "crm_record_id": contact}
    lead |= {"last_name": "Diaz", "company": "Acme", "mql_at": clock.now}
    with db.transaction(services.engine) as session:
        summary = store_crm_leads(
            session, "hubspot", [lead], playbook=services.playbook, now=clock()
        )
    return summary.results[0].cycle_id


def _accept(services: Services, cycle_id: int, clock: FrozenClock, rep: str = "UREP1") -> None:
    with db.transaction(services.engine) as session:
        handoff.accept(session, cycle_id, rep, playbook=services.playbook, now=clock())


def _reject(services: Services, cycle_id: int, clock: FrozenClock) -> None:
    with db.transaction(services.engine) as session:
        handoff.reject(
            session,
            cycle_id,
            "UREP1",
            reason_code="not_icp",
            note="Student project, no budget.",
            playbook=services.playbook,
            now=clock(),
        )


def _recycle(services: Services, cycle_id: int, clock: FrozenClock) -> None:
    with db.transaction(services.engine) as session:
        handoff.recycle(
            session,
            cycle_id,
            "UREP1",
            reason_code="timing",
            revisit_on=date(2027, 3, 1),
            note="Budget opens in Q2.",
            playbook=services.playbook,
            now=clock(),
        )


def _rows(engine: Any, state: str | None = None) -> list[OutboxMessage]:
    with Session(engine) as session:
        query = select(OutboxMessage).where(OutboxMessage.kind == outbox.CRM_SYNC)
        if state:
            query = query.where(OutboxMessage.state == state)
        rows = list(session.exec(query.order_by(col(OutboxMessage.id))).all())
        for row in rows:
            session.expunge(row)
        return rows


def _deliver(services: Services, clock: FrozenClock) -> None:
    due = [r.id for r in _rows(services.engine, outbox.PENDING) if r.due_at <= clock()]
    deliver_batch(
        services.engine,
        [i for i in due if i is not None],
        services.crm,
        services.playbook,
        now=clock(),
    )


def test_dispositions_become_one_batch_update_of_contact_properties(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    accepted, rejected, recycled = (
        _lead(services, fake, clock, c) for c in ("5101", "5102", "5103")
    )
    _accept(services, accepted, clock)
    _reject(services, rejected, clock)
    _recycle(services, recycled, clock)

    _deliver(services, clock)

    updates = fake.calls(UPDATE)
    assert len(updates) == 1
    sent = {i["id"]: i["properties"] for i in updates[0].body["inputs"]}
    assert sent == {
        "5101": {
            "hs_lead_status": "IN_PROGRESS",
            "revbot_reason": "",
            "revbot_note": "",
            "revbot_revisit_on": "",
            "hubspot_owner_id": "41629779",
        },
        "5102": {
            "hs_lead_status": "UNQUALIFIED",
            "revbot_reason": "Not ICP",
            "revbot_note": "Student project, no budget.",
            "revbot_revisit_on": "",
        },
        "5103": {
            "hs_lead_status": "BAD_TIMING",
            "revbot_reason": "Timing",
            "revbot_note": "Budget opens in Q2.",
            "revbot_revisit_on": "2027-03-01",
        },
    }
    assert fake.record("contacts", "5103")["revbot_revisit_on"] == "2027-03-01"
    assert fake.record("contacts", "5101")["hubspot_owner_id"] == "41629779"
    assert [r.state for r in _rows(engine)] == [outbox.DONE] * len(_rows(engine))
    assert fake.calls(OWNERS)[0].query["email"] == "ana@example.com"


def test_the_playbook_owner_mapping_wins_and_email_lookups_are_cached(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    mapped = _services(
        engine, database_url, fake, clock, "crm_fields:\n  hubspot:\n    owners: {UREP1: '777'}\n"
    )
    _accept(mapped, _lead(mapped, fake, clock, "5101"), clock)
    _deliver(mapped, clock)
    assert fake.record("contacts", "5101")["hubspot_owner_id"] == "777"
    assert fake.calls(OWNERS) == []

    services = _services(engine, database_url, fake, clock)
    _accept(services, _lead(services, fake, clock, "5102"), clock, rep="UREP2")
    _deliver(services, clock)
    _accept(services, _lead(services, fake, clock, "5103"), clock, rep="UREP2")
    _deliver(services, clock)

    assert fake.record("contacts", "5102")["hubspot_owner_id"] == "60158084"
    assert fake.record("contacts", "5103")["hubspot_owner_id"] == "60158084"
    assert len(fake.calls(OWNERS)) == 1


def test_partial_failures_commit_the_good_and_dead_letter_the_bad_with_the_property_error(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    good, bad, gone = (_lead(services, fake, clock, c) for c in ("5101", "5102", "5103"))
    for cycle in (good, bad, gone):
        _reject(services, cycle, clock)
    fake.input_errors["5102"] = (
        "VALIDATION_ERROR",
        '"UNQUALIFIED" was not one of the allowed options',
        "hs_lead_status",
    )
    del fake.objects["contacts"]["5103"]  # deleted in HubSpot since it was handed off

    _deliver(services, clock)

    assert len(fake.calls(UPDATE)) == 1
    assert fake.record("contacts", "5101")["hs_lead_status"] == "UNQUALIFIED"
    assert "hs_lead_status" not in fake.record("contacts", "5102")
    states = {r.payload["lead_id"]: r for r in _rows(engine)}
    by_contact = dict(zip(("5101", "5102", "5103"), sorted(states), strict=True))
    assert states[by_contact["5101"]].state == outbox.DONE
    refused = states[by_contact["5102"]]
    assert refused.state == outbox.DEAD
    assert "VALIDATION_ERROR" in (refused.last_error or "")
    assert "was not one of the allowed options" in (refused.last_error or "")
    deleted = states[by_contact["5103"]]
    assert deleted.state == outbox.DEAD
    assert "OBJECT_NOT_FOUND" in (deleted.last_error or "")


def test_a_whole_batch_refused_for_named_inputs_is_written_again_without_them(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    for contact in ("5101", "5102", "5103"):
        _reject(services, _lead(services, fake, clock, contact), clock)
    fake.batch_errors = "reject_batch"
    fake.input_errors["5102"] = ("VALIDATION_ERROR", "bad value", "revbot_reason")

    _deliver(services, clock)

    updates = fake.calls(UPDATE)
    assert [sorted(i["id"] for i in u.body["inputs"]) for u in updates] == [
        ["5101", "5102", "5103"],
        ["5101", "5103"],
    ]
    assert fake.record("contacts", "5103")["hs_lead_status"] == "UNQUALIFIED"
    assert sorted(r.state for r in _rows(engine)) == [outbox.DEAD, outbox.DONE, outbox.DONE]


def test_a_missing_property_dead_letters_with_its_name_and_alerts(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = _services(
        engine,
        database_url,
        fake,
        clock,
        "crm_fields:\n  hubspot:\n    fields: {reason: revbot_why}\n",
    )
    _reject(services, _lead(services, fake, clock, "5101"), clock)

    _deliver(services, clock)

    row = _rows(engine)[-1]
    assert row.state == outbox.DEAD
    assert 'Property "revbot_why" does not exist' in (row.last_error or "")
    with Session(engine) as session:
        alerts = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == outbox.SLACK_ALERT)
        ).all()
        assert len(alerts) == 1


def test_a_429_storm_backs_off_by_the_rate_limit_window_then_writes(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    _reject(services, _lead(services, fake, clock, "5101"), clock)
    fake.rate_limit(3, path=UPDATE)
    start = clock()

    for _ in range(3):
        _deliver(services, clock)
        row = _rows(engine)[-1]
        assert row.state == outbox.PENDING
        assert row.due_at == clock() + timedelta(seconds=10)  # X-HubSpot-RateLimit-Interval
        clock.advance(seconds=9)
        _deliver(services, clock)  # not due yet: no call
        clock.advance(seconds=1)
    _deliver(services, clock)

    assert len(fake.calls(UPDATE)) == 4
    assert clock() == start + timedelta(seconds=30)
    row = _rows(engine)[-1]
    assert row.state == outbox.DONE
    assert row.attempts == 0  # waiting out a spent budget is not a failed attempt
    assert fake.record("contacts", "5101")["hs_lead_status"] == "UNQUALIFIED"


def test_retry_after_header_wins_over_the_window(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    _reject(services, _lead(services, fake, clock, "5101"), clock)
    fake.rate_limit(
        1,
        path=UPDATE,
        headers={"Retry-After": "42", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"},
    )

    _deliver(services, clock)

    assert _rows(engine)[-1].due_at == clock() + timedelta(seconds=42)


def test_server_errors_and_outages_retry_with_backoff(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    _reject(services, _lead(services, fake, clock, "5101"), clock)
    fake.fail(502, {"status": "error", "message": "Bad gateway"}, path=UPDATE)

    _deliver(services, clock)

    row = _rows(engine)[-1]
    assert row.state == outbox.PENDING
    assert row.due_at > clock()
    assert "CrmUnavailable" in (row.last_error or "")
    unreachable = hubspot_services(engine, database_url, fake, clock)
    api = HubSpotApi(fake.token, "http://127.0.0.1:9")  # nothing listens on the discard port
    unreachable.crm = HubSpotCRM(api, unreachable.playbook.field_map("hubspot"), clock)
    clock.now = row.due_at
    _deliver(unreachable, clock)

    row = _rows(engine)[-1]
    assert "HubSpot could not be reached" in (row.last_error or "")
    assert row.state == outbox.PENDING
    assert row.attempts == 2


def test_a_lead_without_a_hubspot_id_is_refused_without_a_call(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    crm = hubspot_crm(fake, clock)
    write = CrmWrite("1", _disposition(LeadRef(1, "intake", "L-1001"), clock.now))

    [result] = crm.apply([write])

    assert not result.ok
    assert not result.retryable
    assert "no HubSpot contact id" in (result.error or "")
    assert fake.calls() == []


def test_batches_hold_at_most_100_inputs_and_the_fake_refuses_more(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    ids = [fake.seed_contact() for _ in range(250)]
    crm = hubspot_crm(fake, clock)
    writes = [
        CrmWrite(str(n), _disposition(LeadRef(n, "hubspot", i), clock.now))
        for n, i in enumerate(ids)
    ]

    results = crm.apply(writes)

    assert all(r.ok for r in results)
    assert len(results) == 250
    assert [len(c.body["inputs"]) for c in fake.calls(UPDATE)] == [100, 100, 50]
    too_many = {"inputs": [{"id": i, "properties": {"hs_lead_status": "NEW"}} for i in ids[:101]]}
    reply = requests.post(
        fake.url + UPDATE,
        json=too_many,
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=5,
    )
    assert reply.status_code == 400
    assert reply.json()["category"] == "VALIDATION_ERROR"
    unknown_key = {"inputs": [{"id": ids[0], "properties": {}}], "allOrNone": False}
    reply = requests.post(
        fake.url + UPDATE,
        json=unknown_key,
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=5,
    )
    assert reply.status_code == 400
    assert len(fake.schema_errors) == 2
    fake.schema_errors.clear()


def _disposition(lead: LeadRef, now: datetime) -> LeadDisposition:
    return LeadDisposition(
        lead=lead,
        status="rejected",
        status_value="UNQUALIFIED",
        owner_slack_id="UREP1",
        owner_email="ana@example.com",
        reason_code="not_icp",
        reason_value="Not ICP",
        note=None,
        revisit_on=None,
        mql_at=now,
        accepted_at=None,
        closed_at=now,
    )
