"""Slack side of the outbox: render views from current state and make one Web API call per row."""

from __future__ import annotations

import base64
import http.client
import logging
import re
import urllib.error
from collections.abc import Callable
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.crm import CRM
from bot.core.db import transaction
from bot.core.delivery import (
    Deferred,
    Delivered,
    Failed,
    Outcome,
    PostedMessage,
    RateLimited,
    Unavailable,
)
from bot.core.models import Lead, MqlCycle, OutboxMessage, SlackMessage
from bot.core.playbook import Playbook
from bot.core.touches import touch_count
from bot.core.writeback import lead_ref
from bot.delivery.deal_support import POSTING_KINDS, DealSupportDelivery
from bot.delivery.flood import FLOOD_KINDS, FloodDelivery
from bot.delivery.history import find_posted, outbox_metadata, posted_by, recent_messages
from bot.views.lead_card import build_lead_card, build_owner_dm

log = logging.getLogger(__name__)

CARD_EVENT = "revbot_lead_card"
DIGEST_EVENT = "revbot_digest"
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
TRANSIENT_ERRORS = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
}
NETWORK_ERRORS = (
    urllib.error.URLError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
    OSError,
)
WAIT_FOR_CARD_SECONDS = 2.0
# Kinds whose lost answer may hide a post that happened: retried only after a history check.
POSTING = (outbox.SLACK_CARD, outbox.SLACK_DM, outbox.SLACK_FILE, outbox.SLACK_MESSAGE)


