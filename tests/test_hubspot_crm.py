"""HubSpot tasks and notes (no duplicates on retry), deals lookup, outcomes, check() and links."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.crm import CrmAuthError, CrmError, CrmTask, DealNote, LeadRef
from bot.core.playbook import parse_playbook
from integrations import CrmNotConfigured, build_crm
from integrations.hubspot import HubSpotCRM
from integrations.hubspot.deals import DEAL_PROPERTIES
from integrations.hubspot.search import OPERATORS, STANDARD_PROPERTIES
from tests.conftest import TEST_PLAYBOOK, FrozenClock, make_settings, team_playbook
from tests.fakes.hubspot_api import FakeHubSpot, fixture
from tests.fakes.hubspot_testing import hubspot_crm

TASKS = "/crm/v3/objects/tasks/batch/create"
NOTES = "/crm/v3/objects/notes/batch/create"
DEAL_SEARCH = "/crm/v3/objects/deals/search"


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(clock=clock) as server:
        yield server
        assert server.schema_errors == []


@pytest.fixture
def crm(fake: FakeHubSpot, clock: FrozenClock) -> HubSpotCRM:
    return hubspot_crm(fake, clock)


def _task(n: int, contact: str, clock: FrozenClock) -> CrmTask:
    return CrmTask(
        key=str(n),
        external_id=f"revbot-touch-{n}",
        lead=LeadRef(n, "hubspot", contact),
        kind="call",
        label="Call",
        note="Left a voicemail.",
        owner_slack_id="UREP1",
        owner_email="ana@example.com",
        done_at=clock.now,
    )


def test_touches_become_completed_tasks_on_the_contact_once_despite_retries(
    fake: FakeHubSpot, crm: HubSpotCRM, clock: FrozenClock
) -> None:
    contact = fake.seed_contact()
    tasks = [_task(1, contact, clock), _task(2, contact, clock)]

    first = crm.log_tasks(tasks)
    retry = crm.log_tasks(tasks)  # e.g. the first answer was lost and the outbox retried

    assert all(r.ok for r in first + retry)
    assert len(fake.calls(TASKS)) == 1
    created = fake.records("tasks")
    assert len(created) == 2
    props = created[0].properties
    assert props["hs_task_status"] == "COMPLETED"
    assert props["hs_task_type"] == "CALL"
    assert props["hs_task_subject"] == "Call (revbot-touch-1)"
    assert props["hs_task_body"] == "Left a voicemail."
    assert props["hs_timestamp"] == str(int(clock.now.timestamp() * 1000))
    assert props["hubspot_owner_id"] == "41629779"
    assert fake.associated("tasks", created[0].id, "contacts") == [(contact, 204)]
    search = fake.calls("/crm/v3/objects/tasks/search")[0].body
    assert search["filterGroups"][0]["filters"][0]["operator"] == "IN"


def test_a_task_for_a_lead_hubspot_does_not_hold_is_refused(
    fake: FakeHubSpot, crm: HubSpotCRM, clock: FrozenClock
) -> None:
    task = _task(1, "x", clock)
    [result] = crm.log_tasks([CrmTask(**{**task.__dict__, "lead": LeadRef(1, "intake", "L-1")})])

    assert not result.ok
    assert not result.retryable
    assert fake.calls() == []


def test_deal_notes_are_written_once_on_the_deal(
    fake: FakeHubSpot, crm: HubSpotCRM, clock: FrozenClock
) -> None:
    deal = fake.seed_deal(dealname="Acme renewal")
    note = DealNote(
        "7",
        "deal-support-7",
        deal,
        "Case study <ROI>",
        "https://x.example/c.pdf",
        "ana@example.com",
        clock.now,
    )

    assert crm.add_deal_notes([note])[0].ok
    assert crm.add_deal_notes([note])[0].ok
    [bad] = crm.add_deal_notes([DealNote("8", "e8", "12; DROP", "t", "b", None, clock.now)])

    assert len(fake.calls(NOTES)) == 1
    [stored] = fake.records("notes")
    assert "Case study &lt;ROI&gt;" in stored.properties["hs_note_body"]
    assert fake.associated("notes", stored.id, "deals") == [(deal, 214)]
    assert not bad.ok
    assert "12; DROP" in (bad.error or "")


def test_deal_search_shows_stage_labels_owner_names_and_amounts(
    fake: FakeHubSpot, crm: HubSpotCRM
) -> None:
    fake.seed_deal(
        dealname="Acme Health renewal",
        dealstage="contractsent",
        amount="48000",
        closedate="2026-12-15T00:00:00.000Z",
        hubspot_owner_id="41629779",
        hs_next_step="Security review",
    )
    fake.seed_deal(dealname="Acme Health pilot", dealstage="closedlost", amount="5000")
    fake.seed_deal(dealname="Globex expansion", dealstage="qualifiedtobuy")

    deals = crm.search_deals("acme health")

    assert [d.name for d in deals] == ["Acme Health renewal", "Acme Health pilot"]
    open_deal, lost = deals
    assert open_deal.stage == "Contract Sent"
    assert open_deal.amount == 48000.0
    assert str(open_deal.close_date) == "2026-12-15"
    assert open_deal.owner == "Ana Diaz"
    assert open_deal.next_step == "Security review"
    assert open_deal.url == f"https://app.hubspot.com/contacts/7654321/record/0-3/{open_deal.id}"
    assert (lost.stage, lost.is_closed, lost.is_won) == ("Closed Lost", True, False)
    assert len(fake.calls("/crm/v3/pipelines/deals")) == 1  # cached across deals


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=st.text(max_size=300))
def test_hostile_search_text_is_only_ever_a_filter_value(
    fake: FakeHubSpot, crm: HubSpotCRM, text: str
) -> None:
    before = len(fake.calls(DEAL_SEARCH))
    crm.search_deals(text, limit=5)
    for request in fake.calls(DEAL_SEARCH)[before:]:
        body = request.body
        assert set(body) <= {"filterGroups", "properties", "limit", "sorts"}
        filters = [f for group in body["filterGroups"] for f in group["filters"]]
        assert [f["propertyName"] for f in filters] == ["dealname"]
        assert all(f["operator"] in OPERATORS for f in filters)
        assert all(s["propertyName"] in STANDARD_PROPERTIES for s in body["sorts"])
        value = filters[0]["value"]
        assert value.startswith("*")
        assert value.endswith("*")
        assert "*" not in value[1:-1]
        assert len(value) <= 102
        assert {k: v for k, v in body.items() if k != "filterGroups"} == {
            "properties": list(DEAL_PROPERTIES),
            "limit": 5,
            "sorts": [{"propertyName": "hs_lastmodifieddate", "direction": "DESCENDING"}],
        }


@pytest.mark.parametrize("text", ['" OR 1=1', "dealname", "*", "   ", "a\u0000b", "x" * 5000])
def test_odd_search_strings_never_break_the_request(
    fake: FakeHubSpot, crm: HubSpotCRM, text: str
) -> None:
    fake.seed_deal(dealname="dealname test")
    crm.search_deals(text)
    assert fake.schema_errors == []


def test_get_deal_validates_the_id_first(fake: FakeHubSpot, crm: HubSpotCRM) -> None:
    deal = fake.seed_deal(dealname="Acme renewal", dealstage="closedwon", hs_is_closed_won="true")

    found = crm.get_deal(deal)

    assert found is not None
    assert (found.name, found.stage, found.is_won) == ("Acme renewal", "Closed Won", True)
    assert crm.get_deal("424242") is None
    calls = len(fake.calls())
    assert crm.get_deal("../contacts/1") is None
    assert crm.get_deal("1 OR 1") is None
    assert len(fake.calls()) == calls


def test_outcomes_follow_lifecycle_stages_and_the_latest_associated_deal(
    fake: FakeHubSpot, crm: HubSpotCRM, clock: FrozenClock
) -> None:
    won = fake.seed_contact(
        lifecyclestage="customer",
        hs_lifecyclestage_salesqualifiedlead_date=clock.now - timedelta(days=20),
        hs_lifecyclestage_customer_date=clock.now - timedelta(days=2),
    )
    old_deal = fake.seed_deal(
        dealname="Old", dealstage="closedlost", createdate=clock.now - timedelta(days=90)
    )
    new_deal = fake.seed_deal(
        dealname="New",
        dealstage="closedwon",
        amount="12000",
        deal_currency_code="EUR",
        createdate=clock.now - timedelta(days=15),
        closedate=clock.now - timedelta(days=2),
    )
    fake.associate("contacts", won, "deals", old_deal)
    fake.associate("contacts", won, "deals", new_deal)
    still_mql = fake.seed_contact(lifecyclestage="marketingqualifiedlead")
    refs = [
        LeadRef(1, "hubspot", won),
        LeadRef(2, "intake", "L-2", crm_record_id=still_mql),
        LeadRef(3, "intake", "L-3"),
        LeadRef(4, "hubspot", "999999"),
    ]

    outcomes = {o.lead.lead_id: o for o in crm.fetch_outcomes(refs)}

    assert set(outcomes) == {1, 2}
    first = outcomes[1]
    assert first.converted
    assert first.converted_at == clock.now - timedelta(days=20)
    assert first.lifecycle_stage == "customer"
    assert (first.opportunity_id, first.opportunity_stage) == (new_deal, "Closed Won")
    assert (first.amount, first.currency, first.is_closed, first.is_won) == (
        12000.0,
        "EUR",
        True,
        True,
    )
    assert first.closed_at == clock.now - timedelta(days=2)
    assert first.opportunity_created_at == clock.now - timedelta(days=15)
    assert not outcomes[2].converted
    assert outcomes[2].opportunity_id is None
    assert len(fake.calls("/crm/v4/associations/contacts/deals/batch/read")) == 1


def test_check_describes_a_working_connection(crm: HubSpotCRM) -> None:
    described = crm.check()
    assert "token accepted" in described
    assert "revbot_reason" in described


def test_check_names_missing_properties(fake: FakeHubSpot, clock: FrozenClock) -> None:
    fake.properties["contacts"] = [
        p for p in fake.properties["contacts"] if p["name"] != "revbot_note"
    ]
    playbook = parse_playbook(
        TEST_PLAYBOOK.replace("MODE", "claim")
        + "crm_fields:\n  hubspot:\n    fields: {reason: why_lost}\n",
        "test",
    )

    with pytest.raises(CrmError, match="no properties why_lost, revbot_note"):
        hubspot_crm(fake, clock, playbook=playbook).check()


def test_check_explains_a_bad_token_and_missing_scopes(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    crm = hubspot_crm(fake, clock)
    real_token = fake.token
    fake.token = "another-token"  # the account no longer accepts the adapter's token
    with pytest.raises(CrmAuthError, match="HUBSPOT_ACCESS_TOKEN"):
        crm.check()
    fake.token = real_token
    fake.fail(403, fixture("forbidden_missing_scopes.json"), path="/crm/v3/properties/")
    with pytest.raises(CrmAuthError, match=r"crm\.schemas\.contacts\.read"):
        crm.check()


def test_record_urls_need_the_portal_id(fake: FakeHubSpot, clock: FrozenClock) -> None:
    lead = LeadRef(1, "hubspot", "5101")
    assert (
        hubspot_crm(fake, clock).record_url(lead)
        == "https://app.hubspot.com/contacts/7654321/record/0-1/5101"
    )
    assert hubspot_crm(fake, clock, portal_id=None).record_url(lead) is None
    assert hubspot_crm(fake, clock).record_url(LeadRef(2, "intake", "L-2")) is None


def test_build_crm_needs_the_access_token(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    settings_ = make_settings(database_url, REVBOT_CRM="hubspot")
    with pytest.raises(CrmNotConfigured, match="HUBSPOT_ACCESS_TOKEN"):
        build_crm(settings_, team_playbook(), engine, clock)
    configured = make_settings(database_url, REVBOT_CRM="hubspot", HUBSPOT_ACCESS_TOKEN="pat-x")
    assert build_crm(configured, team_playbook(), engine, clock).name == "hubspot"


def test_the_fakes_answers_have_the_documented_shapes(
    fake: FakeHubSpot, crm: HubSpotCRM, clock: FrozenClock
) -> None:
    import requests

    auth = {"Authorization": f"Bearer {fake.token}"}
    good = fake.seed_contact(lifecyclestage="marketingqualifiedlead")
    fake.input_errors["5999"] = ("VALIDATION_ERROR", "bad", "hs_lead_status")
    fake.seed_contact("5999")
    reply = requests.post(
        fake.url + "/crm/v3/objects/contacts/batch/update",
        json={
            "inputs": [
                {"id": good, "properties": {"hs_lead_status": "NEW"}},
                {"id": "5999", "properties": {"hs_lead_status": "NEW"}},
            ]
        },
        headers=auth,
        timeout=5,
    ).json()
    documented = fixture("batch_update_multi_status.json")
    assert _shape(reply) == _shape(documented)
    page = requests.post(
        fake.url + "/crm/v3/objects/contacts/search",
        json={
            "filterGroups": [
                {"filters": [{"propertyName": "lifecyclestage", "operator": "HAS_PROPERTY"}]}
            ],
            "limit": 1,
            "properties": ["email", "lifecyclestage"],
        },
        headers=auth,
        timeout=5,
    ).json()
    fake.seed_contact(lifecyclestage="lead")
    assert set(page) <= set(fixture("search_contacts_page.json"))
    assert set(page["results"][0]) == set(fixture("search_contacts_page.json")["results"][0])


def _shape(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _shape(v) for k, v in value.items() if k not in ("properties",)}
    if isinstance(value, list):
        return [_shape(value[0])] if value else []
    return type(value).__name__
