"""Durations as people type them (app/durations.py)."""

from __future__ import annotations

import pytest

from burnerkit.app.durations import format_duration, parse_duration, time_left
from burnerkit.errors import UsageError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("7d", 604_800),
        ("4w", 2_419_200),
        ("1w2d3h4m5s", 604_800 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
        ("90s", 90),
        ("1H", 3600),
        (" 1h 30m ", 5400),
        ("1 h", 3600),  # whitespace is dropped before matching
        ("1h1h", 7200),
        ("0s1s", 1),
        ("007s", 7),
        ("999999999s", 999_999_999),
    ],
)
def test_parse(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", " ", "0s", "0h0m", "5x", "-1h", "+1h", "1", "h", "1.5h", "1h30", "1e3s", "1234567890s", "1h-30m",
     "s1", "1ms", "1 hour"],
)  # fmt: skip
def test_parse_refuses(text: str) -> None:
    with pytest.raises(UsageError):
        parse_duration(text)


def test_parse_messages() -> None:
    with pytest.raises(UsageError, match="not a duration"):
        parse_duration("5x")
    with pytest.raises(UsageError, match="positive"):
        parse_duration("0s")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (-5, "0s"), (1, "1s"), (59, "59s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"),
     (86400, "1d"), (604_800, "1w"), (2_419_200, "4w"), (2_419_201, "4w1s"), (694_861, "1w1d1h1m1s")],
)  # fmt: skip
def test_format(seconds: int, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [1, 29, 30, 61, 3599, 3601, 86399, 90061, 2_419_200, 10**9])
def test_format_then_parse_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("seconds", "minutes", "with_seconds"),
    [(0, "expired", "expired"), (-3, "expired", "expired"), (0.5, "expired", "expired"),
     (12, "<1m", "12s"), (60, "1m", "1m 0s"), (252, "4m", "4m 12s"), (7500, "2h 5m", "2h 5m"),
     (7200, "2h 0m", "2h 0m"), (3 * 86400 + 4 * 3600 + 59, "3d 4h", "3d 4h"),
     (86400 + 300, "1d 0h", "1d 0h")],
)  # fmt: skip
def test_time_left_shows_the_two_largest_units(seconds: float, minutes: str, with_seconds: str) -> None:
    assert time_left(seconds) == minutes
    assert time_left(seconds, with_seconds=True) == with_seconds
