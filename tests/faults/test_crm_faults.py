"""CRM faults through the real outbox: expired Salesforce sessions under concurrent writers, a spent
API budget, lock contention at scale, partial batch failures, and HubSpot 429 storms."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from bot.core import db, handoff, outbox
from bot.core.crm import CRM
from bot.core.crm_intake import store_crm_leads
from bot.core.models import OutboxMessage
from bot.core.playbook import Playbook
from bot.core.writeback import deliver_batch
from integrations.hubspot.client import HubSpotApi
from integrations.hubspot.crm import HubSpotCRM
from jobs import outbox as outbox_job
from tests.conftest import FrozenClock, make_services, outbox_rows, team_playbook
from tests.fakes.hubspot_api import FakeHubSpot, Recorded, Reply, fixture
from tests.fakes.salesforce_api import FakeSalesforce
from tests.fakes.salesforce_support import salesforce_crm
from tests.fakes.slack_api import FakeSlack
from tests.faults.conftest import fast_pacer

ANA = "ana@example.com"  # UREP1's email in the test playbook
REJECTED = "Closed - Not Converted"
ACCEPTED = "Working - Contacted"
NOTE = "Revbot_Note__c"


@pytest.fixture
def salesforce(clock: FrozenClock) -> Iterator[FakeSalesforce]:
    """A fake org whose record timestamps follow the test clock."""
    with FakeSalesforce(clock=clock) as fake:
        yield fake


# -- helpers ---------------------------------------------------------------------------------


def _store(engine: Engine, crm_name: str, record_ids: list[str], clock: FrozenClock) -> list[int]:
    """Store CRM MQLs as CRM intake does; returns their cycle ids in the same order."""
    leads = [
        {
            "external_id": rid,
            "source": crm_name,
            "crm_record_id": rid,
            "last_name": f"Lead {n}",
            "company": f"Company {n}",
            "mql_at": clock(),
        }
        for n, rid in enumerate(record_ids)
    ]
    cycles: dict[str, int] = {}
    for start in range(0, len(leads), 1000):
        with db.transaction(engine) as session:
            summary = store_crm_leads(
                session,
                crm_name,
                leads[start : start + 1000],
                playbook=team_playbook(),
                now=clock(),
            )
        cycles |= {r.external_id: r.cycle_id for r in summary.results}
    return [cycles[rid] for rid in record_ids]


def _dispose(
    engine: Engine, cycles: list[int], clock: FrozenClock, *, accept_every: int = 0
) -> None:
    """Reject the leads (accepting every `accept_every`-th one as UREP1), 200 per transaction."""
    playbook = team_playbook()
    for start in range(0, len(cycles), 200):
        with db.transaction(engine) as session:
            for n, cycle in enumerate(cycles[start : start + 200], start):
                if accept_every and n % accept_every == 0:
                    handoff.accept(session, cycle, "UREP1", playbook=playbook, now=clock())
                else:
                    handoff.reject(
                        session,
                        cycle,
                        "UREP1",
                        reason_code="not_icp",
                        note="Student project, no budget",
                        playbook=playbook,
                        now=clock(),
                    )


def _crm_round(engine: Engine, crm: CRM, playbook: Playbook, now: datetime) -> int:
    """One worker's delivery of the CRM lane: claim a batch, write it; returns rows claimed."""
    with db.transaction(engine) as session:
        ids = [r.id for r in outbox.claim(session, outbox.CRM_LANE, crm.max_batch, now=now)]
    if ids:
        deliver_batch(engine, [i for i in ids if i is not None], crm, playbook, now=now)
    return len(ids)


def _rows(engine: Engine, kind: str = outbox.CRM_SYNC) -> list[OutboxMessage]:
    return outbox_rows(engine, kind)


def _states(engine: Engine) -> dict[str, int]:
    """How many CRM write rows are in each outbox state."""
    with Session(engine) as session:
        found = session.exec(
            select(OutboxMessage.state, func.count())
            .where(OutboxMessage.kind == outbox.CRM_SYNC)
            .group_by(col(OutboxMessage.state))
        ).all()
    return {state: int(n) for state, n in found}


