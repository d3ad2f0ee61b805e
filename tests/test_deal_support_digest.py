"""The digest's #deal-support section: figures computed in SQL against hand-computed fixtures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from bot.core.db import transaction
from bot.core.deal_support_metrics import DealSupportWeek, deal_support_week
from bot.core.metrics import week_bounds, weekly_scoreboard
from bot.core.models import DealSupportRequest
from bot.views.deal_support import build_digest_section
from bot.views.digest import build_digest
from tests.conftest import blocks_text
from tests.test_deal_support_core import ds_playbook

NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # the Monday after 2026-W48
H = timedelta(hours=1)


def _row(
    ask: str,
    created: datetime,
    *,
    due: date,
    state: str = "open",
    claimed: timedelta | None = None,
    delivered: datetime | None = None,
    declined: timedelta | None = None,
    competitor: str | None = None,
) -> DealSupportRequest:
    return DealSupportRequest(
        requester_slack_id="UREP1",
        deal_name="Deal",
        ask_type=ask,
        details="d",
        due_on=due,
        state=state,
        competitor=competitor,
        claimed_by="UMKT1" if claimed else None,
        claimed_at=created + claimed if claimed else None,
        delivered_at=delivered,
        declined_by="UMKT1" if declined else None,
        declined_at=created + declined if declined else None,
        first_response_due_at=created + 4 * H,
        created_at=created,
    )


def seed(engine: Any) -> None:
    """Six requests in 2026-W48 (New York) and one the Sunday before."""
    rows = [
        # Delivered in 5h, before its due date; first response 30 minutes.
        _row(
            "battle_card",
            datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
            due=date(2026, 11, 24),
            state="delivered",
            claimed=timedelta(minutes=30),
            delivered=datetime(2026, 11, 23, 20, 0, tzinfo=UTC),
            competitor="Globex",
        ),
        # Delivered 46h after the ask, after the end of its due date (05:00 UTC on the 26th).
        _row(
            "battle_card",
            datetime(2026, 11, 24, 14, 0, tzinfo=UTC),
            due=date(2026, 11, 25),
            state="delivered",
            claimed=timedelta(minutes=90),
            delivered=datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
            competitor="  globex ",
        ),
        # Declined after an hour: a first response, never overdue.
        _row(
            "case_study",
            datetime(2026, 11, 25, 16, 0, tzinfo=UTC),
            due=date(2026, 11, 25),
            state="declined",
            declined=timedelta(minutes=60),
            competitor="Initech",
        ),
        # Still open, due on the 27th: overdue at NOW.
        _row("roi", datetime(2026, 11, 26, 15, 0, tzinfo=UTC), due=date(2026, 11, 27)),
        # Taken after 2h, due next week: not overdue.
        _row(
            "case_study",
            datetime(2026, 11, 27, 15, 0, tzinfo=UTC),
            due=date(2026, 12, 5),
            state="claimed",
            claimed=timedelta(hours=2),
            competitor="",
        ),
        # Sunday 23:30 in New York: still this week.
        _row(
            "custom",
            datetime(2026, 11, 30, 4, 30, tzinfo=UTC),
            due=date(2026, 12, 10),
            competitor="Globex",
        ),
        # Sunday 15:00 in New York the week before: not counted.
        _row(
            "roi",
            datetime(2026, 11, 22, 20, 0, tzinfo=UTC),
            due=date(2026, 11, 23),
            competitor="Hooli",
        ),
    ]
    with transaction(engine) as session:
        session.add_all(rows)


def test_the_week_figures_match_the_hand_computed_ones(engine: Any) -> None:
    seed(engine)
    playbook = ds_playbook()
    with Session(engine) as session:
        week = deal_support_week(session, playbook, week_bounds(playbook, "2026-W48"), now=NOW)
    assert week == DealSupportWeek(
        requests=6,
        by_type=[("battle_card", 2), ("case_study", 2), ("custom", 1), ("roi", 1)],
        responded=4,
        median_first_response=4500.0,  # 30, 60, 90, 120 minutes
        delivered=2,
        median_delivery=91800.0,  # (5h + 46h) / 2
        declined=1,
        overdue=2,
        competitors=[("Globex", 3), ("Initech", 1)],
    )


def test_overdue_counts_open_requests_only_once_their_due_date_has_ended(engine: Any) -> None:
    seed(engine)
    playbook = ds_playbook()
    week = week_bounds(playbook, "2026-W48")
    with Session(engine) as session:
        before = deal_support_week(
            session, playbook, week, now=datetime(2026, 11, 28, 4, 59, tzinfo=UTC)
        )
    assert before.overdue == 1  # the late delivery; the ROI ask still has a minute


def test_an_empty_week_has_no_figures_and_says_so(engine: Any) -> None:
    playbook = ds_playbook()
    with Session(engine) as session:
        week = deal_support_week(session, playbook, week_bounds(playbook, "2026-W48"), now=NOW)
    assert week == DealSupportWeek()
    assert "No #deal-support requests this week." in blocks_text(
        build_digest_section(week, None, playbook)
    )


def test_the_weekly_digest_carries_the_section(engine: Any) -> None:
    seed(engine)
    playbook = ds_playbook()
    with Session(engine) as session:
        board = weekly_scoreboard(session, playbook, week_bounds(playbook, "2026-W48"), now=NOW)
    assert board.deal_support is not None
    assert board.deal_support.requests == 6
    shown = blocks_text(build_digest(board, playbook)["blocks"])
    for expected in (
        "*Deal support*",
        "6 · ▲ 500% · 2 delivered · 1 declined",  # one request the week before
        "*Overdue*\\n2 · ▲ 100%",  # that one, still open past its due date
        "median 1h 15m · no data last week",  # nobody answered it
        "median 1h 15m",
        "Battle card / competitor comparison: 2",
        "1. Globex: 3",
        "2. Initech: 1",
    ):
        assert expected in shown, expected
