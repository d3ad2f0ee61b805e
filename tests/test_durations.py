"""Playbook durations: parsing "1h30m"-style text and rendering durations for people."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from bot.core.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("45s", timedelta(seconds=45)),
        ("1d 2h", timedelta(days=1, hours=2)),
        (" 2H ", timedelta(hours=2)),
        ("0m", timedelta(0)),
    ],
)
def test_parse_duration_text(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_numbers_are_seconds() -> None:
    assert parse_duration(90) == timedelta(seconds=90)
    assert parse_duration(0) == timedelta(0)
    assert parse_duration(1.5) == timedelta(seconds=1.5)


def test_parse_duration_passes_a_timedelta_through() -> None:
    assert parse_duration(timedelta(minutes=7)) == timedelta(minutes=7)


@pytest.mark.parametrize("text", ["", "   ", "4x", "15", "m", "1h30", "h1", "1.5h", "-5m", "1h-2m"])
def test_parse_duration_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("value", [-1, -0.5])
def test_parse_duration_rejects_negative_numbers(value: float) -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(value)


@pytest.mark.parametrize("value", [True, False])
def test_parse_duration_rejects_bools(value: bool) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [
        (timedelta(minutes=2, seconds=14), "2m 14s"),
        (timedelta(hours=3, minutes=5), "3h 05m"),
        (timedelta(days=2, hours=4, minutes=59), "2d 4h"),
        (timedelta(seconds=45), "45s"),
        (timedelta(0), "0s"),
        (timedelta(minutes=1), "1m"),
        (timedelta(hours=1), "1h"),
        (timedelta(minutes=15), "15m"),
        (timedelta(days=2), "2d"),
        (timedelta(days=1), "1d"),
        (timedelta(seconds=59.9), "59s"),
    ],
)
def test_format_duration(delta: timedelta, expected: str) -> None:
    assert format_duration(delta) == expected


def test_format_duration_clamps_negative_to_zero() -> None:
    assert format_duration(timedelta(seconds=-30)) == "0s"


def test_parse_duration_round_trips_generated_compound_durations() -> None:
    rng = random.Random(20261123)
    units = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
    for _ in range(300):
        chosen = [u for u in units if rng.random() < 0.5] or ["m"]
        amounts = {u: rng.randint(0, 500) for u in chosen}
        text = "".join(f"{amounts[u]}{u}" for u in chosen)
        expected = sum(amounts[u] * units[u] for u in chosen)
        assert parse_duration(text) == timedelta(seconds=expected), text


@pytest.mark.parametrize("value", ["999999999999w", "99999999999999999999s", float("inf")])
def test_parse_duration_rejects_durations_too_long_to_represent(value: str | float) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)
