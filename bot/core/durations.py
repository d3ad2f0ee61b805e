"""Human durations for the playbook: "15m", "4h", "1h30m", "2d", "1w"."""

from __future__ import annotations

import re
from datetime import timedelta

_PART = re.compile(r"(\d+)\s*([wdhms])")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse "1h30m"-style text (or a number of seconds) into a timedelta."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 15m, 4h or 2d")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError("a duration cannot be negative")
        return _seconds(text)
    cleaned = text.strip().lower().replace(" ", "")
    if not cleaned or _PART.sub("", cleaned):
        raise ValueError(f"{text!r} is not a duration; use forms such as 15m, 4h, 1h30m or 2d")
    return _seconds(sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(cleaned)))


def _seconds(seconds: float) -> timedelta:
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError) as exc:
        raise ValueError("that duration is too long to represent") from exc


def format_duration(delta: timedelta) -> str:
    """Render a timedelta compactly for people: "2m 14s", "3h 05m", "2d 4h"; "15m" and "4h" when whole."""
    total = max(int(delta.total_seconds()), 0)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes:02d}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {seconds:02d}s" if seconds else f"{minutes}m"
    return f"{seconds}s"
