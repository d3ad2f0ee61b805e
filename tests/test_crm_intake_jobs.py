"""MQLs from a CRM (polling, the webhook inbox) and the outcome sync, against a scripted CRM.

`ScriptedCRM` implements revbot's own `CRM` protocol (the local CRM, plus MQL pages, records and
outcomes a test scripts); the Salesforce and HubSpot adapters are tested against their HTTP fakes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.crm import CrmRateLimited, LeadOutcome, LeadRef, MqlPage
from bot.core.crm_intake import (
    enqueue_record_check,
    read_watermark,
    store_crm_leads,
)
from bot.core.db import transaction
from bot.core.metrics import crm_outcomes, week_bounds
from bot.core.models import Lead, LeadOutcomeRecord, MqlCycle, OutboxMessage
from bot.services import Services
from integrations.local import LocalCRM
from jobs import crm_intake, outcomes
from jobs.scheduler import default_jobs
from tests.conftest import FrozenClock, make_services, team_playbook


class ScriptedCRM(LocalCRM):
    """The local CRM, plus MQL pages, current records and outcomes scripted by the test."""

    name = "scripted"

    def __init__(self, engine: Any, clock: Any) -> None:
        super().__init__(engine, clock)
        self.pages: list[MqlPage] = []
        self.polled_from: list[str | None] = []
        self.records: dict[str, dict[str, Any]] = {}
        self.fetched: list[list[str]] = []
        self.raise_next: list[Exception] = []
        self.outcomes: dict[str, LeadOutcome] = {}
        self.outcome_calls: list[list[str]] = []

    def poll_mqls(self, watermark: str | None, *, now: datetime) -> MqlPage:
        """The next scripted page (an empty one, keeping the watermark, when none is left)."""
        self.polled_from.append(watermark)
        return self.pages.pop(0) if self.pages else MqlPage(leads=[], watermark=watermark)

    def fetch_mqls(self, record_ids: Sequence[str]) -> list[dict[str, Any]]:
        """The scripted records among `record_ids`."""
        self.fetched.append(list(record_ids))
        if self.raise_next:
            raise self.raise_next.pop(0)
        return [self.records[i] for i in record_ids if i in self.records]

    def fetch_outcomes(self, leads: Sequence[LeadRef]) -> list[LeadOutcome]:
        """The scripted outcome of each lead whose record id has one."""
        ids = [ref.record_id_in(self.name) or "" for ref in leads]
        self.outcome_calls.append(ids)
        found = []
        for ref, record_id in zip(leads, ids, strict=True):
            if record_id in self.outcomes:
                scripted = self.outcomes[record_id]
                found.append(
                    LeadOutcome(
                        lead=ref,
                        converted=scripted.converted,
                        converted_at=scripted.converted_at,
                        opportunity_id=scripted.opportunity_id,
                        amount=scripted.amount,
                        is_closed=scripted.is_closed,
                        is_won=scripted.is_won,
                    )
                )
        return found


def record(record_id: str, **fields: Any) -> dict[str, Any]:
    """An intake-shaped lead dict as an adapter builds it from a CRM record."""
    return {
        "external_id": record_id,
        "source": "scripted",
        "crm_record_id": record_id,
        "email": f"{record_id.lower()}@example.com",
        "company": "Acme",
        "last_name": "Doe",
        **fields,
    }


def services_with(
    engine: Any, database_url: str, clock: FrozenClock
) -> tuple[Services, ScriptedCRM]:
    crm = ScriptedCRM(engine, clock)
    return make_services(engine, database_url, None, clock=clock, crm=crm), crm


def cycles(engine: Any) -> list[tuple[str, int]]:
    with Session(engine) as session:
        rows = session.exec(
            select(Lead.external_id, MqlCycle.seq)
            .join(MqlCycle, col(MqlCycle.lead_id) == col(Lead.id))
            .order_by(col(Lead.external_id), col(MqlCycle.seq))
        ).all()
        return [(str(a), int(b)) for a, b in rows]


def card_rows(engine: Any) -> int:
    with Session(engine) as session:
        return len(
            session.exec(select(OutboxMessage).where(OutboxMessage.kind == outbox.SLACK_CARD)).all()
        )


def test_a_crm_record_without_name_or_email_still_lands(engine: Any, clock: FrozenClock) -> None:
    with transaction(engine) as session:
        summary = store_crm_leads(
            session,
            "scripted",
            [{"external_id": "00Q1", "source": "scripted", "crm_record_id": "00Q1"}],
            playbook=team_playbook(),
            now=clock(),
        )
    assert summary.counts["created"] == 1
    assert summary.refused == []
    with Session(engine) as session:
        lead = session.exec(select(Lead)).one()
    assert (lead.origin, lead.crm_record_id, lead.email) == ("scripted", "00Q1", None)


def test_fields_intake_cannot_use_are_dropped_not_the_lead(engine: Any, clock: FrozenClock) -> None:
    with transaction(engine) as session:
        summary = store_crm_leads(
            session,
            "scripted",
            [
                record(
                    "00Q2",
                    employees="about fifty",
                    title="x" * 400,
                    country="DE",
                    email="not-an-email",
                )
            ],
            playbook=team_playbook(),
            now=clock(),
        )
    assert summary.counts["created"] == 1
    with Session(engine) as session:
        lead = session.exec(select(Lead)).one()
    assert (lead.employees, lead.title, lead.country, lead.company) == (None, None, "DE", "Acme")
    assert lead.email is None


def test_a_record_without_an_id_is_refused_and_nothing_is_stored(
    engine: Any, clock: FrozenClock
) -> None:
    with transaction(engine) as session:
        summary = store_crm_leads(
            session,
            "scripted",
            [{"source": "scripted", "email": "a@example.com"}],
            playbook=team_playbook(),
            now=clock(),
        )
    assert summary.results == []
    assert [record_id for record_id, _ in summary.refused] == ["(no id)"]
    assert cycles(engine) == []


def test_polling_pages_through_stores_once_and_keeps_the_watermark(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services, crm = services_with(engine, database_url, clock)
    crm.pages = [
        MqlPage(leads=[record("00QA"), record("00QB")], watermark="w1", more=True),
        MqlPage(leads=[record("00QB"), record("00QC")], watermark="w2", more=False),
    ]

    seen = crm_intake.poll(services, now=clock())

    assert seen == 4
    assert crm.polled_from == [None, "w1"]
    assert cycles(engine) == [("00QA", 1), ("00QB", 1), ("00QC", 1)]
    assert card_rows(engine) == 3
    with Session(engine) as session:
        assert read_watermark(session, crm_intake.poll_source("scripted")) == "w2"

    crm.pages = [MqlPage(leads=[record("00QC")], watermark="w3")]
    crm_intake.poll(services, now=clock.advance(seconds=30))
    assert crm.polled_from[-1] == "w2"
    assert card_rows(engine) == 3  # the overlap re-delivered 00QC: a duplicate, no new card


def test_a_requalified_record_gets_a_new_cycle(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services, crm = services_with(engine, database_url, clock)
    first = clock()
    crm.pages = [MqlPage(leads=[record("00QA", mql_at=first.isoformat())], watermark="w1")]
    crm_intake.poll(services, now=first)
    with transaction(engine) as session:
        cycle = session.exec(select(MqlCycle)).one()
        cycle.state = "recycled"
        cycle.closed_at = first
        session.add(cycle)
    later = clock.advance(days=30)
    crm.pages = [MqlPage(leads=[record("00QA", mql_at=later.isoformat())], watermark="w2")]
    crm_intake.poll(services, now=later)
    assert cycles(engine) == [("00QA", 1), ("00QA", 2)]


def test_webhook_events_are_queued_once_per_event_and_fetched_in_one_batch(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services, crm = services_with(engine, database_url, clock)
    crm.records = {"101": record("101"), "102": record("102")}
    with transaction(engine) as session:
        queued = [
            enqueue_record_check(session, "scripted", rid, event_key=key, now=clock())
            for rid, key in [("101", "e1"), ("102", "e2"), ("101", "e1"), ("103", "e3")]
        ]
    assert queued == [True, True, False, True]

    with transaction(engine) as session:
        ids = [r.id for r in outbox.claim(session, outbox.CRM_INTAKE_LANE, 100, now=clock())]
    crm_intake.deliver_intake(
        engine, [i for i in ids if i is not None], crm, services.playbook, now=clock()
    )

    assert crm.fetched == [["101", "102", "103"]]
    assert cycles(engine) == [("101", 1), ("102", 1)]
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == outbox.CRM_INTAKE)
        ).all()
    assert {r.payload["record_id"]: (r.state, r.result) for r in rows} == {
        "101": (outbox.DONE, {"stored": True}),
        "102": (outbox.DONE, {"stored": True}),
        "103": (outbox.DONE, {"stored": False}),  # not an MQL (any more): nothing to store
    }


def test_a_rate_limited_fetch_keeps_the_events_for_later(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services, crm = services_with(engine, database_url, clock)
    crm.records = {"101": record("101")}
    crm.raise_next = [CrmRateLimited("daily limit", retry_after=60)]
    with transaction(engine) as session:
        enqueue_record_check(session, "scripted", "101", event_key="e1", now=clock())
        ids = [r.id for r in outbox.claim(session, outbox.CRM_INTAKE_LANE, 100, now=clock())]
    crm_intake.deliver_intake(
        engine, [i for i in ids if i is not None], crm, services.playbook, now=clock()
    )
    with Session(engine) as session:
        row = session.exec(
            select(OutboxMessage).where(OutboxMessage.lane == outbox.CRM_INTAKE_LANE)
        ).one()
        alerts = session.exec(
            select(OutboxMessage).where(OutboxMessage.kind == outbox.SLACK_ALERT)
        ).all()
    assert row.state == outbox.PENDING
    assert row.attempts == 0, "a spent API budget is no fault of the event: no attempt counted"
    assert row.due_at >= clock() + timedelta(seconds=60)
    assert [a.payload["text"].startswith(":hourglass:") for a in alerts] == [True]
    assert cycles(engine) == []

    with transaction(engine) as session:
        ids = [
            r.id
            for r in outbox.claim(
                session, outbox.CRM_INTAKE_LANE, 100, now=clock.advance(seconds=61)
            )
        ]
    crm_intake.deliver_intake(
        engine, [i for i in ids if i is not None], crm, services.playbook, now=clock()
    )
    assert cycles(engine) == [("101", 1)]


def _ingested(services: Services, crm: ScriptedCRM, clock: FrozenClock, *records: Any) -> None:
    crm.pages = [MqlPage(leads=list(records), watermark="w")]
    crm_intake.poll(services, now=clock())


def test_outcomes_are_synced_until_the_deal_closes(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services, crm = services_with(engine, database_url, clock)
    _ingested(services, crm, clock, record("A"), record("B"), record("C"))
    crm.outcomes = {
        "A": LeadOutcome(
            lead=LeadRef(0, "", ""),
            converted=True,
            converted_at=clock(),
            opportunity_id="006A",
            amount=50_000,
            is_closed=True,
            is_won=True,
        ),
        "B": LeadOutcome(
            lead=LeadRef(0, "", ""), converted=True, opportunity_id="006B", amount=20_000
        ),
    }

    assert outcomes.run(services, now=clock.advance(hours=1)) == 2
    assert crm.outcome_calls == [["A", "B", "C"]]
    with Session(engine) as session:
        stored = {
            session.get(Lead, row.lead_id).external_id: (row.converted, row.amount, row.is_won)  # type: ignore[union-attr]
            for row in session.exec(select(LeadOutcomeRecord)).all()
        }
    assert stored == {"A": (True, 50_000, True), "B": (True, 20_000, False)}

    outcomes.run(services, now=clock.advance(hours=1))
    assert crm.outcome_calls[-1] == ["B", "C"]  # A's deal is closed: no need to ask again


def test_the_digest_reports_conversion_pipeline_and_win_rate_from_synced_outcomes(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services, crm = services_with(engine, database_url, clock)
    week = week_bounds(services.playbook, clock())
    with Session(engine) as session:
        assert crm_outcomes(session, week) is None  # nothing synced yet: "CRM not connected"

    _ingested(
        services,
        crm,
        clock,
        record("A", lead_source="Webinar"),
        record("B", lead_source="Webinar"),
        record("C", lead_source="Paid Search"),
        record("D", lead_source="Paid Search"),
    )
    ref = LeadRef(0, "", "")
    crm.outcomes = {
        "A": LeadOutcome(
            ref, converted=True, opportunity_id="1", amount=30_000, is_closed=True, is_won=True
        ),
        "B": LeadOutcome(ref, converted=True, opportunity_id="2", amount=10_000, is_closed=True),
        "C": LeadOutcome(ref, converted=True, opportunity_id="3", amount=5_000),
        "D": LeadOutcome(ref, converted=False),
    }
    outcomes.run(services, now=clock())

    with Session(engine) as session:
        found = crm_outcomes(session, week)
    assert found is not None
    assert (found.sqls, found.mql_to_sql, found.pipeline_created) == (3, 0.75, 45_000)
    assert found.win_rate == 0.5  # one won of the two closed
    assert found.pipeline_by_source == {"Webinar": 40_000, "Paid Search": 5_000}
    assert found.win_rate_by_source == {"Webinar": 0.5, "Paid Search": None}

    with Session(engine) as session:
        empty = crm_outcomes(session, week_bounds(services.playbook, clock() - timedelta(days=70)))
    assert empty is not None
    assert (empty.sqls, empty.mql_to_sql, empty.win_rate) == (0, None, None)


def test_crm_jobs_are_scheduled_only_for_a_crm_with_records_of_its_own(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    local = make_services(engine, database_url, None, clock=clock)
    assert {name for name, _, _ in default_jobs(local)} == {
        "weekly_digest",
        "sla_sweep",
        "deal_support_sla",
        "outbox_housekeeping",
    }
    services, _ = services_with(engine, database_url, clock)
    assert {"crm_poll", "crm_outcomes"} <= {name for name, _, _ in default_jobs(services)}


def test_the_poll_job_runs_once_per_period_whoever_ticks(
    engine: Any, database_url: str, clock: FrozenClock
) -> None:
    services, crm = services_with(engine, database_url, clock)
    clock.now = datetime(2026, 11, 23, 15, 0, 1, tzinfo=UTC)
    tick = next(t for name, _, t in default_jobs(services) if name == "crm_poll")
    tick()
    tick()
    assert len(crm.polled_from) == 1
    clock.advance(seconds=30)
    tick()
    assert len(crm.polled_from) == 2
