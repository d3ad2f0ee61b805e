"""Store queries behind /pipeline, /lead and the App Home, and the checks on lookup text.

Every query applies the viewer's access in SQL (see `bot.core.access`), so a lead someone may not
see never leaves the database for them; user text reaches SQL only as a bound LIKE value with its
wildcards escaped.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, func, or_, select
from sqlmodel import Session, col

from bot.core.access import Viewer
from bot.core.metrics import MEDIAN, Week, flag, percentiles, ratio, round_ms, seconds
from bot.core.models import (
    ACCEPTED,
    CLOSED_STATES,
    OPEN,
    REJECTED,
    DealSupportRequest,
    Lead,
    MqlCycle,
    Touch,
)
from bot.core.sql import LIKE_ESCAPE, like_escape

MAX_QUERY = 200
MAX_MATCHES = 10
QUEUE_LIMIT = 15

_SLACK_LINK = re.compile(r"<(?:mailto:|https?://)[^<>|]*\|([^<>]*)>|<mailto:([^<>|]*)>")
# Bidirectional overrides make text read differently from what it is ("Trojan Source").
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})


class BadQuery(Exception):
    """Lookup text revbot will not search for; `message` says why and what to type instead."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def clean_query(raw: str, *, usage: str) -> str:
    """The text a person typed after a slash command, as they typed it (Slack's escaping and
    mailto links undone), or BadQuery when it is empty, too long or holds control characters."""
    text = _SLACK_LINK.sub(lambda m: m.group(1) or m.group(2) or "", raw)
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()
    if not text:
        raise BadQuery(usage)
    if len(text) > MAX_QUERY:
        raise BadQuery(
            f"That is {len(text):,} characters; lookups take at most {MAX_QUERY}. {usage}"
        )
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI_CONTROLS for ch in text):
        raise BadQuery(
            "That text holds control characters (line breaks, tabs or invisible formatting); "
            f"type it on one line. {usage}"
        )
    return text


# -- visibility ---------------------------------------------------------------------------------


def _visible(who: Viewer) -> ColumnElement[bool]:
    """The cycles `who` may see: their pools' (or all), and any they own or acted on."""
    if who.sees_all:
        return col(MqlCycle.id).is_not(None)
    mine = or_(
        col(MqlCycle.owner_slack_id) == who.user_id,
        col(MqlCycle.accepted_by) == who.user_id,
        col(MqlCycle.closed_by) == who.user_id,
    )
    if not who.sees_pools:
        return mine
    return or_(col(MqlCycle.pool).in_(sorted(who.sees_pools)), mine)


def _latest_cycles() -> Any:
    """Each lead's most recent cycle number, as a subquery (lead_id, seq)."""
    return (
        select(col(MqlCycle.lead_id).label("lead_id"), func.max(MqlCycle.seq).label("seq"))
        .group_by(col(MqlCycle.lead_id))
        .subquery()
    )


# -- /lead --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeadMatch:
    """A lead found by /lead: its MQL cycles (oldest first) and the touches on the latest."""

    lead: Lead
    cycles: list[MqlCycle]
    touches: int = 0

    @property
    def latest(self) -> MqlCycle:
        """The lead's most recent MQL cycle."""
        return self.cycles[-1]


@dataclass(frozen=True)
class LeadSearch:
    """What /lead found among the leads the viewer may see (at most `MAX_MATCHES`, of `total`)."""

    text: str
    matches: list[LeadMatch]
    total: int

    @property
    def more(self) -> int:
        """How many matches were left out."""
        return self.total - len(self.matches)


def _matches_text(text: str, who: Viewer) -> ColumnElement[bool]:
    pattern = func.lower("%" + like_escape(text) + "%")

    def contains(column: Any) -> ColumnElement[bool]:
        # lower() on both sides: the backend folds case the same way for text and column.
        return func.lower(column).like(pattern, escape=LIKE_ESCAPE)

    name = func.coalesce(col(Lead.first_name), "") + " " + func.coalesce(col(Lead.last_name), "")
    # Without contact rights an email only finds its own lead, typed in full: a fragment such as
    # "@gmail" would otherwise tell people which leads have which addresses.
    email = (
        contains(Lead.email)
        if who.contact_details
        else func.lower(col(Lead.email)) == func.lower(text)
    )
    return or_(
        contains(name),
        contains(Lead.company),
        email,
        col(Lead.external_id) == text,
        col(Lead.crm_record_id) == text,
    )


def find_leads(session: Session, text: str, who: Viewer, *, limit: int = MAX_MATCHES) -> LeadSearch:
    """Leads matching `text` (name, company, email or id) that `who` may see, newest first."""
    latest = _latest_cycles()
    base = (
        select(Lead, MqlCycle)
        .join(latest, col(Lead.id) == latest.c.lead_id)
        .join(
            MqlCycle,
            and_(col(MqlCycle.lead_id) == latest.c.lead_id, col(MqlCycle.seq) == latest.c.seq),
        )
        .where(_matches_text(text, who), _visible(who))
    )
    total = int(session.execute(select(func.count()).select_from(base.subquery())).scalar_one())
    rows = session.execute(
        base.order_by(col(MqlCycle.received_at).desc(), col(Lead.id).desc()).limit(limit)
    ).all()
    leads = [lead for lead, _ in rows]
    history = _cycles_of(session, [lead.id for lead in leads if lead.id is not None])
    touches = touch_counts(session, [cycle.id for _, cycle in rows if cycle.id is not None])
    matches = [
        LeadMatch(lead, history.get(lead.id or 0) or [cycle], touches.get(cycle.id or 0, 0))
        for lead, cycle in rows
    ]
    return LeadSearch(text, matches, total)


