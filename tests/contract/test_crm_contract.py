"""The CRM contract: what revbot relies on from every CRM adapter, checked against each CRM as it
stores things (revbot's own tables, the fake Salesforce org, the fake HubSpot account)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from bot.core.crm import CrmWrite, DealNote, LeadDisposition, LeadRef, LeadStatus
from bot.core.intake import LeadIn, validate_lead
from tests.contract.conftest import ANA, CrmBackend, LeadState

HOSTILE = ["'", "\\", "%", "_", "' OR Id != null", "x" * 5000, "acme%' OR Name LIKE '%"]


def _disposition(
    backend: CrmBackend,
    lead: LeadRef,
    status: LeadStatus,
    *,
    reason: str | None = None,
    note: str | None = None,
) -> LeadDisposition:
    """A disposition as revbot renders it: the playbook's status and reason values for this CRM."""
    playbook = backend.playbook
    now = backend.clock()
    kind = "reject" if status == "rejected" else "recycle"
    found = playbook.reason(kind, reason) if reason else None
    return LeadDisposition(
        lead=lead,
        status=status,
        status_value=playbook.field_map(backend.crm.name).status_value(status),
        owner_slack_id=ANA[0],
        owner_email=ANA[1],
        reason_code=reason,
        reason_value=found.crm if found else None,
        note=note,
        revisit_on=now.date() + timedelta(days=90) if status == "recycled" else None,
        mql_at=now - timedelta(hours=2),
        accepted_at=now - timedelta(hours=1),
        closed_at=now if status in ("rejected", "recycled") else None,
    )


def _assert_holds(backend: CrmBackend, d: LeadDisposition) -> None:
    """The lead's record holds the disposition: the playbook's status value for this CRM, the
    reason's CRM value, the note, and (on accept) the rep as owner."""
    state = backend.lead_state(d.lead)
    expected_status = backend.playbook.field_map(backend.name).status_value(d.status)
    assert (state.status, state.reason, state.note) == (expected_status, d.reason_value, d.note)
    if d.status == "accepted":
        assert state.owner_email == ANA[1]


def _batch(backend: CrmBackend) -> list[CrmWrite]:
    accepted, rejected, recycled = (backend.seed_lead() for _ in range(3))
    return [
        CrmWrite("w-accept", _disposition(backend, accepted, "accepted")),
        CrmWrite(
            "w-reject",
            _disposition(backend, rejected, "rejected", reason="not_icp", note="Student project"),
        ),
        CrmWrite(
            "w-recycle",
            _disposition(backend, recycled, "recycled", reason="timing", note="Budget in Q3"),
        ),
    ]


def test_apply_writes_each_disposition_as_the_playbook_maps_it(crm_backend: CrmBackend) -> None:
    writes = _batch(crm_backend)

    results = crm_backend.crm.apply(writes)

    assert sorted((r.key, r.ok) for r in results) == [
        ("w-accept", True),
        ("w-recycle", True),
        ("w-reject", True),
    ]
    for write in writes:
        _assert_holds(crm_backend, write.disposition)
    rejected = crm_backend.lead_state(writes[1].disposition.lead)
    assert rejected.reason == "Not ICP"  # the reason's CRM value, not its code or label


def test_replaying_a_batch_changes_nothing(crm_backend: CrmBackend) -> None:
    writes = _batch(crm_backend)
    crm_backend.crm.apply(writes)
    before = [crm_backend.lead_state(w.disposition.lead) for w in writes]

    again = crm_backend.crm.apply(writes)

    assert all(r.ok for r in again)
    assert len(again) == len(writes)
    assert [crm_backend.lead_state(w.disposition.lead) for w in writes] == before


def test_a_later_disposition_replaces_the_whole_state(crm_backend: CrmBackend) -> None:
    lead = crm_backend.seed_lead()
    rejected = _disposition(crm_backend, lead, "rejected", reason="not_icp", note="Wrong size")
    crm_backend.crm.apply([CrmWrite("first", rejected)])
    accepted = _disposition(crm_backend, lead, "accepted")

    (result,) = crm_backend.crm.apply([CrmWrite("second", accepted)])

    assert result.ok
    state = crm_backend.lead_state(lead)
    # The stale reason and note of the rejection are cleared, not left behind.
    assert state == LeadState(
        crm_backend.playbook.field_map(crm_backend.name).status_value("accepted"),
        None,
        None,
        ANA[1],
    )


