"""Who is away: reps who said so with /revbot away (until a date, or until /revbot back)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, or_, select

from bot.core.models import RepAvailability


def set_away(session: Session, slack_id: str, *, now: datetime, until: datetime | None) -> None:
    """Mark a rep away, until `until` (or until they say they are back)."""
    row = session.get(RepAvailability, slack_id) or RepAvailability(
        slack_id=slack_id, updated_at=now
    )
    row.away, row.away_until, row.updated_at = True, until, now
    session.add(row)


def set_back(session: Session, slack_id: str, *, now: datetime) -> None:
    """Mark a rep available again."""
    row = session.get(RepAvailability, slack_id)
    if row is not None:
        row.away, row.away_until, row.updated_at = False, None, now
        session.add(row)


def away_reps(session: Session, *, now: datetime) -> set[str]:
    """Slack ids of reps who are away right now."""
    rows = session.exec(
        select(RepAvailability.slack_id).where(
            col(RepAvailability.away).is_(True),
            or_(col(RepAvailability.away_until).is_(None), col(RepAvailability.away_until) > now),
        )
    ).all()
    return set(rows)
