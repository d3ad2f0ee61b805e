"""Small Block Kit builders shared by revbot's views."""

from __future__ import annotations

from datetime import datetime
from typing import Any

Block = dict[str, Any]


def clip(text: str, limit: int) -> str:
    """Cut text to Slack's length limit, marking the cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def mrkdwn(text: str) -> Block:
    """A mrkdwn text object."""
    return {"type": "mrkdwn", "text": clip(text, 3000)}


def plain(text: str) -> Block:
    """A plain_text text object."""
    return {"type": "plain_text", "text": clip(text, 150), "emoji": True}


def escape(text: str) -> str:
    """Escape user text for mrkdwn so it cannot mention or link anyone."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def section(text: str, *, fields: list[str] | None = None) -> Block:
    """A section block, optionally with up to ten fields."""
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if fields:
        block["fields"] = [{"type": "mrkdwn", "text": clip(f, 2000)} for f in fields[:10]]
    return block


def context(*texts: str) -> Block:
    """A context block of mrkdwn lines."""
    return {"type": "context", "elements": [mrkdwn(t) for t in texts if t][:10]}


def button(
    text: str, action_id: str, *, value: str = "", style: str | None = None, url: str | None = None
) -> Block:
    """A button element."""
    element: Block = {"type": "button", "text": plain(text), "action_id": action_id}
    if value:
        element["value"] = value
    if style:
        element["style"] = style
    if url:
        element["url"] = url
    return element


def slack_date(moment: datetime, fmt: str = "{date_short_pretty} at {time}") -> str:
    """A date Slack renders in each reader's own timezone (with a UTC fallback)."""
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{fmt}|{fallback}>"


def option(text: str, value: str) -> Block:
    """An option of a select menu."""
    return {"text": plain(clip(text, 75)), "value": value}
