"""Percentiles of the scoreboard against a plain Python reference, on SQLite and PostgreSQL.

Many accepted leads per week and per rep, so the ranks the SQL picks (from counts the scoreboard
already has) are checked away from the small hand-computed example of test_metrics.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import and_
from sqlmodel import Session, col

from bot.core.metrics import (
    MEDIAN,
    P90,
    Quantiles,
    percentile_ranks,
    percentiles,
    seconds,
    week_of,
    weekly_scoreboard,
)
from bot.core.models import MqlCycle
from tests.test_metrics import NOW, PLAYBOOK, W47, add_cycle

REPS = ["UREP1", "UREP2", "UREP3"]


def reference(values: list[float], num: int, den: int) -> float:
    """Linear interpolation between the two nearest ranks (PostgreSQL's percentile_cont)."""
    ordered = sorted(values)
    low, rest = divmod((len(ordered) - 1) * num, den)
    below = ordered[low]
    above = ordered[min(low + 1, len(ordered) - 1)]
    return below + (above - below) * rest / den


def quantiles(values: list[float]) -> Quantiles:
    """The median and p90 the scoreboard should report, in whole milliseconds."""
    if not values:
        return Quantiles()
    return Quantiles(
        round(reference(values, *MEDIAN), 3), round(reference(values, *P90), 3), len(values)
    )


@pytest.fixture
def spread(engine: Any) -> dict[str, Any]:
    """Four weeks of leads with random accept and touch times; returns what was stored."""
    rng = random.Random(11)
    accept: dict[int, list[float]] = defaultdict(list)
    touch: dict[int, list[float]] = defaultdict(list)
    by_rep: dict[str, list[float]] = defaultdict(list)
    with Session(engine) as session:
        for k in range(4):
            week = week_of(PLAYBOOK, W47.monday - timedelta(days=7 * k))
            for i in range(23 + 7 * k):
                received = week.start + timedelta(seconds=rng.randrange(7 * 86400 - 3600))
                owner = REPS[i % 3] if i % 5 else None
                after = timedelta(seconds=rng.randrange(30, 20_000)) if i % 4 else None
                touched = timedelta(seconds=rng.randrange(60, 9_000)) if after and i % 3 else None
                add_cycle(session, received, "warm", owner=owner, accepted_after=after,
                          touch_after_accept=touched)  # fmt: skip
                if after is not None:
                    accept[k].append(after.total_seconds())
                    if k == 0 and owner is not None:
                        by_rep[owner].append(after.total_seconds())
                    if touched is not None and k < 2:
                        touch[k].append(touched.total_seconds())
        session.commit()
    return {"engine": engine, "accept": accept, "touch": touch, "by_rep": by_rep}


def test_week_times_match_the_reference(spread: dict[str, Any]) -> None:
    with Session(spread["engine"]) as session:
        board = weekly_scoreboard(session, PLAYBOOK, W47, now=NOW, weeks=4)
    assert board.current.time_to_accept == quantiles(spread["accept"][0])
    assert board.previous.time_to_accept == quantiles(spread["accept"][1])
    assert board.current.time_to_first_touch == quantiles(spread["touch"][0])
    assert board.previous.time_to_first_touch == quantiles(spread["touch"][1])
    medians = [quantiles(spread["accept"][k]).median for k in reversed(range(4))]
    assert [p.median_accept for p in board.trend] == medians


def test_rep_medians_match_the_reference(spread: dict[str, Any]) -> None:
    with Session(spread["engine"]) as session:
        board = weekly_scoreboard(session, PLAYBOOK, W47, now=NOW, weeks=4)
    assert {r.slack_id: r.median_accept for r in board.reps} == {
        rep: quantiles(values).median for rep, values in spread["by_rep"].items()
    }


def _accept_times(session: Session, sizes: dict[Any, int] | None) -> dict[Any, Any]:
    dialect = session.get_bind().dialect.name
    owner: Any = col(MqlCycle.owner_slack_id)
    in_week = and_(col(MqlCycle.received_at) >= W47.start, col(MqlCycle.received_at) < W47.end)
    value = seconds(dialect, MqlCycle.accepted_at, MqlCycle.received_at)
    return percentiles(session, owner, value, and_(in_week, owner.is_not(None)), sizes=sizes)


def test_known_sizes_give_the_same_percentiles_as_counting_in_sql(
    spread: dict[str, Any],
) -> None:
    sizes = {rep: len(values) for rep, values in spread["by_rep"].items()}
    with Session(spread["engine"]) as session:
        counted = _accept_times(session, None)
        given = _accept_times(session, sizes)
    assert given == counted
    assert {rep: n for rep, (n, _) in given.items()} == sizes


def test_sizes_that_do_not_match_the_rows_fall_back_to_counting(spread: dict[str, Any]) -> None:
    wrong = {rep: len(values) + 5 for rep, values in spread["by_rep"].items()}
    with Session(spread["engine"]) as session:
        assert _accept_times(session, wrong) == _accept_times(session, None)


@pytest.mark.parametrize(
    ("n", "fractions", "ranks"),
    [
        (0, (MEDIAN, P90), set()),
        (1, (MEDIAN, P90), {1}),
        (4, (MEDIAN,), {2, 3}),
        (10, (MEDIAN, P90), {5, 6, 9, 10}),
        (11, (P90,), {10, 11}),
    ],
)
def test_percentile_ranks(n: int, fractions: Any, ranks: set[int]) -> None:
    assert percentile_ranks(n, fractions) == ranks