def _cycles_of(session: Session, lead_ids: Sequence[int]) -> dict[int, list[MqlCycle]]:
    if not lead_ids:
        return {}
    found: dict[int, list[MqlCycle]] = defaultdict(list)
    rows = session.scalars(
        select(MqlCycle)
        .where(col(MqlCycle.lead_id).in_(lead_ids))
        .order_by(col(MqlCycle.lead_id), col(MqlCycle.seq))
    ).all()
    for cycle in rows:
        found[cycle.lead_id].append(cycle)
    return found


def touch_counts(session: Session, cycle_ids: Sequence[int]) -> dict[int, int]:
    """Touches logged per cycle, for the given cycles."""
    if not cycle_ids:
        return {}
    rows = session.execute(
        select(col(Touch.cycle_id), func.count())
        .where(col(Touch.cycle_id).in_(cycle_ids))
        .group_by(col(Touch.cycle_id))
    ).all()
    return {int(cycle_id): int(n) for cycle_id, n in rows}


# -- /pipeline (mine, @rep) and the App Home queue -------------------------------------------


@dataclass(frozen=True)
class QueueItem:
    """One lead in someone's queue."""

    lead: Lead
    cycle: MqlCycle


@dataclass(frozen=True)
class Queue:
    """A list of leads, cut at a limit (`total` says how many there are in all)."""

    items: list[QueueItem] = field(default_factory=list)
    total: int = 0

    @property
    def more(self) -> int:
        """How many were left out."""
        return self.total - len(self.items)


@dataclass(frozen=True)
class RepPipeline:
    """A rep's queue: open leads they own (most urgent first), unclaimed leads they may claim,
    and leads they accepted but have not touched yet."""

    rep_id: str
    open: Queue
    unclaimed: Queue
    untouched: Queue

    @property
    def empty(self) -> bool:
        """Nothing to do."""
        return not (self.open.total or self.unclaimed.total or self.untouched.total)


def _queue(session: Session, where: Iterable[ColumnElement[bool]], order: Any, limit: int) -> Queue:
    conditions = list(where)
    count = select(func.count()).select_from(MqlCycle).where(*conditions)
    total = int(session.execute(count).scalar_one())
    if not total:
        return Queue()
    rows = session.execute(
        select(Lead, MqlCycle)
        .join(MqlCycle, col(MqlCycle.lead_id) == col(Lead.id))
        .where(*conditions)
        .order_by(order, col(MqlCycle.id))
        .limit(limit)
    ).all()
    return Queue([QueueItem(lead, cycle) for lead, cycle in rows], total)


def rep_pipeline(
    session: Session,
    rep_id: str,
    *,
    claimable_pools: frozenset[str] = frozenset(),
    within_pools: frozenset[str] | None = None,
    limit: int = QUEUE_LIMIT,
) -> RepPipeline:
    """`rep_id`'s queue; `claimable_pools` adds those pools' unclaimed open leads, and
    `within_pools` (when given) keeps only leads of those pools."""
    scope: list[ColumnElement[bool]] = []
    if within_pools is not None:
        scope.append(col(MqlCycle.pool).in_(sorted(within_pools)) if within_pools else false())
    owned = col(MqlCycle.owner_slack_id) == rep_id
    is_open = col(MqlCycle.state) == OPEN
    unclaimed_where = [
        is_open,
        col(MqlCycle.owner_slack_id).is_(None),
        col(MqlCycle.pool).in_(sorted(claimable_pools)) if claimable_pools else false(),
        *scope,
    ]
    return RepPipeline(
        rep_id,
        open=_queue(session, [is_open, owned, *scope], col(MqlCycle.sla_due_at), limit),
        unclaimed=_queue(session, unclaimed_where, col(MqlCycle.sla_due_at), limit),
        untouched=_queue(
            session,
            [
                col(MqlCycle.state) == ACCEPTED,
                owned,
                col(MqlCycle.first_touch_at).is_(None),
                *scope,
            ],
            col(MqlCycle.accepted_at),
            limit,
        ),
    )


# -- /pipeline team ------------------------------------------------------------------------------


@dataclass
class Holder:
    """What one rep holds in a pool right now."""

    slack_id: str
    open: int = 0
    untouched: int = 0
    breaching: int = 0


@dataclass
class PoolSummary:
    """A pool right now: open leads by tier, unclaimed, past their SLA, accepted but untouched,
    who holds what; and this week's rejects and recycles."""

    pool: str
    open_by_tier: dict[str, int] = field(default_factory=dict)
    unclaimed: int = 0
    breaching: int = 0
    untouched: int = 0
    holders: dict[str, Holder] = field(default_factory=dict)
    rejected_this_week: int = 0
    recycled_this_week: int = 0

    @property
    def open(self) -> int:
        """Open leads, all tiers."""
        return sum(self.open_by_tier.values())


