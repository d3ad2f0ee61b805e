"""Flood control: when more cards wait for a channel than it can post soon, list them in a thread.

Slack allows about one message a second per channel, so 5,000 MQLs from a webinar would take
well over an hour as cards. When more than `FLOOD_BACKLOG` cards wait for one channel, revbot
posts one summary message instead and lists the waiting leads in its thread, many per message;
hot leads still reach their owners' DMs, which have budgets of their own. While the flood lasts
(until `FLOOD_QUIET` passes without a new page), any backlog beyond a burst joins the thread.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from bot.core import outbox
from bot.core.models import Lead, MqlCycle, OutboxMessage

FLOOD_BACKLOG = 60  # a minute of one channel's posting budget
FLOOD_BURST = 3  # once a flood is on, a backlog this small still goes out as cards
FLOOD_QUIET = timedelta(minutes=2)
PAGE_SIZE = 100  # leads per thread message (ten sections of ten lines)


def flood_lane_key(lane: str) -> str:
    """The dedupe-key prefix of one lane's flood rows."""
    return f"flood:{lane}:"


def absorb(session: Session, lane: str, *, now: datetime) -> int:
    """Turn a channel's card backlog into thread pages of a flood summary; returns cards absorbed."""
    current = _active_flood(session, lane, now=now)
    threshold = FLOOD_BURST if current is not None else FLOOD_BACKLOG
    waiting = session.exec(
        select(OutboxMessage)
        .where(
            OutboxMessage.lane == lane,
            OutboxMessage.kind == outbox.SLACK_CARD,
            OutboxMessage.state == outbox.PENDING,
        )
        .order_by(
            col(OutboxMessage.priority),
            col(OutboxMessage.deadline_at).is_(None),
            col(OutboxMessage.deadline_at),
            col(OutboxMessage.id),
        )
        .with_for_update(skip_locked=True)
    ).all()
    if len(waiting) <= threshold:
        return 0
    channel = str(waiting[0].payload["channel"])
    cycle_ids = [int(row.payload["cycle_id"]) for row in waiting]
    tiers = _tiers(session, cycle_ids)
    if current is None:
        current = f"{flood_lane_key(lane)}{waiting[0].id}"
        outbox.enqueue(
            session,
            kind=outbox.SLACK_FLOOD,
            key=current,
            lane=lane,
            now=now,
            priority=outbox.PRIORITY_ALERT,
            payload={"channel": channel, "total": len(cycle_ids), "tiers": tiers},
        )
    for start in range(0, len(waiting), PAGE_SIZE):
        page = waiting[start : start + PAGE_SIZE]
        deadlines = [r.deadline_at for r in page if r.deadline_at is not None]
        outbox.enqueue(
            session,
            kind=outbox.SLACK_FLOOD_PAGE,
            key=f"{current}:page:{page[0].id}",
            lane=lane,
            now=now,
            priority=min(r.priority for r in page),
            deadline_at=min(deadlines) if deadlines else None,
            payload={
                "channel": channel,
                "flood": current,
                "cycle_ids": [int(r.payload["cycle_id"]) for r in page],
            },
        )
    for row in waiting:
        outbox.complete(session, row, now=now, result={"flood": current})
    return len(waiting)


def _active_flood(session: Session, lane: str, *, now: datetime) -> str | None:
    """The key of this lane's flood, while its latest page is younger than FLOOD_QUIET."""
    latest = session.exec(
        select(OutboxMessage)
        .where(
            OutboxMessage.lane == lane,
            col(OutboxMessage.kind).in_((outbox.SLACK_FLOOD, outbox.SLACK_FLOOD_PAGE)),
            col(OutboxMessage.created_at) >= now - FLOOD_QUIET,
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
    ).first()
    if latest is None:
        return None
    return latest.dedupe_key if latest.kind == outbox.SLACK_FLOOD else latest.payload["flood"]


def _tiers(session: Session, cycle_ids: list[int]) -> dict[str, int]:
    counts: Counter[str] = Counter()
    for start in range(0, len(cycle_ids), 500):
        chunk = cycle_ids[start : start + 500]
        counts.update(session.exec(select(MqlCycle.tier).where(col(MqlCycle.id).in_(chunk))).all())
    return dict(counts)


def summary_row(session: Session, key: str) -> OutboxMessage | None:
    """A flood's summary row (its result holds the channel and ts once posted)."""
    return session.exec(select(OutboxMessage).where(OutboxMessage.dedupe_key == key)).first()


def page_entries(session: Session, cycle_ids: list[int]) -> list[tuple[MqlCycle, Lead]]:
    """(cycle, lead) pairs of a page, in the page's order (missing cycles left out)."""
    rows = session.exec(
        select(MqlCycle, Lead)
        .join(Lead, col(Lead.id) == col(MqlCycle.lead_id))
        .where(col(MqlCycle.id).in_(cycle_ids))
    ).all()
    by_id = {cycle.id: (cycle, lead) for cycle, lead in rows}
    return [by_id[i] for i in cycle_ids if i in by_id]