class SlackDelivery:
    """Delivers `slack.*` outbox rows; never writes to the database itself (the dispatcher does)."""

    def __init__(self, client: WebClient, engine: Engine, playbook: Playbook, crm: CRM) -> None:
        self._client = client
        self._engine = engine
        self._playbook = playbook
        self._crm = crm
        self._channel_ids: dict[str, str] = {}
        self._handlers: dict[str, Callable[[OutboxMessage], Outcome]] = {
            outbox.SLACK_CARD: self._post_card,
            outbox.SLACK_DM: self._post_dm,
            outbox.SLACK_REFRESH: self._refresh,
            outbox.SLACK_ALERT: self._alert,
            outbox.SLACK_MESSAGE: self._message,
            outbox.SLACK_FILE: self._digest,
        }
        deal_support = DealSupportDelivery(client, engine, playbook, self._channel_id)
        self._handlers.update(deal_support.handlers())
        self._handlers.update(FloodDelivery(client, engine, playbook, self._channel_id).handlers())

    def deliver(self, row: OutboxMessage) -> Outcome:
        """Make the Slack call this row stands for and say how it went."""
        handler = self._handlers.get(row.kind)
        if handler is None:
            return Failed(f"no Slack handler for outbox kind {row.kind!r}", retryable=False)
        try:
            return handler(row)
        except SlackApiError as exc:
            posting = row.kind in POSTING
            posting = posting or row.kind in POSTING_KINDS or row.kind in FLOOD_KINDS
            return _api_error(exc, posting=posting)
        except NETWORK_ERRORS as exc:
            return Unavailable(f"Slack unreachable: {type(exc).__name__}: {exc}", uncertain=True)

    def _render(
        self, session: Session, cycle_id: int, *, dm: bool = False
    ) -> tuple[MqlCycle, dict[str, Any]] | None:
        cycle = session.get(MqlCycle, cycle_id)
        lead = session.get(Lead, cycle.lead_id) if cycle else None
        if cycle is None or lead is None:
            return None
        build = build_owner_dm if dm else build_lead_card
        touches = touch_count(session, cycle_id) if cycle.first_touch_at else 0
        return cycle, build(
            lead,
            cycle,
            playbook=self._playbook,
            crm_url=self._crm.record_url(lead_ref(lead)),
            touches=touches,
        )

    def _post_card(self, row: OutboxMessage) -> Outcome:
        cycle_id = int(row.payload["cycle_id"])
        channel = str(row.payload["channel"])
        with transaction(self._engine) as session:
            if _message(session, cycle_id, "card") is not None:
                return Delivered(result={"note": "card already posted"})
            rendered = self._render(session, cycle_id)
            thread_ts, parent = None, None
            thread_of = row.payload.get("thread_of")
            if thread_of is not None:
                parent = _message(session, int(thread_of), "card")
                if parent is None and outbox.undelivered(session, f"card:{thread_of}"):
                    return Deferred(WAIT_FOR_CARD_SECONDS, "waiting for the original card")
                thread_ts = parent.ts if parent else None
        if rendered is None:
            return Delivered(result={"skipped": "cycle no longer exists"})
        cycle, view = rendered
        channel_id = None
        if row.uncertain:
            channel_id = parent.channel if thread_ts and parent else self._channel_id(channel)
        return self._post(row, cycle, "card", channel, channel_id, view, thread_ts=thread_ts)

    def _post_dm(self, row: OutboxMessage) -> Outcome:
        cycle_id = int(row.payload["cycle_id"])
        user = str(row.payload["user"])
        with transaction(self._engine) as session:
            rendered = self._render(session, cycle_id, dm=True)
        if rendered is None:
            return Delivered(result={"skipped": "cycle no longer exists"})
        cycle, view = rendered
        channel_id = (
            self._client.conversations_open(users=user)["channel"]["id"] if row.uncertain else None
        )
        return self._post(row, cycle, "dm", user, channel_id, view)

    def _post(
        self,
        row: OutboxMessage,
        cycle: MqlCycle,
        role: str,
        channel: str,
        channel_id: str | None,
        view: dict[str, Any],
        *,
        thread_ts: str | None = None,
    ) -> Outcome:
        """Post a cycle's message, unless an earlier unconfirmed attempt already did."""
        assert cycle.id is not None
        if row.uncertain and channel_id:
            found = self._find_posted(
                channel_id, cycle.id, since=row.created_at, thread_ts=thread_ts
            )
            if found:
                return Delivered(
                    PostedMessage(cycle.id, role, channel_id, found), {"reconciled": True}
                )
        response = self._client.chat_postMessage(
            channel=channel,
            text=view["text"],
            blocks=view["blocks"],
            thread_ts=thread_ts,
            reply_broadcast=bool(thread_ts),
            unfurl_links=False,
            unfurl_media=False,
            metadata={
                "event_type": CARD_EVENT,
                "event_payload": {"cycle_id": cycle.id, "lead_id": cycle.lead_id},
            },
        )
        if not CHANNEL_ID.match(channel) and channel.startswith("#"):
            self._channel_ids[channel.lstrip("#")] = response["channel"]
        return Delivered(PostedMessage(cycle.id, role, response["channel"], response["ts"]))

    def _refresh(self, row: OutboxMessage) -> Outcome:
        cycle_id = int(row.payload["cycle_id"])
        with transaction(self._engine) as session:
            messages = list(
                session.exec(select(SlackMessage).where(SlackMessage.cycle_id == cycle_id)).all()
            )
            waiting = outbox.undelivered(session, f"card:{cycle_id}") or outbox.undelivered(
                session, f"dm:{cycle_id}"
            )
            card = self._render(session, cycle_id)
            dm = self._render(session, cycle_id, dm=True)
        if waiting:
            # The card is still being posted; it will show the new state, but wait so we update it too.
            return Deferred(WAIT_FOR_CARD_SECONDS, "waiting for the card to be posted")
        if card is None or dm is None:
            return Delivered(result={"skipped": "cycle no longer exists"})
        for message in messages:
            view = dm[1] if message.role == "dm" else card[1]
            self._client.chat_update(
                channel=message.channel, ts=message.ts, text=view["text"], blocks=view["blocks"]
            )
        return Delivered(result={"updated": len(messages)})

    def _message(self, row: OutboxMessage) -> Outcome:
        thread_ts, channel = None, str(row.payload["channel"])
        channel_id: str | None = None
        thread_of = row.payload.get("thread_of")
        if thread_of is not None:
            with transaction(self._engine) as session:
                card = _message(session, int(thread_of), "card")
                if card is None and outbox.undelivered(session, f"card:{thread_of}"):
                    return Deferred(WAIT_FOR_CARD_SECONDS, "waiting for the card to thread under")
                # A re-qualified lead's card is itself a reply: its thread is the first card's.
                card = _thread_root(session, int(thread_of)) or card
            if card is not None:
                thread_ts, channel, channel_id = card.ts, card.channel, card.channel
        if row.uncertain and channel_id is None:
            channel_id = self._conversation_id(channel)
        found = posted_by(self._client, channel_id, row, thread_ts=thread_ts)
        if found and channel_id:
            return Delivered(result={"channel": channel_id, "ts": found, "reconciled": True})
        response = self._client.chat_postMessage(
            channel=channel,
            text=row.payload["text"],
            blocks=row.payload.get("blocks") or None,
            thread_ts=thread_ts,
            unfurl_links=False,
            metadata=outbox_metadata(row),
        )
        return Delivered(result={"channel": response["channel"], "ts": response["ts"]})

    def _conversation_id(self, target: str) -> str | None:
        """The ID of a channel given by name or ID, or of the DM with a user."""
        if target[:1] in ("U", "W"):
            return str(self._client.conversations_open(users=target)["channel"]["id"])
        return self._channel_id(target)

    def _digest(self, row: OutboxMessage) -> Outcome:
        """The scoreboard message, then its chart uploaded with files_upload_v2 right below it.

        Each step is skipped when the conversation's history shows it already happened, so a
        retry after a failed or lost upload never posts the scoreboard twice.
        """
        p = row.payload
        target = str(p["channel"])
        channel_id = self._conversation_id(target)
        if channel_id is None:
            return Failed(f"Slack channel {target} not found", retryable=False)
        posted, shared = self._find_digest(channel_id, p, since=row.created_at)
        if posted is None:
            response = self._client.chat_postMessage(
                channel=channel_id,
                text=p["text"],
                blocks=p["blocks"],
                unfurl_links=False,
                unfurl_media=False,
                metadata={"event_type": DIGEST_EVENT, "event_payload": {"week": p["week"]}},
            )
            posted = str(response["ts"])
        if not shared:
            try:
                self._client.files_upload_v2(
                    channel=channel_id,
                    file=base64.b64decode(p["png"]),
                    filename=p["filename"],
                    title=p["title"],
                    initial_comment="Trend: MQLs delivered, acceptance and median time to accept.",
                )
            except SlackRequestError as exc:  # the upload URL refused the bytes
                return Failed(f"Slack file upload failed: {exc}", retryable=True)
        return Delivered(result={"channel": channel_id, "ts": posted})

    def _find_digest(
        self, channel_id: str, payload: dict[str, Any], *, since: datetime
    ) -> tuple[str | None, bool]:
        """The ts of this digest's message and whether its chart is shared, from recent history."""
        posted, shared = None, False
        for message in recent_messages(self._client, channel_id, since=since):
            metadata = message.get("metadata") or {}
            if (
                metadata.get("event_type") == DIGEST_EVENT
                and metadata.get("event_payload", {}).get("week") == payload["week"]
            ):
                posted = str(message["ts"])
            names = {f.get("name") for f in message.get("files") or []}
            shared = shared or payload["filename"] in names
        return posted, shared

    def _alert(self, row: OutboxMessage) -> Outcome:
        response = self._client.chat_postMessage(
            channel=row.payload["channel"], text=row.payload["text"]
        )
        return Delivered(result={"channel": response["channel"], "ts": response["ts"]})

    def _channel_id(self, channel: str) -> str | None:
        """The ID of a channel configured by name (history needs IDs); looked up once, then cached."""
        if CHANNEL_ID.match(channel):
            return channel
        name = channel.lstrip("#")
        if name not in self._channel_ids:
            cursor = None
            while True:
                page = self._client.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=1000,
                    cursor=cursor,
                )
                channels: list[dict[str, Any]] = page.get("channels", [])
                self._channel_ids.update({c["name"]: c["id"] for c in channels})
                cursor = (page.get("response_metadata") or {}).get("next_cursor")
                if not cursor or name in self._channel_ids:
                    break
        return self._channel_ids.get(name)

    def _find_posted(
        self, channel_id: str, cycle_id: int, *, since: datetime, thread_ts: str | None = None
    ) -> str | None:
        """The ts of a message for this cycle that an earlier, unconfirmed attempt did post."""
        return find_posted(
            self._client,
            channel_id,
            CARD_EVENT,
            {"cycle_id": cycle_id},
            since=since,
            thread_ts=thread_ts,
        )