def team_summary(
    session: Session, pools: Iterable[str], *, now: datetime, week: Week
) -> list[PoolSummary]:
    """A summary of each pool (in the given order), counted in SQL."""
    names = list(pools)
    summaries = {name: PoolSummary(name) for name in names}
    if not names:
        return []
    breach = and_(col(MqlCycle.state) == OPEN, col(MqlCycle.sla_due_at) < now)
    live = or_(
        col(MqlCycle.state) == OPEN,
        and_(col(MqlCycle.state) == ACCEPTED, col(MqlCycle.first_touch_at).is_(None)),
    )
    keys = [
        col(MqlCycle.pool),
        col(MqlCycle.tier),
        col(MqlCycle.state),
        col(MqlCycle.owner_slack_id),
    ]
    rows = session.execute(
        select(*keys, func.count(), func.sum(flag(breach)))
        .where(col(MqlCycle.pool).in_(names), live)
        .group_by(*keys)
    ).all()
    for pool, tier, state, owner, n, breaching in rows:
        summary, n, breaching = summaries[pool], int(n), int(breaching or 0)
        holder = None
        if owner:
            holder = summary.holders.setdefault(owner, Holder(owner))
        if state == OPEN:
            summary.open_by_tier[tier] = summary.open_by_tier.get(tier, 0) + n
            summary.breaching += breaching
            if holder:
                holder.open += n
                holder.breaching += breaching
            else:
                summary.unclaimed += n
        else:
            summary.untouched += n
            if holder:
                holder.untouched += n
    closed = session.execute(
        select(col(MqlCycle.pool), col(MqlCycle.state), func.count())
        .where(
            col(MqlCycle.pool).in_(names),
            col(MqlCycle.state).in_(CLOSED_STATES),
            col(MqlCycle.closed_at) >= week.start,
            col(MqlCycle.closed_at) < week.end,
        )
        .group_by(col(MqlCycle.pool), col(MqlCycle.state))
    ).all()
    for pool, state, n in closed:
        if state == REJECTED:
            summaries[pool].rejected_this_week = int(n)
        else:
            summaries[pool].recycled_this_week = int(n)
    return [summaries[name] for name in names]


# -- a rep's week (App Home) --------------------------------------------------------------------


@dataclass(frozen=True)
class RepWeek:
    """A rep's week so far, as the digest's per-rep table counts it: the week's MQLs they own,
    how many they accepted, the median time to accept and SLA compliance."""

    week: Week
    owned: int
    accepted: int
    median_accept: float | None
    sla_met: int
    sla_decided: int

    @property
    def sla_rate(self) -> float | None:
        """met / decided, None without data."""
        return ratio(self.sla_met, self.sla_decided)


def rep_week(session: Session, rep_id: str, week: Week, *, now: datetime) -> RepWeek:
    """`rep_id`'s figures for `week` (cycles received in it), computed in SQL."""
    dialect = session.get_bind().dialect.name
    where = and_(
        col(MqlCycle.owner_slack_id) == rep_id,
        col(MqlCycle.received_at) >= week.start,
        col(MqlCycle.received_at) < week.end,
    )
    first = func.coalesce(col(MqlCycle.accepted_at), col(MqlCycle.closed_at))
    to_accept = seconds(dialect, MqlCycle.accepted_at, MqlCycle.received_at)
    columns: list[Any] = [
        func.count(),
        func.sum(flag(col(MqlCycle.accepted_at).is_not(None))),
        func.sum(flag(first <= col(MqlCycle.sla_due_at))),
        func.sum(flag(or_(first.is_not(None), col(MqlCycle.sla_due_at) < now))),
    ]
    if dialect == "postgresql":
        columns.append(func.percentile_cont(0.5).within_group(to_accept))
    row = session.execute(select(*columns).where(where)).one()
    owned, accepted, met, decided = (int(v or 0) for v in row[:4])
    if dialect == "postgresql":
        median = round_ms(row[4])
    else:
        owner: Any = col(MqlCycle.owner_slack_id)
        found = percentiles(session, owner, to_accept, where, (MEDIAN,))
        median = round_ms(found[rep_id][1][MEDIAN]) if rep_id in found else None
    return RepWeek(week, owned, accepted, median, met, decided)


# -- /deal --------------------------------------------------------------------------------------


def requests_for_deals(
    session: Session, deal_ids: Sequence[str]
) -> dict[str, list[DealSupportRequest]]:
    """#deal-support requests attached to each of these deals, newest first."""
    if not deal_ids:
        return {}
    found: dict[str, list[DealSupportRequest]] = defaultdict(list)
    rows = session.scalars(
        select(DealSupportRequest)
        .where(col(DealSupportRequest.deal_id).in_(list(deal_ids)))
        .order_by(col(DealSupportRequest.created_at).desc())
    ).all()
    for request in rows:
        found[request.deal_id or ""].append(request)
    return found