def test_a_lead_the_crm_does_not_hold_fails_alone(crm_backend: CrmBackend) -> None:
    writes = _batch(crm_backend)
    absent = [
        CrmWrite(f"absent-{i}", _disposition(crm_backend, ref, "rejected", reason="not_icp"))
        for i, ref in enumerate(crm_backend.absent_leads())
    ]

    results = crm_backend.crm.apply([writes[0], *absent, *writes[1:]])

    by_key = {r.key: r for r in results}
    assert set(by_key) == {w.key for w in writes + absent}
    for write in absent:
        assert not by_key[write.key].ok, write.key
        assert not by_key[write.key].retryable, write.key
        assert by_key[write.key].error
    for write in writes:
        assert by_key[write.key].ok, write.key
        _assert_holds(crm_backend, write.disposition)


def test_tasks_logged_twice_exist_once(crm_backend: CrmBackend) -> None:
    lead = crm_backend.seed_lead()
    tasks = [crm_backend.task(lead, "t1"), crm_backend.task(lead, "t2")]

    first = crm_backend.crm.log_tasks(tasks)
    retry = crm_backend.crm.log_tasks(tasks)  # the first answer was lost; the outbox retries

    assert sorted((r.key, r.ok) for r in first) == [("t1", True), ("t2", True)]
    assert sorted((r.key, r.ok) for r in retry) == [("t1", True), ("t2", True)]
    assert sorted(crm_backend.task_ids(lead)) == sorted(t.external_id for t in tasks)


def _note(backend: CrmBackend, key: str, deal_id: str) -> DealNote:
    return DealNote(
        key=key,
        external_id=f"revbot-deal-support-{key}",
        deal_id=deal_id,
        title="Deal support delivered: Case study",
        body=f"Asset: https://cdn.example/{key}.pdf",
        author_email=None,
        created_at=backend.clock(),
    )


def test_deal_notes_written_twice_exist_once_and_unknown_deals_fail_alone(
    crm_backend: CrmBackend,
) -> None:
    deal = crm_backend.seed_deal("Acme Health expansion", stage="Contract Sent")
    notes = [_note(crm_backend, "n1", deal), _note(crm_backend, "n2", deal)]
    lost = _note(crm_backend, "n3", crm_backend.absent_deal_id)

    first = crm_backend.crm.add_deal_notes([notes[0], lost, notes[1]])
    retry = crm_backend.crm.add_deal_notes(notes)

    assert sorted((r.key, r.ok) for r in first) == [("n1", True), ("n2", True), ("n3", False)]
    assert next(r for r in first if r.key == "n3").error
    assert all(r.ok for r in retry)
    assert len(retry) == 2
    seen = crm_backend.deal_notes(deal)
    assert sorted(n.external_id for n in seen) == [n.external_id for n in notes]
    for note in notes:
        text = next(s.text for s in seen if s.external_id == note.external_id)
        assert f"https://cdn.example/{note.key}.pdf" in text


@pytest.fixture
def deals(crm_backend: CrmBackend) -> dict[str, str]:
    """Four open deals by name -> id."""
    return {
        name: crm_backend.seed_deal(
            name, stage=stage, amount=amount, close_date=date(2026, 12, 15) if amount else None
        )
        for name, stage, amount in (
            ("Acme Health expansion", "Contract Sent", 150_000.0),
            ("ACME Corp renewal", "Qualified To Buy", 20_000.0),
            ("Initech renewal", "Qualified To Buy", None),
            ("Globex pilot", "Appointment Scheduled", None),
        )
    }


def test_search_deals_matches_part_of_the_name_ignoring_case(
    crm_backend: CrmBackend, deals: dict[str, str]
) -> None:
    found = crm_backend.crm.search_deals("acme")
    assert sorted(d.name for d in found) == ["ACME Corp renewal", "Acme Health expansion"]
    assert {d.id for d in found} == {deals["ACME Corp renewal"], deals["Acme Health expansion"]}
    assert [d.name for d in crm_backend.crm.search_deals("NITEC")] == ["Initech renewal"]
    assert crm_backend.crm.search_deals("Umbrella") == []
    assert len(crm_backend.crm.search_deals("acme", limit=1)) == 1
    assert len(crm_backend.crm.search_deals("renewal", limit=1)) == 1


@pytest.mark.parametrize("text", HOSTILE, ids=lambda t: repr(t[:20]))
def test_hostile_search_text_is_only_ever_a_value(
    crm_backend: CrmBackend, deals: dict[str, str], text: str
) -> None:
    assert crm_backend.crm.search_deals(text) == []
    # The CRM still answers plain searches afterwards (nothing was broken or locked).
    assert len(crm_backend.crm.search_deals("globex")) == 1


