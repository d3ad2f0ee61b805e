"""The App Home tab through the fake Slack: published on open, the queue's buttons (reusing the
lead card's listeners), the week's numbers and the away/back toggle."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlmodel import Session, select

from bot.core.models import MqlCycle, RepAvailability
from tests.conftest import SIGNING_SECRET, Live, blocks_text, lead_json, make_services, start_live
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import (
    block_action_payload,
    select_state,
    text_state,
    view_submission_payload,
)
from tests.fakes.slack_signing import signed_headers
from tests.test_lookup_commands import lookup_playbook


@pytest.fixture
def team(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    services = make_services(engine, database_url, fake_slack, playbook=lookup_playbook())
    live, stop = start_live(services, fake_slack)
    yield live
    stop()


def open_home(live: Live, user: str, tab: str = "home") -> requests.Response:
    now = time.time()
    envelope = {
        "token": "legacy",
        "team_id": "T0TEAM",
        "api_app_id": "A0REVBOT",
        "type": "event_callback",
        "event": {
            "type": "app_home_opened",
            "user": user,
            "channel": "D0DM",
            "tab": tab,
            "event_ts": f"{now:.6f}",
        },
        "event_id": f"Ev{int(now * 1000)}",
        "event_time": int(now),
        "authorizations": [{"team_id": "T0TEAM", "user_id": "U0REVBOT", "is_bot": True}],
    }
    body = json.dumps(envelope).encode()
    headers = signed_headers(body, SIGNING_SECRET)
    headers["Content-Type"] = "application/json"
    return requests.post(f"{live.url}/slack/events", data=body, headers=headers, timeout=10)


def home_click(live: Live, user: str, action_id: str, value: str) -> requests.Response:
    """A button on the Home tab: no channel, no message and no response_url."""
    payload = block_action_payload(user_id=user, action_id=action_id, value=value)
    for key in ("channel", "message", "response_url"):
        payload.pop(key, None)
    payload["container"] = {"type": "view", "view_id": "VHOME"}
    payload["view"] = {
        "id": "VHOME",
        "type": "home",
        "blocks": [],
        "callback_id": "",
        "private_metadata": "",
        "state": {"values": {}},
    }
    return live.slack(payload)


def publishes(live: Live, user: str, count: int) -> dict[str, Any]:
    calls = live.fake.wait_for(
        "views.publish", count, predicate=lambda r: r.params.get("user_id") == user
    )
    view: dict[str, Any] = calls[count - 1].params["view"]
    return view


def add_lead(live: Live, external_id: str, **fields: Any) -> MqlCycle:
    result = live.intake(lead_json(external_id, **fields)).json()["results"][0]
    with Session(live.services.engine) as session:
        return session.exec(select(MqlCycle).where(MqlCycle.lead_id == result["lead_id"])).one()


def buttons(view: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for block in view["blocks"]:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                found.append((element["action_id"], element.get("value", "")))
    return found


def test_opening_home_publishes_the_queue_the_week_and_the_toggle(team: Live) -> None:
    cycle = add_lead(team, "L-1", first_name="Hedy", company="Hotco", score=95)
    owner = cycle.owner_slack_id or ""
    assert open_home(team, owner).status_code == 200
    view = publishes(team, owner, 1)
    text = blocks_text(view["blocks"])
    assert view["type"] == "home"
    assert "Hedy Diaz" in text
    assert "Hotco" in text
    assert "left (by" in text
    assert ("lead_accept", str(cycle.id)) in buttons(view)
    assert ("lead_reject", str(cycle.id)) in buttons(view)
    assert ("home_away", "away") in buttons(view)
    assert "*Your week*" in text
    assert "*Accepted*\\n0 of 1" in text
    assert "ana@acme.example" not in text
    assert open_home(team, owner, tab="messages").status_code == 200
    time.sleep(0.3)
    assert len(team.fake.calls("views.publish")) == 1, "the Messages tab publishes nothing"


def test_the_away_back_toggle_changes_availability_and_republishes(team: Live) -> None:
    open_home(team, "UREP2")
    publishes(team, "UREP2", 1)
    assert home_click(team, "UREP2", "home_away", "away").status_code == 200
    view = publishes(team, "UREP2", 2)
    assert "You're away" in blocks_text(view["blocks"])
    assert ("home_back", "back") in buttons(view)
    with Session(team.services.engine) as session:
        row = session.get(RepAvailability, "UREP2")
        assert row is not None
        assert row.away is True
    home_click(team, "UREP2", "home_back", "back")
    view = publishes(team, "UREP2", 3)
    assert "You're available" in blocks_text(view["blocks"])
    with Session(team.services.engine) as session:
        row = session.get(RepAvailability, "UREP2")
        assert row is not None
        assert row.away is False


def test_accept_on_home_claims_the_lead_and_a_late_click_is_told_why(team: Live) -> None:
    cycle = add_lead(team, "L-1", first_name="Hedy", company="Hotco")
    owner = cycle.owner_slack_id or ""
    home_click(team, owner, "lead_accept", str(cycle.id))
    view = publishes(team, owner, 1)
    text = blocks_text(view["blocks"])
    assert "You accepted *Hedy Diaz*" in text
    assert ("lead_log_touch", str(cycle.id)) in buttons(view)
    with Session(team.services.engine) as session:
        stored = session.get(MqlCycle, cycle.id)
        assert stored is not None
        assert (stored.state, stored.accepted_by) == ("accepted", owner)
    home_click(team, "UMGR1", "lead_accept", str(cycle.id))
    late = blocks_text(publishes(team, "UMGR1", 1)["blocks"])
    assert f"already accepted by <@{owner}>" in late


def test_reject_on_home_opens_the_cards_modal_and_submitting_republishes(team: Live) -> None:
    cycle = add_lead(team, "L-1", first_name="Rita", company="Rejectco")
    owner = cycle.owner_slack_id or ""
    home_click(team, owner, "lead_reject", str(cycle.id))
    opened = team.fake.wait_for("views.open")[0].params["view"]
    assert opened["callback_id"] == "lead_reject_modal"
    submission = view_submission_payload(
        user_id=owner,
        callback_id=opened["callback_id"],
        private_metadata=opened["private_metadata"],
        values={
            "reason": {"value": select_state("not_icp")},
            "note": {"value": text_state("Student, no budget.")},
        },
    )
    assert team.slack(submission).status_code == 200
    view = publishes(team, owner, 1)
    assert "Rejectco" not in blocks_text(view["blocks"])
    with Session(team.services.engine) as session:
        stored = session.get(MqlCycle, cycle.id)
        assert stored is not None
        assert stored.state == "rejected"


def test_a_refused_home_click_shows_the_reason_on_the_home_tab(team: Live) -> None:
    cycle = add_lead(team, "L-1", company="Elsewhere")
    home_click(team, "UREP3", "lead_recycle", str(cycle.id))  # emea rep, sales lead
    view = publishes(team, "UREP3", 1)
    assert f"This lead is assigned to <@{cycle.owner_slack_id}>" in blocks_text(view["blocks"])
    assert team.fake.calls("views.open") == []
