"""The weekly scoreboard: handoff figures of one week and the weeks before it, computed in SQL.

Definitions (every figure is about the MQL cycles *received* in the week):

- A week runs from Monday 00:00 to the next Monday 00:00 in the team's timezone (ISO week), so
  a week around a DST change is 167 or 169 hours long.
- MQLs delivered: cycles whose `received_at` falls in the week.
- Responded: cycles someone acted on (`accepted_at` or `closed_at` set). Both rates share this
  denominator, so a week's open leads never dilute them:
  acceptance rate = accepted (`accepted_at` set) / responded;
  rejection rate = rejected (state `rejected`) / responded. A lead accepted and later
  rejected counts in both, so the two may add up to more than 100%.
- Time to accept: `accepted_at - received_at` (wall clock), median and p90.
- Time to first touch: `first_touch_at - accepted_at`, median and p90.
- Percentiles interpolate linearly between the two nearest values (PostgreSQL's
  `percentile_cont`); the median of 4 values is the mean of the middle two.
- SLA compliance (per tier and overall): met / decided, where met means the first response
  (`accepted_at`, else `closed_at`) came at or before `sla_due_at`, and decided adds the open
  cycles already past `sla_due_at` at `now` (misses). Open cycles still inside their SLA at
  `now` are not counted yet.
- Top reasons: counts of `reason_code` among the week's rejected and recycled cycles.
- Per rep (the cycle's owner): cycles owned, accepted, median time to accept, SLA compliance,
  rejected, recycled.
- Nudges, escalations, reassignments, limbo alerts: SLA events *created* in the week.
- A rate with a zero denominator is None ("no data"), never a division by zero.

Every query filters on the weeks it reports on and returns aggregates only: percentiles are
PostgreSQL's `percentile_cont`, and on SQLite (which has none) a window function ranks the rows
and only the one or two rows around each rank come back. Nothing loads a table into Python.
The reported and previous week are counted in one pass, grouped by every breakdown at once
(tier, state, reason, owner, lead source); the counts it returns also size the percentile
ranks, so SQLite does not count the ranked rows a second time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, case, func, literal, or_, select, text
from sqlmodel import Session, col

from bot.core.models import RECYCLED, REJECTED, Lead, LeadOutcomeRecord, MqlCycle, SlaEvent
from bot.core.playbook import DigestTargets, Playbook

if TYPE_CHECKING:
    from bot.core.deal_support_metrics import DealSupportWeek

ISO_WEEK = re.compile(r"^(\d{4})-W(\d{2})$")
SLA_EVENT_KINDS = ("nudge", "escalate", "reassign", "limbo", "unassigned")
TOP_REASONS = 3
PG_WORK_MEM = "64MB"
MEDIAN, P90 = (1, 2), (9, 10)  # percentiles as exact fractions, so ranks match SQL's integer math


@dataclass(frozen=True)
class Week:
    """One ISO week in the team's timezone; `start` and `end` are UTC instants."""

    label: str
    monday: date
    start: datetime
    end: datetime


def week_of(playbook: Playbook, monday: date) -> Week:
    """The week starting on `monday` (a date in the team's timezone)."""
    zone = playbook.zone
    start = datetime.combine(monday, time(0), tzinfo=zone).astimezone(UTC)
    end = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone).astimezone(UTC)
    year, number, _ = monday.isocalendar()
    return Week(f"{year}-W{number:02d}", monday, start, end)


def week_bounds(playbook: Playbook, when: str | datetime) -> Week:
    """The week named "YYYY-Www", or the week an aware datetime falls in (team's timezone)."""
    if isinstance(when, datetime):
        local = when.astimezone(playbook.zone).date()
        return week_of(playbook, local - timedelta(days=local.weekday()))
    match = ISO_WEEK.match(when.strip())
    if match is None:
        raise ValueError(f"{when!r} is not an ISO week; write it as YYYY-Www, e.g. 2026-W47")
    year, number = int(match[1]), int(match[2])
    try:
        return week_of(playbook, date.fromisocalendar(year, number, 1))
    except ValueError:
        raise ValueError(
            f"{year} has no week {number}; ISO weeks run from W01 to W52 or W53"
        ) from None


