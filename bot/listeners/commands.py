"""The /revbot command: help, and a rep's availability (`away [until YYYY-MM-DD]`, `back`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from slack_bolt import Ack, App

from bot.core import availability
from bot.core.db import transaction
from bot.core.playbook import Playbook
from bot.services import Services
from bot.views.help import build_help

AWAY_USAGE = (
    "Use `/revbot away` (until you say `/revbot back`) or `/revbot away until YYYY-MM-DD`, "
    "for example `/revbot away until 2026-12-01`: you are back at the start of that day."
)


def away_until(words: list[str], playbook: Playbook, *, now: datetime) -> datetime | None:
    """When an away rep is back: the start of the given day in the team's timezone (None: until
    they say so); raise ValueError with a message for the rep when the words make no sense."""
    if not words:
        return None
    if len(words) != 2 or words[0].lower() != "until":
        raise ValueError(AWAY_USAGE)
    try:
        day = date.fromisoformat(words[1])
    except ValueError:
        raise ValueError(f"`{words[1][:40]}` is not a date revbot reads. {AWAY_USAGE}") from None
    today = now.astimezone(playbook.zone).date()
    if day <= today:
        raise ValueError(
            f"{day.isoformat()} is not after today ({today.isoformat()}); pick the day you are "
            "back, or use `/revbot away` now and `/revbot back` when you return."
        )
    return datetime.combine(day, time(0), tzinfo=playbook.zone).astimezone(UTC)


def _day(moment: datetime, playbook: Playbook, *, now: datetime) -> str:
    day = moment.astimezone(playbook.zone).date()
    year = f" {day.year}" if day.year != now.astimezone(playbook.zone).year else ""
    return f"{day:%a %b} {day.day}{year}"


def register(app: App, services: Services) -> None:
    """Attach the /revbot command."""
    playbook = services.playbook
    consequence = (
        "new leads go to your teammates"
        if playbook.routing.mode == "assign"
        else "leads here are claimed, not assigned, so anyone in your pool can still pick them up"
    )

    def away(user_id: str, words: list[str]) -> str:
        now = services.clock()
        try:
            until = away_until(words, playbook, now=now)
        except ValueError as problem:
            return str(problem)
        with transaction(services.engine) as session:
            availability.set_away(session, user_id, now=now, until=until)
        if until is None:
            return f"You're away until you say `/revbot back`; {consequence}."
        return f"You're away until {_day(until, playbook, now=now)}; {consequence}."

    def back(user_id: str) -> str:
        now = services.clock()
        with transaction(services.engine) as session:
            was_away = user_id in availability.away_reps(session, now=now)
            availability.set_back(session, user_id, now=now)
        if not was_away:
            return "You weren't marked away; new leads can already reach you."
        return "Welcome back: new leads can reach you again."

    @app.command("/revbot")
    def on_revbot(ack: Ack, command: dict[str, Any]) -> None:
        words = command.get("text", "").split()
        word = words[0].lower() if words else ""
        user_id = command["user_id"]
        if word == "away":
            ack(text=away(user_id, words[1:]), response_type="ephemeral")
        elif word == "back" and len(words) == 1:
            ack(text=back(user_id), response_type="ephemeral")
        else:
            ack(**build_help(playbook, asked=command.get("text", "")))
