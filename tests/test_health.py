"""Liveness and readiness endpoints, and which routes a deployment serves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import requests

from bot.core import db
from bot.http.app import create_web_app
from bot.runtime import build_runtime
from tests.conftest import Live, make_services, make_settings
from tests.fakes.slack_api import FakeSlack


def test_healthz_answers_200(live: Live) -> None:
    response = requests.get(f"{live.url}/healthz", timeout=5)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_readyz_is_200_when_the_database_is_reachable_and_migrated(
    engine: Any, database_url: str
) -> None:
    client = create_web_app(make_services(engine, database_url, None), None).test_client()
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["migrations"] == "current"


def test_readyz_is_503_naming_pending_migrations_on_an_unmigrated_database(
    database_url: str,
) -> None:
    fresh = db.make_engine(database_url)  # the fixture's database is empty: no schema at all
    try:
        assert not db.is_current(fresh)
        client = create_web_app(make_services(fresh, database_url, None), None).test_client()
        response = client.get("/readyz")
        assert response.status_code == 503
        body = response.get_json()
        assert body["status"] == "unavailable"
        assert body["database"] == "ok"
        assert "pending" in body["migrations"]
        assert "revbot db upgrade" in body["migrations"]
        # Liveness does not depend on the schema.
        assert client.get("/healthz").status_code == 200
    finally:
        fresh.dispose()


def test_readyz_is_503_when_the_database_is_unreachable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing-dir' / 'revbot.db'}"
    engine = db.make_engine(url)
    try:
        client = create_web_app(make_services(engine, url, None), None).test_client()
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.get_json()["database"] == "unreachable"
    finally:
        engine.dispose()


def test_slack_events_are_not_served_without_a_signing_secret(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    services = make_services(engine, database_url, fake_slack)
    services.settings = make_settings(database_url, fake_slack.url, SLACK_SIGNING_SECRET=None)
    runtime = build_runtime(services.settings, services=services)
    client = runtime.web_app.test_client()
    response = client.post(
        "/slack/events",
        data="payload=%7B%7D",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 404
    assert client.get("/healthz").status_code == 200


def test_slack_events_are_served_with_a_signing_secret(
    engine: Any, database_url: str, fake_slack: FakeSlack
) -> None:
    services = make_services(engine, database_url, fake_slack)
    runtime = build_runtime(services.settings, services=services)
    client = runtime.web_app.test_client()
    response = client.post(
        "/slack/events",
        data="payload=%7B%7D",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 401  # served, and an unsigned request is refused
