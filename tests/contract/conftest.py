"""One `crm_backend` per CRM: the adapter, plus how to seed that CRM and read it back.

Everything backend-specific lives here (written once per CRM), so the contract tests are the same
for all three. Readers go around the adapter: `local` reads revbot's own tables, Salesforce and
HubSpot read the fakes' stored records, so an adapter cannot vouch for its own writes.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core.crm import CRM, CrmTask, LeadRef
from bot.core.db import transaction
from bot.core.intake import LeadIn, ingest, validate_lead
from bot.core.models import LocalCrmRecord, LocalDeal, LocalDealNote, Touch
from bot.core.playbook import Playbook
from integrations.local import LocalCRM
from tests.conftest import FrozenClock, lead_json
from tests.fakes.hubspot_api import FakeHubSpot
from tests.fakes.hubspot_testing import hubspot_crm
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_support import salesforce_crm
from tests.test_deal_support_core import ds_playbook

BACKENDS = ("local", "salesforce", "hubspot")
VENDORS = ("salesforce", "hubspot")
ANA = ("UREP1", "ana@example.com")  # a rep of the test playbook, known to every CRM by email


@dataclass(frozen=True)
class LeadState:
    """What a CRM holds for a lead's handoff ("" read as None: an empty value is no value)."""

    status: str | None
    reason: str | None
    note: str | None
    owner_email: str | None


@dataclass(frozen=True)
class SeenNote:
    """A note found on a deal: the external id it carries and its text."""

    external_id: str
    text: str


@dataclass(frozen=True)
class Converted:
    """A lead that became an opportunity, and that opportunity."""

    lead: LeadRef
    opportunity_id: str


