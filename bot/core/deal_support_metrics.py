"""The digest's #deal-support figures for one week, computed in SQL.

Definitions (every figure is about the requests *created* in the week):

- Requests by ask type: counts, most first.
- Time to first response: from `created_at` to the first marketer action (`claimed_at`, else
  `declined_at`), wall clock; median over the requests that got one.
- Time to delivery: from `created_at` to `delivered_at`, wall clock; median over delivered ones.
- Overdue: requests not delivered by the end of their due date (in the team's timezone):
  delivered after it, or still open or taken at `now` after it. Declined requests are not overdue.
- Top competitors: how often each competitor was named (case and spacing ignored), most first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
)
from sqlmodel import Session, col

from bot.core.deal_support import DECLINED, DELIVERED
from bot.core.deal_support_sla import due_end
from bot.core.metrics import MEDIAN, Week, as_int, percentiles, round_ms, seconds
from bot.core.models import DealSupportRequest, UTCDateTime
from bot.core.playbook import Playbook

TOP_COMPETITORS = 5


@dataclass(frozen=True)
class DealSupportWeek:
    """One week of #deal-support."""

    requests: int = 0
    by_type: list[tuple[str, int]] = field(default_factory=list)
    responded: int = 0
    median_first_response: float | None = None
    delivered: int = 0
    median_delivery: float | None = None
    declined: int = 0
    overdue: int = 0
    competitors: list[tuple[str, int]] = field(default_factory=list)


def deal_support_week(
    session: Session, playbook: Playbook, week: Week, *, now: datetime
) -> DealSupportWeek:
    """The #deal-support figures of `week` as of `now`."""
    r = DealSupportRequest
    in_week = and_(col(r.created_at) >= week.start, col(r.created_at) < week.end)
    dialect = session.get_bind().dialect.name
    by_type = session.execute(
        select(col(r.ask_type), func.count())
        .where(in_week)
        .group_by(col(r.ask_type))
        .order_by(func.count().desc(), col(r.ask_type))
    ).all()
    if not by_type:
        return DealSupportWeek()
    first = func.coalesce(col(r.claimed_at), col(r.declined_at))
    overdue = _overdue(session, playbook, in_week, now=now)
    totals = session.execute(
        select(
            func.sum(case((first.is_not(None), 1), else_=0)),
            func.sum(case((col(r.state) == DELIVERED, 1), else_=0)),
            func.sum(case((col(r.state) == DECLINED, 1), else_=0)),
            func.sum(overdue),
        ).where(in_week)
    ).one()
    responded, delivered, declined, late = (as_int(v) for v in totals)
    # A labelled column of a subquery, since the seconds helper takes columns, not expressions.
    answered = select(first.label("first_at"), col(r.created_at)).where(in_week).subquery()
    responses = (answered.c.first_at, answered.c.created_at)
    return DealSupportWeek(
        requests=sum(int(n) for _, n in by_type),
        by_type=[(str(code), int(n)) for code, n in by_type],
        responded=responded,
        median_first_response=_median(session, seconds(dialect, *responses), true()),
        delivered=delivered,
        median_delivery=_median(session, seconds(dialect, r.delivered_at, r.created_at), in_week),
        declined=declined,
        overdue=late,
        competitors=_competitors(session, in_week),
    )


def _overdue(
    session: Session, playbook: Playbook, in_week: ColumnElement[bool], *, now: datetime
) -> ColumnElement[int]:
    """1 for an overdue request, else 0; each due date's deadline is computed once in Python,
    since SQLite cannot convert between timezones."""
    r = DealSupportRequest
    days: list[date] = [
        d for (d,) in session.execute(select(col(r.due_on)).where(in_week).distinct()).all() if d
    ]
    if not days:
        return literal(0)
    deadline = case(
        *((col(r.due_on) == d, literal(due_end(playbook, d), UTCDateTime())) for d in days)
    )
    past = [d for d in days if due_end(playbook, d) <= now]
    late = or_(
        col(r.delivered_at) >= deadline,
        and_(col(r.delivered_at).is_(None), col(r.state) != DECLINED, col(r.due_on).in_(past)),
    )
    return case((late, 1), else_=0)


def _median(
    session: Session, value: ColumnElement[Any], where: ColumnElement[bool]
) -> float | None:
    found = percentiles(session, literal_column("0"), value, where, fractions=(MEDIAN,))
    if not found:
        return None
    _, values = next(iter(found.values()))
    return round_ms(values.get(MEDIAN))


def _competitors(session: Session, in_week: ColumnElement[bool]) -> list[tuple[str, int]]:
    r = DealSupportRequest
    key = func.lower(func.trim(col(r.competitor)))
    rows = session.execute(
        select(func.min(func.trim(col(r.competitor))), func.count())
        .where(in_week, col(r.competitor).is_not(None), func.trim(col(r.competitor)) != "")
        .group_by(key)
        .order_by(func.count().desc(), key)
        .limit(TOP_COMPETITORS)
    ).all()
    return [(str(name), int(n)) for name, n in rows]