def _seed_sf(fake: FakeSalesforce, n: int) -> list[str]:
    return [
        fake.seed("Lead", LastName=f"Lead {i}", Company=f"Company {i}", Status="MQL")
        for i in range(n)
    ]


# -- Salesforce ------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_expired_session_mid_batch_under_concurrent_writers_logs_in_once(
    engine: Any, salesforce: FakeSalesforce, clock: FrozenClock
) -> None:
    """Four writers hit INVALID_SESSION_ID at once: one re-login, every record written."""
    salesforce.seed("User", Name="Ana Diaz", Email=ANA, IsActive=True)
    crm = salesforce_crm(salesforce, team_playbook(), clock)
    ids = _seed_sf(salesforce, 1600)
    cycles = _store(engine, "salesforce", ids, clock)
    _dispose(engine, cycles, clock, accept_every=4)
    playbook = team_playbook()
    for _ in range(2):  # the first batches go out on the first session
        assert _crm_round(engine, crm, playbook, clock()) == 200
    assert salesforce.logins == 1

    salesforce.expire_sessions()
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            start.wait()
            while _crm_round(engine, crm, playbook, clock()):
                pass
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    refused = [r for r in salesforce.requests if r.path.startswith("/services/data/")]
    stale = [r for r in refused if r.headers.get("authorization", "").endswith("session-1")]
    assert salesforce.logins == 2, f"{salesforce.logins - 1} re-logins"
    assert crm.session.logins == 2
    assert stale, "the writers never met the expired session"
    assert _states(engine) == {outbox.DONE: 1600}
    records = {r["Id"]: r for r in salesforce.records("Lead")}
    assert {records[i]["Status"] for i in ids[::4]} == {ACCEPTED}
    assert all(records[i]["Status"] == REJECTED for n, i in enumerate(ids) if n % 4)
    patched = [len(r.json["records"]) for r in salesforce.calls("PATCH", "/composite/sobjects")]
    assert sum(patched) >= 1600


def _sf_services(
    engine: Any, database_url: str, fake_slack: FakeSlack, crm: CRM, clock: FrozenClock
) -> Any:
    services = make_services(engine, database_url, fake_slack, crm=crm, clock=clock)
    services.pacer = fast_pacer()
    return services


@pytest.mark.slow
def test_a_spent_api_budget_pauses_writes_alerts_once_and_loses_nothing(
    engine: Any,
    database_url: str,
    fake_slack: FakeSlack,
    salesforce: FakeSalesforce,
    clock: FrozenClock,
) -> None:
    """REQUEST_LIMIT_EXCEEDED for three calls (half an hour of pauses): no call during a pause,
    one alert in the alerts channel, every disposition written afterwards."""
    crm = salesforce_crm(salesforce, team_playbook(), clock)
    services = _sf_services(engine, database_url, fake_slack, crm, clock)
    ids = _seed_sf(salesforce, 1000)
    _dispose(engine, _store(engine, "salesforce", ids, clock), clock)
    salesforce.rate_limit(3)
    started = clock()
    seen: list[tuple[datetime, int]] = []
    requests_before = len(salesforce.requests)
    assert requests_before == 0

    while clock() < started + timedelta(minutes=45):
        outbox_job.run(services, now=clock())
        seen.append((clock(), len(salesforce.requests)))
        clock.advance(seconds=20)

    limited = salesforce.calls("PATCH", "/composite/sobjects")[:3]
    assert len(limited) == 3
    # Each 403 pauses every call for ten minutes: Salesforce hears from revbot only as a pause
    # ends, and the requests counter never moves inside one.
    called_at = [t for (t, n), (_, before) in zip(seen[1:], seen, strict=False) if n > before]
    called_at = ([seen[0][0]] if seen[0][1] > requests_before else []) + called_at
    pause_ends = [started + timedelta(minutes=10 * k) for k in (1, 2, 3)]
    in_pause = [t for t in called_at if t not in (started, *pause_ends[:2]) and t < pause_ends[2]]
    assert called_at[:3] == [started, *pause_ends[:2]]
    assert in_pause == [], f"Salesforce was called during a pause at {in_pause}"
    assert _states(engine) == {outbox.DONE: 1000}
    assert all(r["Status"] == REJECTED for r in salesforce.records("Lead"))
    alerts = fake_slack.messages("#revops-alerts")
    assert len(alerts) == 1, alerts
    assert "API limit" in alerts[0]["text"]
    assert "nothing is lost" in alerts[0]["text"]


