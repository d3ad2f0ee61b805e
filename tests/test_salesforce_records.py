"""Tasks, deal notes, outcomes, deal search and `check()` against the fake Salesforce."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from bot.core.crm import CrmError, CrmTask, DealNote, LeadRef
from bot.core.playbook import parse_playbook
from tests.conftest import TEST_PLAYBOOK, FrozenClock, team_playbook
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_soql import parse
from tests.fakes.salesforce_support import salesforce_crm, seed_mql

WHEN = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
HOSTILE = ["'", "\\", "%", "_", "' OR Id != null", "x\\' OR Name LIKE '%", "100%_off\\"]


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeSalesforce]:
    """A running fake org."""
    with FakeSalesforce(clock=clock) as server:
        yield server


def _ref(record_id: str, lead_id: int = 1) -> LeadRef:
    return LeadRef(lead_id, "salesforce", record_id, record_id)


def _task(key: str, record_id: str, note: str = "Left a voicemail") -> CrmTask:
    return CrmTask(
        key=key,
        external_id=f"revbot-touch-{key}",
        lead=_ref(record_id),
        kind="call",
        label="Call",
        note=note,
        owner_slack_id="UREP1",
        owner_email="ana@example.com",
        done_at=WHEN,
    )


def test_touches_become_completed_tasks_and_a_retry_creates_none_twice(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    ana = fake.seed("User", Name="Ana Diaz", Email="ana@example.com", IsActive=True)
    crm = salesforce_crm(fake, team_playbook(), clock)
    lead_a, lead_b = seed_mql(fake, 2)
    tasks = [_task("1", lead_a), _task("2", lead_b)]

    first = crm.log_tasks(tasks)
    again = crm.log_tasks(tasks)  # the outbox retrying after an uncertain delivery

    assert all(r.ok for r in first + again)
    stored = fake.records("Task")
    assert len(stored) == 2
    task = next(t for t in stored if t["WhoId"] == lead_a)
    assert task["Subject"] == "Call"
    assert task["Status"] == "Completed"
    assert task["ActivityDate"] == "2026-11-23"
    assert task["Description"] == "Left a voicemail"
    assert task["OwnerId"] == ana
    assert task["Revbot_External_Id__c"] == "revbot-touch-1"
    (call, _retry) = fake.calls("PATCH", "/composite/sobjects/Task/Revbot_External_Id__c")
    assert call.json["allOrNone"] is False
    assert len(call.json["records"]) == 2


def test_tasks_need_the_external_id_field(fake: FakeSalesforce, clock: FrozenClock) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    fake.remove_field("Task", "Revbot_External_Id__c")

    with pytest.raises(CrmError, match="Revbot_External_Id__c") as caught:
        crm.log_tasks([_task("1", seed_mql(fake)[0])])
    assert not caught.value.retryable
    assert fake.records("Task") == []


def test_deal_notes_are_tasks_on_the_opportunity_written_once(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    opp = fake.seed(
        "Opportunity", Name="Acme - Platform", StageName="Prospecting", CloseDate="2026-12-01"
    )
    note = DealNote(
        "n1", "revbot-deal-7", opp, "Case study delivered", "https://x.example/cs.pdf", None, WHEN
    )
    bad = DealNote("n2", "revbot-deal-8", "006'--", "x", "y", None, WHEN)

    results = crm.add_deal_notes([note, bad]) + crm.add_deal_notes([note])

    assert [(r.key, r.ok) for r in results] == [("n2", False), ("n1", True), ("n1", True)]
    (task,) = fake.records("Task")
    assert (task["WhatId"], task["Subject"], task["Description"]) == (
        opp,
        "Case study delivered",
        "https://x.example/cs.pdf",
    )


def test_outcomes_follow_converted_leads_to_their_opportunities(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    won = fake.seed("Opportunity", Name="Won", StageName="Closed Won", Amount=48000.0,
                    CloseDate="2026-12-18", IsClosed=True, IsWon=True)  # fmt: skip
    converted = fake.seed("Lead", LastName="A", Company="A", Status="Closed - Converted",
                          IsConverted=True, ConvertedDate="2026-11-20", ConvertedOpportunityId=won)  # fmt: skip
    (open_lead,) = seed_mql(fake)
    refs = [_ref(converted, 1), _ref(open_lead, 2), LeadRef(3, "intake", "L-3")]
    refs += [_ref(seed_mql(fake)[0], 10 + i) for i in range(250)]

    outcomes = crm.fetch_outcomes(refs)

    by_lead = {o.lead.lead_id: o for o in outcomes}
    assert len(outcomes) == 252  # the intake lead is not Salesforce's
    first = by_lead[1]
    assert first.converted
    assert first.converted_at == datetime(2026, 11, 20, tzinfo=UTC)
    assert (first.opportunity_id, first.opportunity_stage, first.amount) == (
        won,
        "Closed Won",
        48000.0,
    )
    assert first.is_closed
    assert first.is_won
    assert first.closed_at == datetime(2026, 12, 18, tzinfo=UTC)
    assert not by_lead[2].converted
    assert by_lead[2].opportunity_id is None
    lead_queries = [q for q in fake.queries() if "ConvertedOpportunity.StageName" in q]
    # The first try asks for CurrencyIsoCode; this org is single-currency, so it asks again without.
    assert "CurrencyIsoCode" in lead_queries[0]
    assert [len(parse(q).where[2]) for q in lead_queries[1:]] == [200, 52]


def test_deal_search_keeps_hostile_text_inside_one_quoted_literal(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    for name in ["Acme 100%_off\\ deal", "Globex", "O'Brien renewal"]:
        fake.seed("Opportunity", Name=name, StageName="Prospecting", CloseDate="2026-12-01")

    found = {text: [d.name for d in crm.search_deals(text)] for text in HOSTILE}

    searches = [
        parse(q) for q in fake.queries() if "FROM Opportunity" in q and "CurrencyIsoCode" not in q
    ]
    assert len(searches) == len(HOSTILE)
    for text, query in zip(HOSTILE, searches, strict=True):
        assert query.where[0] == "like"
        assert query.where[1] == "Name"
        assert len(query.literals) == 1  # the user text sits in one string literal
        assert query.where[2].value == f"%{text}%"
    assert found["'"] == ["O'Brien renewal"]
    assert found["%"] == ["Acme 100%_off\\ deal"]
    assert found["_"] == ["Acme 100%_off\\ deal"]
    assert found["100%_off\\"] == ["Acme 100%_off\\ deal"]
    assert found["' OR Id != null"] == []


def test_deal_search_lists_open_deals_first_with_their_details(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)
    owner = fake.seed("User", Name="Ana Diaz", Email="ana@example.com", IsActive=True)
    account = fake.seed("Account", Name="Acme Health")
    fake.seed("Opportunity", Name="Acme - old", StageName="Closed Lost", CloseDate="2025-01-01",
              IsClosed=True, IsWon=False)  # fmt: skip
    open_id = fake.seed("Opportunity", Name="Acme - Platform", StageName="Proposal/Price Quote",
                        Amount=48000.0, CloseDate="2026-12-18", NextStep="Security review",
                        OwnerId=owner, AccountId=account, IsClosed=False, IsWon=False)  # fmt: skip

    deals = crm.search_deals("acme")

    assert [d.name for d in deals] == ["Acme - Platform", "Acme - old"]
    deal = deals[0]
    assert (deal.id, deal.stage, deal.amount, deal.close_date) == (
        open_id, "Proposal/Price Quote", 48000.0, date(2026, 12, 18)
    )  # fmt: skip
    assert (deal.owner, deal.account, deal.next_step) == (
        "Ana Diaz",
        "Acme Health",
        "Security review",
    )
    assert deal.url == f"{fake.url}/lightning/r/Opportunity/{open_id}/view"
    assert crm.get_deal(open_id) == deal


def test_get_deal_refuses_malformed_ids_without_calling(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock)

    assert crm.get_deal("006' OR Id != null") is None
    assert crm.get_deal("0065g0000000001") is None  # well-formed, but no such deal
    assert len(fake.queries()) == 2  # the currency probe, then the query without it


def test_record_url_points_at_the_lightning_page(fake: FakeSalesforce, clock: FrozenClock) -> None:
    crm = salesforce_crm(fake, team_playbook(), clock, "session")

    assert (
        crm.record_url(_ref("00Q5g00000Ld001EAA"))
        == f"{fake.url}/lightning/r/Lead/00Q5g00000Ld001EAA/view"
    )
    assert crm.record_url(LeadRef(1, "intake", "L-1")) is None
    assert fake.requests == []


def test_check_lists_missing_fields_picklist_values_and_permissions(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    fake.remove_field("Lead", "Revbot_Reason__c")
    status = next(f for f in fake.describe("Lead")["fields"] if f["name"] == "Status")
    status["picklistValues"] = [p for p in status["picklistValues"] if p["value"] != "MQL"]
    fake.describe("Lead")["updateable"] = False
    fake.remove_field("Task", "Revbot_External_Id__c")
    crm = salesforce_crm(fake, team_playbook(), clock)

    with pytest.raises(CrmError) as caught:
        crm.check()

    message = str(caught.value)
    assert "cannot edit Leads (Lead is not updateable)" in message
    assert "Lead has no field Revbot_Reason__c (crm_fields.salesforce.fields.reason)" in message
    assert "the Lead Status picklist has no value 'MQL' (the MQL criterion)" in message
    assert "Activity has no external-id field Revbot_External_Id__c" in message
    assert "Revbot_Note__c" not in message


def test_check_reports_a_status_value_the_picklist_lacks(
    fake: FakeSalesforce, clock: FrozenClock
) -> None:
    playbook = parse_playbook(
        TEST_PLAYBOOK.replace("MODE", "claim")
        + "crm_fields:\n  salesforce:\n    status_values: {accepted: Accepted}\n    fields: {note: ''}\n",
        "test",
    )
    fake.remove_field("Lead", "Revbot_Note__c")
    crm = salesforce_crm(fake, playbook, clock)

    with pytest.raises(
        CrmError, match=r"no value .Accepted. \(crm_fields.salesforce.status_values.accepted\)"
    ):
        crm.check()
