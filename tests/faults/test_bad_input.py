"""Forged, stale, replayed, malformed and oversized requests on every endpoint: a clear 4xx and
nothing changed; never a 5xx."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from pydantic import SecretStr

from bot.views.lead_card import ACCEPT
from tests.conftest import (
    INTAKE_TOKEN,
    FrozenClock,
    Live,
    lead_json,
    make_services,
    start_live,
    wait_until,
)
from tests.fakes.hubspot_testing import CLIENT_SECRET, sign_v3
from tests.fakes.salesforce_api import ORG_ID
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import block_action_payload, form_body
from tests.fakes.slack_signing import signed_headers

from .conftest import PIPELINE, five_rep_playbook, row_counts

MIB = 1024 * 1024
HUBSPOT_EVENT = [{"eventId": 1, "objectId": 5101, "subscriptionType": "contact.creation"}]


@pytest.fixture
def guarded(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    """revbot with every endpoint switched on (Slack, intake, HubSpot and Salesforce webhooks)."""
    services = make_services(engine, database_url, fake_slack, playbook=five_rep_playbook())
    services.settings = services.settings.model_copy(
        update={
            "hubspot_client_secret": SecretStr(CLIENT_SECRET),
            "salesforce_org_id": ORG_ID,
        }
    )
    live, stop = start_live(services, fake_slack)
    yield live
    stop()


def _hubspot(live: Live, body: bytes, *, secret: str = CLIENT_SECRET, age_ms: int = 0) -> Any:
    ts = int(time.time() * 1000) - age_ms
    uri = f"{live.url}/webhooks/hubspot"
    headers = {
        "X-HubSpot-Signature-v3": sign_v3(secret, "POST", uri, body, ts),
        "X-HubSpot-Request-Timestamp": str(ts),
        "Content-Type": "application/json",
    }
    return requests.post(uri, data=body, headers=headers, timeout=30)


def _slack(live: Live, body: bytes, headers: dict[str, str]) -> Any:
    return requests.post(f"{live.url}/slack/events", data=body, headers=headers, timeout=30)


def _intake(live: Live, body: bytes, token: str | None = INTAKE_TOKEN) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{live.url}/intake/leads", data=body, headers=headers, timeout=30)


def _salesforce(live: Live, body: bytes) -> Any:
    headers = {"Content-Type": "text/xml; charset=utf-8"}
    return requests.post(f"{live.url}/webhooks/salesforce", data=body, headers=headers, timeout=30)


def test_forged_stale_replayed_malformed_and_oversized_requests_change_nothing(
    guarded: Live,
) -> None:
    live = guarded
    assert live.intake(lead_json("B-1", score=90)).status_code == 202
    live.fake.wait_for("chat.postMessage", timeout=10)
    ts = live.fake.messages(PIPELINE)[0]["ts"]
    click = form_body(
        block_action_payload(user_id="UREP1", action_id=ACCEPT, value="1", message_ts=ts)
    )
    six_minutes_ago = int(time.time()) - 6 * 60
    replayed = signed_headers(click, "test-signing-secret", timestamp=six_minutes_ago)
    signed_junk = b"payload=%7Bnot+json"
    big = b"payload=" + b"a" * (MIB + 10)
    cases: dict[str, Callable[[], Any]] = {
        "slack: forged signature": lambda: _slack(live, click, signed_headers(click, "forged")),
        "slack: unsigned": lambda: _slack(
            live, click, {"Content-Type": "application/x-www-form-urlencoded"}
        ),
        "slack: replayed after 6 minutes": lambda: _slack(live, click, replayed),
        "slack: signature of another body": lambda: _slack(
            live, click.replace(b"UREP1", b"UREP2"), signed_headers(click, "test-signing-secret")
        ),
        "slack: signed malformed payload": lambda: _slack(
            live, signed_junk, signed_headers(signed_junk, "test-signing-secret")
        ),
        "slack: oversized": lambda: _slack(live, big, signed_headers(big, "test-signing-secret")),
        "intake: no token": lambda: _intake(live, json.dumps(lead_json("B-2")).encode(), None),
        "intake: wrong token": lambda: _intake(
            live, json.dumps(lead_json("B-2")).encode(), "guess"
        ),
        "intake: not JSON": lambda: _intake(live, b"{'external_id': "),
        "intake: not UTF-8": lambda: _intake(live, b"\xff\xfe\x00garbage"),
        "intake: wrong types": lambda: _intake(
            live, json.dumps({"external_id": ["x"], "email": 5, "employees": "many"}).encode()
        ),
        "intake: empty batch": lambda: _intake(live, b'{"leads": []}'),
        "intake: oversized": lambda: _intake(live, b'{"leads": ["' + b"a" * MIB + b'"]}'),
        "intake: 1001 leads": lambda: _intake(
            live, json.dumps({"leads": [lead_json(f"X-{i}") for i in range(1001)]}).encode()
        ),
        "hubspot: forged": lambda: _hubspot(
            live, json.dumps(HUBSPOT_EVENT).encode(), secret="forged"
        ),
        "hubspot: stale": lambda: _hubspot(
            live, json.dumps(HUBSPOT_EVENT).encode(), age_ms=6 * 60 * 1000
        ),
        "hubspot: malformed": lambda: _hubspot(live, b"[{]"),
        "hubspot: not events": lambda: _hubspot(live, b'{"eventId": 1}'),
        "hubspot: oversized": lambda: _hubspot(live, b"[" + b" " * MIB + b"]"),
        "salesforce: not XML": lambda: _salesforce(live, b"<notifications><unclosed"),
        "salesforce: entity bomb": lambda: _salesforce(
            live, b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
        ),
        "salesforce: oversized": lambda: _salesforce(live, b"<x>" + b"a" * MIB + b"</x>"),
    }
    time.sleep(0.3)  # let the card's own outbox rows settle before taking the baseline
    before = row_counts(live.services.engine)

    answers = {name: send() for name, send in cases.items()}

    statuses = {name: reply.status_code for name, reply in answers.items()}
    assert {n: s for n, s in statuses.items() if not 400 <= s < 500} == {}
    for name, reply in answers.items():
        assert reply.content, f"{name}: a 4xx without an explanation"
    assert row_counts(live.services.engine) == before
    assert live.fake.calls("chat.update") == []
    assert live.fake.calls("response_url") == []


def test_a_valid_slack_request_is_refused_once_it_is_five_minutes_old(
    guarded: Live, clock: FrozenClock
) -> None:
    live = guarded
    assert live.intake(lead_json("B-1", score=90)).status_code == 202
    live.fake.wait_for("chat.postMessage", timeout=10)
    ts = live.fake.messages(PIPELINE)[0]["ts"]
    click = form_body(
        block_action_payload(user_id="UREP1", action_id=ACCEPT, value="1", message_ts=ts)
    )
    sent_at = int(time.time()) - 5 * 60 - 1
    headers = signed_headers(click, "test-signing-secret", timestamp=sent_at)

    assert _slack(live, click, headers).status_code == 401
    fresh = signed_headers(click, "test-signing-secret")
    assert _slack(live, click, fresh).status_code == 200
    wait_until(lambda: live.fake.calls("chat.update"), what="the accepted card")