def last_complete_week(playbook: Playbook, now: datetime) -> Week:
    """The most recent week that has ended by `now` (what a Monday-morning digest reports)."""
    current = week_bounds(playbook, now)
    return week_of(playbook, current.monday - timedelta(days=7))


def ratio(part: int, whole: int) -> float | None:
    """part / whole, or None when there is nothing to divide by."""
    return part / whole if whole else None


@dataclass(frozen=True)
class Quantiles:
    """Median and p90 of a duration, in seconds (None without data)."""

    median: float | None = None
    p90: float | None = None
    count: int = 0


@dataclass(frozen=True)
class TierSla:
    """SLA compliance of one tier in one week."""

    tier: str
    label: str
    met: int
    decided: int

    @property
    def rate(self) -> float | None:
        """met / decided."""
        return ratio(self.met, self.decided)


@dataclass(frozen=True)
class ReasonCount:
    """How often one reject or recycle reason was given."""

    code: str
    label: str
    count: int


@dataclass(frozen=True)
class SourceRow:
    """MQLs of one lead source and how sales responded to them."""

    source: str
    mqls: int
    accepted: int
    responded: int

    @property
    def acceptance_rate(self) -> float | None:
        """accepted / responded."""
        return ratio(self.accepted, self.responded)


@dataclass(frozen=True)
class WeekFigures:
    """Everything the scoreboard says about one week."""

    week: Week
    mqls: int = 0
    responded: int = 0
    accepted: int = 0
    rejected: int = 0
    recycled: int = 0
    open: int = 0
    time_to_accept: Quantiles = Quantiles()
    time_to_first_touch: Quantiles = Quantiles()
    sla: list[TierSla] = field(default_factory=list)
    sla_events: dict[str, int] = field(default_factory=dict)
    reject_reasons: list[ReasonCount] = field(default_factory=list)
    recycle_reasons: list[ReasonCount] = field(default_factory=list)
    sources: list[SourceRow] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float | None:
        """accepted / responded."""
        return ratio(self.accepted, self.responded)

    @property
    def rejection_rate(self) -> float | None:
        """rejected / responded."""
        return ratio(self.rejected, self.responded)

    @property
    def sla_met(self) -> int:
        """Cycles that got their first response within the SLA, all tiers."""
        return sum(t.met for t in self.sla)

    @property
    def sla_decided(self) -> int:
        """Cycles whose SLA outcome is known (responded, or open past due), all tiers."""
        return sum(t.decided for t in self.sla)

    @property
    def sla_rate(self) -> float | None:
        """SLA compliance over all tiers."""
        return ratio(self.sla_met, self.sla_decided)

    def source(self, name: str) -> SourceRow | None:
        """The row of one lead source, if it had MQLs this week."""
        return next((s for s in self.sources if s.source == name), None)

    def tier(self, name: str) -> TierSla | None:
        """The SLA figures of one tier."""
        return next((t for t in self.sla if t.tier == name), None)


@dataclass(frozen=True)
class RepRow:
    """One rep's week (as the owner of the week's cycles)."""

    slack_id: str
    owned: int
    accepted: int
    rejected: int
    recycled: int
    sla_met: int
    sla_decided: int
    median_accept: float | None

    @property
    def sla_rate(self) -> float | None:
        """The rep's SLA compliance."""
        return ratio(self.sla_met, self.sla_decided)


@dataclass(frozen=True)
class TrendPoint:
    """One week of the trend chart."""

    week: Week
    mqls: int
    acceptance_rate: float | None
    median_accept: float | None


