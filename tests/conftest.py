"""Shared fixtures: real databases (SQLite, and PostgreSQL when configured), fake Slack, live revbot."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlmodel import Session, col, select
from werkzeug.serving import make_server

from bot.core import db
from bot.core.models import OutboxMessage
from bot.core.playbook import Playbook, parse_playbook
from bot.core.settings import Settings
from bot.runtime import Runtime, build_runtime
from bot.services import Services, default_pacer, slack_client
from integrations.local import LocalCRM
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_payloads import form_body
from tests.fakes.slack_signing import signed_headers

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
INTAKE_TOKEN = "intake-test-token"
ENV_VARS = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "DATABASE_URL",
    "REVBOT_PLAYBOOK",
    "REVBOT_CRM",
    "REVBOT_INTAKE_TOKEN",
    "PORT",
    "REVBOT_HOST",
    "WEB_CONCURRENCY",
)

TEST_PLAYBOOK = """
channels:
  pipeline: "#revenue-pipeline"
  alerts: "#revops-alerts"
timezone: America/New_York
tiers:
  - {name: hot, min_score: 80, accept_within: 15m}
  - {name: warm, min_score: 50, accept_within: 4h}
  - {name: nurture, min_score: 0, accept_within: 1d, clock: wall}
reasons:
  reject:
    - {code: not_icp, label: Not our ICP, crm_value: Not ICP}
    - {code: bad_contact, label: Bad contact data}
  recycle:
    - {code: timing, label: "Timing: revisit later", crm_value: Timing}
    - {code: no_response, label: No response}
routing:
  mode: MODE
  default_pool: sales
  rules:
    - {when: {country: [DE, FR]}, pool: emea}
  pools:
    sales:
      manager: UMGR1
      members:
        - {slack_id: UREP1, name: Ana, email: ana@example.com, weight: 2}
        - {slack_id: UREP2, name: Ben, email: ben@example.com}
    emea:
      manager: UMGR2
      backup: sales
      members:
        - {slack_id: UREP3, name: Chloe, capacity: 1}
"""


def team_playbook(mode: str = "claim") -> Playbook:
    """The playbook most tests use: two pools, a rule, a manager per pool."""
    return parse_playbook(TEST_PLAYBOOK.replace("MODE", mode), "test playbook")


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Tests build Settings explicitly; nothing may leak in from the machine's environment or cwd.
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def _postgres_url() -> str | None:
    url = os.environ.get("REVBOT_TEST_DATABASE_URL")
    return Settings(_env_file=None, DATABASE_URL=url).database_url if url else None  # type: ignore[call-arg]


def _fresh_postgres_schema(url: str) -> str:
    # One schema per test process, so concurrent runs against one database never collide.
    schema = f"revbot_test_{os.getpid()}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: SQLite in a temp folder, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'revbot.db'}"
    url = _postgres_url()
    if url is None:
        pytest.skip("REVBOT_TEST_DATABASE_URL is unset (PostgreSQL tests run in CI)")
    return _fresh_postgres_schema(url)


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    """A migrated engine on the test database."""
    eng = db.make_engine(database_url)
    db.upgrade(eng)
    yield eng
    eng.dispose()


@dataclass
class FrozenClock:
    """A clock tests move by hand."""

    now: datetime = field(default_factory=lambda: datetime(2026, 11, 23, 15, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FrozenClock:
    """A fixed clock at Monday 2026-11-23 15:00 UTC."""
    return FrozenClock()


@pytest.fixture
def fake_slack(clock: FrozenClock) -> Iterator[FakeSlack]:
    """A running fake Slack Web API whose message timestamps follow the test's clock."""
    with FakeSlack(bot_token=BOT_TOKEN, clock=lambda: clock().timestamp()) as fake:
        yield fake


