"""Slack side of #deal-support outbox rows: post the request card, update it in place, post lines
in its thread and DMs, each rendered from the request's current state.

Unlike lead cards (whose location the dispatcher records in `slack_messages`), a request keeps
its card's channel and ts on its own row: the card handler writes them right after posting. A
post whose outcome was lost is found again in the channel's history by its message metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from slack_sdk import WebClient
from sqlalchemy import Engine, update
from sqlmodel import col

from bot.core import outbox
from bot.core.db import transaction
from bot.core.deal_support import DS_CARD, DS_DM, DS_REFRESH, DS_REPLY
from bot.core.delivery import Deferred, Delivered, Outcome
from bot.core.models import DealSupportRequest, OutboxMessage
from bot.core.playbook import Playbook
from bot.delivery.history import find_posted
from bot.views.deal_support import build_dm, build_request_card, build_thread_update

CARD_EVENT = "revbot_deal_support"
POSTING_KINDS = (DS_CARD,)  # the posts checked against history when their outcome was lost
WAIT_FOR_CARD_SECONDS = 2.0


@dataclass(frozen=True)
class DealSupportDelivery:
    """Delivers the `slack.ds_*` rows; `channel_id` resolves a configured channel to its ID."""

    client: WebClient
    engine: Engine
    playbook: Playbook
    channel_id: Callable[[str], str | None]

    def handlers(self) -> dict[str, Callable[[OutboxMessage], Outcome]]:
        """The outbox kinds this class delivers, for SlackDelivery's dispatch table."""
        return {
            DS_CARD: self._post_card,
            DS_REFRESH: self._refresh,
            DS_REPLY: self._reply,
            DS_DM: self._dm,
        }

    def _load(self, request_id: int) -> tuple[DealSupportRequest | None, bool]:
        """The request, and whether its card is still waiting in the outbox."""
        with transaction(self.engine) as session:
            request = session.get(DealSupportRequest, request_id)
            return request, outbox.undelivered(session, f"ds:{request_id}:card")

    def _post_card(self, row: OutboxMessage) -> Outcome:
        request_id = int(row.payload["request_id"])
        channel = str(row.payload["channel"])
        request, _ = self._load(request_id)
        if request is None:
            return Delivered(result={"skipped": "request no longer exists"})
        if request.card_ts:
            return Delivered(result={"note": "card already posted"})
        if row.uncertain:
            channel_id = self.channel_id(channel)
            found = self._find_card(channel_id, request_id, since=row.created_at)
            if channel_id and found:
                self._store_card(request_id, channel_id, found)
                return Delivered(result={"channel": channel_id, "ts": found, "reconciled": True})
        view = build_request_card(request, self.playbook)
        response = self.client.chat_postMessage(
            channel=channel,
            text=view["text"],
            blocks=view["blocks"],
            unfurl_links=False,
            unfurl_media=False,
            metadata={"event_type": CARD_EVENT, "event_payload": {"request_id": request_id}},
        )
        self._store_card(request_id, str(response["channel"]), str(response["ts"]))
        return Delivered(result={"channel": response["channel"], "ts": response["ts"]})

    def _store_card(self, request_id: int, channel: str, ts: str) -> None:
        # Only the location: the version (the state's compare-and-set) is left alone.
        with transaction(self.engine) as session:
            session.execute(
                update(DealSupportRequest)
                .where(
                    col(DealSupportRequest.id) == request_id,
                    col(DealSupportRequest.card_ts).is_(None),
                )
                .values(card_channel=channel, card_ts=ts)
            )

    def _find_card(self, channel_id: str | None, request_id: int, *, since: datetime) -> str | None:
        """The ts of this request's card if an earlier, unconfirmed attempt did post it."""
        if channel_id is None:
            return None
        return find_posted(
            self.client, channel_id, CARD_EVENT, {"request_id": request_id}, since=since
        )

    def _refresh(self, row: OutboxMessage) -> Outcome:
        request, waiting = self._load(int(row.payload["request_id"]))
        if request is None:
            return Delivered(result={"skipped": "request no longer exists"})
        if request.card_ts is None or request.card_channel is None:
            if waiting:
                return Deferred(WAIT_FOR_CARD_SECONDS, "waiting for the card to be posted")
            return Delivered(result={"skipped": "the card was never posted"})
        view = build_request_card(request, self.playbook)
        self.client.chat_update(
            channel=request.card_channel,
            ts=request.card_ts,
            text=view["text"],
            blocks=view["blocks"],
        )
        return Delivered(result={"updated": 1})

    def _reply(self, row: OutboxMessage) -> Outcome:
        request, waiting = self._load(int(row.payload["request_id"]))
        if request is None:
            return Delivered(result={"skipped": "request no longer exists"})
        if request.card_ts is None and waiting:
            return Deferred(WAIT_FOR_CARD_SECONDS, "waiting for the card to thread under")
        message = build_thread_update(str(row.payload["kind"]), request, self.playbook)
        threaded = request.card_ts is not None
        response = self.client.chat_postMessage(
            channel=request.card_channel or self.playbook.channels.deal_support,
            thread_ts=request.card_ts,
            reply_broadcast=bool(row.payload.get("broadcast")) and threaded,
            text=message["text"],
            blocks=message["blocks"],
            unfurl_links=False,
        )
        return Delivered(result={"channel": response["channel"], "ts": response["ts"]})

    def _dm(self, row: OutboxMessage) -> Outcome:
        request, _ = self._load(int(row.payload["request_id"]))
        if request is None:
            return Delivered(result={"skipped": "request no longer exists"})
        message = build_dm(str(row.payload["kind"]), request, self.playbook)
        response = self.client.chat_postMessage(
            channel=str(row.payload["user"]),
            text=message["text"],
            blocks=message["blocks"],
            unfurl_links=False,
        )
        return Delivered(result={"channel": response["channel"], "ts": response["ts"]})
