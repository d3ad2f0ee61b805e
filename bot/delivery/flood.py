"""Slack delivery of a flood: the summary message, then pages of leads in its thread."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import Engine

from bot.core import outbox
from bot.core.db import transaction
from bot.core.delivery import Deferred, Delivered, Outcome
from bot.core.flood import page_entries, summary_row
from bot.core.models import OutboxMessage
from bot.core.playbook import Playbook
from bot.delivery.history import outbox_metadata, posted_by
from bot.views.flood import build_flood_page, build_flood_summary

FLOOD_KINDS = (outbox.SLACK_FLOOD, outbox.SLACK_FLOOD_PAGE)
WAIT_FOR_SUMMARY_SECONDS = 1.0


@dataclass(frozen=True)
class FloodDelivery:
    """Posts flood summaries and their thread pages."""

    client: WebClient
    engine: Engine
    playbook: Playbook
    channel_id: Callable[[str], str | None]

    def handlers(self) -> dict[str, Callable[[OutboxMessage], Outcome]]:
        """The outbox kinds this class delivers."""
        return {outbox.SLACK_FLOOD: self._summary, outbox.SLACK_FLOOD_PAGE: self._page}

    def _summary(self, row: OutboxMessage) -> Outcome:
        view = build_flood_summary(
            int(row.payload["total"]), dict(row.payload["tiers"]), playbook=self.playbook
        )
        return self._post(row, str(row.payload["channel"]), view)

    def _page(self, row: OutboxMessage) -> Outcome:
        with transaction(self.engine) as session:
            summary = summary_row(session, str(row.payload["flood"]))
            if summary is not None and summary.state in (outbox.PENDING, outbox.IN_FLIGHT):
                return Deferred(WAIT_FOR_SUMMARY_SECONDS, "waiting for the flood summary")
            entries = page_entries(session, [int(i) for i in row.payload["cycle_ids"]])
            view = build_flood_page(entries, playbook=self.playbook)
        posted = summary.result if summary is not None else {}
        channel = str(posted.get("channel") or row.payload["channel"])
        return self._post(row, channel, view, thread_ts=posted.get("ts"))

    def _post(
        self,
        row: OutboxMessage,
        channel: str,
        view: dict[str, Any],
        *,
        thread_ts: str | None = None,
    ) -> Outcome:
        """Post, unless an earlier attempt whose answer was lost already did."""
        channel_id = self.channel_id(channel) if row.uncertain else None
        found = posted_by(self.client, channel_id, row, thread_ts=thread_ts)
        if found and channel_id:
            return Delivered(result={"channel": channel_id, "ts": found, "reconciled": True})
        response = self.client.chat_postMessage(
            channel=channel,
            thread_ts=thread_ts,
            text=view["text"],
            blocks=view["blocks"],
            unfurl_links=False,
            metadata=outbox_metadata(row),
        )
        return Delivered(result={"channel": response["channel"], "ts": response["ts"]})
