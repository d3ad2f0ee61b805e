"""`/revbot away [until YYYY-MM-DD]` and `/revbot back`: parsing, and end to end over HTTP."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from sqlmodel import Session, select

from bot.core.models import MqlCycle, RepAvailability
from bot.listeners.commands import away_until
from tests.conftest import (
    SIGNING_SECRET,
    Live,
    blocks_text,
    lead_json,
    make_services,
    start_live,
    team_playbook,
)
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import slash_command_form
from tests.fakes.slack_signing import signed_headers

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 10:00 in New York


# --- parsing -----------------------------------------------------------------------------------


def test_away_without_a_date_lasts_until_back() -> None:
    assert away_until([], team_playbook(), now=NOW) is None


def test_away_until_a_date_ends_at_the_start_of_that_day_in_the_team_timezone() -> None:
    until = away_until(["until", "2026-12-01"], team_playbook(), now=NOW)
    assert until == datetime(2026, 12, 1, 5, 0, tzinfo=UTC)  # midnight in New York
    assert away_until(["UNTIL", "2026-11-24"], team_playbook(), now=NOW) == datetime(
        2026, 11, 24, 5, 0, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (["until", "2026-11-23"], "2026-11-23 is not after today (2026-11-23)"),
        (["until", "2020-01-01"], "is not after today"),
        (["until", "dec", "1"], "YYYY-MM-DD"),
        (["until", "tomorrow"], "`tomorrow` is not a date revbot reads"),
        (["until", "2026-13-01"], "is not a date revbot reads"),
        (["tomorrow"], "/revbot away until YYYY-MM-DD"),
        (["until"], "/revbot away until YYYY-MM-DD"),
    ],
)
def test_away_refuses_what_it_cannot_read(words: list[str], expected: str) -> None:
    with pytest.raises(ValueError, match=re.escape(expected)):
        away_until(words, team_playbook(), now=NOW)


def test_today_is_the_team_timezone_date() -> None:
    late_evening = datetime(2026, 11, 24, 3, 0, tzinfo=UTC)  # still the 23rd in New York
    assert away_until(["until", "2026-11-24"], team_playbook(), now=late_evening) == datetime(
        2026, 11, 24, 5, 0, tzinfo=UTC
    )


# --- end to end ----------------------------------------------------------------------------------


@pytest.fixture
def assign_live(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    """revbot in assign mode (sales pool: UREP1 weight 2, UREP2 weight 1)."""
    services = make_services(engine, database_url, fake_slack, playbook=team_playbook("assign"))
    live, stop = start_live(services, fake_slack)
    yield live
    stop()


def command(live: Live, user: str, text: str) -> requests.Response:
    form = slash_command_form(
        command="/revbot",
        text=text,
        user_id=user,
        response_url=live.fake.response_url(f"cmd-{user}"),
    )
    body = urlencode(form).encode()
    headers = signed_headers(body, SIGNING_SECRET)
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return requests.post(f"{live.url}/slack/events", data=body, headers=headers, timeout=10)


def reply(live: Live, user: str, text: str) -> str:
    response = command(live, user, text)
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    return str(body["text"])


def availability(live: Live, user: str) -> RepAvailability | None:
    with Session(live.services.engine) as session:
        return session.get(RepAvailability, user)


def team_today() -> date:
    return datetime.now(UTC).astimezone(team_playbook().zone).date()


def owner_of_new_lead(live: Live, external_id: str) -> str | None:
    result = live.intake(lead_json(external_id, email=f"{external_id}@acme.example")).json()
    lead_id = result["results"][0]["lead_id"]
    with Session(live.services.engine) as session:
        return session.exec(
            select(MqlCycle.owner_slack_id).where(MqlCycle.lead_id == lead_id)
        ).one()


def test_away_until_a_date_routes_new_leads_to_teammates_until_back(assign_live: Live) -> None:
    live = assign_live
    back_on = team_today() + timedelta(days=30)
    text = reply(live, "UREP1", f"away until {back_on.isoformat()}")
    assert text == (
        f"You're away until {back_on:%a %b} {back_on.day}"
        + (f" {back_on.year}" if back_on.year != team_today().year else "")
        + "; new leads go to your teammates."
    )
    stored = availability(live, "UREP1")
    assert stored is not None
    assert stored.away is True
    zone = team_playbook().zone
    assert stored.away_until == datetime.combine(back_on, datetime.min.time(), zone).astimezone(UTC)

    assert owner_of_new_lead(live, "L-away-1") == "UREP2"
    assert owner_of_new_lead(live, "L-away-2") == "UREP2"
    card = live.fake.wait_for("chat.postMessage")[0].params
    assert "<@UREP2>" in blocks_text(card["blocks"])

    assert reply(live, "UREP1", "back") == "Welcome back: new leads can reach you again."
    stored = availability(live, "UREP1")
    assert stored is not None
    assert (stored.away, stored.away_until) == (False, None)
    assert owner_of_new_lead(live, "L-back-1") == "UREP1"
    assert live.fake.calls("response_url") == [], "the answer comes in the HTTP response"


def test_away_without_a_date_and_back_when_not_away(assign_live: Live) -> None:
    live = assign_live
    assert reply(live, "UREP2", "back") == (
        "You weren't marked away; new leads can already reach you."
    )
    assert reply(live, "UREP2", "away") == (
        "You're away until you say `/revbot back`; new leads go to your teammates."
    )
    stored = availability(live, "UREP2")
    assert stored is not None
    assert (stored.away, stored.away_until) == (True, None)
    assert owner_of_new_lead(live, "L-1") == "UREP1"
    assert owner_of_new_lead(live, "L-2") == "UREP1"


def test_a_past_date_is_refused_and_changes_nothing(assign_live: Live) -> None:
    live = assign_live
    yesterday = team_today() - timedelta(days=1)
    text = reply(live, "UREP1", f"away until {yesterday.isoformat()}")
    assert f"{yesterday.isoformat()} is not after today" in text
    assert availability(live, "UREP1") is None
    assert "YYYY-MM-DD" in reply(live, "UREP1", "away until dec 1")
    assert availability(live, "UREP1") is None
    assert owner_of_new_lead(live, "L-1") == "UREP1"


def test_claim_mode_says_leads_are_claimed(live: Live) -> None:
    text = reply(live, "UREP1", "away")
    assert text.startswith("You're away until you say `/revbot back`")
    assert "claimed, not assigned" in text


def test_help_lists_the_availability_commands_and_unknown_words_show_it(live: Live) -> None:
    help_body = command(live, "UREP1", "help").json()
    shown = blocks_text(help_body["blocks"])
    assert "`/revbot away [until YYYY-MM-DD]`" in shown
    assert "`/revbot back`" in shown
    assert "Log touch" in shown
    unknown = command(live, "UREP1", "vacation").json()
    assert unknown["response_type"] == "ephemeral"
    assert "`/revbot vacation` is not something revbot knows" in blocks_text(unknown["blocks"])