@dataclass(frozen=True)
class Outcomes:
    """CRM outcomes of a week's MQLs: conversion to SQL, pipeline created, win rate."""

    sqls: int
    mql_to_sql: float | None
    pipeline_created: float
    win_rate: float | None
    pipeline_by_source: dict[str, float] = field(default_factory=dict)
    win_rate_by_source: dict[str, float | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Alarm:
    """A figure on the wrong side of its playbook target."""

    key: str
    message: str


@dataclass(frozen=True)
class Scoreboard:
    """The week, the week before (for changes), the per-rep table and the trend."""

    current: WeekFigures
    previous: WeekFigures
    reps: list[RepRow]
    trend: list[TrendPoint]
    targets: DigestTargets
    outcomes: Outcomes | None = None
    previous_outcomes: Outcomes | None = None
    deal_support: DealSupportWeek | None = None
    previous_deal_support: DealSupportWeek | None = None

    @property
    def alarms(self) -> list[Alarm]:
        """Targets missed this week: volume and acceptance below, rejection above, SLA below."""
        t, week = self.targets, self.current
        found: list[Alarm] = []
        if t.weekly_mqls is not None and week.mqls < t.weekly_mqls:
            found.append(
                Alarm(
                    "mqls",
                    f"{week.mqls:,} MQLs delivered, below the commitment of {t.weekly_mqls:,}",
                )
            )
        if week.acceptance_rate is not None and week.acceptance_rate < t.acceptance_min:
            found.append(
                Alarm(
                    "acceptance",
                    f"acceptance {_pct(week.acceptance_rate)} is below the {_pct(t.acceptance_min)} target",
                )
            )
        if week.rejection_rate is not None and week.rejection_rate > t.rejection_max:
            found.append(
                Alarm(
                    "rejection",
                    f"rejection {_pct(week.rejection_rate)} is above the {_pct(t.rejection_max)} limit",
                )
            )
        for tier in week.sla:
            if tier.rate is not None and tier.rate < t.sla_compliance_min:
                found.append(
                    Alarm(
                        f"sla:{tier.tier}",
                        f"{tier.label} SLA compliance {_pct(tier.rate)} is below the "
                        f"{_pct(t.sla_compliance_min)} target",
                    )
                )
        return found


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%"


def weekly_scoreboard(
    session: Session,
    playbook: Playbook,
    week: Week | datetime,
    *,
    now: datetime,
    weeks: int | None = None,
) -> Scoreboard:
    """The scoreboard of `week` (a Week, or its start), with `weeks` weeks of trend up to it."""
    if isinstance(week, datetime):
        week = week_bounds(playbook, week)
    span = max(weeks or playbook.digest.weeks, 2)
    window = [week_of(playbook, week.monday - timedelta(days=7 * k)) for k in range(span)]
    q = _Queries(session, window, now)
    if q.dialect == "postgresql":
        # Room for the percentile sorts to stay in memory (this transaction only).
        session.execute(text(f"SET LOCAL work_mem = '{PG_WORK_MEM}'"))
    recent = q.recent()
    totals, accept_times, touch_times = q.weekly(touched=recent.touched())
    events = q.sla_events()

    def figures(k: int) -> WeekFigures:
        return _week_figures(
            playbook,
            window[k],
            recent.breakdown(k),
            accept_times.get(k, Quantiles()),
            touch_times.get(k, Quantiles()),
            events.get(k, {}),
            recent.sources(k),
        )

    current, previous = figures(0), figures(1)
    trend = []
    for k in reversed(range(span)):
        mqls, accepted, responded = totals.get(k, (0, 0, 0))
        trend.append(
            TrendPoint(
                window[k], mqls, ratio(accepted, responded), accept_times.get(k, Quantiles()).median
            )
        )
    return Scoreboard(
        current=current,
        previous=previous,
        reps=q.reps(recent),
        trend=trend,
        targets=playbook.digest.targets,
        outcomes=crm_outcomes(session, window[0]),
        previous_outcomes=crm_outcomes(session, window[1]),
        deal_support=_deal_support(session, playbook, window[0], now=now),
        previous_deal_support=_deal_support(session, playbook, window[1], now=now),
    )


def _deal_support(
    session: Session, playbook: Playbook, week: Week, *, now: datetime
) -> DealSupportWeek:
    # Imported here: the deal-support figures build on this module's percentile helpers.
    from bot.core.deal_support_metrics import deal_support_week

    return deal_support_week(session, playbook, week, now=now)


def crm_outcomes(session: Session, week: Week) -> Outcomes | None:
    """CRM outcomes of the week's MQLs (leads with a cycle received in the week).

    None until an outcome sync has stored anything (no CRM connected). A lead counts as an SQL
    when the CRM converted it; pipeline created is the amount of the opportunities those leads
    became; win rate = won / closed among them. By source: the lead's `lead_source`.
    """
    if session.execute(select(func.count()).select_from(LeadOutcomeRecord)).scalar_one() == 0:
        return None
    cohort = (
        select(col(MqlCycle.lead_id))
        .where(col(MqlCycle.received_at) >= week.start, col(MqlCycle.received_at) < week.end)
        .distinct()
        .subquery()
    )
    has_opp = col(LeadOutcomeRecord.opportunity_id).is_not(None)
    rows = (
        select(
            func.coalesce(col(Lead.lead_source), "(none)").label("source"),
            flag(col(LeadOutcomeRecord.converted).is_(True)).label("converted"),
            case((has_opp, col(LeadOutcomeRecord.amount)), else_=0).label("amount"),
            flag(and_(has_opp, col(LeadOutcomeRecord.is_closed).is_(True))).label("closed"),
            flag(and_(has_opp, col(LeadOutcomeRecord.is_won).is_(True))).label("won"),
        )
        .select_from(cohort)
        .join(Lead, col(Lead.id) == cohort.c.lead_id)
        .outerjoin(LeadOutcomeRecord, col(LeadOutcomeRecord.lead_id) == cohort.c.lead_id)
        .subquery()
    )
    stmt = select(
        rows.c.source,
        func.count(),
        func.sum(rows.c.converted),
        func.sum(rows.c.amount),
        func.sum(rows.c.closed),
        func.sum(rows.c.won),
    ).group_by(rows.c.source)
    mqls = sqls = closed = won = 0
    pipeline = 0.0
    pipeline_by_source: dict[str, float] = {}
    win_rate_by_source: dict[str, float | None] = {}
    for source, n, converted, amount, n_closed, n_won in session.execute(stmt).all():
        mqls += int(n)
        sqls += as_int(converted)
        closed += as_int(n_closed)
        won += as_int(n_won)
        pipeline += float(amount or 0)
        if amount:
            pipeline_by_source[str(source)] = float(amount)
            win_rate_by_source[str(source)] = ratio(as_int(n_won), as_int(n_closed))
    return Outcomes(
        sqls=sqls,
        mql_to_sql=ratio(sqls, mqls),
        pipeline_created=pipeline,
        win_rate=ratio(won, closed),
        pipeline_by_source=pipeline_by_source,
        win_rate_by_source=win_rate_by_source,
    )


def _week_figures(
    playbook: Playbook,
    week: Week,
    rows: list[dict[str, Any]],
    accept: Quantiles,
    touch: Quantiles,
    events: dict[str, int],
    sources: list[SourceRow],
) -> WeekFigures:
    def total(key: str, state: str | None = None) -> int:
        return sum(r[key] for r in rows if state is None or r["state"] == state)

    sla = []
    for tier in playbook.tiers_by_rank:
        mine = [r for r in rows if r["tier"] == tier.name]
        sla.append(
            TierSla(
                tier.name,
                tier.display,
                sum(r["met"] for r in mine),
                sum(r["decided"] for r in mine),
            )
        )
    # Cycles of a tier since removed from the playbook still count, under their stored name.
    known = {t.name for t in playbook.tiers}
    for name in sorted({r["tier"] for r in rows} - known):
        mine = [r for r in rows if r["tier"] == name]
        sla.append(
            TierSla(name, name, sum(r["met"] for r in mine), sum(r["decided"] for r in mine))
        )
    return WeekFigures(
        week=week,
        mqls=total("n"),
        responded=total("responded"),
        accepted=total("accepted"),
        rejected=total("n", REJECTED),
        recycled=total("n", RECYCLED),
        open=total("n", "open"),
        time_to_accept=accept,
        time_to_first_touch=touch,
        sla=sla,
        sla_events={kind: events.get(kind, 0) for kind in SLA_EVENT_KINDS},
        reject_reasons=_reasons(playbook, "reject", rows, REJECTED),
        recycle_reasons=_reasons(playbook, "recycle", rows, RECYCLED),
        sources=sources,
    )


def _reasons(
    playbook: Playbook, kind: str, rows: list[dict[str, Any]], state: str
) -> list[ReasonCount]:
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["state"] == state:
            counts[r["reason_code"] or "unspecified"] += r["n"]
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:TOP_REASONS]
    out = []
    for code, count in ranked:
        reason = playbook.reason(kind, code)
        out.append(ReasonCount(code, reason.label if reason else code, count))
    return out


