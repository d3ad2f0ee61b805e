"""Builds the Bolt app with revbot's listeners bound to its services."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from slack_bolt import App

from bot.listeners import register
from bot.services import Services

LISTENER_THREADS = 32


def build_bolt_app(services: Services) -> App:
    """A Bolt app on the services' Slack client; listeners run on a sized pool, never blocking acks."""
    settings = services.settings
    secret = (
        settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    )
    app = App(
        client=services.slack,
        signing_secret=secret,
        process_before_response=False,
        # Slack being unreachable at boot must not stop revbot; `revbot check` tests the token.
        token_verification_enabled=False,
        listener_executor=ThreadPoolExecutor(
            max_workers=LISTENER_THREADS, thread_name_prefix="revbot-listener"
        ),
        raise_error_for_unhandled_request=False,
    )
    register(app, services)
    return app
