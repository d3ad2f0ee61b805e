"""No token, secret or lead email address ever reaches the logs, in tests or a real process."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import requests

from bot.views.lead_card import ACCEPT
from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, SIGNING_SECRET, Live, lead_json, wait_until
from tests.fakes.hubspot_testing import CLIENT_SECRET
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import block_action_payload
from tests.processes import RevbotProcess, revbot_env

from .conftest import PIPELINE, post_signed

SECRETS = (BOT_TOKEN, SIGNING_SECRET, INTAKE_TOKEN, CLIENT_SECRET)
EMAILS = tuple(f"secretlead{n}@acme.example" for n in range(3))


def _leaks(text: str) -> list[str]:
    return [s for s in (*SECRETS, *EMAILS) if s in text]


def test_a_lead_flow_with_faults_logs_no_secret_and_no_email(
    fast_live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    live = fast_live
    for name in ("bot", "jobs", "integrations", "slack_bolt", "slack_sdk"):
        caplog.set_level(logging.DEBUG, logger=name)
    live.fake.fail_next("chat.postMessage", status=500)
    leads = [lead_json(f"LOG-{n}", email=email, score=90) for n, email in enumerate(EMAILS)]

    assert live.intake({"leads": leads}).status_code == 202
    assert (
        live.intake({"leads": [{"external_id": "bad", "email": "not an email"}]}).status_code == 400
    )
    assert live.intake(leads[0], token="wrong").status_code == 401
    wait_until(lambda: len(live.fake.messages(PIPELINE)) == 3, timeout=15, what="three cards")
    ts = live.fake.messages(PIPELINE)[0]["ts"]
    click = block_action_payload(user_id="UREP1", action_id=ACCEPT, value="1", message_ts=ts)
    assert post_signed(live.url, click).status_code == 200
    assert post_signed(live.url, click, secret="forged").status_code == 401
    wait_until(lambda: live.fake.calls("chat.update"), what="the card update")

    logged = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert "outbox #" in logged  # the injected failure was logged, so the check saw real output
    assert _leaks(logged) == []


@pytest.mark.slow
def test_a_real_revbot_run_process_logs_no_secret_and_no_email(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    env = revbot_env(tmp_path, slack_url=fake_slack.url, HUBSPOT_CLIENT_SECRET=CLIENT_SECRET)
    env["REVBOT_LOG_LEVEL"] = "DEBUG"
    process = RevbotProcess(env, tmp_path)
    try:
        process.wait_ready()
        fake_slack.fail_next("chat.postMessage", status=503)
        leads = [lead_json(f"LOG-{n}", email=email, score=90) for n, email in enumerate(EMAILS)]
        headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        posted = requests.post(
            f"{process.url}/intake/leads", json={"leads": leads}, headers=headers, timeout=10
        )
        assert posted.status_code == 202
        bad = requests.post(
            f"{process.url}/intake/leads",
            json=leads[0],
            headers={"Authorization": "Bearer no"},
            timeout=10,
        )
        assert bad.status_code == 401
        wait_until(lambda: len(fake_slack.messages(PIPELINE)) == 3, timeout=30, what="cards")
    finally:
        process.stop()
    output = process.log.read_text()
    assert "503" in output or "failed" in output  # the injected failure reached the log
    assert _leaks(output) == []
