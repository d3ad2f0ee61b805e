"""A running revbot process: services, the Bolt app, the HTTP app, the worker and Socket Mode.

The parts are imported where they are built, so a process that only names `Runtime` (gunicorn's
arbiter) does not load Slack, the HTTP app, the worker or the sandbox.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask
    from slack_bolt import App
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.core.settings import Settings
    from bot.services import Services
    from bot.worker import Worker

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The parts of one process; `start_background` runs the worker and Socket Mode beside HTTP."""

    services: Services
    bolt_app: App | None
    web_app: Flask
    worker: Worker | None = None
    socket_mode: SocketModeHandler | None = None

    def start_background(self, *, worker: bool) -> None:
        """Connect Socket Mode (when an app token is set) and, if asked, start the worker."""
        settings = self.services.settings
        if worker:
            from bot.worker import Worker

            self.worker = Worker(self.services)
            self.worker.start(sole_worker=settings.is_sqlite)
        if self.bolt_app is not None and settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            self.socket_mode = SocketModeHandler(
                self.bolt_app, settings.slack_app_token.get_secret_value()
            )
            self.socket_mode.connect()
            log.info("connected to Slack over Socket Mode")

    def stop(self) -> None:
        """Stop the worker and close the Socket Mode connection."""
        if self.socket_mode is not None:
            self.socket_mode.close()
        if self.worker is not None:
            self.worker.stop()


def build_runtime(
    settings: Settings, *, services: Services | None = None, sandbox: bool = False
) -> Runtime:
    """Wire services, Bolt (when Slack is configured) and the HTTP app; `sandbox` adds the sandbox."""
    from bot.http.app import create_web_app
    from bot.services import build_services
    from bot.slack_app import build_bolt_app

    services = services or build_services(settings)
    bolt_app = build_bolt_app(services) if services.slack is not None else None
    web_app = create_web_app(services, bolt_app)
    if sandbox:
        from bot.sandbox.web import install_sandbox

        install_sandbox(web_app, services)
    return Runtime(services=services, bolt_app=bolt_app, web_app=web_app)