def seconds(dialect: str, end: Any, start: Any) -> ColumnElement[Any]:
    """Seconds from `start` to `end` (SQLite stores UTC datetimes as text)."""
    if dialect == "postgresql":
        return func.date_part("epoch", col(end) - col(start))  # float8; EXTRACT gives numeric
    return (func.julianday(col(end)) - func.julianday(col(start))) * 86400.0


def flag(condition: ColumnElement[bool]) -> ColumnElement[int]:
    """1 where `condition` holds, else 0 (to SUM)."""
    return case((condition, 1), else_=0)


COUNTS = ("n", "accepted", "responded", "met", "decided", "touched")


@dataclass(frozen=True)
class _Recent:
    """The reported (0) and previous (1) week's cycles, counted per combination of bucket, tier,
    state, reason, owner (reported week only) and lead source; every table is a sum over these."""

    rows: list[dict[str, Any]]

    @cached_property
    def _by_bucket(self) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
        for row in self.rows:
            out[row["bucket"]].append(row)
        return out

    def _sums(self, keys: tuple[str, ...], bucket: int) -> dict[tuple[Any, ...], dict[str, int]]:
        out: dict[tuple[Any, ...], dict[str, int]] = {}
        for row in self._by_bucket[bucket]:
            found = out.setdefault(tuple(row[k] for k in keys), dict.fromkeys(COUNTS, 0))
            for name in COUNTS:
                found[name] += row[name]
        return out

    def breakdown(self, bucket: int) -> list[dict[str, Any]]:
        """One week by tier, state and reason: cycles, accepted, responded, SLA met, decided."""
        keys = ("tier", "state", "reason_code")
        return [
            dict(zip(keys, key, strict=True)) | v for key, v in self._sums(keys, bucket).items()
        ]

    def sources(self, bucket: int) -> list[SourceRow]:
        """One week's MQLs by lead source, most first."""
        found = [
            SourceRow(str(source), v["n"], v["accepted"], v["responded"])
            for (source,), v in self._sums(("source",), bucket).items()
        ]
        return sorted(found, key=lambda r: (-r.mqls, r.source))

    def owners(self) -> dict[str, dict[str, int]]:
        """The reported week per owner: the counts, plus rejected and recycled."""
        out: dict[str, dict[str, int]] = {}
        for (owner, state), v in self._sums(("owner", "state"), 0).items():
            if owner is None:
                continue
            found = out.setdefault(owner, dict.fromkeys((*COUNTS, REJECTED, RECYCLED), 0))
            for name in COUNTS:
                found[name] += v[name]
            if state in (REJECTED, RECYCLED):
                found[state] += v["n"]
        return out

    def touched(self) -> dict[int, int]:
        """Per week: accepted cycles with a first touch (the count behind time to first touch)."""
        return {k: sum(row["touched"] for row in self._by_bucket[k]) for k in (0, 1)}