def test_get_deal_reads_the_stage_as_a_label(
    crm_backend: CrmBackend, deals: dict[str, str]
) -> None:
    deal = crm_backend.crm.get_deal(deals["Acme Health expansion"])

    assert deal is not None
    assert (deal.id, deal.name, deal.stage) == (
        deals["Acme Health expansion"],
        "Acme Health expansion",
        "Contract Sent",
    )
    assert (deal.amount, deal.close_date, deal.is_closed) == (150_000.0, date(2026, 12, 15), False)
    searched = next(d for d in crm_backend.crm.search_deals("globex"))
    assert searched.stage == "Appointment Scheduled"


@pytest.mark.parametrize(
    "deal_id", ["", "   ", "../contacts/1", "1' OR '1'='1", "9" * 5000, "D-1; DROP TABLE x"]
)
def test_get_deal_answers_none_for_malformed_ids(crm_backend: CrmBackend, deal_id: str) -> None:
    assert crm_backend.crm.get_deal(deal_id) is None


def test_get_deal_answers_none_for_an_unknown_id(crm_backend: CrmBackend) -> None:
    assert crm_backend.crm.get_deal(crm_backend.absent_deal_id) is None


def test_polled_and_fetched_mqls_are_intake_shaped(crm_backend: CrmBackend) -> None:
    if crm_backend.no_mqls:
        pytest.skip(crm_backend.no_mqls)
    mql = crm_backend.seed_mql(email="maya@hooli.example", company="Hooli")
    not_mql = crm_backend.seed_mql(email="sam@nope.example", company="Nope", mql=False)

    page = crm_backend.crm.poll_mqls(None, now=crm_backend.clock())
    fetched = crm_backend.crm.fetch_mqls([mql, not_mql, "not-an-id"])

    for leads in (page.leads, fetched):
        assert [lead["external_id"] for lead in leads] == [mql]
        lead_in = validate_lead(leads[0], identified=True)
        assert isinstance(lead_in, LeadIn), lead_in
        assert (lead_in.source, lead_in.external_id) == (crm_backend.name, mql)
        assert lead_in.extra_context["crm_record_id"] == mql
        assert (lead_in.email, lead_in.company) == ("maya@hooli.example", "Hooli")
        assert lead_in.mql_at is not None
        assert lead_in.mql_at <= crm_backend.clock()
    assert page.watermark


def test_the_local_crm_is_no_source_of_mqls(crm_backend: CrmBackend) -> None:
    if not crm_backend.no_mqls:
        pytest.skip("this CRM is a source of MQLs (see the test above)")
    lead = crm_backend.seed_lead()
    page = crm_backend.crm.poll_mqls(None, now=crm_backend.clock())
    assert (page.leads, page.more) == ([], False)
    assert crm_backend.crm.fetch_mqls([lead.external_id, str(lead.lead_id)]) == []


def test_outcomes_report_conversions_and_won_opportunities(crm_backend: CrmBackend) -> None:
    if crm_backend.no_outcomes:
        pytest.skip(crm_backend.no_outcomes)
    converted = crm_backend.seed_converted(amount=48_000.0)
    still_open = crm_backend.seed_lead()
    absent = crm_backend.absent_leads()

    outcomes = crm_backend.crm.fetch_outcomes([converted.lead, still_open, *absent])

    by_lead = {o.lead.lead_id: o for o in outcomes}
    assert set(by_lead) == {converted.lead.lead_id, still_open.lead_id}
    won = by_lead[converted.lead.lead_id]
    assert won.converted
    assert (won.opportunity_id, won.amount) == (converted.opportunity_id, 48_000.0)
    assert (won.is_closed, won.is_won) == (True, True)
    assert isinstance(won.closed_at, datetime)
    assert not by_lead[still_open.lead_id].converted
    assert by_lead[still_open.lead_id].opportunity_id is None


def test_the_local_crm_reports_no_outcomes(crm_backend: CrmBackend) -> None:
    if not crm_backend.no_outcomes:
        pytest.skip("this CRM reports outcomes (see the test above)")
    lead = crm_backend.seed_lead()
    assert crm_backend.crm.fetch_outcomes([lead]) == []


def test_check_describes_the_connection(crm_backend: CrmBackend) -> None:
    described = crm_backend.crm.check()
    assert isinstance(described, str)
    assert described.strip()
