"""Intake: validating an MQL, storing it once, re-qualification, and the outbox rows it queues."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from bot.core import db, handoff, outbox
from bot.core.intake import FieldError, IntakeResult, LeadIn, ingest, tier_priority, validate_lead
from bot.core.models import Lead, MqlCycle, OutboxMessage
from bot.core.playbook import Playbook, load_playbook, parse_playbook
from tests.conftest import TEST_PLAYBOOK, FrozenClock, lead_json, team_playbook

PIPELINE_LANE = "channel:#revenue-pipeline"


def lead_in(external_id: str = "L-1001", **overrides: Any) -> LeadIn:
    checked = validate_lead(lead_json(external_id, **overrides))
    assert isinstance(checked, LeadIn), checked
    return checked


def errors_of(data: Any) -> dict[str, str]:
    checked = validate_lead(data)
    assert isinstance(checked, list), checked
    assert all(isinstance(e, FieldError) for e in checked)
    return {e.field: e.message for e in checked}


def ingest_one(
    engine: Any, lead: LeadIn, playbook: Playbook, now: datetime, origin: str | None = None
) -> IntakeResult:
    with db.transaction(engine) as session:
        return ingest(session, lead, playbook=playbook, now=now, origin=origin)


def count(engine: Any, model: Any) -> int:
    with db.transaction(engine) as session:
        return session.exec(select(func.count()).select_from(model)).one()


def cycles(engine: Any) -> list[MqlCycle]:
    with db.transaction(engine) as session:
        return list(session.exec(select(MqlCycle).order_by(col(MqlCycle.id))).all())


def outbox_rows(engine: Any, kind: str | None = None) -> list[OutboxMessage]:
    with db.transaction(engine) as session:
        query = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if kind:
            query = query.where(OutboxMessage.kind == kind)
        return list(session.exec(query).all())


def card_of(engine: Any, cycle_id: int) -> OutboxMessage:
    [card] = [
        r for r in outbox_rows(engine, outbox.SLACK_CARD) if r.payload["cycle_id"] == cycle_id
    ]
    return card


def stored_lead(engine: Any, lead_id: int) -> Lead:
    with db.transaction(engine) as session:
        lead = session.get(Lead, lead_id)
        assert lead is not None
        return lead


def reject(engine: Any, cycle_id: int, playbook: Playbook, now: datetime) -> None:
    with db.transaction(engine) as session:
        handoff.reject(
            session,
            cycle_id,
            "UMGR1",
            reason_code="not_icp",
            note="Too small for us.",
            playbook=playbook,
            now=now,
        )


def run_threads(n: int, work: Any) -> tuple[list[Any], list[BaseException]]:
    """Run work(i) on n threads released together; results and errors."""
    start = threading.Barrier(n)
    results: list[Any] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        try:
            start.wait()
            value = work(i)
            with lock:
                results.append(value)
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


# --- validate_lead ---------------------------------------------------------------------------


def test_the_design_example_is_valid() -> None:
    lead = lead_in()
    assert lead.external_id == "L-1001"
    assert lead.source == "hubspot-form"
    assert lead.employees == 450
    assert lead.signals == ["pricing_page", "demo_request"]
    assert lead.mql_at == datetime(2026, 11, 22, 14, 3, tzinfo=UTC)
    assert lead.extra_context == {}


def test_source_defaults_to_intake_and_lists_to_empty() -> None:
    lead = validate_lead({"external_id": "X1", "email": "a@b.example"})
    assert isinstance(lead, LeadIn)
    assert lead.source == "intake"
    assert lead.signals == []
    assert lead.content == []
    assert lead.mql_at is None


def test_numeric_external_id_is_accepted_as_text() -> None:
    assert lead_in(1001).external_id == "1001"  # type: ignore[arg-type]


def test_text_is_stripped() -> None:
    lead = lead_in(" L-7 ", company="  Acme  ")
    assert lead.external_id == "L-7"
    assert lead.company == "Acme"


def test_unknown_keys_are_kept_as_extra_context() -> None:
    lead = lead_in(segment="enterprise", utm={"medium": "cpc"})
    assert lead.extra_context == {"segment": "enterprise", "utm": {"medium": "cpc"}}


def test_last_name_and_company_are_enough_without_an_email() -> None:
    lead = lead_in(email=None)
    assert lead.email is None
    assert lead.last_name == "Diaz"


@pytest.mark.parametrize(
    ("overrides", "field", "message_part"),
    [
        ({"external_id": None}, "external_id", "required"),
        ({"external_id": "   "}, "external_id", ""),
        ({"external_id": True}, "external_id", "string"),
        ({"external_id": "x" * 256}, "external_id", "255"),
        ({"email": "nope"}, "email", "not an email address"),
        ({"email": "a b@c.example"}, "email", "not an email address"),
        ({"employees": "abc"}, "employees", "integer"),
        ({"employees": "450"}, "employees", "integer"),
        ({"employees": -1}, "employees", "greater than or equal to 0"),
        ({"employees": True}, "employees", "integer"),
        ({"score": 120}, "score", "less than or equal to 100"),
        ({"score": -1}, "score", "greater than or equal to 0"),
        ({"score": 87.5}, "score", "integer"),
        ({"signals": "pricing_page"}, "signals", "list"),
        ({"signals": [1]}, "signals.0", "string"),
        ({"content": [None]}, "content.0", "string"),
        ({"mql_at": "2026-11-22T14:03:00"}, "mql_at", "timezone"),
        ({"mql_at": "yesterday"}, "mql_at", ""),
        ({"source": "s" * 65}, "source", "64"),
        ({"country": "x" * 65}, "country", "64"),
    ],
)
def test_bad_fields_are_named(overrides: dict[str, Any], field: str, message_part: str) -> None:
    errors = errors_of(lead_json(**overrides))
    assert field in errors, errors
    assert message_part in errors[field]


def test_blank_strings_mean_not_given() -> None:
    lead = lead_in(source="", email="", phone="")
    assert (lead.source, lead.email, lead.phone) == ("intake", None, None)


def test_neither_email_nor_last_name_and_company() -> None:
    errors = errors_of(lead_json(email=None, company=None))
    assert errors == {
        "email or (last_name and company)": "give an email, or a last name and a company"
    }
    assert errors_of({"external_id": "X", "last_name": "Diaz"}) == errors
    assert errors_of({"external_id": "X", "company": "Acme"}) == errors


def test_several_bad_fields_are_all_reported() -> None:
    errors = errors_of(lead_json(employees="abc", score=120, signals="x"))
    assert set(errors) == {"employees", "score", "signals"}


@pytest.mark.parametrize("data", [["a list"], "text", 17, None])
def test_a_lead_must_be_an_object(data: Any) -> None:
    assert errors_of(data) == {"(lead)": "expected a JSON object"}


def test_validation_never_raises_on_generated_junk() -> None:
    rng = random.Random(99)
    junk: list[Any] = [None, True, 0, -5, 10**12, 1.5, "", " ", "x" * 400, [], {}, [1], "a@b.c"]
    keys = ["external_id", "email", "last_name", "company", "score", "employees", "mql_at"]
    for _ in range(400):
        data = {k: rng.choice(junk) for k in rng.sample(keys, rng.randint(0, len(keys)))}
        result = validate_lead(data)
        assert isinstance(result, LeadIn | list)
        if isinstance(result, list):
            assert result, data
            assert all(e.field and e.message for e in result)


# --- ingest: a new lead ----------------------------------------------------------------------


def test_a_new_lead_is_stored_with_its_first_cycle(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("claim")
    result = ingest_one(engine, lead_in(segment="enterprise"), pb, clock.now)
    assert result.status == "created"
    assert result.external_id == "L-1001"

    lead = stored_lead(engine, result.lead_id)
    assert (lead.origin, lead.external_id) == ("hubspot-form", "L-1001")
    assert lead.email == "ana@acme.example"
    assert lead.company == "Acme Health"
    assert lead.employees == 450
    assert lead.signals == ["pricing_page", "demo_request"]
    assert lead.content == ["ROI calculator"]
    assert lead.extra == {"segment": "enterprise"}
    assert lead.created_at == clock.now

    [cycle] = cycles(engine)
    assert cycle.id == result.cycle_id
    assert cycle.lead_id == lead.id
    assert cycle.seq == 1
    assert cycle.state == "open"
    assert cycle.score == 87
    assert cycle.score_reasons == ["score 87 from hubspot-form"]
    assert cycle.tier == "hot"
    assert cycle.mql_at == datetime(2026, 11, 22, 14, 3, tzinfo=UTC)
    assert cycle.received_at == clock.now
    assert cycle.sla_due_at == clock.now + timedelta(minutes=15)
    assert cycle.pool == "sales"
    assert cycle.owner_slack_id is None


def test_claim_mode_queues_only_the_card(engine: Any, clock: FrozenClock) -> None:
    result = ingest_one(engine, lead_in(), team_playbook("claim"), clock.now)
    [card] = outbox_rows(engine)
    assert card.kind == outbox.SLACK_CARD
    assert card.dedupe_key == f"card:{result.cycle_id}"
    assert card.lane == PIPELINE_LANE
    assert card.state == outbox.PENDING
    assert card.due_at == clock.now
    assert card.deadline_at == clock.now + timedelta(minutes=15)
    assert card.priority == outbox.PRIORITY_FIRST_TIER
    assert card.payload == {
        "cycle_id": result.cycle_id,
        "channel": "#revenue-pipeline",
        "thread_of": None,
    }


@pytest.mark.parametrize(
    ("score", "tier", "rank", "accept_within"),
    [
        (80, "hot", 0, timedelta(minutes=15)),
        (79, "warm", 1, timedelta(hours=4)),
        (50, "warm", 1, timedelta(hours=4)),
        (10, "nurture", 2, timedelta(days=1)),
    ],
)
def test_card_priority_and_deadline_follow_the_tier(
    engine: Any, clock: FrozenClock, score: int, tier: str, rank: int, accept_within: timedelta
) -> None:
    pb = team_playbook("claim")
    ingest_one(engine, lead_in(score=score), pb, clock.now)
    [cycle] = cycles(engine)
    [card] = outbox_rows(engine)
    assert cycle.tier == tier
    assert card.priority == outbox.PRIORITY_FIRST_TIER + rank == tier_priority(pb, tier)
    assert card.deadline_at == cycle.sla_due_at == clock.now + accept_within


def test_hot_lead_in_assign_mode_also_dms_the_owner_and_syncs_the_crm(
    engine: Any, clock: FrozenClock
) -> None:
    result = ingest_one(engine, lead_in(), team_playbook("assign"), clock.now)
    [cycle] = cycles(engine)
    assert cycle.owner_slack_id == "UREP1"
    assert cycle.pool == "sales"
    by_kind = {r.kind: r for r in outbox_rows(engine)}
    assert set(by_kind) == {outbox.SLACK_CARD, outbox.SLACK_DM, outbox.CRM_SYNC}
    dm = by_kind[outbox.SLACK_DM]
    assert dm.lane == "dm:UREP1"
    assert dm.dedupe_key == f"dm:{result.cycle_id}"
    assert dm.priority == outbox.PRIORITY_FIRST_TIER
    assert dm.deadline_at == cycle.sla_due_at
    assert dm.payload == {"cycle_id": result.cycle_id, "user": "UREP1"}
    crm = by_kind[outbox.CRM_SYNC]
    assert crm.lane == outbox.CRM_LANE
    assert crm.payload == {"lead_id": result.lead_id}
    assert crm.dedupe_key.startswith(f"crm:{result.lead_id}:")


def test_warm_lead_in_assign_mode_gets_no_dm(engine: Any, clock: FrozenClock) -> None:
    ingest_one(engine, lead_in(score=60), team_playbook("assign"), clock.now)
    kinds = sorted(r.kind for r in outbox_rows(engine))
    assert kinds == [outbox.CRM_SYNC, outbox.SLACK_CARD]


def test_rules_route_the_lead_and_assign_mode_picks_from_that_pool(
    engine: Any, clock: FrozenClock
) -> None:
    ingest_one(engine, lead_in("L-DE", country="de"), team_playbook("assign"), clock.now)
    [cycle] = cycles(engine)
    assert (cycle.pool, cycle.owner_slack_id) == ("emea", "UREP3")
    [dm] = outbox_rows(engine, outbox.SLACK_DM)
    assert dm.lane == "dm:UREP3"


def test_routing_rules_can_use_extra_context(engine: Any, clock: FrozenClock) -> None:
    text = TEST_PLAYBOOK.replace("MODE", "claim").replace(
        "{when: {country: [DE, FR]}, pool: emea}", "{when: {segment: Enterprise}, pool: emea}"
    )
    pb = parse_playbook(text)
    ingest_one(engine, lead_in("L-1", segment="enterprise"), pb, clock.now)
    ingest_one(engine, lead_in("L-2", segment="smb"), pb, clock.now)
    assert [c.pool for c in cycles(engine)] == ["emea", "sales"]


def test_round_robin_spreads_new_leads_in_assign_mode(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("assign")
    for i in range(6):
        ingest_one(engine, lead_in(f"L-{i}", score=60), pb, clock.now)
    assert [c.owner_slack_id for c in cycles(engine)] == [
        "UREP1",
        "UREP2",
        "UREP1",
        "UREP1",
        "UREP2",
        "UREP1",
    ]


def test_a_full_pool_falls_back_to_its_backup(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook("assign")
    ingest_one(engine, lead_in("L-DE1", country="DE"), pb, clock.now)
    ingest_one(engine, lead_in("L-DE2", country="DE"), pb, clock.now)
    assert [(c.pool, c.owner_slack_id) for c in cycles(engine)] == [
        ("emea", "UREP3"),
        ("sales", "UREP1"),
    ]


def test_without_an_incoming_score_the_playbook_scores_the_lead(
    engine: Any, clock: FrozenClock
) -> None:
    pb = load_playbook(None)
    ingest_one(engine, lead_in(score=None), pb, clock.now)
    [cycle] = cycles(engine)
    # demo request 40 + pricing page 20 + "VP" title 15 + 450 employees 15 + one content piece 5
    assert cycle.score == 95
    assert cycle.tier == "hot"
    assert cycle.score_reasons[0] == "demo request"
    assert "title: VP Operations" in cycle.score_reasons


def test_mql_at_defaults_to_the_time_received(engine: Any, clock: FrozenClock) -> None:
    ingest_one(engine, lead_in(mql_at=None), team_playbook(), clock.now)
    [cycle] = cycles(engine)
    assert cycle.mql_at == clock.now


def test_mql_at_with_an_offset_is_stored_in_utc(engine: Any, clock: FrozenClock) -> None:
    ingest_one(engine, lead_in(mql_at="2026-11-22T09:03:00-05:00"), team_playbook(), clock.now)
    [cycle] = cycles(engine)
    assert cycle.mql_at == datetime(2026, 11, 22, 14, 3, tzinfo=UTC)


def test_crm_record_id_from_extra_context(engine: Any, clock: FrozenClock) -> None:
    result = ingest_one(
        engine, lead_in(crm_record_id="00Q5e00000AbCdE"), team_playbook(), clock.now
    )
    assert stored_lead(engine, result.lead_id).crm_record_id == "00Q5e00000AbCdE"


def test_the_same_id_from_another_source_is_another_lead(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook()
    first = ingest_one(engine, lead_in(source="hubspot-form"), pb, clock.now)
    second = ingest_one(engine, lead_in(source="webinar-csv"), pb, clock.now)
    third = ingest_one(engine, lead_in(source="webinar-csv"), pb, clock.now, origin="hubspot-form")
    assert (first.status, second.status, third.status) == ("created", "created", "duplicate")
    assert first.lead_id != second.lead_id
    assert third.lead_id == first.lead_id
    assert count(engine, Lead) == 2


# --- ingest: duplicates and re-qualification ---------------------------------------------------


def test_a_resent_open_lead_is_a_duplicate_and_changes_nothing(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("assign")
    first = ingest_one(engine, lead_in(), pb, clock.now)
    rows_before = [(r.id, r.dedupe_key) for r in outbox_rows(engine)]
    later_mql = lead_in(mql_at="2026-11-23T09:00:00Z", title="CEO")
    again = ingest_one(engine, later_mql, pb, clock.advance(minutes=5))
    assert again.status == "duplicate"
    assert (again.lead_id, again.cycle_id) == (first.lead_id, first.cycle_id)
    assert count(engine, Lead) == 1
    assert count(engine, MqlCycle) == 1
    assert [(r.id, r.dedupe_key) for r in outbox_rows(engine)] == rows_before
    assert stored_lead(engine, first.lead_id).title == "VP Operations"


@pytest.mark.parametrize(
    "mql_at", [None, "2026-11-22T14:03:00Z", "2026-11-22T09:03:00-05:00", "2026-11-01T00:00:00Z"]
)
def test_a_closed_lead_resent_without_a_later_mql_at_is_a_duplicate(
    engine: Any, clock: FrozenClock, mql_at: str | None
) -> None:
    pb = team_playbook()
    first = ingest_one(engine, lead_in(), pb, clock.now)
    reject(engine, first.cycle_id, pb, clock.advance(minutes=3))
    rows_before = len(outbox_rows(engine))
    again = ingest_one(engine, lead_in(mql_at=mql_at), pb, clock.advance(days=1))
    assert again.status == "duplicate"
    assert (again.lead_id, again.cycle_id) == (first.lead_id, first.cycle_id)
    assert count(engine, MqlCycle) == 1
    assert len(outbox_rows(engine)) == rows_before


def test_a_requalification_keeps_context_the_new_mql_does_not_carry(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook()
    first = ingest_one(engine, lead_in(segment="enterprise"), pb, clock.now)
    reject(engine, first.cycle_id, pb, clock.advance(minutes=3))
    sparse = LeadIn.model_validate(
        {
            "external_id": "L-1001",
            "source": "hubspot-form",
            "email": "ana@acme.example",
            "title": "COO",
            "mql_at": "2026-12-01T10:00:00Z",
            "product": "analytics",
        }
    )
    assert ingest_one(engine, sparse, pb, clock.advance(days=8)).status == "requalified"
    lead = stored_lead(engine, first.lead_id)
    assert lead.title == "COO"
    assert (lead.company, lead.phone, lead.employees) == ("Acme Health", "+1 555 0100", 450)
    assert lead.signals == ["pricing_page", "demo_request"]
    assert lead.extra == {"segment": "enterprise", "product": "analytics"}


def test_a_closed_lead_with_a_later_mql_at_is_requalified(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook()
    first = ingest_one(engine, lead_in(), pb, clock.now)
    reject(engine, first.cycle_id, pb, clock.advance(minutes=3))
    again = ingest_one(
        engine,
        lead_in(mql_at="2026-12-01T10:00:00Z", title="CEO", score=55),
        pb,
        clock.advance(days=8),
    )
    assert again.status == "requalified"
    assert again.lead_id == first.lead_id
    assert again.cycle_id != first.cycle_id
    first_cycle, second_cycle = cycles(engine)
    assert first_cycle.state == "rejected"
    assert second_cycle.seq == 2
    assert second_cycle.state == "open"
    assert second_cycle.mql_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    assert second_cycle.tier == "warm"
    assert second_cycle.received_at == clock.now
    lead = stored_lead(engine, first.lead_id)
    assert lead.title == "CEO"
    assert lead.updated_at == clock.now
    card = card_of(engine, again.cycle_id)
    assert card.dedupe_key == f"card:{again.cycle_id}"
    assert card.payload["thread_of"] == first.cycle_id
    assert count(engine, Lead) == 1


def test_a_third_cycle_threads_under_the_first(engine: Any, clock: FrozenClock) -> None:
    pb = team_playbook()
    first = ingest_one(engine, lead_in(), pb, clock.now)
    reject(engine, first.cycle_id, pb, clock.advance(minutes=1))
    second = ingest_one(engine, lead_in(mql_at="2026-12-01T10:00:00Z"), pb, clock.advance(days=8))
    reject(engine, second.cycle_id, pb, clock.advance(minutes=1))
    third = ingest_one(engine, lead_in(mql_at="2027-01-05T10:00:00Z"), pb, clock.advance(days=40))
    assert third.status == "requalified"
    assert [c.seq for c in cycles(engine)] == [1, 2, 3]
    card = card_of(engine, third.cycle_id)
    assert card.payload["thread_of"] == first.cycle_id


# --- ingest: concurrency -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["claim", "assign"])
def test_the_same_new_lead_ingested_by_eight_threads_is_stored_once(
    engine: Any, clock: FrozenClock, mode: str
) -> None:
    pb = team_playbook(mode)
    lead = lead_in("L-RACE")
    results, errors = run_threads(8, lambda _: ingest_one(engine, lead, pb, clock.now))
    assert errors == []
    assert sorted(r.status for r in results) == ["created"] + ["duplicate"] * 7
    assert len({(r.lead_id, r.cycle_id) for r in results}) == 1
    assert count(engine, Lead) == 1
    assert count(engine, MqlCycle) == 1
    assert len(outbox_rows(engine, outbox.SLACK_CARD)) == 1
    if mode == "assign":
        assert len(outbox_rows(engine, outbox.SLACK_DM)) == 1
        assert len(outbox_rows(engine, outbox.CRM_SYNC)) == 1


def test_eight_different_leads_at_once_keep_the_round_robin_exact(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("assign")
    results, errors = run_threads(
        8, lambda i: ingest_one(engine, lead_in(f"L-{i}", score=60), pb, clock.now)
    )
    assert errors == []
    assert sorted(r.status for r in results) == ["created"] * 8
    owners = [c.owner_slack_id for c in cycles(engine)]
    assert sorted(owners) == ["UREP1"] * 5 + ["UREP2"] * 3


def test_the_same_requalification_sent_by_eight_threads_starts_one_cycle(
    engine: Any, clock: FrozenClock
) -> None:
    pb = team_playbook("claim")
    first = ingest_one(engine, lead_in(), pb, clock.now)
    reject(engine, first.cycle_id, pb, clock.advance(minutes=1))
    again = lead_in(mql_at="2026-12-01T10:00:00Z")
    results, errors = run_threads(8, lambda _: ingest_one(engine, again, pb, clock.now))
    assert errors == []
    assert sorted(r.status for r in results) == ["duplicate"] * 7 + ["requalified"]
    assert [c.seq for c in cycles(engine)] == [1, 2]
    assert len(outbox_rows(engine, outbox.SLACK_CARD)) == 2