def test_an_api_limit_that_lasts_hours_never_dead_letters_a_write(
    engine: Any, salesforce: FakeSalesforce, clock: FrozenClock
) -> None:
    """Twelve ten-minute pauses in a row (two hours): the writes wait, none is dead-lettered,
    and the alert is repeated at most once an hour."""
    crm = salesforce_crm(salesforce, team_playbook(), clock)
    ids = _seed_sf(salesforce, 300)
    _dispose(engine, _store(engine, "salesforce", ids, clock), clock)
    salesforce.rate_limit(12)
    playbook = team_playbook()
    started = clock()

    while clock() < started + timedelta(hours=2, minutes=15):
        while _crm_round(engine, crm, playbook, clock()):
            pass
        clock.advance(minutes=1)

    assert _states(engine) == {outbox.DONE: 300}
    assert all(r["Status"] == REJECTED for r in salesforce.records("Lead"))
    alerts = [r for r in _rows(engine, outbox.SLACK_ALERT) if "crm-rate-limited" in r.dedupe_key]
    hours = sorted(r.dedupe_key[-2:] for r in alerts)
    assert hours == ["15", "16"]  # 403s from 15:00 to 16:50: one alert an hour


@pytest.mark.slow
def test_lock_contention_on_a_fifth_of_rows_still_writes_at_least_999_in_1000(
    engine: Any, salesforce: FakeSalesforce, clock: FrozenClock
) -> None:
    """20% UNABLE_TO_LOCK_ROW on every update over 2,000 dispositions: retried with backoff."""
    crm = salesforce_crm(salesforce, team_playbook(), clock)
    ids = _seed_sf(salesforce, 2000)
    _dispose(engine, _store(engine, "salesforce", ids, clock), clock)
    salesforce.lock_rows(0.2)
    playbook = team_playbook()

    for _ in range(60):  # an hour of worker time, a round a minute (backoff is at most ~2.5 min)
        while _crm_round(engine, crm, playbook, clock()):
            pass
        if outbox.PENDING not in _states(engine):
            break
        clock.advance(minutes=1)

    states = _states(engine)
    written = sum(1 for r in salesforce.records("Lead") if r["Status"] == REJECTED)
    dead = [r for r in _rows(engine) if r.state == outbox.DEAD]
    assert states.get(outbox.PENDING, 0) == 0
    assert written == states[outbox.DONE]
    assert written / 2000 >= 0.999, f"{written}/2000 written, {len(dead)} dead-lettered"
    assert all("UNABLE_TO_LOCK_ROW" in (r.last_error or "") for r in dead)
    locked = sum(
        1 for call in salesforce.calls("PATCH", "/composite/sobjects") for _ in call.json["records"]
    )
    assert locked > 2000 * 1.2, "the fake never contended for locks"
    print(f"\nlock contention: {written}/2000 written ({written / 20:.2f}%), {len(dead)} dead")