def make_settings(database_url: str, slack_url: str | None = None, **extra: Any) -> Settings:
    """Settings as a deployment would set them, pointing at the fakes."""
    values: dict[str, Any] = {
        "SLACK_BOT_TOKEN": BOT_TOKEN,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "DATABASE_URL": database_url,
        "REVBOT_INTAKE_TOKEN": INTAKE_TOKEN,
    }
    if slack_url:
        values["SLACK_API_URL"] = slack_url
    values.update(extra)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def make_services(
    engine: Any,
    database_url: str,
    fake: FakeSlack | None,
    *,
    playbook: Playbook | None = None,
    clock: Callable[[], datetime] | None = None,
    crm: Any = None,
) -> Services:
    """Services wired as in production, on the test database and fake Slack."""
    settings = make_settings(database_url, fake.url if fake else None)
    tick = clock or (lambda: datetime.now(UTC))
    return Services(
        settings=settings,
        playbook=playbook or team_playbook(),
        engine=engine,
        crm=crm or LocalCRM(engine, tick),
        slack=slack_client(settings) if fake else None,
        clock=tick,
        pacer=default_pacer(),
    )


@dataclass
class Live:
    """A revbot serving HTTP on a local port with its worker running."""

    url: str
    runtime: Runtime
    fake: FakeSlack

    @property
    def services(self) -> Services:
        return self.runtime.services

    def intake(self, body: Any, *, token: str | None = INTAKE_TOKEN) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.post(f"{self.url}/intake/leads", json=body, headers=headers, timeout=10)

    def slack(
        self, payload: dict[str, Any], *, secret: str = SIGNING_SECRET, timestamp: int | None = None
    ) -> requests.Response:
        body = form_body(payload)
        headers = signed_headers(body, secret, timestamp=timestamp)
        return requests.post(f"{self.url}/slack/events", data=body, headers=headers, timeout=10)


def start_live(services: Services, fake: FakeSlack) -> tuple[Live, Callable[[], None]]:
    """Serve a runtime on 127.0.0.1 with its worker; returns the handle and a stop function."""
    runtime = build_runtime(services.settings, services=services)
    runtime.start_background(worker=True)
    server = make_server("127.0.0.1", 0, runtime.web_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        runtime.stop()

    return Live(f"http://127.0.0.1:{server.server_port}", runtime, fake), stop


@pytest.fixture
def live(engine: Any, database_url: str, fake_slack: FakeSlack) -> Iterator[Live]:
    """revbot (claim mode) running against the fake Slack on the test database."""
    live, stop = start_live(make_services(engine, database_url, fake_slack), fake_slack)
    yield live
    stop()


def wait_until(check: Callable[[], Any], *, timeout: float = 5.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def lead_json(external_id: str = "L-1001", **overrides: Any) -> dict[str, Any]:
    """The intake example from the design, with overrides."""
    lead = {
        "external_id": external_id,
        "source": "hubspot-form",
        "email": "ana@acme.example",
        "phone": "+1 555 0100",
        "first_name": "Ana",
        "last_name": "Diaz",
        "company": "Acme Health",
        "title": "VP Operations",
        "country": "US",
        "industry": "Healthcare",
        "employees": 450,
        "lead_source": "Webinar",
        "campaign": "2026 Planning Kit",
        "score": 87,
        "signals": ["pricing_page", "demo_request"],
        "content": ["ROI calculator"],
        "mql_at": "2026-11-22T14:03:00Z",
    }
    lead.update(overrides)
    return {k: v for k, v in lead.items() if v is not None}


def blocks_text(blocks: list[dict[str, Any]]) -> str:
    """All text in a Block Kit message, for assertions on what a person would read."""
    return json.dumps(blocks, ensure_ascii=False)


def outbox_rows(engine: Any, kind: str) -> list[OutboxMessage]:
    """The outbox rows of one kind, oldest first, detached so a test can read them freely."""
    with Session(engine) as session:
        rows = list(
            session.exec(
                select(OutboxMessage)
                .where(OutboxMessage.kind == kind)
                .order_by(col(OutboxMessage.id))
            ).all()
        )
        for row in rows:
            session.expunge(row)
        return rows
