"""CRM write-back through the outbox: dispositions, batching, outages, rate limits, dead letters.

`RecordingCRM` below is a small implementation of revbot's own `CRM` protocol that records the
batches it receives and fails as a test scripts it; the local CRM is used as shipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import pytest
from sqlmodel import Session, col, select

from bot.core import db, handoff, outbox
from bot.core.crm import (
    CrmAuthError,
    CrmError,
    CrmRateLimited,
    CrmUnavailable,
    CrmWrite,
    LeadDisposition,
    LeadRef,
    WriteResult,
)
from bot.core.intake import IntakeResult, LeadIn, ingest
from bot.core.models import LocalCrmRecord, MqlCycle, OutboxMessage
from bot.core.playbook import Playbook, parse_playbook
from bot.services import Services
from jobs import outbox as outbox_job
from tests.conftest import (
    BOT_TOKEN,
    TEST_PLAYBOOK,
    FrozenClock,
    lead_json,
    make_services,
    team_playbook,
)
from tests.fakes.slack_api import FakeSlack

ALERTS = "#revops-alerts"


class RecordingCRM:
    """A CRM that keeps what it was sent; whole-call errors and per-record refusals are scripted."""

    name = "recording"

    def __init__(self, *, max_batch: int = 200) -> None:
        self.max_batch = max_batch
        self.batches: list[list[CrmWrite]] = []
        self.raise_next: list[CrmError] = []
        self.refuse: dict[int, list[tuple[bool, str]]] = {}
        self.records: dict[int, LeadDisposition] = {}

    def apply(self, writes: Sequence[CrmWrite]) -> list[WriteResult]:
        """Record the batch, then fail it as scripted or store each record."""
        self.batches.append(list(writes))
        if self.raise_next:
            raise self.raise_next.pop(0)
        results = []
        for write in writes:
            lead_id = write.disposition.lead.lead_id
            refusals = self.refuse.get(lead_id)
            if refusals:
                retryable, error = refusals.pop(0)
                results.append(WriteResult(write.key, ok=False, retryable=retryable, error=error))
                continue
            self.records[lead_id] = write.disposition
            results.append(WriteResult(write.key, ok=True))
        return results

    def record_url(self, lead: LeadRef) -> str | None:
        """Records of this CRM have no web page."""
        return None

    def check(self) -> str:
        """Always reachable."""
        return "recording CRM"

    def lead_ids(self, batch: int) -> list[int]:
        """Lead ids written in one recorded batch."""
        return [w.disposition.lead.lead_id for w in self.batches[batch]]


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeSlack]:
    """Fake Slack for the cards and alerts the same outbox runs deliver."""
    with FakeSlack(bot_token=BOT_TOKEN, clock=lambda: clock().timestamp()) as server:
        yield server


def _services(
    engine: Any,
    database_url: str,
    fake: FakeSlack,
    clock: FrozenClock,
    *,
    mode: str = "claim",
    crm: Any = None,
    playbook: Playbook | None = None,
) -> Services:
    return make_services(
        engine,
        database_url,
        fake,
        playbook=playbook or team_playbook(mode),
        clock=clock,
        crm=crm,
    )


def _ingest(
    services: Services, clock: FrozenClock, external_id: str = "L-1001", **overrides: Any
) -> IntakeResult:
    overrides.setdefault("email", f"{external_id.lower()}@acme.example")
    lead = LeadIn.model_validate(lead_json(external_id, **overrides))
    with db.transaction(services.engine) as session:
        return ingest(session, lead, playbook=services.playbook, now=clock())


def _run(services: Services, clock: FrozenClock) -> int:
    return outbox_job.run(services, now=clock())


def _crm_rows(engine: Any) -> list[OutboxMessage]:
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == outbox.CRM_SYNC)
                .order_by(col(OutboxMessage.id))
            ).all()
        )
        for row in rows:
            session.expunge(row)
        return rows


def _crm_row_of(engine: Any, lead_id: int) -> OutboxMessage:
    rows = [r for r in _crm_rows(engine) if r.payload["lead_id"] == lead_id]
    assert len(rows) == 1, rows
    return rows[0]


def _alert_rows(engine: Any) -> list[OutboxMessage]:
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == outbox.SLACK_ALERT)
                .order_by(col(OutboxMessage.id))
            ).all()
        )
        for row in rows:
            session.expunge(row)
        return rows


def _record(engine: Any, lead_id: int) -> LocalCrmRecord | None:
    with Session(engine) as session:
        record = session.get(LocalCrmRecord, lead_id)
        if record is not None:
            session.expunge(record)
        return record


def _owner(engine: Any, cycle_id: int) -> str:
    with Session(engine) as session:
        cycle = session.get(MqlCycle, cycle_id)
        assert cycle is not None
        assert cycle.owner_slack_id
        return cycle.owner_slack_id


def _member_email(playbook: Playbook, pool: str, slack_id: str) -> str | None:
    member = playbook.routing.pools[pool].member(slack_id)
    assert member is not None
    return member.email


# -- what the CRM receives -------------------------------------------------------------------


def test_assigned_lead_is_written_open_with_its_owners_email(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock, mode="assign")
    result = _ingest(services, clock)
    owner = _owner(engine, result.cycle_id)

    _run(services, clock)

    record = _record(engine, result.lead_id)
    assert record is not None
    statuses = services.playbook.field_map("local").status_values
    assert record.status == statuses.open
    assert record.owner == _member_email(services.playbook, "sales", owner)
    assert (record.reason_code, record.reason, record.note, record.revisit_on) == (
        None,
        None,
        None,
        None,
    )
    assert _crm_row_of(engine, result.lead_id).state == outbox.DONE


def _accept(services: Services, cycle_id: int, clock: FrozenClock) -> None:
    with db.transaction(services.engine) as session:
        handoff.accept(session, cycle_id, "UREP1", playbook=services.playbook, now=clock())


def _reject(services: Services, cycle_id: int, clock: FrozenClock, reason: str = "not_icp") -> None:
    with db.transaction(services.engine) as session:
        handoff.reject(
            session,
            cycle_id,
            "UREP1",
            reason_code=reason,
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


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        ("accept", ("Working", None, None, None, None)),
        (
            "reject",
            ("Disqualified", "not_icp", "Not ICP", "Student project, no budget.", None),
        ),
        (
            "reject_without_crm_value",
            (
                "Disqualified",
                "bad_contact",
                "Bad contact data",
                "Student project, no budget.",
                None,
            ),
        ),
        ("recycle", ("Recycled", "timing", "Timing", "Budget opens in Q2.", date(2027, 3, 1))),
    ],
)
def test_local_crm_receives_the_disposition(
    engine: Any,
    database_url: str,
    fake: FakeSlack,
    clock: FrozenClock,
    action: str,
    expected: tuple[Any, ...],
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)
    _run(services, clock)
    assert _record(engine, result.lead_id) is None, "an unclaimed lead has nothing to write yet"

    clock.advance(minutes=7)
    acted_at = clock()
    if action == "accept":
        _accept(services, result.cycle_id, clock)
    elif action == "reject":
        _reject(services, result.cycle_id, clock)
    elif action == "reject_without_crm_value":
        _reject(services, result.cycle_id, clock, reason="bad_contact")
    else:
        _recycle(services, result.cycle_id, clock)
    _run(services, clock)

    record = _record(engine, result.lead_id)
    assert record is not None
    assert (
        record.status,
        record.reason_code,
        record.reason,
        record.note,
        record.revisit_on,
    ) == expected
    assert record.owner == "ana@example.com"
    assert record.disposed_at == acted_at
    assert record.writes == 1
    assert _crm_row_of(engine, result.lead_id).state == outbox.DONE


def test_status_values_come_from_the_playbooks_crm_fields(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    custom = TEST_PLAYBOOK.replace("MODE", "claim") + (
        "crm_fields:\n"
        "  local:\n"
        "    status_values: {open: New, accepted: Sales Accepted, rejected: Unqualified}\n"
    )
    playbook = parse_playbook(custom, "custom playbook")
    services = _services(engine, database_url, fake, clock, playbook=playbook)
    accepted = _ingest(services, clock, "L-A")
    rejected = _ingest(services, clock, "L-R")
    _accept(services, accepted.cycle_id, clock)
    _reject(services, rejected.cycle_id, clock)

    _run(services, clock)

    assert _record(engine, accepted.lead_id).status == "Sales Accepted"  # type: ignore[union-attr]
    assert _record(engine, rejected.lead_id).status == "Unqualified"  # type: ignore[union-attr]


def test_dispositions_reach_a_crm_adapter_as_absolute_state(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = RecordingCRM()
    services = _services(engine, database_url, fake, clock, crm=crm)
    result = _ingest(services, clock)
    clock.advance(minutes=4)
    _recycle(services, result.cycle_id, clock)

    _run(services, clock)

    [[write]] = crm.batches
    d = write.disposition
    assert d.lead.lead_id == result.lead_id
    assert d.lead.external_id == "L-1001"
    assert d.lead.origin == "hubspot-form"
    assert (d.status, d.status_value) == ("recycled", "Recycled")
    assert (d.owner_slack_id, d.owner_email) == ("UREP1", "ana@example.com")
    assert (d.reason_code, d.reason_value) == ("timing", "Timing")
    assert d.note == "Budget opens in Q2."
    assert d.revisit_on == date(2027, 3, 1)
    assert d.closed_at == clock()
    assert write.key == str(_crm_row_of(engine, result.lead_id).id)


# -- batching --------------------------------------------------------------------------------


def test_writes_are_batched_up_to_the_crms_maximum(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = RecordingCRM(max_batch=200)
    services = _services(engine, database_url, fake, clock, mode="assign", crm=crm)
    lead_ids = set()
    leads = [
        LeadIn.model_validate(lead_json(f"L-{i:04d}", email=f"l{i}@acme.example", score=60))
        for i in range(450)
    ]
    with db.transaction(engine) as session:
        for lead in leads:
            lead_ids.add(ingest(session, lead, playbook=services.playbook, now=clock()).lead_id)
    assert len(_crm_rows(engine)) == 450

    for _ in range(4):
        _run(services, clock)

    assert [len(b) for b in crm.batches] == [200, 200, 50]
    written = [i for n in range(len(crm.batches)) for i in crm.lead_ids(n)]
    assert len(written) == len(set(written)) == 450
    assert set(written) == lead_ids == set(crm.records)
    assert all(r.state == outbox.DONE for r in _crm_rows(engine))


# -- failures --------------------------------------------------------------------------------


def test_crm_outage_delays_writes_with_backoff_and_loses_nothing(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = RecordingCRM()
    crm.raise_next = [CrmUnavailable("503 Service Unavailable"), CrmUnavailable("timed out")]
    services = _services(engine, database_url, fake, clock, mode="assign", crm=crm)
    results = [_ingest(services, clock, f"L-{i}", score=60) for i in range(3)]

    _run(services, clock)
    rows = _crm_rows(engine)
    assert [(r.state, r.attempts) for r in rows] == [(outbox.PENDING, 1)] * 3
    assert all("CrmUnavailable" in (r.last_error or "") for r in rows)
    first_delay = max((r.due_at - clock()).total_seconds() for r in rows)
    assert 1.5 <= first_delay <= 2.5

    clock.advance(seconds=1)
    _run(services, clock)
    assert len(crm.batches) == 1, "retried before the backoff elapsed"

    clock.advance(seconds=first_delay)
    _run(services, clock)
    assert len(crm.batches) == 2
    rows = _crm_rows(engine)
    assert [(r.state, r.attempts) for r in rows] == [(outbox.PENDING, 2)] * 3
    second_delay = min((r.due_at - clock()).total_seconds() for r in rows)
    assert second_delay >= 3.0, "backoff grows with each attempt"

    clock.advance(seconds=10)
    _run(services, clock)
    assert len(crm.batches) == 3
    assert sorted(crm.lead_ids(2)) == sorted(r.lead_id for r in results)
    assert set(crm.records) == {r.lead_id for r in results}
    assert all(r.state == outbox.DONE for r in _crm_rows(engine))
    assert _alert_rows(engine) == []


def test_crm_rate_limit_is_honoured_before_retrying(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = RecordingCRM()
    crm.raise_next = [
        CrmRateLimited("REQUEST_LIMIT_EXCEEDED", retry_after=60),
        CrmRateLimited("REQUEST_LIMIT_EXCEEDED", retry_after=60),
    ]
    services = _services(engine, database_url, fake, clock, mode="assign", crm=crm)
    result = _ingest(services, clock)
    start = clock()

    _run(services, clock)
    row = _crm_row_of(engine, result.lead_id)
    assert row.state == outbox.PENDING
    assert row.due_at >= start + timedelta(seconds=60)
    [alert] = _alert_rows(engine)  # writes are paused, and the team is told once
    assert "API limit" in alert.payload["text"]
    assert "nothing is lost" in alert.payload["text"]

    for seconds in (1, 30, 59):
        clock.now = start + timedelta(seconds=seconds)
        _run(services, clock)
        assert len(crm.batches) == 1, f"retried {seconds}s into a 60s Retry-After"

    clock.now = start + timedelta(seconds=61)
    _run(services, clock)
    assert len(crm.batches) == 2
    assert len(_alert_rows(engine)) == 1  # still paused: no second alert within the hour
    clock.now = start + timedelta(seconds=122)
    _run(services, clock)
    assert len(crm.batches) == 3
    assert _crm_row_of(engine, result.lead_id).state == outbox.DONE
    assert result.lead_id in crm.records


def test_per_record_failures_retry_or_dead_letter_each_record_on_its_own(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = RecordingCRM()
    services = _services(engine, database_url, fake, clock, mode="assign", crm=crm)
    fine, locked, refused = (_ingest(services, clock, f"L-{i}", score=60) for i in range(3))
    crm.refuse = {
        locked.lead_id: [(True, "UNABLE_TO_LOCK_ROW: unable to obtain exclusive access")],
        refused.lead_id: [(False, "FIELD_CUSTOM_VALIDATION_EXCEPTION: Status is locked")],
    }

    _run(services, clock)

    assert sorted(crm.lead_ids(0)) == sorted([fine.lead_id, locked.lead_id, refused.lead_id])
    assert _crm_row_of(engine, fine.lead_id).state == outbox.DONE
    retry = _crm_row_of(engine, locked.lead_id)
    assert (retry.state, retry.attempts) == (outbox.PENDING, 1)
    assert "UNABLE_TO_LOCK_ROW" in (retry.last_error or "")
    dead = _crm_row_of(engine, refused.lead_id)
    assert dead.state == outbox.DEAD
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION: Status is locked" in (dead.last_error or "")
    [alert] = _alert_rows(engine)
    assert alert.payload["channel"] == ALERTS
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in alert.payload["text"]
    assert f"#{dead.id}" in alert.payload["text"]

    _run(services, clock)  # the alert lane is due now
    alerts = fake.messages(ALERTS)
    assert len(alerts) == 1
    assert "FIELD_CUSTOM_VALIDATION_EXCEPTION" in alerts[0]["text"]

    clock.advance(seconds=5)
    _run(services, clock)
    assert crm.lead_ids(1) == [locked.lead_id]
    assert _crm_row_of(engine, locked.lead_id).state == outbox.DONE
    assert set(crm.records) == {fine.lead_id, locked.lead_id}

    clock.advance(hours=2)
    _run(services, clock)
    assert len(crm.batches) == 2, "a refused record is not retried"
    assert _crm_row_of(engine, refused.lead_id).state == outbox.DEAD
    assert len(fake.messages(ALERTS)) == 1


def test_crm_auth_error_dead_letters_and_alerts_without_retrying(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    crm = RecordingCRM()
    crm.raise_next = [CrmAuthError("INVALID_SESSION_ID: Session expired or invalid")]
    services = _services(engine, database_url, fake, clock, mode="assign", crm=crm)
    results = [_ingest(services, clock, f"L-{i}", score=60) for i in range(2)]

    _run(services, clock)

    rows = _crm_rows(engine)
    assert [r.state for r in rows] == [outbox.DEAD, outbox.DEAD]
    assert all("INVALID_SESSION_ID" in (r.last_error or "") for r in rows)
    alerts = _alert_rows(engine)
    assert alerts, "no alert for a CRM that refuses revbot's credentials"
    assert all(a.payload["channel"] == ALERTS for a in alerts)
    assert any("INVALID_SESSION_ID" in a.payload["text"] for a in alerts)

    for _ in range(5):
        _run(services, clock)
        clock.advance(minutes=20)
    assert len(crm.batches) == 1, "an auth failure is not retried"
    assert crm.records == {}
    posted = fake.messages(ALERTS)
    assert posted
    assert any("INVALID_SESSION_ID" in m["text"] for m in posted)
    assert {r.payload["lead_id"] for r in rows} == {r.lead_id for r in results}


# -- ordering --------------------------------------------------------------------------------


def test_accept_then_reject_before_delivery_writes_the_rejection_once(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)
    _accept(services, result.cycle_id, clock)
    clock.advance(minutes=2)
    _reject(services, result.cycle_id, clock)

    _run(services, clock)

    record = _record(engine, result.lead_id)
    assert record is not None
    assert (record.status, record.reason) == ("Disqualified", "Not ICP")
    assert record.writes == 1


def test_late_delivery_of_an_older_write_never_regresses_the_crm(
    engine: Any, database_url: str, fake: FakeSlack, clock: FrozenClock
) -> None:
    services = _services(engine, database_url, fake, clock)
    result = _ingest(services, clock)
    _accept(services, result.cycle_id, clock)
    # A worker takes the accept's write and stalls before delivering it.
    with db.transaction(engine) as session:
        [stalled] = outbox.claim(session, outbox.CRM_LANE, 10, now=clock())
        stalled_id = stalled.id
    clock.advance(seconds=outbox.LEASE.total_seconds() / 3)
    _reject(services, result.cycle_id, clock)
    assert len(_crm_rows(engine)) == 2

    _run(services, clock)
    with Session(engine) as session:
        held = session.get(OutboxMessage, stalled_id)
        assert held is not None
        assert held.state == outbox.IN_FLIGHT
    record = _record(engine, result.lead_id)
    assert record is not None
    assert record.status == "Disqualified"

    # The stalled write's lease runs out and another worker delivers it late.
    clock.advance(seconds=outbox.LEASE.total_seconds() + 1)
    _run(services, clock)
    with Session(engine) as session:
        late = session.get(OutboxMessage, stalled_id)
        assert late is not None
        assert late.state == outbox.DONE
    record = _record(engine, result.lead_id)
    assert record is not None
    assert (record.status, record.reason, record.note) == (
        "Disqualified",
        "Not ICP",
        "Student project, no budget.",
    )
