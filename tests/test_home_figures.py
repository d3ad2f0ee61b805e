"""A rep's week on the App Home, computed in SQL (checked against hand-computed figures)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from bot.core.db import transaction
from bot.core.lookup import rep_week
from bot.core.metrics import week_bounds
from bot.core.models import Lead, MqlCycle
from tests.conftest import team_playbook

NOW = datetime(2026, 11, 25, 18, 0, tzinfo=UTC)  # Wednesday; the week began Monday in New York


def _cycle(session: Any, n: int, *, owner: str, received: datetime, **fields: Any) -> None:
    lead = Lead(origin="t", external_id=f"W-{n}", created_at=received, updated_at=received)
    session.add(lead)
    session.flush()
    session.add(
        MqlCycle(
            lead_id=lead.id or 0,
            mql_at=received,
            received_at=received,
            tier="hot",
            sla_due_at=received + timedelta(minutes=4),
            pool="sales",
            owner_slack_id=owner,
            **fields,
        )
    )


def test_rep_week_counts_accepted_median_time_to_accept_and_sla(engine: Any) -> None:
    monday = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)
    with transaction(engine) as session:
        for n, seconds in enumerate((60, 180, 300, 600)):  # accepted after 1, 3, 5, 10 minutes
            _cycle(
                session,
                n,
                owner="UREP1",
                received=monday,
                state="accepted",
                accepted_at=monday + timedelta(seconds=seconds),
            )
        _cycle(session, 10, owner="UREP1", received=NOW - timedelta(hours=1))  # open, past due
        _cycle(session, 11, owner="UREP1", received=NOW - timedelta(minutes=1))  # open, in time
        _cycle(session, 12, owner="UREP2", received=monday, state="accepted", accepted_at=monday)
        _cycle(  # last week: not counted
            session,
            13,
            owner="UREP1",
            received=monday - timedelta(days=3),
            state="accepted",
            accepted_at=monday - timedelta(days=3),
        )
    with transaction(engine) as session:
        week = rep_week(session, "UREP1", week_bounds(team_playbook(), NOW), now=NOW)
        empty = rep_week(session, "UNOBODY", week_bounds(team_playbook(), NOW), now=NOW)
    assert (week.owned, week.accepted) == (6, 4)
    assert week.median_accept == 240.0  # between 3 and 5 minutes
    assert (week.sla_met, week.sla_decided) == (2, 5)  # 1m and 3m met; 5m, 10m, past due missed
    assert week.sla_rate == 0.4
    assert (empty.owned, empty.accepted, empty.median_accept, empty.sla_rate) == (0, 0, None, None)
