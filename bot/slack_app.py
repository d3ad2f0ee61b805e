"""Builds the Bolt app with revbot's listeners bound to its services."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

from bot.listeners import register
from bot.services import Services

LISTENER_THREADS = 32
SEEN_EVENTS = 10_000


class SeenEvents:
    """Events API event ids this process handled lately (bounded), to drop Slack's retries of them."""

    def __init__(self, size: int = SEEN_EVENTS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        """True the first time an id is seen; later calls with it are False."""
        with self._lock:
            if event_id in self._ids:
                return False
            self._ids[event_id] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True


def drop_event_retries(seen: SeenEvents) -> Callable[..., BoltResponse | None]:
    """Global middleware: a retried Events API delivery whose first delivery was handled is acked only.

    revbot acks before working, so Slack retries (X-Slack-Retry-Num) an event only when that ack
    was slow or lost; the retry of an event this process never saw still runs.
    """

    def middleware(body: dict[str, Any], request: BoltRequest, next: Callable[[], None]) -> Any:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        repeat = isinstance(event_id, str) and not seen.first_time(event_id)
        if repeat and request.headers.get("x-slack-retry-num"):
            return BoltResponse(status=200, body="")
        return next()

    return middleware


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
    app.middleware(drop_event_retries(SeenEvents()))
    register(app, services)
    return app