def test_a_partial_salesforce_batch_commits_the_good_and_dead_letters_the_bad_with_field_errors(
    engine: Any, salesforce: FakeSalesforce, clock: FrozenClock
) -> None:
    """A 200-record batch with validation-rule, picklist and too-long refusals mixed in."""
    crm = salesforce_crm(salesforce, team_playbook(), clock)
    ids = _seed_sf(salesforce, 200)
    bad_rule = set(ids[5::20])  # ten leads a validation rule refuses
    salesforce.add_validation_rule(
        "Lead",
        "Disqualified leads from this company need a manager's sign-off",
        lambda r: r["Id"] in bad_rule and r["Status"] == REJECTED,
        field="Revbot_Note__c",
    )
    # An admin shortened the note field in the org: longer notes no longer fit.
    note_field = next(f for f in salesforce.describe("Lead")["fields"] if f["name"] == NOTE)
    note_field["length"] = 100
    long_note = set(ids[7::50])
    cycles = _store(engine, "salesforce", ids, clock)
    with db.transaction(engine) as session:
        for rid, cycle in zip(ids, cycles, strict=True):
            handoff.reject(
                session,
                cycle,
                "UREP1",
                reason_code="not_icp",
                note=("A long story. " * 10) if rid in long_note else "Student project",
                playbook=team_playbook(),
                now=clock(),
            )

    assert _crm_round(engine, crm, team_playbook(), clock()) == 200

    by_record = dict(zip(ids, _rows(engine), strict=True))
    assert len(salesforce.calls("PATCH", "/composite/sobjects")) == 1
    for rid, row in by_record.items():
        record = salesforce.record(rid)
        if rid in bad_rule:
            assert row.state == outbox.DEAD
            assert row.last_error == (
                "FIELD_CUSTOM_VALIDATION_EXCEPTION: Disqualified leads from this company need a "
                "manager's sign-off (fields: Revbot_Note__c)"
            )
            assert record["Status"] == "MQL"
        elif rid in long_note:
            assert row.state == outbox.DEAD
            assert (row.last_error or "").startswith("STRING_TOO_LONG")
            assert f"(fields: {NOTE})" in (row.last_error or "")
            assert record["Status"] == "MQL"
        else:
            assert row.state == outbox.DONE
            assert record["Status"] == REJECTED
    alerts = _rows(engine, outbox.SLACK_ALERT)
    assert len(alerts) == 2  # one per kind of failure, not one per record


# -- HubSpot ---------------------------------------------------------------------------------


