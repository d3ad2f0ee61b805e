"""The sandbox workspace end to end: a real `revbot sandbox` process driven through its page's API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import wait_until
from tests.processes import RevbotProcess, revbot_env, run_cli

pytestmark = pytest.mark.slow


class Page:
    """What the sandbox page does, as HTTP calls."""

    def __init__(self, url: str) -> None:
        self.url = url

    def state(self, user: str, channel: str | None = None) -> dict[str, Any]:
        params = {"user": user, **({"channel": channel} if channel else {})}
        return requests.get(f"{self.url}/sandbox/state", params=params, timeout=10).json()

    def act(self, **body: Any) -> dict[str, Any]:
        response = requests.post(f"{self.url}/sandbox/act", json=body, timeout=15)
        return response.json()


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Page]:
    process = RevbotProcess(
        revbot_env(tmp_path), tmp_path
    )  # `revbot run` with no Slack settings at all
    try:
        process.wait_ready()
        yield Page(process.url)
    finally:
        process.stop()
    assert "starting the sandbox" in process.log.read_text()


def _cards(state: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in state["messages"] if any(b.get("type") == "actions" for b in m["blocks"])]


def _button(message: dict[str, Any], action_id: str) -> dict[str, Any]:
    for block in message["blocks"]:
        for element in block.get("elements", []):
            if element.get("action_id") == action_id:
                return {**element, "block_id": block.get("block_id")}
    raise AssertionError(f"no {action_id} button")


def _owner(message: dict[str, Any]) -> str:
    text = str(message["blocks"])
    return next(u for u in ("U0SBREP1", "U0SBREP2", "U0SBREP3") if f"<@{u}>" in text)


def test_sample_mqls_become_cards_that_can_be_accepted_and_rejected(page: Page) -> None:
    first = page.state("U0SBREP1")
    assert {u["role"] for u in first["users"]} == {"rep", "manager", "marketer"}
    assert [c["name"] for c in first["channels"] if c["kind"] == "channel"][:2] == [
        "revenue-pipeline",
        "deal-support",
    ]
    added = page.act(type="sample_mqls")
    assert added["ok"]
    assert added["created"] == 14
    assert added["duplicate"] == 1

    cards = wait_until(
        lambda: len(_cards(page.state("U0SBREP1"))) >= 14 and _cards(page.state("U0SBREP1")),
        timeout=30,
        what="14 cards (paced at about one a second)",
    )
    assert len(cards) == 14
    assert all("@" not in m["text"] for m in cards)  # no email addresses in the channel

    card = cards[0]
    owner = _owner(card)
    outsider = next(u for u in ("U0SBREP1", "U0SBREP2", "U0SBREP3") if u != owner)
    accept = _button(card, "lead_accept")
    click = {
        "type": "click",
        "channel": page.state(owner)["channel"],
        "message_ts": card["ts"],
        "action_id": "lead_accept",
        "block_id": accept["block_id"],
        "value": accept["value"],
    }
    assert page.act(user=outsider, **click)["ok"]
    wait_until(lambda: page.state(outsider)["ephemerals"], what="the outsider's ephemeral")
    assert "assigned to" in page.state(outsider)["ephemerals"][0]["text"]

    assert page.act(user=owner, **click)["ok"]
    updated = wait_until(
        lambda: next(
            (
                m
                for m in page.state(owner)["messages"]
                if m["ts"] == card["ts"] and "Accepted" in str(m["blocks"])
            ),
            None,
        ),
        what="the card to show Accepted",
    )
    assert updated["edited"]

    reject = _button(cards[1], "lead_reject")
    other_owner = _owner(cards[1])
    page.act(
        user=other_owner,
        type="click",
        channel=click["channel"],
        message_ts=cards[1]["ts"],
        action_id="lead_reject",
        block_id=reject["block_id"],
        value=reject["value"],
    )
    modal = wait_until(lambda: page.state(other_owner)["modal"], what="the reject modal")
    assert modal["view"]["callback_id"] == "lead_reject_modal"
    empty = page.act(
        user=other_owner,
        type="submit",
        view_id=modal["id"],
        values={
            "reason": {"value": {"type": "static_select", "selected_option": None}},
            "note": {"value": {"type": "plain_text_input", "value": None}},
        },
    )
    assert set(empty["errors"]) == {"reason", "note"}
    assert page.state(other_owner)["modal"]["errors"] == empty["errors"]
    done = page.act(
        user=other_owner,
        type="submit",
        view_id=modal["id"],
        values={
            "reason": {
                "value": {
                    "type": "static_select",
                    "selected_option": {
                        "value": "not_icp",
                        "text": {"type": "plain_text", "text": "Not ICP"},
                    },
                }
            },
            "note": {"value": {"type": "plain_text_input", "value": "Student project, no budget."}},
        },
    )
    assert done == {"ok": True, "errors": {}}
    assert page.state(other_owner)["modal"] is None
    wait_until(
        lambda: any("Rejected" in str(m["blocks"]) for m in page.state(other_owner)["messages"]),
        what="the card to show Rejected",
    )


def test_slash_commands_answer_ephemerally(page: Page) -> None:
    channel = page.state("U0SBMGR1")["channel"]
    assert page.act(type="command", user="U0SBMGR1", channel=channel, text="/revbot help")["ok"]
    help_text = str(page.state("U0SBMGR1")["ephemerals"])
    assert "Accept" in help_text
    assert "revbot help" in help_text
    assert page.state("U0SBREP1")["ephemerals"] == []  # only the asker sees it
    page.act(type="command", user="U0SBMGR1", channel=channel, text="/nosuch thing")
    assert "dispatch_failed" in str(page.state("U0SBMGR1")["ephemerals"])


def test_the_sla_sweep_button_runs_the_sweep(page: Page) -> None:
    assert page.state("U0SBMGR1")["features"]["sla_sweep"] is True
    page.act(type="sample_mqls")
    swept = page.act(type="sla_sweep")
    assert swept["ok"] is True
    assert swept["steps"] == 0  # nothing is due the moment the leads land


def test_the_sandbox_web_api_enforces_slacks_rules(page: Page) -> None:
    api = f"{page.url}/sandbox/api/"
    assert requests.post(api + "auth.test", timeout=5).json() == {
        "ok": False,
        "error": "invalid_auth",
    }


def test_check_still_reports_missing_slack_settings(tmp_path: Path) -> None:
    result = run_cli("check", env=revbot_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert "SLACK_BOT_TOKEN" in result.stderr
