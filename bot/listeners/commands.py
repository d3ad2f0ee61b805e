"""The /revbot command: help, and (as features arrive) personal settings."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.services import Services
from bot.views.help import build_help


def register(app: App, services: Services) -> None:
    """Attach the /revbot command."""

    @app.command("/revbot")
    def on_revbot(ack: Ack, command: dict[str, Any]) -> None:
        ack(**build_help(services.playbook, asked=command.get("text", "")))
