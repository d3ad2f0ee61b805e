"""The business calendar SLA clocks run on (hours, weekends, holidays, DST); wall vs business tiers."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.calendar import BusinessCalendar
from tests.conftest import team_playbook

NY = ZoneInfo("America/New_York")
THANKSGIVING = date(2026, 11, 26)
WORKWEEK = frozenset(range(5))
TEAM = BusinessCalendar(NY, WORKWEEK, time(9), time(17), frozenset({THANKSGIVING}))


def ny(*parts: int) -> datetime:
    """A New York wall-clock moment as timezone-aware UTC."""
    return datetime(*parts, tzinfo=NY).astimezone(UTC)


# --- examples --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "is_open"),
    [
        (ny(2026, 11, 23, 10, 0), True),  # Monday morning
        (ny(2026, 11, 23, 9, 0), True),  # opening is inside
        (ny(2026, 11, 23, 8, 59, 59), False),
        (ny(2026, 11, 23, 17, 0), False),  # closing is outside
        (ny(2026, 11, 23, 16, 59, 59), True),
        (ny(2026, 11, 21, 12, 0), False),  # Saturday
        (ny(2026, 11, 22, 12, 0), False),  # Sunday
        (ny(2026, 11, 26, 12, 0), False),  # Thanksgiving
        (ny(2026, 11, 27, 12, 0), True),
    ],
)
def test_is_open(moment: datetime, is_open: bool) -> None:
    assert TEAM.is_open(moment) is is_open


@pytest.mark.parametrize(
    ("start", "duration", "expected"),
    [
        (ny(2026, 11, 23, 10, 0), timedelta(minutes=15), ny(2026, 11, 23, 10, 15)),
        # Past closing time the clock stops, and starts again at the next opening.
        (ny(2026, 11, 23, 16, 55), timedelta(minutes=15), ny(2026, 11, 24, 9, 10)),
        # Friday afternoon into Monday: the weekend does not count.
        (ny(2026, 11, 20, 16, 55), timedelta(minutes=15), ny(2026, 11, 23, 9, 10)),
        # Arrived Friday evening: the whole SLA runs on Monday.
        (ny(2026, 11, 20, 18, 30), timedelta(minutes=15), ny(2026, 11, 23, 9, 15)),
        (ny(2026, 11, 21, 11, 0), timedelta(0), ny(2026, 11, 23, 9, 0)),
        # Wednesday before Thanksgiving: Thursday is a holiday.
        (ny(2026, 11, 25, 16, 0), timedelta(hours=2), ny(2026, 11, 27, 10, 0)),
        # A whole working day ends at closing time, not at the next opening.
        (ny(2026, 11, 23, 9, 0), timedelta(hours=8), ny(2026, 11, 23, 17, 0)),
        (ny(2026, 11, 23, 9, 0), timedelta(hours=8, seconds=1), ny(2026, 11, 24, 9, 0, 1)),
        (ny(2026, 11, 23, 12, 0), timedelta(days=1), ny(2026, 11, 27, 12, 0)),
    ],
)
def test_add(start: datetime, duration: timedelta, expected: datetime) -> None:
    assert TEAM.add(start, duration) == expected
    assert TEAM.elapsed(start, expected) == duration


def test_elapsed_counts_only_working_time() -> None:
    assert TEAM.elapsed(ny(2026, 11, 20, 16, 0), ny(2026, 11, 23, 10, 0)) == timedelta(hours=2)
    assert TEAM.elapsed(ny(2026, 11, 21, 0, 0), ny(2026, 11, 22, 23, 59)) == timedelta(0)
    assert TEAM.elapsed(ny(2026, 11, 25, 0, 0), ny(2026, 11, 28, 0, 0)) == timedelta(hours=16)
    assert TEAM.elapsed(ny(2026, 11, 23, 10, 0), ny(2026, 11, 23, 9, 0)) == timedelta(0)


def test_business_hours_follow_local_time_across_spring_forward() -> None:
    # New York moves to EDT on Sunday 8 March 2026: opening is 14:00 UTC on Friday, 13:00 on Monday.
    friday = ny(2026, 3, 6, 16, 30)
    assert friday == datetime(2026, 3, 6, 21, 30, tzinfo=UTC)
    monday = TEAM.add(friday, timedelta(hours=1))
    assert monday == datetime(2026, 3, 9, 13, 30, tzinfo=UTC)
    assert monday.astimezone(NY).time() == time(9, 30)
    assert TEAM.elapsed(ny(2026, 3, 6, 12, 0), ny(2026, 3, 9, 12, 0)) == timedelta(hours=8)


def test_business_hours_follow_local_time_across_fall_back() -> None:
    # Back to EST on Sunday 1 November 2026.
    friday = ny(2026, 10, 30, 16, 0)
    assert friday == datetime(2026, 10, 30, 20, 0, tzinfo=UTC)
    monday = TEAM.add(friday, timedelta(hours=2))
    assert monday == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    assert monday.astimezone(NY).time() == time(10, 0)


def test_a_window_spanning_the_dst_change_is_measured_in_real_time() -> None:
    nights = BusinessCalendar(NY, frozenset(range(7)), time(1), time(4))
    # 01:00 to 04:00 local is two real hours when the clocks spring forward ...
    spring = nights.elapsed(datetime(2026, 3, 8, tzinfo=UTC), datetime(2026, 3, 8, 23, tzinfo=UTC))
    assert spring == timedelta(hours=2)
    assert nights.add(ny(2026, 3, 8, 1, 0), timedelta(hours=2)) == datetime(
        2026, 3, 8, 8, 0, tzinfo=UTC
    )
    assert nights.add(ny(2026, 3, 8, 1, 0), timedelta(hours=2, minutes=30)) == ny(2026, 3, 9, 1, 30)
    # ... and four when they fall back.
    fall = nights.elapsed(datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 1, 23, tzinfo=UTC))
    assert fall == timedelta(hours=4)
    assert nights.add(datetime(2026, 11, 1, 5, 0, tzinfo=UTC), timedelta(hours=3, minutes=59)) == (
        datetime(2026, 11, 1, 8, 59, tzinfo=UTC)
    )


def test_a_sparse_calendar_waits_for_its_next_working_day() -> None:
    saturdays = BusinessCalendar(ZoneInfo("UTC"), frozenset({5}), time(9), time(17))
    monday = datetime(2026, 11, 23, tzinfo=UTC)
    assert saturdays.add(monday, timedelta(hours=1)) == datetime(2026, 11, 28, 10, tzinfo=UTC)


def test_a_calendar_without_working_time_says_so() -> None:
    every_saturday_off = frozenset(date(2026, 1, 3) + timedelta(weeks=w) for w in range(600))
    closed = BusinessCalendar(
        ZoneInfo("UTC"), frozenset({5}), time(9), time(17), every_saturday_off
    )
    with pytest.raises(ValueError, match="no working time"):
        closed.add(datetime(2026, 1, 1, tzinfo=UTC), timedelta(hours=1))


# --- the playbook's clocks -------------------------------------------------------------------


def test_deadline_and_time_between_on_business_and_wall_tiers() -> None:
    pb = team_playbook("assign")  # America/New_York, Mon-Fri 09:00-17:00
    hot, nurture = pb.tier("hot"), pb.tier("nurture")
    assert (hot.clock, nurture.clock) == ("business", "wall")
    friday_evening = ny(2026, 11, 20, 18, 0)

    assert pb.deadline(hot, friday_evening) == ny(2026, 11, 23, 9, 15)
    assert pb.deadline(nurture, friday_evening) == friday_evening + timedelta(days=1)
    assert pb.deadline(hot, friday_evening, within=timedelta(hours=1)) == ny(2026, 11, 23, 10, 0)

    monday = ny(2026, 11, 23, 9, 10)
    assert pb.time_between(hot, friday_evening, monday) == timedelta(minutes=10)
    assert pb.time_between(nurture, friday_evening, monday) == monday - friday_evening
    assert pb.time_between(hot, monday, friday_evening) == timedelta(0)
    assert pb.time_between(nurture, monday, friday_evening) == timedelta(0)


def test_the_playbook_calendar_reads_days_and_holidays() -> None:
    pb = team_playbook().model_copy(
        update={
            "holidays": [THANKSGIVING],
            "business_hours": team_playbook().business_hours.model_copy(
                update={"days": ["tue", "wed"], "start": time(10), "end": time(12)}
            ),
        }
    )
    cal = pb.calendar
    assert cal.days == frozenset({1, 2})
    assert (cal.start, cal.end, cal.holidays) == (time(10), time(12), frozenset({THANKSGIVING}))
    assert cal.add(ny(2026, 11, 23, 9, 0), timedelta(hours=3)) == ny(2026, 11, 25, 11, 0)


# --- properties ------------------------------------------------------------------------------

ZONES = ["America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "UTC"]


@st.composite
def calendars(draw: st.DrawFn) -> BusinessCalendar:
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    # Windows of an hour or more: ten days of `spans` then fit in the ten years `add` searches.
    start = draw(st.integers(0, 23 * 60 - 1))
    end = draw(st.integers(start + 60, 24 * 60 - 1))
    holidays = draw(st.frozensets(st.dates(date(2025, 12, 1), date(2027, 3, 1)), max_size=30))
    return BusinessCalendar(
        ZoneInfo(draw(st.sampled_from(ZONES))),
        days,
        time(start // 60, start % 60),
        time(end // 60, end % 60),
        holidays,
    )


moments = st.datetimes(datetime(2026, 1, 1), datetime(2026, 12, 31), timezones=st.just(UTC))
spans = st.timedeltas(timedelta(0), timedelta(days=10))
FAST = settings(deadline=None, max_examples=150)


@FAST
@given(calendars(), moments, spans)
def test_add_lands_in_working_hours_or_exactly_at_a_closing(
    cal: BusinessCalendar, start: datetime, span: timedelta
) -> None:
    end = cal.add(start, span)
    assert end >= start
    just_before = end - timedelta(microseconds=1)
    assert cal.is_open(end) or (span > timedelta(0) and cal.is_open(just_before))


@FAST
@given(calendars(), moments, spans)
def test_elapsed_undoes_add(cal: BusinessCalendar, start: datetime, span: timedelta) -> None:
    assert cal.elapsed(start, cal.add(start, span)) == span


@FAST
@given(calendars(), moments, spans, spans)
def test_add_is_monotonic(
    cal: BusinessCalendar, start: datetime, one: timedelta, other: timedelta
) -> None:
    shorter, longer = sorted((one, other))
    assert cal.add(start, shorter) <= cal.add(start, longer)


@FAST
@given(calendars(), moments, moments, moments)
def test_elapsed_is_additive_and_never_more_than_wall_time(
    cal: BusinessCalendar, a: datetime, b: datetime, c: datetime
) -> None:
    first, middle, last = sorted((a, b, c))
    whole = cal.elapsed(first, last)
    assert whole == cal.elapsed(first, middle) + cal.elapsed(middle, last)
    assert timedelta(0) <= whole <= last - first


@FAST
@given(calendars(), moments)
def test_closed_days_never_count(cal: BusinessCalendar, moment: datetime) -> None:
    local_day = moment.astimezone(cal.zone).date()
    if local_day.weekday() not in cal.days or local_day in cal.holidays:
        assert not cal.is_open(moment)
        midnight = datetime.combine(local_day, time(0), tzinfo=cal.zone)
        assert cal.elapsed(midnight, midnight + timedelta(hours=23)) == timedelta(0)


@FAST
@given(moments, st.timedeltas(timedelta(0), timedelta(hours=8)))
def test_team_calendar_deadlines_skip_weekends(start: datetime, span: timedelta) -> None:
    end = TEAM.add(start, span)
    local = end.astimezone(NY)
    assert local.weekday() < 5
    assert local.date() != THANKSGIVING
    assert time(9) <= local.time() <= time(17)
