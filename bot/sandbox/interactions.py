"""What a person does in the sandbox page, turned into the signed requests Slack would send revbot."""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from slack_sdk.signature import SignatureVerifier

from bot.sandbox.workspace import OpenView, User, Workspace

TEAM = {"id": "T0SANDBOX", "domain": "revbot-sandbox"}
APP_ID = "A0REVBOT"
RESPONSE_URL_USES = 5


@dataclass
class _ResponseTarget:
    channel: str
    user: str
    message_ts: str | None
    uses: int = 0


class Interactions:
    """Builds Slack-shaped payloads (block actions, view submissions, commands, events) and posts them."""

    def __init__(
        self, workspace: Workspace, *, events_url: str, respond_base: str, signing_secret: str
    ) -> None:
        self.workspace = workspace
        self._events_url = events_url
        self._respond_base = respond_base
        self._verifier = SignatureVerifier(signing_secret)
        self._targets: dict[str, _ResponseTarget] = {}

    # -- transport ------------------------------------------------------------------------------

    def _post(self, body: bytes, content_type: str) -> requests.Response:
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": self._verifier.generate_signature(
                timestamp=timestamp, body=body.decode()
            ),
        }
        return requests.post(self._events_url, data=body, headers=headers, timeout=10)

    def _post_payload(self, payload: dict[str, Any]) -> requests.Response:
        return self._post(
            urlencode({"payload": json.dumps(payload)}).encode(),
            "application/x-www-form-urlencoded",
        )

    def _response_url(self, channel: str, user: str, message_ts: str | None) -> str:
        key = secrets.token_urlsafe(12)
        self._targets[key] = _ResponseTarget(channel, user, message_ts)
        return f"{self._respond_base}{key}"

    def respond(self, key: str, body: dict[str, Any]) -> bool:
        """Deliver a post to a response_url; False when it is unknown or used up (Slack allows 5)."""
        target = self._targets.get(key)
        if target is None or target.uses >= RESPONSE_URL_USES:
            return False
        target.uses += 1
        self.workspace.respond(target.channel, target.user, target.message_ts, body)
        return True

    # -- payloads -------------------------------------------------------------------------------

    def _user(self, user_id: str) -> dict[str, Any]:
        user = self.workspace.users[user_id]
        return {
            "id": user.id,
            "username": _handle(user),
            "name": _handle(user),
            "team_id": TEAM["id"],
        }

    def _base(self, kind: str, user_id: str) -> dict[str, Any]:
        return {
            "type": kind,
            "team": TEAM,
            "user": self._user(user_id),
            "api_app_id": APP_ID,
            "token": "sandbox",
            "is_enterprise_install": False,
            "enterprise": None,
        }

    def _channel(self, channel_id: str) -> dict[str, str]:
        name = next(
            (n for n, cid in self.workspace.channels.items() if cid == channel_id), "directmessage"
        )
        return {"id": channel_id, "name": name}

    def click(
        self,
        user_id: str,
        action: dict[str, Any],
        *,
        channel: str | None,
        message_ts: str | None,
        view: OpenView | None,
    ) -> requests.Response:
        """A button or select in a message, modal or App Home."""
        payload = self._base("block_actions", user_id)
        payload["trigger_id"] = self.workspace.issue_trigger(user_id)
        payload["actions"] = [{**action, "action_ts": f"{time.time():.6f}"}]
        if view is not None:
            payload["container"] = {"type": "view", "view_id": view.id}
            payload["view"] = _view_payload(view, {})
        else:
            assert channel is not None
            assert message_ts is not None
            message = self.workspace.message(channel, message_ts)
            payload["container"] = {
                "type": "message",
                "message_ts": message_ts,
                "channel_id": channel,
                "is_ephemeral": False,
            }
            payload["channel"] = self._channel(channel)
            payload["message"] = {
                "type": "message",
                "ts": message_ts,
                "text": message.text if message else "",
                "blocks": message.blocks if message else [],
                "bot_id": "B0REVBOT",
            }
            payload["response_url"] = self._response_url(channel, user_id, message_ts)
        return self._post_payload(payload)

    def submit(self, user_id: str, view: OpenView, values: dict[str, Any]) -> requests.Response:
        """A modal's Submit button."""
        payload = self._base("view_submission", user_id)
        payload["trigger_id"] = self.workspace.issue_trigger(user_id)
        payload["view"] = _view_payload(view, values)
        payload["response_urls"] = []
        return self._post_payload(payload)

    def close(self, user_id: str, view: OpenView) -> requests.Response | None:
        """A modal's Cancel button: Slack tells the app only when the view asked to be notified."""
        if not view.view.get("notify_on_close"):
            return None
        payload = self._base("view_closed", user_id)
        payload["view"] = _view_payload(view, {})
        payload["is_cleared"] = False
        return self._post_payload(payload)

    def suggest(
        self, user_id: str, view: OpenView, action_id: str, block_id: str, value: str
    ) -> requests.Response:
        """An external select asking revbot for options as the user types."""
        payload = self._base("block_suggestion", user_id)
        payload.update(
            container={"type": "view", "view_id": view.id},
            action_id=action_id,
            block_id=block_id,
            value=value,
            view=_view_payload(view, {}),
        )
        return self._post_payload(payload)

    def message_shortcut(
        self, user_id: str, callback_id: str, *, channel: str, message_ts: str
    ) -> requests.Response:
        """A message shortcut (the message's "More actions" menu) used on a message."""
        message = self.workspace.message(channel, message_ts)
        payload = self._base("message_action", user_id)
        payload.update(
            callback_id=callback_id,
            trigger_id=self.workspace.issue_trigger(user_id),
            message_ts=message_ts,
            action_ts=f"{time.time():.6f}",
            channel=self._channel(channel),
            message={
                "type": "message",
                "ts": message_ts,
                "text": message.text if message else "",
                "blocks": message.blocks if message else [],
            },
            response_url=self._response_url(channel, user_id, None),
        )
        return self._post_payload(payload)

    def command(self, user_id: str, channel: str, text: str) -> requests.Response:
        """A slash command typed in a channel's composer."""
        command, _, rest = text.strip().partition(" ")
        user = self.workspace.users[user_id]
        form = {
            "token": "sandbox",
            "team_id": TEAM["id"],
            "team_domain": TEAM["domain"],
            "channel_id": channel,
            "channel_name": self._channel(channel)["name"],
            "user_id": user_id,
            "user_name": _handle(user),
            "command": command,
            "text": rest.strip(),
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self._response_url(channel, user_id, None),
            "trigger_id": self.workspace.issue_trigger(user_id),
        }
        return self._post(urlencode(form).encode(), "application/x-www-form-urlencoded")

    def home_opened(self, user_id: str) -> requests.Response:
        """The user opened revbot's App Home tab."""
        user = self.workspace.users[user_id]
        now = time.time()
        envelope = {
            "token": "sandbox",
            "team_id": TEAM["id"],
            "api_app_id": APP_ID,
            "type": "event_callback",
            "event": {
                "type": "app_home_opened",
                "user": user_id,
                "channel": user.dm_channel,
                "tab": "home",
                "event_ts": f"{now:.6f}",
            },
            "event_id": f"Ev{secrets.token_hex(5).upper()}",
            "event_time": int(now),
            "authorizations": [{"team_id": TEAM["id"], "user_id": "U0REVBOT", "is_bot": True}],
        }
        return self._post(json.dumps(envelope).encode(), "application/json")


def _handle(user: User) -> str:
    return user.name.lower().replace(" ", ".")


def _view_payload(opened: OpenView, values: dict[str, Any]) -> dict[str, Any]:
    view = opened.view
    return {
        **view,
        "id": opened.id,
        "team_id": TEAM["id"],
        "app_id": APP_ID,
        "bot_id": "B0REVBOT",
        "private_metadata": view.get("private_metadata", ""),
        "callback_id": view.get("callback_id", ""),
        "state": {"values": values},
        "hash": secrets.token_hex(8),
        "root_view_id": opened.id,
        "previous_view_id": None,
        "clear_on_close": False,
        "notify_on_close": bool(view.get("notify_on_close")),
    }
