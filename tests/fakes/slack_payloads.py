"""Interactivity payloads in the shapes Slack POSTs, built from the vendor sample files."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from .slack_api import DEFAULT_CHANNELS
from .specs import load_spec_json

API_APP_ID = "A0REVBOT"
TEAM_DOMAIN = "sandbox"
_CHANNEL_NAMES = {cid: name for name, cid in DEFAULT_CHANNELS.items()}


def _template(name: str, keep: tuple[str, ...]) -> dict[str, Any]:
    # The samples list every key ever seen, mostly empty; keys such as "function_data" or an
    # empty "enterprise" would change how Bolt routes the request, so only the listed ones stay.
    sample = load_spec_json("slack-payloads", name)
    return {key: sample[key] for key in keep if key in sample}


def _user(user_id: str, team_id: str) -> dict[str, str]:
    name = user_id.lower()
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def _plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def block_action_payload(
    *,
    user_id: str,
    action_id: str,
    value: str,
    channel_id: str = "C0PIPELINE",
    message_ts: str = "1700000000.000100",
    response_url: str = "",
    trigger_id: str = "trig-1",
    block_id: str = "lead_actions",
    team_id: str = "T0TEAM",
) -> dict[str, Any]:
    """A block_actions payload for one button click on a bot message in a channel."""
    payload = _template(
        "BlockActionPayload.json",
        ("type", "team", "user", "api_app_id", "token", "container", "trigger_id", "channel"),
    )
    payload.update(
        type="block_actions",
        user=_user(user_id, team_id),
        api_app_id=API_APP_ID,
        token="legacy",
        container={
            "type": "message",
            "message_ts": message_ts,
            "channel_id": channel_id,
            "is_ephemeral": False,
        },
        trigger_id=trigger_id,
        team={"id": team_id, "domain": TEAM_DOMAIN},
        enterprise=None,
        is_enterprise_install=False,
        channel={"id": channel_id, "name": _CHANNEL_NAMES.get(channel_id, "channel")},
        message={"type": "message", "ts": message_ts, "text": "", "blocks": []},
        state={"values": {}},
        response_url=response_url,
        actions=[
            {
                "type": "button",
                "action_id": action_id,
                "block_id": block_id,
                "value": value,
                "action_ts": f"{time.time():.6f}",
                "text": _plain(action_id.replace("_", " ").title()),
            }
        ],
    )
    return payload


def select_state(value: str | None) -> dict[str, Any]:
    """State of a static_select element; None means nothing selected."""
    option = None if value is None else {"text": _plain(value), "value": value}
    return {"type": "static_select", "selected_option": option}


def text_state(value: str | None) -> dict[str, Any]:
    """State of a plain_text_input element; None means left empty."""
    return {"type": "plain_text_input", "value": value}


def date_state(iso: str | None) -> dict[str, Any]:
    """State of a datepicker element (YYYY-MM-DD); None means no date picked."""
    return {"type": "datepicker", "selected_date": iso}


def view_submission_payload(
    *,
    user_id: str,
    callback_id: str,
    private_metadata: str,
    values: dict[str, dict[str, dict[str, Any]]],
    view_id: str = "V0001",
    team_id: str = "T0TEAM",
) -> dict[str, Any]:
    """A view_submission payload for a modal with the given state values."""
    payload = _template(
        "ViewSubmissionPayload.json",
        ("type", "team", "user", "api_app_id", "token", "trigger_id", "view", "is_cleared"),
    )
    view = payload["view"]
    view.update(
        id=view_id,
        team_id=team_id,
        type="modal",
        title=_plain("revbot"),
        submit=_plain("Submit"),
        close=_plain("Cancel"),
        blocks=[],
        private_metadata=private_metadata,
        callback_id=callback_id,
        external_id="",
        state={"values": values},
        hash="1700000000.abcdef",
        root_view_id=view_id,
        previous_view_id=None,
        app_id=API_APP_ID,
        app_installed_team_id=team_id,
        bot_id="BBOT",
    )
    payload.update(
        type="view_submission",
        team={"id": team_id, "domain": TEAM_DOMAIN},
        user=_user(user_id, team_id),
        api_app_id=API_APP_ID,
        token="legacy",
        trigger_id="trig-view",
        enterprise=None,
        is_enterprise_install=False,
        is_cleared=False,
        response_urls=[],
    )
    return payload


def slash_command_form(
    *,
    command: str,
    text: str,
    user_id: str,
    channel_id: str = "C0PIPELINE",
    response_url: str = "",
    trigger_id: str = "trig-1",
) -> dict[str, str]:
    """The form fields Slack posts for a slash command."""
    sample = load_spec_json("slack-payloads", "SlashCommandPayload.json")
    fields = {key: str(value) for key, value in sample.items()}
    fields.update(
        token="legacy",
        api_app_id=API_APP_ID,
        team_id="T0TEAM",
        team_domain=TEAM_DOMAIN,
        channel_id=channel_id,
        channel_name=_CHANNEL_NAMES.get(channel_id, "directmessage"),
        user_id=user_id,
        user_name=user_id.lower(),
        command=command,
        text=text,
        response_url=response_url,
        trigger_id=trigger_id,
        is_enterprise_install="false",
    )
    # Slack omits the enterprise fields for workspaces outside an Enterprise Grid.
    for key in ("enterprise_id", "enterprise_name"):
        fields.pop(key, None)
    return fields


def message_shortcut_payload(
    *,
    user_id: str,
    callback_id: str,
    message: dict[str, Any],
    channel_id: str = "C0PIPELINE",
    response_url: str = "",
    trigger_id: str = "trig-shortcut",
    team_id: str = "T0TEAM",
) -> dict[str, Any]:
    """A message_action payload: a message shortcut used on `message` (text, ts, blocks...)."""
    payload = _template(
        "MessageShortcutPayload.json",
        ("type", "callback_id", "trigger_id", "message_ts", "response_url", "token", "action_ts"),
    )
    ts = str(message.get("ts") or "1700000000.000200")
    payload.update(
        type="message_action",
        callback_id=callback_id,
        trigger_id=trigger_id,
        message_ts=ts,
        response_url=response_url,
        token="legacy",
        action_ts=f"{time.time():.6f}",
        team={"id": team_id, "domain": TEAM_DOMAIN},
        user=_user(user_id, team_id),
        channel={"id": channel_id, "name": _CHANNEL_NAMES.get(channel_id, "channel")},
        message={"type": "message", "user": "UREP1", "ts": ts, **message},
        enterprise=None,
        is_enterprise_install=False,
    )
    return payload


def block_suggestion_payload(
    *,
    user_id: str,
    action_id: str,
    block_id: str,
    value: str,
    callback_id: str,
    view_id: str = "V0001",
    team_id: str = "T0TEAM",
) -> dict[str, Any]:
    """A block_suggestion payload: an external select in a modal asking for options."""
    return {
        "type": "block_suggestion",
        "user": _user(user_id, team_id),
        "container": {"type": "view", "view_id": view_id},
        "api_app_id": API_APP_ID,
        "token": "legacy",
        "action_id": action_id,
        "block_id": block_id,
        "value": value,
        "team": {"id": team_id, "domain": TEAM_DOMAIN},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": {
            "id": view_id,
            "team_id": team_id,
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": "",
            "state": {"values": {}},
            "app_id": API_APP_ID,
        },
    }


def form_body(payload: dict[str, Any]) -> bytes:
    """Encode an interactivity payload as Slack sends it: `payload=<url-encoded JSON>`."""
    return urlencode({"payload": json.dumps(payload)}).encode()
