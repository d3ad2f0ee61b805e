"""The weekly scoreboard's figures against hand-computed fixtures, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from bot.core.metrics import (
    Quantiles,
    Scoreboard,
    TierSla,
    WeekFigures,
    last_complete_week,
    week_bounds,
    week_of,
    weekly_scoreboard,
)
from bot.core.models import Lead, MqlCycle, SlaEvent
from bot.core.playbook import DigestTargets, Playbook
from tests.conftest import team_playbook

PLAYBOOK = team_playbook()  # America/New_York
W47 = week_bounds(PLAYBOOK, "2026-W47")  # Mon 2026-11-16 05:00 UTC to Mon 2026-11-23 05:00 UTC
NOW = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)  # Monday 09:00 in New York
SLA = {"hot": timedelta(minutes=15), "warm": timedelta(hours=4), "nurture": timedelta(days=1)}
_ids = itertools.count(1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment in November 2026, in UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def add_cycle(
    session: Session,
    received: datetime,
    tier: str,
    *,
    owner: str | None = None,
    accepted_after: timedelta | None = None,
    closed_after: timedelta | None = None,
    state: str | None = None,
    reason: str | None = None,
    touch_after_accept: timedelta | None = None,
    source: str | None = None,
) -> MqlCycle:
    """A lead and its one MQL cycle with the given timestamps (nothing else runs)."""
    n = next(_ids)
    lead = Lead(
        origin="test",
        external_id=f"M-{n}",
        last_name=f"Lead{n}",
        company="Acme",
        lead_source=source,
        created_at=received,
        updated_at=received,
    )
    session.add(lead)
    session.flush()
    accepted_at = received + accepted_after if accepted_after is not None else None
    closed_at = received + closed_after if closed_after is not None else None
    if state is None:
        state = "accepted" if accepted_at else "open"
    cycle = MqlCycle(
        lead_id=lead.id or 0,
        mql_at=received,
        received_at=received,
        tier=tier,
        lead_source=source,
        sla_due_at=received + SLA.get(tier, timedelta(hours=1)),
        pool="sales",
        owner_slack_id=owner,
        state=state,
        accepted_by=owner if accepted_at else None,
        accepted_at=accepted_at,
        closed_by=owner if closed_at else None,
        closed_at=closed_at,
        reason_code=reason,
        first_touch_at=accepted_at + touch_after_accept
        if accepted_at and touch_after_accept
        else None,
    )
    session.add(cycle)
    session.flush()
    return cycle


def add_event(
    session: Session, cycle: MqlCycle, kind: str, created: datetime, step: int = 0
) -> None:
    """An SLA event on a cycle."""
    session.add(SlaEvent(cycle_id=cycle.id or 0, kind=kind, step=step, created_at=created))


def week47(session: Session) -> None:
    """The worked example of the module docstring: eight MQLs in W47, two in W46."""
    mins = lambda m: timedelta(minutes=m)  # noqa: E731
    c1 = add_cycle(session, at(16, 15), "hot", owner="UREP1", accepted_after=mins(5),
                   touch_after_accept=mins(30), source="Webinar")  # fmt: skip
    c2 = add_cycle(session, at(17, 15), "hot", owner="UREP2", accepted_after=mins(20),
                   touch_after_accept=mins(90), source="Webinar")  # fmt: skip
    add_cycle(session, at(18, 15), "warm", owner="UREP1", accepted_after=mins(60), source="Webinar")
    add_cycle(session, at(18, 16), "warm", owner="UREP2", closed_after=mins(10), state="rejected",
              reason="not_icp", source="Webinar")  # fmt: skip
    add_cycle(session, at(19, 15), "nurture", owner="UREP1", accepted_after=mins(120),
              closed_after=timedelta(days=2), state="recycled", reason="timing",
              source="Paid Search")  # fmt: skip
    # Open past its SLA (a miss), received on the week's first instant.
    add_cycle(session, W47.start, "hot", owner="UREP2", source="Paid Search")
    # Open, still inside its one-day SLA at NOW (received Sunday 22:00 in New York): not counted.
    add_cycle(session, at(23, 3), "nurture")
    add_cycle(session, at(20, 15), "warm", owner="UREP1", closed_after=mins(180),
              state="rejected", reason="bad_contact")  # fmt: skip
    # Not in W47: the next week's first instant, and the previous week.
    add_cycle(session, W47.end, "hot", owner="UREP1", accepted_after=mins(1))
    add_cycle(session, at(10, 15), "hot", owner="UREP1", accepted_after=mins(10), source="Webinar")
    add_cycle(session, at(11, 15), "warm", owner="UREP2", closed_after=mins(30), state="rejected",
              reason="not_icp", source="Webinar")  # fmt: skip
    add_event(session, c1, "nudge", at(16, 15, 10))
    add_event(session, c2, "nudge", at(17, 15, 10))
    add_event(session, c2, "escalate", at(17, 15, 15))
    add_event(session, c2, "reassign", at(17, 15, 16))
    add_event(session, c1, "nudge", at(10, 15), step=1)  # W46
    add_event(session, c1, "nudge", at(23, 6), step=2)  # W48


def board(engine: Any, *, playbook: Playbook = PLAYBOOK, week: Any = W47) -> Scoreboard:
    """The scoreboard of `week` as of NOW."""
    with Session(engine) as session:
        return weekly_scoreboard(session, playbook, week, now=NOW)


@pytest.fixture
def filled(engine: Any) -> Any:
    """The test database with the W46/W47 example."""
    with Session(engine) as session:
        week47(session)
        session.commit()
    return engine


# -- weeks ---------------------------------------------------------------------------------------


def test_an_iso_week_runs_monday_to_monday_in_the_team_timezone() -> None:
    assert W47.label == "2026-W47"
    assert W47.monday == date(2026, 11, 16)
    assert W47.start == datetime(2026, 11, 16, 5, 0, tzinfo=UTC)
    assert W47.end == datetime(2026, 11, 23, 5, 0, tzinfo=UTC)
    assert week_bounds(PLAYBOOK, at(23, 4, 59)) == W47  # Sunday 23:59 in New York
    assert week_bounds(PLAYBOOK, at(23, 5)).label == "2026-W48"


def test_the_week_of_a_dst_change_is_169_hours() -> None:
    week = week_bounds(PLAYBOOK, "2026-W44")  # US clocks go back on Sunday 2026-11-01
    assert week.start == datetime(2026, 10, 26, 4, 0, tzinfo=UTC)
    assert week.end == datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
    assert week.end - week.start == timedelta(hours=169)


def test_the_last_complete_week_is_the_one_before_now() -> None:
    assert last_complete_week(PLAYBOOK, NOW) == W47
    assert last_complete_week(PLAYBOOK, at(23, 4, 59)).label == "2026-W46"
    assert week_bounds(PLAYBOOK, "2026-W53").monday == date(2026, 12, 28)
    assert week_bounds(PLAYBOOK, " 2027-W01 ").monday == date(2027, 1, 4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026W47", "YYYY-Www"),
        ("2026-W7", "YYYY-Www"),
        ("last week", "YYYY-Www"),
        ("2025-W53", "2025 has no week 53"),
        ("2026-W00", "2026 has no week 0"),
    ],
)
def test_a_bad_week_name_says_how_to_write_it(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        week_bounds(PLAYBOOK, text)


# -- the figures ---------------------------------------------------------------------------------


def test_week_figures_match_the_hand_computed_example(filled: Any) -> None:
    week = board(filled).current
    assert (week.mqls, week.responded, week.accepted, week.rejected, week.recycled, week.open) == (
        8,
        6,
        4,
        2,
        1,
        2,
    )
    assert week.acceptance_rate == pytest.approx(4 / 6)
    assert week.rejection_rate == pytest.approx(2 / 6)
    # Accepted after 5, 20, 60 and 120 minutes.
    assert week.time_to_accept == Quantiles(median=2400.0, p90=6120.0, count=4)
    # Touched 30 and 90 minutes after accepting.
    assert week.time_to_first_touch == Quantiles(median=3600.0, p90=5040.0, count=2)


def test_sla_compliance_per_tier_counts_open_leads_past_due_as_misses(filled: Any) -> None:
    week = board(filled).current
    assert week.sla == [
        TierSla("hot", "Hot", met=1, decided=3),
        TierSla("warm", "Warm", met=3, decided=3),
        TierSla("nurture", "Nurture", met=1, decided=1),
    ]
    assert (week.sla_met, week.sla_decided) == (5, 7)
    assert week.sla_rate == pytest.approx(5 / 7)


def test_reasons_sources_and_sla_events(filled: Any) -> None:
    week = board(filled).current
    assert [(r.code, r.label, r.count) for r in week.reject_reasons] == [
        ("bad_contact", "Bad contact data", 1),
        ("not_icp", "Not our ICP", 1),
    ]
    assert [(r.code, r.count) for r in week.recycle_reasons] == [("timing", 1)]
    assert [(s.source, s.mqls, s.accepted, s.responded) for s in week.sources] == [
        ("Webinar", 4, 3, 4),
        ("(none)", 2, 0, 1),
        ("Paid Search", 2, 1, 1),
    ]
    assert week.sla_events == {
        "nudge": 2,
        "escalate": 1,
        "reassign": 1,
        "limbo": 0,
        "unassigned": 0,
    }


def test_per_rep_table(filled: Any) -> None:
    reps = board(filled).reps
    assert [
        (r.slack_id, r.owned, r.accepted, r.rejected, r.recycled, r.sla_met, r.sla_decided)
        for r in reps
    ] == [("UREP1", 4, 3, 1, 1, 4, 4), ("UREP2", 3, 1, 1, 0, 1, 3)]
    assert [r.median_accept for r in reps] == [3600.0, 1200.0]
    assert reps[1].sla_rate == pytest.approx(1 / 3)


def test_previous_week_and_trend(filled: Any) -> None:
    scoreboard = board(filled)
    before = scoreboard.previous
    assert before.week.label == "2026-W46"
    assert (before.mqls, before.accepted, before.rejected) == (2, 1, 1)
    assert before.acceptance_rate == 0.5
    assert before.time_to_accept == Quantiles(600.0, 600.0, 1)
    assert before.sla_events["nudge"] == 1
    trend = scoreboard.trend
    assert [p.week.label for p in trend] == [f"2026-W{n}" for n in range(40, 48)]
    assert [p.mqls for p in trend] == [0, 0, 0, 0, 0, 0, 2, 8]
    assert [p.acceptance_rate for p in trend][-2:] == [0.5, pytest.approx(4 / 6)]
    assert [p.median_accept for p in trend] == [None] * 6 + [600.0, 2400.0]


def test_an_empty_week_gives_zeros_and_no_data(engine: Any) -> None:
    scoreboard = board(engine)
    week = scoreboard.current
    assert (week.mqls, week.responded, week.accepted) == (0, 0, 0)
    assert week.acceptance_rate is None
    assert week.rejection_rate is None
    assert week.sla_rate is None
    assert week.time_to_accept == Quantiles()
    assert all(t.rate is None for t in week.sla)
    assert week.reject_reasons == week.recycle_reasons == week.sources == []
    assert scoreboard.reps == []
    assert len(scoreboard.trend) == 8
    assert scoreboard.alarms == []
    assert scoreboard.outcomes is None


def test_a_week_with_only_open_leads_has_volume_but_no_rates(engine: Any) -> None:
    with Session(engine) as session:
        add_cycle(session, at(22, 20), "hot", owner="UREP1")  # past due: a miss
        session.commit()
    week = board(engine).current
    assert week.mqls == 1
    assert week.acceptance_rate is None
    assert week.sla_rate == 0.0


def test_trend_length_follows_the_playbook_and_the_argument(filled: Any) -> None:
    playbook = PLAYBOOK.model_copy(
        update={"digest": PLAYBOOK.digest.model_copy(update={"weeks": 4})}
    )
    assert len(board(filled, playbook=playbook).trend) == 4
    with Session(filled) as session:
        scoreboard = weekly_scoreboard(session, PLAYBOOK, W47.start, now=NOW, weeks=12)
    assert len(scoreboard.trend) == 12
    assert scoreboard.current.mqls == 8


def test_cycles_of_a_tier_no_longer_in_the_playbook_still_count(engine: Any) -> None:
    with Session(engine) as session:
        add_cycle(session, at(18, 15), "vip", owner="UREP1", accepted_after=timedelta(minutes=5))
        session.commit()
    week = board(engine).current
    assert week.mqls == 1
    assert week.tier("vip") == TierSla("vip", "vip", met=1, decided=1)


def test_the_week_of_a_dst_change_counts_its_last_hour(engine: Any) -> None:
    week = week_bounds(PLAYBOOK, "2026-W44")
    with Session(engine) as session:
        add_cycle(session, week.start, "warm")
        add_cycle(session, week.end - timedelta(minutes=30), "warm")  # Sunday 23:30 EST
        add_cycle(session, week.end, "warm")
        session.commit()
    with Session(engine) as session:
        scoreboard = weekly_scoreboard(session, PLAYBOOK, week, now=NOW)
    assert scoreboard.current.mqls == 2
    assert scoreboard.trend[-1].mqls == 2


# -- alarms --------------------------------------------------------------------------------------


def _scoreboard(targets: DigestTargets, **figures: Any) -> Scoreboard:
    week = WeekFigures(week_of(PLAYBOOK, W47.monday), **{"mqls": 10, **figures})
    return Scoreboard(week, WeekFigures(W47), [], [], targets)


@pytest.mark.parametrize(
    ("figures", "alarms"),
    [
        ({"mqls": 10}, []),
        ({"mqls": 9}, ["mqls"]),
        ({"responded": 10, "accepted": 9}, []),  # exactly the 90% target
        ({"responded": 100, "accepted": 89}, ["acceptance"]),
        ({"responded": 10, "accepted": 10, "rejected": 3}, []),  # exactly the 30% limit
        ({"responded": 100, "accepted": 100, "rejected": 31}, ["rejection"]),
        ({"sla": [TierSla("hot", "Hot", 9, 10), TierSla("warm", "Warm", 0, 0)]}, []),
        ({"sla": [TierSla("hot", "Hot", 8, 10)]}, ["sla:hot"]),
    ],
)
def test_alarms_fire_only_beyond_the_targets(figures: dict[str, Any], alarms: list[str]) -> None:
    targets = DigestTargets(weekly_mqls=10)
    assert [a.key for a in _scoreboard(targets, **figures).alarms] == alarms


def test_no_volume_alarm_without_a_commitment() -> None:
    assert _scoreboard(DigestTargets(), mqls=0).alarms == []


def test_a_lead_accepted_then_rejected_counts_in_both_rates(engine: Any) -> None:
    with Session(engine) as session:
        add_cycle(
            session,
            at(18, 15),
            "warm",
            owner="UREP1",
            accepted_after=timedelta(minutes=5),
            closed_after=timedelta(days=1),
            state="rejected",
            reason="not_icp",
        )
        session.commit()
    week = board(engine).current
    assert (week.responded, week.accepted, week.rejected) == (1, 1, 1)
    assert week.acceptance_rate == week.rejection_rate == 1.0
    assert week.sla == [
        TierSla("hot", "Hot", 0, 0),
        TierSla("warm", "Warm", 1, 1),  # the first response (the accept) was in time
        TierSla("nurture", "Nurture", 0, 0),
    ]