def _blank(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


class CrmBackend(ABC):
    """A CRM under test: `crm` is the adapter; the rest seeds the CRM and reads it back."""

    name: str
    crm: CRM
    # Why a behaviour does not apply to this CRM (None: it applies and is tested).
    no_mqls: str | None = None
    no_outcomes: str | None = None

    def __init__(self, playbook: Playbook, clock: FrozenClock) -> None:
        self.playbook = playbook
        self.clock = clock
        self._numbers = itertools.count(1)

    def next_number(self) -> int:
        """A number unique within the test, for names and ids."""
        return next(self._numbers)

    @abstractmethod
    def seed_lead(self) -> LeadRef:
        """A lead this CRM holds, not yet disposed."""

    @abstractmethod
    def absent_leads(self) -> list[LeadRef]:
        """Leads this CRM does not hold (each way a lead can be missing from it)."""

    @abstractmethod
    def lead_state(self, lead: LeadRef) -> LeadState:
        """The lead's status, reason, note and owner as the CRM stores them now."""

    @abstractmethod
    def task(self, lead: LeadRef, key: str) -> CrmTask:
        """A completed call logged by Ana on the lead, as revbot hands it to `log_tasks`."""

    @abstractmethod
    def task_ids(self, lead: LeadRef) -> list[str]:
        """External ids of the tasks the CRM holds on the lead, one entry per stored task."""

    @abstractmethod
    def seed_deal(
        self, name: str, *, stage: str, amount: float | None = None, close_date: date | None = None
    ) -> str:
        """An open deal with this stage label; returns its id."""

    @property
    @abstractmethod
    def absent_deal_id(self) -> str:
        """A well-formed deal id the CRM does not hold."""

    @abstractmethod
    def deal_notes(self, deal_id: str) -> list[SeenNote]:
        """Notes the CRM holds on a deal, one entry per stored note."""

    @abstractmethod
    def deal_searches(self) -> list[str]:
        """What the CRM received as deal searches, as text (vendors: the requests' bodies)."""

    @abstractmethod
    def requests_received(self) -> int:
        """How many requests reached the CRM so far (local: its rows changed)."""

    def seed_mql(self, *, email: str, company: str, mql: bool = True) -> str:
        """A lead record that is (or is not) an MQL now; returns its record id."""
        raise NotImplementedError(self.no_mqls)

    def seed_converted(self, *, amount: float) -> Converted:
        """A lead converted into an opportunity that was won for `amount`."""
        raise NotImplementedError(self.no_outcomes)


class LocalBackend(CrmBackend):
    """revbot's own tables: leads through intake, dispositions in `local_crm_records`."""

    name = "local"
    no_mqls = "the local CRM is not a source of MQLs: leads reach it through intake"
    no_outcomes = "the local CRM does not track conversions or opportunities won"

    def __init__(self, playbook: Playbook, clock: FrozenClock, engine: Engine) -> None:
        super().__init__(playbook, clock)
        self.engine = engine
        self.crm = LocalCRM(engine, clock)
        self._cycles: dict[int, int] = {}

    def seed_lead(self) -> LeadRef:
        n = self.next_number()
        lead_in = validate_lead(lead_json(f"L-{n}", source="web-form", email=f"lead{n}@x.example"))
        assert isinstance(lead_in, LeadIn)
        with transaction(self.engine) as session:
            result = ingest(session, lead_in, playbook=self.playbook, now=self.clock())
        self._cycles[result.lead_id] = result.cycle_id
        return LeadRef(result.lead_id, "web-form", f"L-{n}")

    def absent_leads(self) -> list[LeadRef]:
        return [LeadRef(990_001, "web-form", "L-ABSENT")]

    def lead_state(self, lead: LeadRef) -> LeadState:
        with Session(self.engine) as session:
            row = session.get(LocalCrmRecord, lead.lead_id)
        if row is None:
            return LeadState(None, None, None, None)
        return LeadState(_blank(row.status), _blank(row.reason), _blank(row.note), row.owner)

    def task(self, lead: LeadRef, key: str) -> CrmTask:
        # The local CRM's task record is revbot's own touch row, written when the rep logs it.
        with transaction(self.engine) as session:
            touch = Touch(
                cycle_id=self._cycles[lead.lead_id],
                lead_id=lead.lead_id,
                rep_slack_id=ANA[0],
                kind="call",
                note="Left a voicemail.",
                touched_at=self.clock(),
            )
            session.add(touch)
            session.flush()
            touch_id = touch.id
        return _task(lead, key, f"revbot-touch-{touch_id}", self.clock())

    def task_ids(self, lead: LeadRef) -> list[str]:
        with Session(self.engine) as session:
            rows = session.exec(select(Touch).where(Touch.lead_id == lead.lead_id)).all()
        return [f"revbot-touch-{t.id}" for t in rows]

    def seed_deal(
        self, name: str, *, stage: str, amount: float | None = None, close_date: date | None = None
    ) -> str:
        deal_id = f"D-{self.next_number()}"
        with transaction(self.engine) as session:
            session.add(
                LocalDeal(
                    id=deal_id,
                    name=name,
                    stage=stage,
                    amount=amount,
                    currency="USD" if amount is not None else None,
                    close_date=close_date,
                )
            )
        return deal_id

    @property
    def absent_deal_id(self) -> str:
        return "D-ABSENT"

    def deal_notes(self, deal_id: str) -> list[SeenNote]:
        with Session(self.engine) as session:
            rows = session.exec(
                select(LocalDealNote)
                .where(LocalDealNote.deal_id == deal_id)
                .order_by(col(LocalDealNote.id))
            ).all()
        return [SeenNote(r.external_id, f"{r.title}\n{r.body}") for r in rows]

    def deal_searches(self) -> list[str]:
        return []  # the local CRM searches its own table; there is no request to see

    def requests_received(self) -> int:
        return 0


class SalesforceBackend(CrmBackend):
    """The fake Salesforce org: Leads, Opportunities, Tasks, Users."""

    name = "salesforce"

    def __init__(self, playbook: Playbook, clock: FrozenClock, fake: FakeSalesforce) -> None:
        super().__init__(playbook, clock)
        self.fake = fake
        self.crm = salesforce_crm(fake, playbook, clock)
        self.fields = playbook.field_map("salesforce")
        fake.seed("User", Name="Ana Rep", Email=ANA[1], IsActive=True)

    def seed_lead(self) -> LeadRef:
        n = self.next_number()
        record_id = self.fake.seed(
            "Lead", LastName=f"Lead{n}", Company=f"Company {n}", Status="MQL"
        )
        return LeadRef(n, "salesforce", record_id)

    def absent_leads(self) -> list[LeadRef]:
        return [
            LeadRef(990_001, "salesforce", self.fake.new_id("Lead")),
            LeadRef(990_002, "web-form", "L-NEVER-SYNCED"),
        ]

    def lead_state(self, lead: LeadRef) -> LeadState:
        record = self.fake.record(str(lead.record_id_in("salesforce")))
        owner = self.fake.record(record["OwnerId"]) if record.get("OwnerId") else {}
        return LeadState(
            _blank(record.get("Status")),
            _blank(record.get(self.fields.field("reason") or "")),
            _blank(record.get(self.fields.field("note") or "")),
            _blank(owner.get("Email")),
        )

    def task(self, lead: LeadRef, key: str) -> CrmTask:
        return _task(lead, key, f"revbot-touch-{key}", self.clock())

    def task_ids(self, lead: LeadRef) -> list[str]:
        record_id = lead.record_id_in("salesforce")
        return [
            str(t.get("Revbot_External_Id__c"))
            for t in self.fake.records("Task")
            if t.get("WhoId") == record_id
        ]

    def seed_deal(
        self, name: str, *, stage: str, amount: float | None = None, close_date: date | None = None
    ) -> str:
        return self.fake.seed(
            "Opportunity",
            Name=name,
            StageName=stage,
            Amount=amount,
            CloseDate=close_date.isoformat() if close_date else None,
            IsClosed=False,
            IsWon=False,
        )

    @property
    def absent_deal_id(self) -> str:
        return self.fake.new_id("Opportunity")

    def deal_notes(self, deal_id: str) -> list[SeenNote]:
        return [
            SeenNote(str(t.get("Revbot_External_Id__c")), f"{t['Subject']}\n{t['Description']}")
            for t in self.fake.records("Task")
            if t.get("WhatId") == deal_id
        ]

    def deal_searches(self) -> list[str]:
        return [q for q in self.fake.queries() if "FROM Opportunity WHERE Name LIKE" in q]

    def requests_received(self) -> int:
        return len(self.fake.requests)

    def seed_mql(self, *, email: str, company: str, mql: bool = True) -> str:
        return self.fake.seed(
            "Lead",
            FirstName="Maya",
            LastName="Quinn",
            Company=company,
            Email=email,
            Status="MQL" if mql else "Open - Not Contacted",
        )

    def seed_converted(self, *, amount: float) -> Converted:
        n = self.next_number()
        opportunity = self.fake.seed(
            "Opportunity",
            Name=f"Won deal {n}",
            StageName="Closed Won",
            Amount=amount,
            CloseDate=(self.clock() - timedelta(days=1)).date().isoformat(),
            IsClosed=True,
            IsWon=True,
        )
        lead = self.fake.seed(
            "Lead",
            LastName=f"Converted{n}",
            Company=f"Company {n}",
            Status="Closed - Converted",
            IsConverted=True,
            ConvertedDate=(self.clock() - timedelta(days=10)).date().isoformat(),
            ConvertedOpportunityId=opportunity,
        )
        return Converted(LeadRef(n, "salesforce", lead), opportunity)


class HubSpotBackend(CrmBackend):
    """The fake HubSpot account: contacts, deals, tasks and notes with their associations."""

    name = "hubspot"

    def __init__(self, playbook: Playbook, clock: FrozenClock, fake: FakeHubSpot) -> None:
        super().__init__(playbook, clock)
        self.fake = fake
        self.crm = hubspot_crm(fake, clock, playbook=playbook)
        self.fields = playbook.field_map("hubspot")
        self.stage_ids = {
            stage["label"]: stage["id"]
            for pipeline in fake.pipelines["deals"]
            for stage in pipeline["stages"]
        }

    def seed_lead(self) -> LeadRef:
        n = self.next_number()
        record_id = self.fake.seed_mql(
            mql_at=self.clock() - timedelta(hours=1), lastname=f"Lead{n}", company=f"Company {n}"
        )
        return LeadRef(n, "hubspot", record_id)

    def absent_leads(self) -> list[LeadRef]:
        return [
            LeadRef(990_001, "hubspot", "990001"),
            LeadRef(990_002, "web-form", "L-NEVER-SYNCED"),
        ]

    def lead_state(self, lead: LeadRef) -> LeadState:
        props = self.fake.record("contacts", str(lead.record_id_in("hubspot")))
        owner_id = props.get("hubspot_owner_id")
        owner = next((o for o in self.fake.owners if o["id"] == owner_id), {})
        return LeadState(
            _blank(props.get("hs_lead_status")),
            _blank(props.get(self.fields.field("reason") or "")),
            _blank(props.get(self.fields.field("note") or "")),
            _blank(owner.get("email")),
        )

    def task(self, lead: LeadRef, key: str) -> CrmTask:
        return _task(lead, key, f"revbot-touch-{key}", self.clock())

    def task_ids(self, lead: LeadRef) -> list[str]:
        contact = str(lead.record_id_in("hubspot"))
        subjects = [
            self.fake.record("tasks", task_id).get("hs_task_subject", "")
            for task_id, _ in self.fake.associated("contacts", contact, "tasks")
        ]
        return [m.group(1) for s in subjects if (m := re.search(r"\(([^()]+)\)$", s))]

    def seed_deal(
        self, name: str, *, stage: str, amount: float | None = None, close_date: date | None = None
    ) -> str:
        return self.fake.seed_deal(
            dealname=name,
            dealstage=self.stage_ids[stage],
            amount=f"{amount:g}" if amount is not None else None,
            deal_currency_code="USD" if amount is not None else None,
            closedate=datetime.combine(close_date, datetime.min.time(), UTC)
            if close_date
            else None,
        )

    @property
    def absent_deal_id(self) -> str:
        return "990001"

    def deal_notes(self, deal_id: str) -> list[SeenNote]:
        bodies = [
            self.fake.record("notes", note_id).get("hs_note_body", "")
            for note_id, _ in self.fake.associated("deals", deal_id, "notes")
        ]
        seen = []
        for body in bodies:
            found = re.search(r"revbot ref (.+?)</p>", body)
            seen.append(
                SeenNote(html.unescape(found.group(1)) if found else "", html.unescape(body))
            )
        return seen

    def deal_searches(self) -> list[str]:
        return [json.dumps(c.body) for c in self.fake.calls("/crm/v3/objects/deals/search")]

    def requests_received(self) -> int:
        return len(self.fake.requests)

    def seed_mql(self, *, email: str, company: str, mql: bool = True) -> str:
        values = {"email": email, "company": company, "firstname": "Maya", "lastname": "Quinn"}
        if mql:
            return self.fake.seed_mql(mql_at=self.clock() - timedelta(seconds=30), **values)
        return self.fake.seed_contact(lifecyclestage="lead", **values)

    def seed_converted(self, *, amount: float) -> Converted:
        n = self.next_number()
        deal = self.fake.seed_deal(
            dealname=f"Won deal {n}",
            dealstage="closedwon",
            amount=f"{amount:g}",
            createdate=self.clock() - timedelta(days=10),
            closedate=self.clock() - timedelta(days=1),
        )
        contact = self.fake.seed_contact(
            lifecyclestage="customer",
            hs_lifecyclestage_salesqualifiedlead_date=self.clock() - timedelta(days=10),
            hs_lifecyclestage_customer_date=self.clock() - timedelta(days=1),
        )
        self.fake.associate("contacts", contact, "deals", deal)
        return Converted(LeadRef(n, "hubspot", contact), deal)


def _task(lead: LeadRef, key: str, external_id: str, now: datetime) -> CrmTask:
    return CrmTask(
        key=key,
        external_id=external_id,
        lead=lead,
        kind="call",
        label="Call",
        note="Left a voicemail.",
        owner_slack_id=ANA[0],
        owner_email=ANA[1],
        done_at=now,
    )


@contextmanager
def open_backend(
    name: str, engine: Engine, clock: FrozenClock, playbook: Playbook | None = None
) -> Iterator[CrmBackend]:
    """The backend `name`, its fake running for the duration (HubSpot's checks every request
    against its schemas: a request the real API would refuse fails the test)."""
    playbook = playbook or ds_playbook()
    if name == "local":
        yield LocalBackend(playbook, clock, engine)
    elif name == "salesforce":
        with FakeSalesforce(clock=clock) as sf:
            yield SalesforceBackend(playbook, clock, sf)
    else:
        with FakeHubSpot(clock=clock) as hs:
            yield HubSpotBackend(playbook, clock, hs)
            assert hs.schema_errors == []


@pytest.fixture(params=BACKENDS)
def crm_backend(
    request: pytest.FixtureRequest, engine: Engine, clock: FrozenClock
) -> Iterator[CrmBackend]:
    """Each CRM in turn, on each test database (the local CRM lives in it)."""
    with open_backend(request.param, engine, clock) as backend:
        yield backend
