"""#deal-support in the sandbox page: /deal-support, the opportunity search over the seeded deals,
the card's Take it button, and the message shortcut, driven through the page's API."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.conftest import wait_until
from tests.test_sandbox import Page, _button, page  # noqa: F401  (the page fixture)

pytestmark = pytest.mark.slow


def _channel(state: dict[str, Any], name: str) -> str:
    return next(c["id"] for c in state["channels"] if c["name"] == name)


def _cards(sandbox: Page, user: str, channel: str) -> list[dict[str, Any]]:
    return [
        m
        for m in sandbox.state(user, channel)["messages"]
        if "Deal support" in str(m.get("blocks"))
    ]


def test_a_request_from_the_sandbox_page_is_carded_and_taken(page: Page) -> None:  # noqa: F811
    rep, marketer = "U0SBREP1", "U0SBMKT1"
    channel = _channel(page.state(rep), "deal-support")
    assert page.act(type="command", user=rep, channel=channel, text="/deal-support")["ok"]
    modal = wait_until(lambda: page.state(rep, channel)["modal"], what="the request modal")
    view = modal["view"]
    assert view["callback_id"] == "deal_support_request"
    found = page.act(
        type="options",
        user=rep,
        view_id=modal["id"],
        action_id="ds_deal_search",
        block_id="deal",
        value="northwind",
    )
    assert [o["value"] for o in found["options"]] == ["deal:SB-OPP-1"]
    due = (date.today() + timedelta(days=3)).isoformat()
    values = {
        "deal": {
            "ds_deal_search": {"type": "external_select", "selected_option": found["options"][0]}
        },
        "ask_type": {
            "value": {"type": "static_select", "selected_option": {"value": "battle_card"}}
        },
        "competitor": {"value": {"type": "plain_text_input", "value": "Globex"}},
        "due_on": {"value": {"type": "datepicker", "selected_date": due}},
        "details": {"value": {"type": "plain_text_input", "value": "Need a Globex comparison."}},
    }
    answer = page.act(type="submit", user=rep, view_id=modal["id"], values=values)
    assert answer["ok"]
    assert not answer.get("errors")
    card = wait_until(lambda: _cards(page, rep, channel), what="the card")[0]
    assert "150,000 USD" in str(card["blocks"])

    take = _button(card, "ds_take")
    page.act(
        type="click",
        user=marketer,
        channel=channel,
        message_ts=card["ts"],
        action_id="ds_take",
        block_id=take["block_id"],
        value=take["value"],
    )
    wait_until(
        lambda: "Taken" in str(_cards(page, rep, channel)[0]["blocks"]), what="the taken card"
    )

    shortcut = page.act(type="shortcut", user=rep, channel=channel, message_ts=card["ts"])
    assert shortcut["ok"]
    again = wait_until(lambda: page.state(rep, channel)["modal"], what="the shortcut's modal")
    details = next(b for b in again["view"]["blocks"] if b.get("block_id") == "details")
    assert "Deal support" in details["element"]["initial_value"]
