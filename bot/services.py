"""The services a running revbot shares: settings, playbook, store, CRM, Slack client, pacer, clock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path

from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.core import outbox
from bot.core.crm import CRM
from bot.core.db import make_engine
from bot.core.pacing import Budget, Pacer
from bot.core.playbook import Playbook, load_playbook, resolve_playbook_path
from bot.core.settings import Settings
from bot.delivery.slack import SlackDelivery
from integrations import build_crm

SLACK_TIMEOUT_SECONDS = 10
# Slack allows about one post a second per conversation; requests reach Slack a little earlier
# or later than they leave, and a few milliseconds early at exactly one a second draws a 429.
POSTS_PER_SECOND = 0.97


def utc_now() -> datetime:
    """The current time, timezone-aware UTC (the only place revbot reads the wall clock)."""
    return datetime.now(UTC)


def default_pacer() -> Pacer:
    """Slack's budgets: ~1 post/s per channel or DM with a small burst; updates ~50/min."""
    return Pacer(
        budget_for={
            "channel": Budget(rate=POSTS_PER_SECOND, burst=3),
            "dm": Budget(rate=POSTS_PER_SECOND, burst=3),
            outbox.REFRESH_LANE: Budget(rate=50 / 60, burst=10),
        }
    )


@dataclass
class Services:
    """Everything listeners, jobs and endpoints need, built once by the composition root."""

    settings: Settings
    playbook: Playbook
    engine: Engine
    crm: CRM
    slack: WebClient | None
    clock: Callable[[], datetime] = utc_now
    pacer: Pacer = field(default_factory=default_pacer)
    wakeup: threading.Event = field(default_factory=threading.Event)

    @cached_property
    def slack_delivery(self) -> SlackDelivery | None:
        """The Slack side of outbox delivery (one per process, so its channel-ID cache lasts)."""
        if self.slack is None:
            return None
        return SlackDelivery(self.slack, self.engine, self.playbook, self.crm)

    def notify(self) -> None:
        """Tell the outbox worker there is new work, so it does not wait for its next poll."""
        self.wakeup.set()


def slack_client(settings: Settings) -> WebClient | None:
    """A Web API client for the configured Slack (None without a bot token)."""
    if settings.slack_bot_token is None:
        return None
    # No automatic retries: the outbox decides when to retry, after checking a post did not land.
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=settings.slack_api_url,
        timeout=SLACK_TIMEOUT_SECONDS,
        retry_handlers=[],
    )


def build_services(
    settings: Settings, *, cwd: Path | None = None, clock: Callable[[], datetime] = utc_now
) -> Services:
    """Load the playbook, open the database and build the CRM adapter and Slack client."""
    playbook = load_playbook(resolve_playbook_path(settings.playbook_path, cwd or Path.cwd()))
    engine = make_engine(settings.database_url)
    crm = build_crm(settings, playbook, engine, clock)
    return Services(
        settings=settings,
        playbook=playbook,
        engine=engine,
        crm=crm,
        slack=slack_client(settings),
        clock=clock,
    )
