"""Helpers for HubSpot tests: a manual monotonic clock for the rate limiters, and the adapter and
services wired to the fake HubSpot (and fake Slack)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.core.playbook import Playbook
from bot.services import Services, default_pacer, slack_client
from integrations.hubspot.client import HubSpotApi
from integrations.hubspot.crm import HubSpotCRM
from tests.conftest import make_settings, team_playbook
from tests.fakes.hubspot_api import FakeHubSpot

CLIENT_SECRET = "hubspot-test-client-secret"
PORTAL_ID = "7654321"


@dataclass
class ManualTime:
    """A monotonic clock that only moves when the code under test sleeps."""

    now: float = 1000.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def hubspot_crm(
    fake: FakeHubSpot,
    clock: Callable[[], datetime],
    *,
    playbook: Playbook | None = None,
    time: ManualTime | None = None,
    portal_id: str | None = PORTAL_ID,
) -> HubSpotCRM:
    """The adapter on the fake, its rate limiters on `time` (so tests never wait)."""
    time = time or ManualTime()
    api = HubSpotApi(fake.token, fake.url, clock=time.clock, sleep=time.sleep)
    fields = (playbook or team_playbook()).field_map("hubspot")
    return HubSpotCRM(api, fields, clock, portal_id=portal_id)


def hubspot_services(
    engine: Any,
    database_url: str,
    fake: FakeHubSpot,
    clock: Callable[[], datetime],
    *,
    slack_url: str | None = None,
    playbook: Playbook | None = None,
    **settings: Any,
) -> Services:
    """Services as a HubSpot deployment sets them up, on the fakes."""
    values = {
        "REVBOT_CRM": "hubspot",
        "HUBSPOT_ACCESS_TOKEN": fake.token,
        "HUBSPOT_CLIENT_SECRET": CLIENT_SECRET,
        "HUBSPOT_API_URL": fake.url,
        "HUBSPOT_PORTAL_ID": PORTAL_ID,
        **settings,
    }
    resolved = make_settings(database_url, slack_url, **values)
    playbook = playbook or team_playbook()
    return Services(
        settings=resolved,
        playbook=playbook,
        engine=engine,
        crm=hubspot_crm(fake, clock, playbook=playbook),
        slack=slack_client(resolved) if slack_url else None,
        clock=clock,
        pacer=default_pacer(),
    )


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    """HubSpot's v3 request signature, computed independently of the code under test."""
    message = method.encode() + uri.encode() + body + str(timestamp_ms).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()
