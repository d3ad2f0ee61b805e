"""Finding a message revbot already posted, by its metadata, after a post whose answer was lost."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from slack_sdk import WebClient

from bot.core.models import OutboxMessage

OUTBOX_EVENT = "revbot_outbox"
# Slack's clock and ours may differ a little; history is searched from a minute before the row.
CLOCK_SKEW_SECONDS = 60


def recent_messages(
    client: WebClient, channel_id: str, *, since: datetime, thread_ts: str | None = None
) -> list[dict[str, Any]]:
    """Messages of a conversation (or of one thread) since `since`, with their metadata."""
    oldest = f"{since.timestamp() - CLOCK_SKEW_SECONDS:.6f}"
    if thread_ts:
        page = client.conversations_replies(
            channel=channel_id, ts=thread_ts, oldest=oldest, include_all_metadata=True, limit=200
        )
    else:
        page = client.conversations_history(
            channel=channel_id, oldest=oldest, include_all_metadata=True, limit=200
        )
    messages: list[dict[str, Any]] = page.get("messages", [])
    return messages


def find_posted(
    client: WebClient,
    channel_id: str,
    event_type: str,
    payload: Mapping[str, Any],
    *,
    since: datetime,
    thread_ts: str | None = None,
) -> str | None:
    """The ts of a message whose metadata has `event_type` and every item of `payload`."""
    for message in recent_messages(client, channel_id, since=since, thread_ts=thread_ts):
        metadata = message.get("metadata") or {}
        found = metadata.get("event_payload") or {}
        if metadata.get("event_type") == event_type and all(
            found.get(k) == v for k, v in payload.items()
        ):
            return str(message["ts"])
    return None


def outbox_metadata(row: OutboxMessage) -> dict[str, Any]:
    """Message metadata naming the outbox row that posted it."""
    return {"event_type": OUTBOX_EVENT, "event_payload": {"outbox_id": row.id}}


def posted_by(
    client: WebClient, channel_id: str | None, row: OutboxMessage, *, thread_ts: str | None = None
) -> str | None:
    """The ts of the message an earlier, unconfirmed attempt of `row` posted, if it did."""
    if not row.uncertain or channel_id is None:
        return None
    return find_posted(
        client,
        channel_id,
        OUTBOX_EVENT,
        {"outbox_id": row.id},
        since=row.created_at,
        thread_ts=thread_ts,
    )
