"""app_manifest.yml is a valid Slack app manifest with the commands and scopes revbot relies on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.fakes.specs import REPO_ROOT, require_spec

MANIFEST = REPO_ROOT / "app_manifest.yml"
EVENTS_URL = "https://revbot.example.com/slack/events"
EXPECTED_BOT_SCOPES = {
    "chat:write",
    "commands",
    "im:write",
    "im:history",
    "channels:history",
    "groups:history",
    "channels:read",
    "groups:read",
    "files:write",
    "usergroups:read",
}
EXPECTED_COMMANDS = {"/pipeline", "/lead", "/deal", "/deal-support", "/revbot"}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    """The parsed app manifest."""
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))


def _schema_for(manifest: dict[str, Any]) -> Path:
    major = manifest.get("_metadata", {}).get("major_version", 1)
    return require_spec("slack-manifest", f"manifest.schema.{major}.0.0.json")


def test_manifest_matches_slack_schema(manifest: dict[str, Any]) -> None:
    """The manifest validates against Slack's published JSON Schema for its major version."""
    schema = json.loads(_schema_for(manifest).read_text(encoding="utf-8"))
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(
        jsonschema.Draft7Validator(schema).iter_errors(manifest), key=lambda e: list(e.path)
    )
    report = "\n".join(f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors)
    assert not errors, f"app_manifest.yml violates the Slack manifest schema:\n{report}"


def test_socket_mode_and_urls(manifest: dict[str, Any]) -> None:
    """Socket Mode is on and every request URL points at the one events endpoint."""
    settings = manifest["settings"]
    assert settings["socket_mode_enabled"] is True
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["event_subscriptions"]["bot_events"] == ["app_home_opened"]
    urls = {
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
        settings["interactivity"]["message_menu_options_url"],
        *(c["url"] for c in manifest["features"]["slash_commands"]),
    }
    assert urls == {EVENTS_URL}


def test_slash_commands_and_shortcut(manifest: dict[str, Any]) -> None:
    """All five slash commands and the deal-support message shortcut are declared."""
    features = manifest["features"]
    commands = {c["command"] for c in features["slash_commands"]}
    assert commands == EXPECTED_COMMANDS
    # /pipeline @rep needs Slack's escaping to receive the rep as <@U123|name>; the others take
    # free text (emails, names) that escaping would turn into mailto links.
    escaped = {c["command"] for c in features["slash_commands"] if c["should_escape"] is True}
    assert escaped == {"/pipeline"}
    shortcuts = {(s["type"], s["callback_id"]) for s in features["shortcuts"]}
    assert ("message", "deal_support_from_message") in shortcuts


def test_bot_scopes_are_exactly_the_expected_set(manifest: dict[str, Any]) -> None:
    """Adding or dropping a scope must be a deliberate change to this test too."""
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    assert len(scopes) == len(set(scopes))
    assert set(scopes) == EXPECTED_BOT_SCOPES
