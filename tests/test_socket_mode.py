"""Socket Mode: with SLACK_APP_TOKEN set, revbot takes Slack's envelopes over a WebSocket."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session

from bot.core.models import MqlCycle
from bot.runtime import build_runtime
from tests.conftest import lead_json, make_services, make_settings, wait_until
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import block_action_payload
from tests.fakes.socket_mode import FakeSocketMode


@pytest.fixture
def socket_endpoint(fake_slack: FakeSlack) -> Iterator[FakeSocketMode]:
    endpoint = FakeSocketMode().start()
    fake_slack.socket_url = endpoint.url
    yield endpoint
    endpoint.stop()


def test_a_click_over_socket_mode_is_acked_and_accepts_the_lead(
    engine: Any, database_url: str, fake_slack: FakeSlack, socket_endpoint: FakeSocketMode
) -> None:
    services = make_services(engine, database_url, fake_slack)
    services.settings = make_settings(
        database_url,
        fake_slack.url,
        SLACK_APP_TOKEN=fake_slack.app_token,
        SLACK_SIGNING_SECRET=None,
    )
    runtime = build_runtime(services.settings, services=services)
    runtime.start_background(worker=True)
    try:
        assert socket_endpoint.connected.wait(10), "revbot never opened the Socket Mode connection"
        assert fake_slack.calls("apps.connections.open")
        with runtime.web_app.test_client() as http:
            assert (
                http.post("/slack/events", data=b"{}").status_code == 404
            )  # no signing secret, no HTTP
            answer = http.post(
                "/intake/leads",
                json=lead_json(),
                headers={"Authorization": "Bearer intake-test-token"},
            )
            assert answer.status_code == 202
        card = fake_slack.wait_for("chat.postMessage")[0].params
        cycle_id = card["metadata"]["event_payload"]["cycle_id"]
        payload = block_action_payload(
            user_id="UREP2",
            action_id="lead_accept",
            value=str(cycle_id),
            response_url=fake_slack.response_url(),
        )
        socket_endpoint.send(
            {
                "envelope_id": "env-1",
                "type": "interactive",
                "payload": payload,
                "accepts_response_payload": False,
            }
        )
        socket_endpoint.wait_for_ack("env-1")
        update = fake_slack.wait_for("chat.update")[0].params
        assert "Accepted" in str(update["blocks"])
        assert "<@UREP2>" in str(update["blocks"])

        def accepted() -> bool:
            with Session(engine) as session:
                cycle = session.get(MqlCycle, cycle_id)
                return cycle is not None and cycle.accepted_by == "UREP2"

        wait_until(accepted, what="the accept to be stored")
    finally:
        runtime.stop()
