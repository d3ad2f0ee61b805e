"""Outcomes of delivering one outbox row, and how each one updates the outbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.core import outbox
from bot.core.models import OutboxMessage, SlackMessage
from bot.core.sql import insert_ignore


@dataclass(frozen=True)
class PostedMessage:
    """A Slack message revbot posted for a cycle (its card or the owner's DM)."""

    cycle_id: int
    role: str
    channel: str
    ts: str


@dataclass(frozen=True)
class Delivered:
    """The effect happened (or had already happened)."""

    posted: PostedMessage | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Deferred:
    """Not yet: the row waits for something else (e.g. the card it updates); no attempt is counted."""

    seconds: float
    why: str


@dataclass(frozen=True)
class RateLimited:
    """The platform asked revbot to wait; the whole lane pauses for `retry_after` seconds."""

    retry_after: float


@dataclass(frozen=True)
class Failed:
    """The attempt failed; `uncertain` when the effect may have happened anyway (lost response)."""

    error: str
    retryable: bool
    uncertain: bool = False


@dataclass(frozen=True)
class Unavailable:
    """The platform itself is failing (5xx, timeouts): the lane pauses (the worker sets for how
    long), and no attempt is counted against the row, so an outage of any length loses nothing
    and keeps the backlog's order."""

    error: str
    uncertain: bool = False
    retry_after: float = 0.0


Outcome = Delivered | Deferred | RateLimited | Unavailable | Failed


def record_outcome(
    session: Session, row_id: int, outcome: Outcome, *, now: datetime, alert_channel: str | None
) -> None:
    """Apply one delivery outcome to its outbox row (and remember posted messages)."""
    row = session.get(OutboxMessage, row_id)
    if row is None or row.state != outbox.IN_FLIGHT:
        return
    if isinstance(outcome, Delivered):
        if outcome.posted is not None:
            p = outcome.posted
            insert_ignore(
                session,
                SlackMessage,
                {
                    "cycle_id": p.cycle_id,
                    "role": p.role,
                    "channel": p.channel,
                    "ts": p.ts,
                    "created_at": now,
                },
            )
        result = dict(outcome.result)
        if outcome.posted is not None:
            result.update(channel=outcome.posted.channel, ts=outcome.posted.ts)
        outbox.complete(session, row, now=now, result=result)
    elif isinstance(outcome, Deferred):
        outbox.postpone(session, row, until=now + timedelta(seconds=outcome.seconds))
    elif isinstance(outcome, RateLimited):
        outbox.postpone(session, row, until=now + timedelta(seconds=outcome.retry_after))
    elif isinstance(outcome, Unavailable):
        row.last_error = outcome.error[:2000]
        outbox.postpone(
            session,
            row,
            until=now + timedelta(seconds=outcome.retry_after),
            uncertain=outcome.uncertain,
        )
    else:
        outbox.fail(
            session,
            row,
            outcome.error,
            now=now,
            retryable=outcome.retryable,
            alert_channel=alert_channel,
            uncertain=outcome.uncertain,
        )