def _message(session: Session, cycle_id: int, role: str) -> SlackMessage | None:
    return session.exec(
        select(SlackMessage).where(SlackMessage.cycle_id == cycle_id, SlackMessage.role == role)
    ).first()


def _thread_root(session: Session, cycle_id: int) -> SlackMessage | None:
    cycle = session.get(MqlCycle, cycle_id)
    if cycle is None or cycle.seq == 1:
        return None
    return session.exec(
        select(SlackMessage)
        .join(MqlCycle, col(MqlCycle.id) == col(SlackMessage.cycle_id))
        .where(MqlCycle.lead_id == cycle.lead_id, SlackMessage.role == "card")
        .order_by(col(MqlCycle.seq))
    ).first()


def _api_error(exc: SlackApiError, *, posting: bool) -> Outcome:
    response = exc.response
    status = getattr(response, "status_code", 200)
    error = str(response.get("error", "")) if hasattr(response, "get") else ""
    if status == 429 or error == "ratelimited":
        headers = getattr(response, "headers", {}) or {}
        retry_after = next((v for k, v in headers.items() if k.lower() == "retry-after"), "1")
        try:
            return RateLimited(max(float(retry_after), 1.0))
        except ValueError:
            return RateLimited(1.0)
    if status >= 500 or error in TRANSIENT_ERRORS:
        return Unavailable(
            f"Slack error {status} {error}".strip(), uncertain=posting and status >= 500
        )
    return Failed(f"Slack refused the call: {error or status}", retryable=False)
