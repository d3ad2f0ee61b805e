"""POST /webhooks/hubspot: signature v3, event batches queued once, then drained into lead cards."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, select

from bot.core import outbox
from bot.core.models import Lead, OutboxMessage
from bot.http.app import create_web_app
from bot.services import Services
from jobs import outbox as outbox_job
from jobs.crm_intake import deliver_intake
from tests.conftest import FrozenClock
from tests.fakes.hubspot_api import FakeHubSpot, fixture
from tests.fakes.hubspot_testing import CLIENT_SECRET, hubspot_services, sign_v3
from tests.fakes.slack_api import FakeSlack

PUBLIC_URL = "https://revbot.example.com"
URI = PUBLIC_URL + "/webhooks/hubspot"


@pytest.fixture
def fake_hubspot(clock: FrozenClock) -> Iterator[FakeHubSpot]:
    with FakeHubSpot(clock=clock) as fake:
        yield fake


@pytest.fixture
def services(
    engine: Any,
    database_url: str,
    fake_hubspot: FakeHubSpot,
    fake_slack: FakeSlack,
    clock: FrozenClock,
) -> Services:
    return hubspot_services(
        engine,
        database_url,
        fake_hubspot,
        clock,
        slack_url=fake_slack.url,
        REVBOT_PUBLIC_URL=PUBLIC_URL,
    )


def _post(
    services: Services,
    body: bytes,
    *,
    secret: str = CLIENT_SECRET,
    timestamp_ms: int | None = None,
    uri: str = URI,
    headers: dict[str, str] | None = None,
) -> Any:
    ts = timestamp_ms if timestamp_ms is not None else int(services.clock().timestamp() * 1000)
    sent = (
        headers
        if headers is not None
        else {
            "X-HubSpot-Signature-v3": sign_v3(secret, "POST", uri, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts),
        }
    )
    client = create_web_app(services, None).test_client()
    return client.post(
        "/webhooks/hubspot", data=body, headers={**sent, "Content-Type": "application/json"}
    )


def _intake_rows(engine: Any) -> list[OutboxMessage]:
    with Session(engine) as session:
        rows = list(
            session.exec(select(OutboxMessage).where(OutboxMessage.kind == outbox.CRM_INTAKE)).all()
        )
        for row in rows:
            session.expunge(row)
        return rows


def _events() -> bytes:
    return json.dumps(fixture("webhook_events.json")).encode()


def test_mixed_batch_queues_mql_and_creation_events_only(services: Services) -> None:
    response = _post(services, _events())

    assert response.status_code == 200
    assert response.get_json() == {"received": 5, "queued": 2}
    rows = _intake_rows(services.engine)
    assert sorted(r.payload["record_id"] for r in rows) == ["5101", "5102"]
    assert sorted(r.dedupe_key for r in rows) == ["hubspot:event:1001", "hubspot:event:1002"]
    assert all(r.lane == outbox.CRM_INTAKE_LANE for r in rows)
    assert services.wakeup.is_set()


def test_redelivered_batch_queues_nothing_more(services: Services) -> None:
    assert _post(services, _events()).get_json()["queued"] == 2
    again = _post(services, _events())

    assert again.status_code == 200
    assert again.get_json()["queued"] == 0
    assert len(_intake_rows(services.engine)) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"secret": "not-the-secret"},
        {"uri": "https://attacker.example/webhooks/hubspot"},
        {"headers": {}},
        {"headers": {"X-HubSpot-Signature-v3": "AAAA", "X-HubSpot-Request-Timestamp": "abc"}},
    ],
    ids=["wrong-secret", "wrong-uri", "unsigned", "garbage-headers"],
)
def test_forged_or_unsigned_requests_are_refused_and_store_nothing(
    services: Services, change: dict[str, Any]
) -> None:
    response = _post(services, _events(), **change)

    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert _intake_rows(services.engine) == []


def test_a_tampered_body_fails_the_signature(services: Services) -> None:
    ts = int(services.clock().timestamp() * 1000)
    signed = sign_v3(CLIENT_SECRET, "POST", URI, _events(), ts)
    tampered = _events().replace(b"5101", b"6666")
    headers = {"X-HubSpot-Signature-v3": signed, "X-HubSpot-Request-Timestamp": str(ts)}

    assert _post(services, tampered, headers=headers).status_code == 401
    assert _intake_rows(services.engine) == []


def test_stale_timestamps_are_refused(services: Services, clock: FrozenClock) -> None:
    now_ms = int(clock().timestamp() * 1000)

    stale = _post(services, _events(), timestamp_ms=now_ms - 5 * 60 * 1000 - 1)
    fresh = _post(services, _events(), timestamp_ms=now_ms - 4 * 60 * 1000)

    assert stale.status_code == 401
    assert "5 minutes" in stale.get_json()["message"]
    assert fresh.status_code == 200


def test_without_a_client_secret_every_request_is_refused(
    engine: Any, database_url: str, fake_hubspot: FakeHubSpot, clock: FrozenClock
) -> None:
    services = hubspot_services(
        engine, database_url, fake_hubspot, clock, REVBOT_PUBLIC_URL=PUBLIC_URL
    )
    services.settings.hubspot_client_secret = None

    response = _post(services, _events())

    assert response.status_code == 401
    assert "HUBSPOT_CLIENT_SECRET" in response.get_json()["message"]
    assert _intake_rows(engine) == []


def test_the_request_url_is_signed_when_no_public_url_is_set(
    engine: Any, database_url: str, fake_hubspot: FakeHubSpot, clock: FrozenClock
) -> None:
    services = hubspot_services(engine, database_url, fake_hubspot, clock)

    response = _post(services, _events(), uri="http://localhost/webhooks/hubspot")

    assert response.status_code == 200
    assert len(_intake_rows(engine)) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"{}",
        b"[]",
        b"[1, 2]",
        json.dumps([{"subscriptionType": "contact.creation", "objectId": 5101}]).encode(),
        json.dumps(
            [{"eventId": 1, "objectId": "51x", "subscriptionType": "contact.creation"}]
        ).encode(),
        json.dumps([{"eventId": 1, "objectId": 5}]).encode(),
    ],
    ids=["not-json", "object", "empty", "not-objects", "no-event-id", "bad-object-id", "no-type"],
)
def test_malformed_bodies_get_400_and_store_nothing(services: Services, body: bytes) -> None:
    response = _post(services, body)

    assert response.status_code == 400
    assert response.get_json()["error"] == "invalid_body"
    assert _intake_rows(services.engine) == []


def test_unknown_objects_and_properties_are_ignored_and_logged(
    services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    events = [
        {"eventId": 7, "objectId": 1, "subscriptionType": "company.creation"},
        {
            "eventId": 8,
            "objectId": 2,
            "subscriptionType": "contact.propertyChange",
            "propertyName": "phone",
            "propertyValue": "1",
        },
        {"eventId": 9, "objectId": 3, "subscriptionType": "ticket.deletion"},
    ]
    with caplog.at_level("INFO", logger="bot.http.webhooks_hubspot"):
        response = _post(services, json.dumps(events).encode())

    assert response.status_code == 200
    assert response.get_json() == {"received": 3, "queued": 0}
    assert _intake_rows(services.engine) == []
    ignored = [r.getMessage() for r in caplog.records if "ignored HubSpot event" in r.getMessage()]
    assert len(ignored) == 3
    assert any("company.creation" in m for m in ignored)


def test_queued_events_are_drained_into_lead_cards(
    services: Services, fake_hubspot: FakeHubSpot, fake_slack: FakeSlack, clock: FrozenClock
) -> None:
    fake_hubspot.seed_mql(
        "5101",
        mql_at=clock.now,
        email="ana@acme.example",
        firstname="Ana",
        lastname="Diaz",
        company="Acme Health",
        jobtitle="VP Operations",
        hubspotscore="91",
    )
    fake_hubspot.seed_contact("5102", email="new@acme.example", lifecyclestage="lead")
    assert _post(services, _events()).status_code == 200
    row_ids = [r.id for r in _intake_rows(services.engine) if r.id is not None]

    deliver_intake(services.engine, row_ids, services.crm, services.playbook, now=clock())

    reads = fake_hubspot.calls("/crm/v3/objects/contacts/batch/read")
    assert len(reads) == 1
    assert sorted(i["id"] for i in reads[0].body["inputs"]) == ["5101", "5102"]
    with Session(services.engine) as session:
        leads = session.exec(select(Lead)).all()
        assert [(lead.origin, lead.external_id, lead.crm_record_id) for lead in leads] == [
            ("hubspot", "5101", "5101")
        ]
    rows = _intake_rows(services.engine)
    assert {r.payload["record_id"]: r.result for r in rows} == {
        "5101": {"stored": True},
        "5102": {"stored": False},
    }
    assert all(r.state == outbox.DONE for r in rows)
    outbox_job.run(services, now=clock())
    cards = fake_slack.messages("C0PIPELINE")
    assert len(cards) == 1
    assert "Ana Diaz" in json.dumps(cards[0])
    assert "ana@acme.example" not in json.dumps(cards[0])
    assert fake_hubspot.schema_errors == []
