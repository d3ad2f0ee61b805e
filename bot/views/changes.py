"""How the digest writes figures and their change from the previous week."""

from __future__ import annotations

from datetime import timedelta

from bot.core.durations import format_duration

NO_DATA = "no data"


def pct(rate: float | None) -> str:
    """A rate as a whole percentage, or "no data"."""
    return NO_DATA if rate is None else f"{rate * 100:.0f}%"


def duration(seconds: float | None) -> str:
    """Seconds as "14m 05s"/"2h 10m", or "no data"."""
    return NO_DATA if seconds is None else format_duration(timedelta(seconds=round(seconds)))


def change(current: float | None, previous: float | None) -> str:
    """Relative change of a count or duration from the previous week: "▲ 12%", "▼ 3%", "±0%"."""
    if current is None or previous is None:
        return "" if current is None else "no data last week"
    if previous == 0:
        return "±0%" if current == 0 else "▲ from 0"
    step = round((current - previous) / previous * 100)
    return _arrow(step, "%")


def change_pts(current: float | None, previous: float | None) -> str:
    """Change of a rate in percentage points: "▲ 4 pts", "▼ 1 pt", "±0 pts"."""
    if current is None or previous is None:
        return "" if current is None else "no data last week"
    step = round((current - previous) * 100)
    return _arrow(step, " pt" if abs(step) == 1 else " pts")


def _arrow(step: int, unit: str) -> str:
    if step == 0:
        return f"±0{unit}"
    return f"{'▲' if step > 0 else '▼'} {abs(step)}{unit}"


def with_change(value: str, delta: str) -> str:
    """A figure followed by its change from last week, when there is one."""
    return f"{value} · {delta}" if delta else value
