"""Slack listeners: thin adapters from Slack payloads to core use cases."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.listeners import commands, deal_support, home, leads, lookup
from bot.services import Services

log = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    """Attach every listener (and the one error handler) to the Bolt app."""
    home.register(app, services)  # first: its Accept listener takes clicks on the Home tab
    leads.register(app, services)
    commands.register(app, services)
    deal_support.register(app, services)
    lookup.register(app, services)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        kind = body.get("type") or body.get("command") or "request"
        log.error("listener failed on %s: %s", kind, type(error).__name__, exc_info=error)