class StormyHubSpot(FakeHubSpot):
    """The fake HubSpot with its real ten-secondly limit (100 calls a window) enforced on the
    test clock, and storms: periods when other integrations have spent the account's budget."""

    def __init__(self, clock: FrozenClock) -> None:
        super().__init__(clock=clock)
        self.window_calls: dict[int, int] = {}
        self.storms: list[tuple[datetime, datetime, bool]] = []
        self.answers: list[tuple[datetime, int]] = []

    def storm(self, seconds: float, *, retry_after: bool) -> None:
        """Refuse every call for `seconds` from now; with `retry_after`, say when it ends."""
        now = self.clock()
        self.storms.append((now, now + timedelta(seconds=seconds), retry_after))

    def handle(self, request: Recorded, authorization: str | None) -> Reply:
        now = self.clock()
        with self._lock:
            window = int(now.timestamp() // 10)
            used = self.window_calls.get(window, 0) + 1
            self.window_calls[window] = used
            storm = next((s for s in self.storms if s[0] <= now < s[1]), None)
            if storm is not None or used > 100:
                self.requests.append(request)
                headers = {
                    "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
                    "X-HubSpot-RateLimit-Max": "100",
                    "X-HubSpot-RateLimit-Remaining": "0",
                }
                if storm is not None and storm[2]:
                    headers["Retry-After"] = str(math.ceil((storm[1] - now).total_seconds()))
                self.answers.append((now, 429))
                return 429, fixture("rate_limited_ten_secondly.json"), headers
        reply = super().handle(request, authorization)
        with self._lock:
            self.answers.append((now, reply[0]))
        return reply


def _hubspot_crm(fake: FakeHubSpot, clock: FrozenClock) -> HubSpotCRM:
    """The adapter on the fake; its limiter's clock is the test clock, and its waits move it."""
    api = HubSpotApi(
        fake.token,
        fake.url,
        clock=lambda: clock().timestamp(),
        sleep=lambda seconds: clock.advance(seconds=seconds),
    )
    return HubSpotCRM(api, team_playbook().field_map("hubspot"), clock)


@pytest.mark.slow
def test_hubspot_429_storms_draw_one_rejection_each_then_writes_wait_out_the_window(
    engine: Any, clock: FrozenClock
) -> None:
    """3,000 dispositions (30 batch calls) through two storms: one with Retry-After, one with
    only the ten-secondly window headers: each draws one 429, then calls wait out its end."""
    with StormyHubSpot(clock) as fake:
        contacts = [fake.seed_contact(email=f"c{i}@acme.example") for i in range(3000)]
        crm = _hubspot_crm(fake, clock)
        _dispose(engine, _store(engine, "hubspot", contacts, clock), clock)
        playbook = team_playbook()
        fake.window_calls.clear()
        fake.answers.clear()

        rounds = 0
        while {outbox.PENDING, outbox.IN_FLIGHT} & set(_states(engine)):
            rounds += 1
            assert rounds < 2000, "the writes never finished"
            answered = sum(1 for _, status in fake.answers if status != 429)
            if len(fake.storms) == 0 and answered >= 10:
                fake.storm(45, retry_after=True)
            elif len(fake.storms) == 1 and answered >= 20:
                # Without Retry-After a storm ends with HubSpot's ten-second window.
                fake.storm(10 - clock().timestamp() % 10, retry_after=False)
            if not _crm_round(engine, crm, playbook, clock()):
                clock.advance(seconds=1)

        answers = list(fake.answers)
        refused = [at for at, status in answers if status == 429]
        first = next(i for i, (_, status) in enumerate(answers) if status == 429)
        after = answers[first + 1 :]
        # A storm's first 429 is how revbot learns of it; any later 429 in it is a call too many.
        firsts = [next(at for at in refused if start <= at < end) for start, end, _ in fake.storms]
        too_many = len(refused) - len(firsts)
        assert _states(engine) == {outbox.DONE: 3_000}
        assert all(
            r.properties.get("hs_lead_status") == "UNQUALIFIED" for r in fake.records("contacts")
        )
        assert too_many == 0, f"{too_many} calls refused after a storm's first 429"
        assert too_many / len(after) < 0.01
        # Honoured: no call between a storm's first 429 and its Retry-After (or window) end.
        waits = [
            (firsts[0], firsts[0] + timedelta(seconds=45)),
            (firsts[1], firsts[1] + timedelta(seconds=10)),
        ]
        assert not [at for at, _ in answers if any(a < at < b for a, b in waits)]
        print(
            f"\nHubSpot storms: {len(answers)} calls, {len(refused)} answered 429 (one per storm); "
            f"after the first 429: {len(refused) - 1} of {len(after)} calls refused, "
            f"{too_many} after a storm's first"
        )


def test_a_partial_hubspot_batch_commits_the_good_and_dead_letters_the_bad_with_property_errors(
    engine: Any, clock: FrozenClock
) -> None:
    """Per-input errors in a 207, then a whole-batch 400 naming the bad ids: the rest is written."""
    with FakeHubSpot(clock=clock) as fake:
        contacts = [fake.seed_contact(email=f"c{i}@acme.example") for i in range(300)]
        crm = _hubspot_crm(fake, clock)
        _dispose(engine, _store(engine, "hubspot", contacts, clock), clock)
        bad = contacts[3::25]
        for contact in bad:
            fake.input_errors[contact] = (
                "VALIDATION_ERROR",
                '"UNQUALIFIED" was not one of the allowed options',
                "hs_lead_status",
            )
        playbook = team_playbook()

        assert _crm_round(engine, crm, playbook, clock()) == 100  # 207 multi-status
        fake.batch_errors = "reject_batch"
        while _crm_round(engine, crm, playbook, clock()):  # 400s naming the bad ids
            pass

        by_contact = dict(zip(contacts, _rows(engine), strict=True))
        for contact, row in by_contact.items():
            props = fake.record("contacts", contact)
            if contact in bad:
                assert row.state == outbox.DEAD
                assert "VALIDATION_ERROR" in (row.last_error or "")
                assert "was not one of the allowed options" in (row.last_error or "")
                assert "hs_lead_status" not in props
            else:
                assert row.state == outbox.DONE
                assert props["hs_lead_status"] == "UNQUALIFIED"
        assert fake.schema_errors == []
