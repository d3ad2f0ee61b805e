"""The team's business calendar: working days and hours in its timezone, minus holidays."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MAX_DAYS_SEARCHED = 3660


@dataclass(frozen=True)
class BusinessCalendar:
    """Working windows [start, end) on working days; holidays are whole days off."""

    zone: ZoneInfo
    days: frozenset[int]  # 0 = Monday
    start: time
    end: time
    holidays: frozenset[date] = frozenset()

    def _window(self, day: date) -> tuple[datetime, datetime] | None:
        if day.weekday() not in self.days or day in self.holidays:
            return None
        # Build each day's window in local time, then compare in UTC: that is what makes DST safe.
        opens = datetime.combine(day, self.start, tzinfo=self.zone).astimezone(UTC)
        closes = datetime.combine(day, self.end, tzinfo=self.zone).astimezone(UTC)
        return (opens, closes) if closes > opens else None

    def is_open(self, moment: datetime) -> bool:
        """True during working hours."""
        window = self._window(moment.astimezone(self.zone).date())
        return window is not None and window[0] <= moment.astimezone(UTC) < window[1]

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start` (closed hours do not count)."""
        moment = start.astimezone(UTC)
        remaining = duration
        day = moment.astimezone(self.zone).date() - timedelta(days=1)
        for _ in range(MAX_DAYS_SEARCHED):
            window = self._window(day)
            day += timedelta(days=1)
            if window is None or window[1] <= moment:
                continue
            opens = max(window[0], moment)
            if remaining <= window[1] - opens:
                return opens + remaining
            remaining -= window[1] - opens
            moment = window[1]
        raise ValueError("the business calendar has no working time in the next ten years")

    def elapsed(self, start: datetime, end: datetime) -> timedelta:
        """Working time between two moments (zero when `end` is not after `start`)."""
        begin, finish = start.astimezone(UTC), end.astimezone(UTC)
        total = timedelta(0)
        if finish <= begin:
            return total
        day = begin.astimezone(self.zone).date() - timedelta(days=1)
        last = finish.astimezone(self.zone).date() + timedelta(days=1)
        while day <= last:
            window = self._window(day)
            day += timedelta(days=1)
            if window is None:
                continue
            overlap = min(window[1], finish) - max(window[0], begin)
            if overlap > timedelta(0):
                total += overlap
        return total