class _Queries:
    """The scoreboard's SQL, over a window of weeks (index 0 = the reported week, 1 = the one before)."""

    def __init__(self, session: Session, window: list[Week], now: datetime) -> None:
        self.session = session
        self.window = window
        self.now = now
        self.dialect = session.get_bind().dialect.name

    def _bucket(self, column: Any, weeks: int) -> ColumnElement[int]:
        # Weeks are not all 7 x 24 h (DST), so each row is placed by comparing with the real bounds.
        whens = [(col(column) >= self.window[k].start, k) for k in range(weeks - 1)]
        return case(*whens, else_=weeks - 1) if whens else literal(0)

    def _in(self, column: Any, weeks: int) -> ColumnElement[bool]:
        return and_(col(column) >= self.window[weeks - 1].start, col(column) < self.window[0].end)

    def _first_response(self) -> ColumnElement[Any]:
        return func.coalesce(col(MqlCycle.accepted_at), col(MqlCycle.closed_at))

    def _sla_flags(self) -> list[Any]:
        first = self._first_response()
        return [
            flag(first <= col(MqlCycle.sla_due_at)).label("met"),
            flag(or_(first.is_not(None), col(MqlCycle.sla_due_at) < self.now)).label("decided"),
        ]

    def _responded(self) -> ColumnElement[int]:
        return flag(
            or_(col(MqlCycle.accepted_at).is_not(None), col(MqlCycle.closed_at).is_not(None))
        )

    def recent(self) -> _Recent:
        """One pass over the reported and previous week, counted per bucket, tier, state, reason,
        owner and lead source (the cycle's own copy: no join to the leads)."""
        # Two weeks only: SQLite groups by sorting, and sorting every week of the window by
        # these keys costs more than the trend's own pass.
        weeks = 2
        reported = col(MqlCycle.received_at) >= self.window[0].start
        accepted = col(MqlCycle.accepted_at).is_not(None)
        # Grouping on a subquery's column: PostgreSQL would not match a CASE with bound
        # parameters in GROUP BY against the same CASE in the select list.
        rows = (
            select(
                self._bucket(MqlCycle.received_at, weeks).label("bucket"),
                col(MqlCycle.tier).label("tier"),
                col(MqlCycle.state).label("state"),
                col(MqlCycle.reason_code).label("reason_code"),
                case((reported, col(MqlCycle.owner_slack_id))).label("owner"),
                func.coalesce(col(MqlCycle.lead_source), "(none)").label("source"),
                flag(accepted).label("accepted"),
                self._responded().label("responded"),
                *self._sla_flags(),
                flag(and_(accepted, col(MqlCycle.first_touch_at).is_not(None))).label("touched"),
            )
            .where(self._in(MqlCycle.received_at, weeks))
            .subquery()
        )
        keys = [rows.c[k] for k in ("bucket", "tier", "state", "reason_code", "owner", "source")]
        stmt = select(
            *keys,
            func.count().label("n"),
            *(func.sum(rows.c[s]).label(s) for s in COUNTS[1:]),
        ).group_by(*keys)
        found = []
        for row in self.session.execute(stmt).mappings():
            values = dict(row)
            for name in COUNTS:
                values[name] = as_int(values[name])
            values["bucket"] = int(values["bucket"])
            found.append(values)
        return _Recent(found)

    def weekly(
        self, touched: dict[int, int]
    ) -> tuple[Totals, dict[int, Quantiles], dict[int, Quantiles]]:
        """Per week of the window: (MQLs, accepted, responded) and time to accept; time to
        first touch for the last two weeks (`touched` counts its values per week).

        Week by week, each a range of the received_at index that holds every column read here:
        no sort or grouping over the whole window, and nothing read outside it.
        """
        accept = seconds(self.dialect, MqlCycle.accepted_at, MqlCycle.received_at)
        touch = seconds(self.dialect, MqlCycle.first_touch_at, MqlCycle.accepted_at)
        totals: Totals = {}
        accept_times: dict[int, Quantiles] = {}
        touch_times: dict[int, Quantiles] = {}
        for k, week in enumerate(self.window):
            in_week = and_(
                col(MqlCycle.received_at) >= week.start, col(MqlCycle.received_at) < week.end
            )
            # Each time: its value, where its quantiles go, its count (None: the accepted count).
            times: list[tuple[ColumnElement[Any], dict[int, Quantiles], int | None]] = [
                (accept, accept_times, None)
            ]
            if k < 2:
                times.append((touch, touch_times, touched.get(k, 0)))
            counts: list[ColumnElement[Any]] = [
                func.count(),
                func.sum(flag(col(MqlCycle.accepted_at).is_not(None))),
                func.sum(self._responded()),
            ]
            if self.dialect == "postgresql":
                # count(v) and percentile_cont skip NULLs: unaccepted leads drop out of the times.
                counts += [
                    agg
                    for value, _, _ in times
                    for agg in (
                        func.count(value),
                        *(
                            func.percentile_cont(n / d).within_group(value)
                            for n, d in (MEDIAN, P90)
                        ),
                    )
                ]
            row = self.session.execute(select(*counts).where(in_week)).one()
            n, accepted, responded = int(row[0]), as_int(row[1]), as_int(row[2])
            if not n:
                continue
            totals[k] = (n, accepted, responded)
            for i, (value, found, size) in enumerate(times):
                if self.dialect == "postgresql":
                    count, median, p90 = row[3 + 3 * i : 6 + 3 * i]
                    if count:
                        found[k] = Quantiles(round_ms(median), round_ms(p90), int(count))
                    continue
                # The accepted count is the number of accept times: the ranks need no count.
                ranked = percentiles(
                    self.session,
                    literal(k),
                    value,
                    in_week,
                    sizes={k: accepted if size is None else size},
                )
                if k in ranked:
                    count, at = ranked[k]
                    found[k] = Quantiles(round_ms(at.get(MEDIAN)), round_ms(at.get(P90)), count)
        return totals, accept_times, touch_times

    def sla_events(self) -> dict[int, dict[str, int]]:
        """SLA events created in the reported and previous week, by kind."""
        rows = (
            select(
                self._bucket(SlaEvent.created_at, 2).label("bucket"),
                col(SlaEvent.kind).label("kind"),
            )
            .where(self._in(SlaEvent.created_at, 2))
            .subquery()
        )
        stmt = select(rows.c.bucket, rows.c.kind, func.count()).group_by(rows.c.bucket, rows.c.kind)
        out: dict[int, dict[str, int]] = defaultdict(dict)
        for k, kind, n in self.session.execute(stmt).all():
            out[int(k)][kind] = int(n)
        return out

    def rep_medians(self, accepted: dict[str, int]) -> dict[str, float | None]:
        """The reported week's median time to accept per owner (`accepted`: its count per owner)."""
        owner: Any = col(MqlCycle.owner_slack_id)
        where = and_(self._in(MqlCycle.received_at, 1), owner.is_not(None))
        value = seconds(self.dialect, MqlCycle.accepted_at, MqlCycle.received_at)
        if self.dialect != "postgresql":
            found = percentiles(
                self.session, owner, value, where, fractions=(MEDIAN,), sizes=accepted
            )
            return {str(k): round_ms(v.get(MEDIAN)) for k, (_, v) in found.items()}
        rows = select(owner.label("owner"), value.label("v")).where(where).subquery()
        stmt = select(rows.c.owner, func.percentile_cont(0.5).within_group(rows.c.v)).group_by(
            rows.c.owner
        )
        return {str(k): round_ms(m) for k, m in self.session.execute(stmt).all()}

    def reps(self, recent: _Recent) -> list[RepRow]:
        """The reported week per owner, most accepted first."""
        owners = recent.owners()
        medians = self.rep_medians({k: v["accepted"] for k, v in owners.items()})
        reps = [
            RepRow(
                slack_id,
                v["n"],
                v["accepted"],
                v[REJECTED],
                v[RECYCLED],
                v["met"],
                v["decided"],
                medians.get(slack_id),
            )
            for slack_id, v in owners.items()
        ]
        return sorted(reps, key=lambda r: (-r.accepted, -r.owned, r.slack_id))


