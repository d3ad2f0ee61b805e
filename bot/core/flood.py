"""Flood control: when more cards wait for a channel than it can post soon, list them in a thread.

Slack allows about one message a second per channel, so 5,000 MQLs from a webinar would take
well over an hour as cards. When more than `FLOOD_BACKLOG` cards wait for one channel, revbot
posts one summary message instead and lists the waiting leads in its thread, many per message;
hot leads still reach their owners' DMs, which have budgets of their own. While the flood lasts
(until `FLOOD_QUIET` passes without a new page), new cards join the page waiting to be posted,
or start a new one past a burst, so the channel posts pages rather than single cards.
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
    waiting_page = _waiting_page(session, lane) if current is not None else None
    if waiting_page is not None:
        threshold = 0  # a page is about to go out: everything waiting joins it
    elif current is not None:
        threshold = FLOOD_BURST
    else:
        threshold = FLOOD_BACKLOG
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
    if current is None:
        current = f"{flood_lane_key(lane)}{waiting[0].id}"
        outbox.enqueue(
            session,
            kind=outbox.SLACK_FLOOD,
            key=current,
            lane=lane,
            now=now,
            priority=outbox.PRIORITY_ALERT,
            payload={
                "channel": channel,
                "total": len(waiting),
                "tiers": _tiers(session, [int(r.payload["cycle_id"]) for r in waiting]),
            },
        )
    rest = list(waiting)
    if waiting_page is not None:
        room = PAGE_SIZE - len(waiting_page.payload["cycle_ids"])
        joining, rest = rest[:room], rest[room:]
        _add_to_page(waiting_page, joining)
        session.add(waiting_page)
    for start in range(0, len(rest), PAGE_SIZE):
        page = rest[start : start + PAGE_SIZE]
        outbox.enqueue(
            session,
            kind=outbox.SLACK_FLOOD_PAGE,
            key=f"{current}:page:{page[0].id}",
            lane=lane,
            now=now,
            priority=min(r.priority for r in page),
            deadline_at=_earliest(page),
            payload={"channel": channel, "flood": current, "cycle_ids": _cycle_ids(page)},
        )
    for row in waiting:
        outbox.complete(session, row, now=now, result={"flood": current})
    return len(waiting)


def _cycle_ids(rows: list[OutboxMessage]) -> list[int]:
    return [int(r.payload["cycle_id"]) for r in rows]


def _earliest(rows: list[OutboxMessage]) -> datetime | None:
    deadlines = [r.deadline_at for r in rows if r.deadline_at is not None]
    return min(deadlines) if deadlines else None


def _add_to_page(page: OutboxMessage, rows: list[OutboxMessage]) -> None:
    if not rows:
        return
    page.payload = {**page.payload, "cycle_ids": page.payload["cycle_ids"] + _cycle_ids(rows)}
    page.priority = min([page.priority, *(r.priority for r in rows)])
    earliest = _earliest([page, *rows])
    page.deadline_at = earliest


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


def _waiting_page(session: Session, lane: str) -> OutboxMessage | None:
    """A page of this lane not yet sent (locked, so no worker sends it while it grows)."""
    return session.exec(
        select(OutboxMessage)
        .where(
            OutboxMessage.lane == lane,
            OutboxMessage.kind == outbox.SLACK_FLOOD_PAGE,
            OutboxMessage.state == outbox.PENDING,
        )
        .order_by(col(OutboxMessage.id).desc())
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


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
