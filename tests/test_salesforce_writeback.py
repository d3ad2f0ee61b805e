"""Disposition write-back to the fake Salesforce through the outbox: sObject Collections batching,
field mapping, per-record errors (retried or dead-lettered), the rate-limit pause and owners."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session

from bot.core import db, handoff, outbox
from bot.core.crm import CrmRateLimited, CrmWrite, LeadDisposition, LeadRef
from bot.core.crm_intake import store_crm_leads
from bot.core.intake import LeadIn, ingest
from bot.core.models import MqlCycle, OutboxMessage
from bot.core.playbook import Playbook, parse_playbook
from bot.core.writeback import deliver_batch
from integrations.salesforce import SalesforceCRM
from tests.conftest import TEST_PLAYBOOK, FrozenClock, lead_json, outbox_rows, team_playbook
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_support import salesforce_crm, seed_mql

ANA = "ana@example.com"  # UREP1's email in the test playbook


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeSalesforce]:
    """A running fake org whose record timestamps follow the test clock."""
    with FakeSalesforce(clock=clock) as server:
        yield server


def _playbook(owners: dict[str, str] | None = None) -> Playbook:
    text = TEST_PLAYBOOK.replace("MODE", "claim")
    if owners:
        mapping = ", ".join(f"{k}: {v}" for k, v in owners.items())
        text += f"crm_fields:\n  salesforce:\n    owners: {{{mapping}}}\n"
    return parse_playbook(text, "test playbook")


def _mqls(engine: Any, crm: SalesforceCRM, ids: list[str], clock: FrozenClock) -> list[int]:
    """Store the Salesforce MQLs as intake would; returns their cycle ids in the same order."""
    leads = crm.fetch_mqls(ids)
    with db.transaction(engine) as session:
        summary = store_crm_leads(
            session, "salesforce", leads, playbook=team_playbook(), now=clock()
        )
    by_record = {r.external_id: r.cycle_id for r in summary.results}
    return [by_record[i] for i in ids]


def _accept(engine: Any, cycle_id: int, clock: FrozenClock, user: str = "UREP1") -> None:
    with db.transaction(engine) as session:
        handoff.accept(session, cycle_id, user, playbook=team_playbook(), now=clock())


def _reject(engine: Any, cycle_id: int, clock: FrozenClock, note: str = "Student project") -> None:
    with db.transaction(engine) as session:
        handoff.reject(
            session,
            cycle_id,
            "UREP1",
            reason_code="not_icp",
            note=note,
            playbook=team_playbook(),
            now=clock(),
        )


def _deliver(engine: Any, crm: SalesforceCRM, playbook: Playbook, clock: FrozenClock) -> int:
    """One outbox delivery round of the CRM lane; returns the rows it claimed."""
    with db.transaction(engine) as session:
        ids = [r.id for r in outbox.claim(session, outbox.CRM_LANE, crm.max_batch, now=clock())]
    if ids:
        deliver_batch(engine, [i for i in ids if i is not None], crm, playbook, now=clock())
    return len(ids)


def _rows(engine: Any, kind: str = outbox.CRM_SYNC) -> list[OutboxMessage]:
    return outbox_rows(engine, kind)


def _patches(fake: FakeSalesforce) -> list[list[dict[str, Any]]]:
    return [r.json["records"] for r in fake.calls("PATCH", "/composite/sobjects")]


def test_dispositions_go_out_200_a_call_with_the_playbooks_fields(
    engine: Any, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    user_id = fake.seed("User", Name="Ana Diaz", Email=ANA, IsActive=True)
    crm = salesforce_crm(fake, team_playbook(), clock)
    ids = seed_mql(fake, 250)
    cycles = _mqls(engine, crm, ids, clock)
    for cycle in cycles[:200]:
        _accept(engine, cycle, clock)
    for cycle in cycles[200:]:
        _reject(engine, cycle, clock)

    while _deliver(engine, crm, team_playbook(), clock):
        pass

    calls = fake.calls("PATCH", "/composite/sobjects")
    assert [len(r.json["records"]) for r in calls] == [200, 50]
    assert all(r.json["allOrNone"] is False for r in calls)
    assert all(r.path == "/services/data/v61.0/composite/sobjects" for r in calls)
    assert {r.state for r in _rows(engine)} == {outbox.DONE}
    accepted, rejected = fake.record(ids[0]), fake.record(ids[249])
    assert accepted["Status"] == "Working - Contacted"
    assert accepted["OwnerId"] == user_id
    assert rejected["Status"] == "Closed - Not Converted"
    assert rejected["Revbot_Reason__c"] == "Not ICP"
    assert rejected["Revbot_Note__c"] == "Student project"
    sent = _patches(fake)[1][0]
    assert sent["attributes"] == {"type": "Lead"}
    assert "OwnerId" not in sent  # a rejection never moves the owner
    assert sent["Revbot_Revisit_On__c"] is None
    user_queries = [q for q in fake.queries() if "FROM User" in q]
    assert len(user_queries) == 1  # one lookup for the batch, then the cache


def test_a_partial_batch_commits_the_good_records_and_sorts_the_bad(
    engine: Any, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    good, locked, invalid = seed_mql(fake, 3)
    fake.lock_rows_once(locked)
    fake.add_validation_rule(
        "Lead",
        "A disqualified lead needs a note of at least 20 characters",
        lambda r: (
            r["Status"] == "Closed - Not Converted" and len(r.get("Revbot_Note__c") or "") < 20
        ),
        field="Revbot_Note__c",
    )
    c_good, c_locked, c_invalid = _mqls(engine, crm, [good, locked, invalid], clock)
    _reject(engine, c_good, clock, note="Not a fit: student project for a class")
    _reject(engine, c_locked, clock, note="Not a fit: student project for a class")
    _reject(engine, c_invalid, clock, note="Too short")
    with db.transaction(engine) as session:
        local = ingest(
            session, LeadIn.model_validate(lead_json("L-9")), playbook=team_playbook(), now=clock()
        )
    _reject(engine, local.cycle_id, clock)

    _deliver(engine, crm, team_playbook(), clock)

    by_lead = {r.payload["lead_id"]: r for r in _rows(engine)}
    lead_of = _lead_ids(engine, [c_good, c_locked, c_invalid])
    assert by_lead[lead_of[c_good]].state == outbox.DONE
    assert by_lead[lead_of[c_locked]].state == outbox.PENDING
    assert "UNABLE_TO_LOCK_ROW" in (by_lead[lead_of[c_locked]].last_error or "")
    dead = by_lead[lead_of[c_invalid]]
    assert dead.state == outbox.DEAD
    assert dead.last_error == (
        "FIELD_CUSTOM_VALIDATION_EXCEPTION: A disqualified lead needs a note of at least 20 "
        "characters (fields: Revbot_Note__c)"
    )
    assert by_lead[local.lead_id].state == outbox.DEAD
    assert by_lead[local.lead_id].last_error == "not a Salesforce lead"
    assert fake.record(good)["Status"] == "Closed - Not Converted"
    assert fake.record(invalid)["Status"] == "MQL"
    assert len(_rows(engine, outbox.SLACK_ALERT)) == 2  # one per kind of failure
    assert len(_patches(fake)[0]) == 3  # the local lead never reached Salesforce

    clock.advance(minutes=1)
    _deliver(engine, crm, team_playbook(), clock)

    assert by_lead[lead_of[c_locked]].id in {r.id for r in _rows(engine) if r.state == outbox.DONE}
    assert fake.record(locked)["Status"] == "Closed - Not Converted"
    assert [len(p) for p in _patches(fake)] == [3, 1]


def _lead_ids(engine: Any, cycle_ids: list[int]) -> dict[int, int]:
    with Session(engine) as session:
        return {c: session.get(MqlCycle, c).lead_id for c in cycle_ids}  # type: ignore[union-attr]


def test_request_limit_pauses_every_write_until_the_pause_ends(
    engine: Any, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    ids = seed_mql(fake, 2)
    cycles = _mqls(engine, crm, ids, clock)
    for cycle in cycles:
        _reject(engine, cycle, clock)
    fake.rate_limit(1)

    _deliver(engine, crm, team_playbook(), clock)

    rows = _rows(engine)
    assert {r.state for r in rows} == {outbox.PENDING}
    assert all("REQUEST_LIMIT_EXCEEDED" in (r.last_error or "") for r in rows)
    assert {
        (r.due_at.replace(tzinfo=None) - clock().replace(tzinfo=None)).total_seconds() for r in rows
    } == {600}
    seen = len(fake.requests)
    with pytest.raises(CrmRateLimited) as caught:
        crm.apply([CrmWrite("x", _disposition(ids[0]))])
    assert caught.value.retry_after == 600
    assert len(fake.requests) == seen  # refused without calling Salesforce

    clock.advance(minutes=10, seconds=1)
    _deliver(engine, crm, team_playbook(), clock)

    assert {r.state for r in _rows(engine)} == {outbox.DONE}
    assert all(fake.record(i)["Status"] == "Closed - Not Converted" for i in ids)


def _disposition(
    record_id: str | None,
    *,
    status: str = "accepted",
    slack: str = "UREP1",
    email: str | None = ANA,
    origin: str = "salesforce",
) -> LeadDisposition:
    when = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    return LeadDisposition(
        lead=LeadRef(1, origin, record_id or "L-1", record_id),
        status=status,  # type: ignore[arg-type]
        status_value="Working - Contacted",
        owner_slack_id=slack,
        owner_email=email,
        reason_code=None,
        reason_value=None,
        note=None,
        revisit_on=None,
        mql_at=when,
        accepted_at=when,
        closed_at=None,
    )


def test_an_explicit_owner_mapping_wins_over_the_email_lookup(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    fake.seed("User", Name="Ana Diaz", Email=ANA, IsActive=True)
    mapped = fake.seed("User", Name="Ana (sales)", Email="ana.sales@example.com", IsActive=True)
    crm = salesforce_crm(fake, _playbook({"UREP1": mapped}), clock)
    (lead,) = seed_mql(fake)

    (result,) = crm.apply([CrmWrite("1", _disposition(lead))])

    assert result.ok
    assert fake.record(lead)["OwnerId"] == mapped
    assert not [q for q in fake.queries() if "FROM User" in q]


def test_owner_lookups_are_cached_until_they_expire(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    ana = fake.seed("User", Name="Ana Diaz", Email=ANA, IsActive=True)
    crm = salesforce_crm(fake, team_playbook(), clock)
    first, second, third = seed_mql(fake, 3)

    crm.apply([CrmWrite("1", _disposition(first, email="ANA@example.com"))])
    crm.apply([CrmWrite("2", _disposition(second))])
    lookups = [q for q in fake.queries() if "FROM User" in q]
    assert len(lookups) == 1
    assert "'ana@example.com'" in lookups[0]
    clock.advance(hours=1, seconds=1)
    crm.apply([CrmWrite("3", _disposition(third))])

    assert len([q for q in fake.queries() if "FROM User" in q]) == 2
    assert {fake.record(i)["OwnerId"] for i in (first, second, third)} == {ana}


def test_an_unknown_rep_is_written_without_an_owner(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    (lead,) = seed_mql(fake)
    before = fake.record(lead)["OwnerId"]

    (result,) = crm.apply([CrmWrite("1", _disposition(lead, email="nobody@example.com"))])

    assert result.ok
    (sent,) = _patches(fake)[0]
    assert "OwnerId" not in sent
    assert fake.record(lead)["Status"] == "Working - Contacted"
    assert fake.record(lead)["OwnerId"] == before


def test_leads_salesforce_does_not_hold_are_refused_without_a_call(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)

    results = crm.apply(
        [
            CrmWrite("a", _disposition(None, origin="intake")),
            CrmWrite("b", _disposition("not-an-id'--")),
        ]
    )

    assert [(r.key, r.ok, r.retryable) for r in results] == [
        ("a", False, False),
        ("b", False, False),
    ]
    assert results[0].error == "not a Salesforce lead"
    assert "is not a Salesforce record id" in (results[1].error or "")
    assert not fake.calls(path_contains="/composite/")


def test_a_missing_custom_field_dead_letters_the_batch_with_one_alert(
    engine: Any, fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    fake.remove_field("Lead", "Revbot_Reason__c")
    cycles = _mqls(engine, crm, seed_mql(fake, 3), clock)
    for cycle in cycles:
        _reject(engine, cycle, clock)

    _deliver(engine, crm, team_playbook(), clock)

    rows = _rows(engine)
    assert {r.state for r in rows} == {outbox.DEAD}
    assert all("No such column 'Revbot_Reason__c'" in (r.last_error or "") for r in rows)
    (alert,) = _rows(engine, outbox.SLACK_ALERT)
    assert "Revbot_Reason__c" in alert.payload["text"]
