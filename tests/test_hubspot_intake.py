"""HubSpot MQL polling (search API, watermark, overlap, 10,000 cap, pacing) and contact mapping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core.crm import CrmRateLimited
from bot.core.crm_intake import read_watermark
from bot.core.db import transaction
from bot.core.models import Lead, MqlCycle
from integrations.hubspot.polling import OVERLAP, parse_watermark
from integrations.hubspot.ratelimit import SlidingWindowLimiter
from integrations.hubspot.records import contact_lead, epoch_ms
from jobs import crm_intake
from tests.conftest import FrozenClock, team_playbook
from tests.fakes.hubspot_api import FakeHubSpot
from tests.fakes.hubspot_testing import ManualTime, hubspot_crm, hubspot_services

DATE = "hs_lifecyclestage_marketingqualifiedlead_date"


@pytest.fixture
def fake(clock: FrozenClock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(clock=clock) as server:
        yield server


def _searches(fake: FakeHubSpot) -> list[Any]:
    return fake.calls("/crm/v3/objects/contacts/search")


def test_first_poll_starts_now_minus_the_overlap_with_a_documented_search(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    crm = hubspot_crm(fake, clock)

    page = crm.poll_mqls(None, now=clock())

    body = _searches(fake)[0].body
    since = epoch_ms(clock.now - OVERLAP)
    assert body["filterGroups"] == [
        {
            "filters": [
                {
                    "propertyName": "lifecyclestage",
                    "operator": "EQ",
                    "value": "marketingqualifiedlead",
                },
                {"propertyName": DATE, "operator": "GTE", "value": str(since)},
            ]
        }
    ]
    assert body["sorts"] == [{"propertyName": DATE, "direction": "ASCENDING"}]
    assert body["limit"] == 100
    assert "after" not in body
    assert page.leads == []
    assert page.more is False
    assert page.watermark == str(since)
    assert fake.schema_errors == []


def test_poll_pages_with_after_then_advances_the_watermark_with_overlap(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    start = clock.now - timedelta(hours=1)
    for i in range(150):
        fake.seed_mql(mql_at=start + timedelta(seconds=i), email=f"l{i}@acme.example")
    fake.seed_contact(email="not-mql@acme.example", lifecyclestage="lead", **{DATE: start})
    crm = hubspot_crm(fake, clock)
    watermark = str(epoch_ms(start))

    first = crm.poll_mqls(watermark, now=clock())
    second = crm.poll_mqls(first.watermark, now=clock())

    assert len(first.leads) == 100
    assert first.more is True
    assert first.watermark == f"{epoch_ms(start)}:100"
    assert _searches(fake)[1].body["after"] == "100"
    assert len(second.leads) == 50
    assert second.more is False
    newest = start + timedelta(seconds=149)
    assert second.watermark == str(epoch_ms(newest - OVERLAP))
    ids = [lead["external_id"] for lead in first.leads + second.leads]
    assert len(set(ids)) == 150
    assert [lead["mql_at"] for lead in first.leads] == sorted(
        lead["mql_at"] for lead in first.leads
    )


def test_the_poll_job_stores_each_mql_once_despite_the_overlap(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = hubspot_services(engine, database_url, fake, clock)
    with transaction(engine) as session:
        crm_intake.save_watermark(
            session, "hubspot:mql_poll", str(epoch_ms(clock.now - timedelta(hours=1))), now=clock()
        )
    fake.seed_mql("5101", mql_at=clock.now - timedelta(minutes=3), email="a@acme.example")
    fake.seed_mql("5102", mql_at=clock.now - timedelta(minutes=1), lastname="Diaz", company="Acme")

    assert crm_intake.poll(services, now=clock()) == 2
    # A record reaches the search index late, with an MQL date inside the overlap window.
    fake.seed_mql("5103", mql_at=clock.now - timedelta(minutes=2), _indexed=False)
    assert crm_intake.poll(services, now=clock()) == 2  # 5101 and 5102 again: the overlap
    fake.reveal("contacts", "5103")
    newest = clock.now - timedelta(minutes=1)
    clock.advance(seconds=30)

    assert crm_intake.poll(services, now=clock()) == 3  # the late record is found

    with Session(engine) as session:
        leads = session.exec(select(Lead)).all()
        assert sorted(lead.external_id for lead in leads) == ["5101", "5102", "5103"]
        assert len(session.exec(select(MqlCycle)).all()) == 3
        assert read_watermark(session, "hubspot:mql_poll") == str(epoch_ms(newest - OVERLAP))


def test_the_search_cap_restarts_the_query_from_the_newest_date(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    start = clock.now - timedelta(days=1)
    ids = [fake.seed_mql(mql_at=start + timedelta(seconds=i)) for i in range(10_050)]
    crm = hubspot_crm(fake, clock)

    # A query already 9,800 results deep, two pages before HubSpot's 10,000-result cap.
    near = crm.poll_mqls(f"{epoch_ms(start)}:9800", now=clock())
    at_cap = crm.poll_mqls(near.watermark, now=clock())
    restarted = crm.poll_mqls(at_cap.watermark, now=clock())

    assert near.watermark == f"{epoch_ms(start)}:9900"
    assert near.more
    last_before_cap = start + timedelta(seconds=9999)
    assert at_cap.watermark == str(epoch_ms(last_before_cap))
    assert at_cap.more
    assert _searches(fake)[-1].body["filterGroups"][0]["filters"][1]["value"] == at_cap.watermark
    assert "after" not in _searches(fake)[-1].body
    assert restarted.more is False
    seen = {lead["external_id"] for page in (near, at_cap, restarted) for lead in page.leads}
    assert seen == set(ids[9800:])
    assert fake.schema_errors == []


def test_search_calls_stay_under_four_per_second(fake: FakeHubSpot, clock: FrozenClock) -> None:
    time = ManualTime()
    crm = hubspot_crm(fake, clock, time=time)
    stamps = []

    for _ in range(10):
        crm.poll_mqls(None, now=clock())
        stamps.append(time.now)

    assert len(_searches(fake)) == 10
    for i in range(len(stamps) - 4):
        assert stamps[i + 4] - stamps[i] >= 1.0  # any 5 searches span at least a second
    assert sum(time.sleeps) == pytest.approx(2.0)


def test_limiter_is_a_sliding_window() -> None:
    time = ManualTime(now=0.0)
    limiter = SlidingWindowLimiter(4, 1.0, clock=time.clock, sleep=time.sleep)

    waits = [limiter.acquire() for _ in range(9)]

    assert waits[:4] == [0, 0, 0, 0]
    assert waits[4] == pytest.approx(1.0)
    assert time.now == pytest.approx(2.0)
    with pytest.raises(ValueError, match="max_calls"):
        SlidingWindowLimiter(0, 1.0)


def test_search_rate_limit_raises_with_the_secondly_policy(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    from tests.fakes.hubspot_api import fixture

    fake.fail(429, fixture("rate_limited_secondly.json"), path="/crm/v3/objects/contacts/search")
    crm = hubspot_crm(fake, clock)

    with pytest.raises(CrmRateLimited) as raised:
        crm.poll_mqls(None, now=clock())
    assert raised.value.retry_after == 1.0


def test_fetch_mqls_reads_in_one_batch_and_keeps_only_mqls(
    fake: FakeHubSpot, clock: FrozenClock
) -> None:
    fake.seed_mql("5101", mql_at=clock.now, email="a@acme.example")
    fake.seed_contact("5102", lifecyclestage="customer")
    crm = hubspot_crm(fake, clock)

    leads = crm.fetch_mqls(["5101", "5102", "5999", "5101", "x"])

    assert [lead["external_id"] for lead in leads] == ["5101"]
    reads = fake.calls("/crm/v3/objects/contacts/batch/read")
    assert [i["id"] for i in reads[0].body["inputs"]] == ["5101", "5102", "5999"]
    assert reads[0].body["propertiesWithHistory"] == []
    assert fake.schema_errors == []


def test_contact_mapping_keeps_what_is_usable() -> None:
    mql = team_playbook().field_map("hubspot").mql
    assert mql is not None
    lead = contact_lead(
        "5101",
        {
            "email": "ana@acme.example",
            "firstname": "Ana",
            "lastname": "",
            "jobtitle": "VP",
            "numemployees": "1,000+",
            "hubspotscore": "187.5",
            "hs_analytics_source": "PAID_SEARCH",
            "lifecyclestage": "marketingqualifiedlead",
            DATE: "1795446000000",
        },
        mql,
    )

    assert lead["employees"] == 1000
    assert lead["score"] == 100
    assert lead["lead_source"] == "PAID_SEARCH"
    assert lead["title"] == "VP"
    assert "last_name" not in lead
    assert lead["mql_at"].tzinfo is not None
    assert contact_lead("7", {"hubspotscore": "-3", "numemployees": "n/a"}, mql) == {
        "external_id": "7",
        "source": "hubspot",
        "crm_record_id": "7",
        "score": 0,
    }


def test_a_record_missing_fields_still_lands(
    engine: Any, database_url: str, fake: FakeHubSpot, clock: FrozenClock
) -> None:
    services = hubspot_services(engine, database_url, fake, clock)
    fake.seed_mql("5101", mql_at=clock.now, company="x" * 300, firstname="Ana")

    assert crm_intake.poll(services, now=clock()) == 1

    with Session(engine) as session:
        lead = session.exec(select(Lead)).one()
        assert lead.external_id == "5101"
        assert lead.company is None
        assert lead.first_name == "Ana"


def test_watermarks_that_are_not_ours_are_ignored() -> None:
    assert parse_watermark(None) is None
    assert parse_watermark("2026-11-23T15:00:00Z") is None
    assert parse_watermark("1795446000000") == (1795446000000, None)
    assert parse_watermark("1795446000000:200") == (1795446000000, "200")
