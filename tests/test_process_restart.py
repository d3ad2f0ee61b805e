"""A real `revbot run` killed mid-work and started again loses nothing and posts nothing twice."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import BOT_TOKEN, INTAKE_TOKEN, lead_json, wait_until
from tests.fakes.slack_api import FakeSlack
from tests.processes import RevbotProcess, revbot_env, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture
def realtime_slack() -> Iterator[FakeSlack]:
    with FakeSlack(bot_token=BOT_TOKEN, clock=time.time) as fake:
        yield fake


def _cards_by_cycle(fake: FakeSlack) -> Counter[int]:
    return Counter(
        m["metadata"]["event_payload"]["cycle_id"] for m in fake.messages("#revenue-pipeline")
    )


def _intake(url: str, leads: list[dict[str, object]]) -> requests.Response:
    return requests.post(
        f"{url}/intake/leads",
        json={"leads": leads},
        headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
        timeout=10,
    )


def test_kill_9_with_pending_and_unconfirmed_posts_then_restart_delivers_each_card_once(
    tmp_path: Path, realtime_slack: FakeSlack, database_url: str
) -> None:
    env = revbot_env(tmp_path, slack_url=realtime_slack.url, database_url=database_url)
    assert run_cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    # The first post reaches Slack but its response is lost; later posts fail outright.
    realtime_slack.drop_response_next("chat.postMessage")
    realtime_slack.fail_next("chat.postMessage", times=1000, status=503)
    first = RevbotProcess(env, tmp_path)
    try:
        first.wait_ready()
        response = _intake(first.url, [lead_json(f"L-{i}", score=90 - i) for i in range(5)])
        assert response.status_code == 202
        realtime_slack.wait_for("chat.postMessage", count=3, timeout=10)
    finally:
        first.kill()
    assert len(realtime_slack.messages("#revenue-pipeline")) == 1  # the one whose response was lost

    realtime_slack.clear_faults()
    second = RevbotProcess(env, tmp_path)
    try:
        second.wait_ready()
        wait_until(
            lambda: len(_cards_by_cycle(realtime_slack)) == 5, timeout=30, what="all five cards"
        )
        time.sleep(1.5)  # room for any duplicate to show up
    finally:
        second.stop()
    cards = _cards_by_cycle(realtime_slack)
    assert len(cards) == 5, cards
    assert set(cards.values()) == {1}, cards
    assert realtime_slack.calls("conversations.history"), "the unconfirmed post was not reconciled"


def test_graceful_restart_keeps_queued_work(tmp_path: Path, realtime_slack: FakeSlack) -> None:
    env = revbot_env(tmp_path, slack_url=realtime_slack.url)
    realtime_slack.fail_next("chat.postMessage", times=1000, status=500)
    first = RevbotProcess(env, tmp_path)
    first.wait_ready()
    assert _intake(first.url, [lead_json("L-1")]).status_code == 202
    realtime_slack.wait_for("chat.postMessage")
    first.stop()
    realtime_slack.clear_faults()
    second = RevbotProcess(env, tmp_path)
    try:
        second.wait_ready()
        wait_until(
            lambda: len(realtime_slack.messages("#revenue-pipeline")) == 1,
            timeout=30,
            what="the card",
        )
    finally:
        second.stop()
    assert len(realtime_slack.messages("#revenue-pipeline")) == 1


def test_web_and_worker_as_separate_processes(tmp_path: Path, realtime_slack: FakeSlack) -> None:
    env = revbot_env(tmp_path, slack_url=realtime_slack.url)
    assert run_cli("db", "upgrade", env=env, cwd=tmp_path).returncode == 0
    web = RevbotProcess(env, tmp_path, "web")
    worker = RevbotProcess({**env, "PORT": "1"}, tmp_path, "worker")
    try:
        web.wait_ready()
        worker.wait_log("worker running")
        assert _intake(web.url, [lead_json("L-1")]).status_code == 202
        card = realtime_slack.wait_for("chat.postMessage", timeout=10)[0]
        assert card.params["channel"] == "#revenue-pipeline"
    finally:
        web.stop()
        worker.stop()