Fraction = tuple[int, int]
Totals = dict[int, tuple[int, int, int]]


def percentiles(
    session: Session,
    group: ColumnElement[Any],
    value: ColumnElement[Any],
    where: ColumnElement[bool],
    fractions: tuple[Fraction, ...] = (MEDIAN, P90),
    sizes: Mapping[Any, int] | None = None,
) -> dict[Any, tuple[int, dict[Fraction, float]]]:
    """Per group: how many values and their percentiles, for SQLite (no percentile aggregate).

    A window function ranks the rows in SQL and only the ranks floor((n-1)p)+1 and the one
    after come back, so a week of 100,000 accepted leads sends four rows to Python. `sizes`,
    when the caller has already counted each group's non-null values, spares SQL the second
    window that counts them.
    """
    rows = select(group.label("g"), value.label("v")).where(where, value.is_not(None)).subquery()
    rank = func.row_number().over(partition_by=rows.c.g, order_by=rows.c.v).label("rn")
    if sizes is None:
        counted = func.count().over(partition_by=rows.c.g).label("n")
        ranked = select(rows.c.g, rows.c.v, rank, counted).subquery()
        wanted = []
        for num, den in fractions:
            low = (ranked.c.n - 1) * num // den + 1  # SQLite divides integers as floor here
            wanted += [ranked.c.rn == low, ranked.c.rn == low + 1]
        stmt = select(ranked.c.g, ranked.c.n, ranked.c.rn, ranked.c.v).where(or_(*wanted))
    else:
        ranked = select(rows.c.g, rows.c.v, rank).subquery()
        ranks = sorted({r for n in sizes.values() for r in percentile_ranks(n, fractions)})
        if not ranks:
            return {}
        stmt = select(ranked.c.g, literal(0), ranked.c.rn, ranked.c.v).where(ranked.c.rn.in_(ranks))
    by_group: dict[Any, dict[int, float]] = defaultdict(dict)
    counts: dict[Any, int] = {}
    for g, n, rn, v in session.execute(stmt).all():
        by_group[g][int(rn)] = float(v)
        counts[g] = int(n) if sizes is None else sizes.get(g, 0)
    if sizes is not None and any(
        not percentile_ranks(sizes[g], fractions) <= set(by_group.get(g, {}))
        for g in sizes
        if sizes[g]
    ):
        # Sizes that do not match the rows (not expected): count them in SQL after all.
        return percentiles(session, group, value, where, fractions)
    return {
        g: (counts[g], _interpolate(values, counts[g], fractions))
        for g, values in by_group.items()
        if counts[g]
    }


def percentile_ranks(n: int, fractions: tuple[Fraction, ...]) -> set[int]:
    """The 1-based ranks whose values the percentiles of `n` values interpolate between."""
    found: set[int] = set()
    for num, den in fractions:
        low = (n - 1) * num // den
        found |= {low + 1, min(low + 2, n)}
    return found if n > 0 else set()


def _interpolate(
    values: dict[int, float], n: int, fractions: tuple[Fraction, ...]
) -> dict[Fraction, float]:
    """Percentiles from the values at ranks floor((n-1)p)+1 and the next (1-based)."""
    found = {}
    for num, den in fractions:
        low, rest = divmod((n - 1) * num, den)
        below = values[low + 1]
        found[(num, den)] = below + (values.get(low + 2, below) - below) * rest / den
    return found


def as_int(value: Any) -> int:
    """An aggregate as an int: SUM() comes back as Decimal on PostgreSQL and None over no rows."""
    return 0 if value is None else int(value)


def round_ms(value: float | None) -> float | None:
    """Seconds rounded to whole milliseconds (SQLite's julianday() arithmetic is off by µs)."""
    return None if value is None else round(value, 3)
