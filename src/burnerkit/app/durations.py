"""Durations as people type them: ``30s``, ``15m``, ``1h``, ``7d``, ``4w``.

One parser and one time-left formatter for the CLI, the chat's status line and its
message timers, so all three say the same thing (docs/cli.md).
"""

from __future__ import annotations

import re
from typing import Final

from burnerkit.errors import UsageError

__all__ = ["format_duration", "parse_duration", "time_left"]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN: Final = re.compile(r"([0-9]{1,9})([smhdw])")
_LEFT_UNITS: Final = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> int:
    """Seconds in ``text``: one or more ``<number><unit>`` parts, units s m h d w (``1h30m``).

    Raises:
        UsageError: the text is not a positive duration.
    """
    compact = "".join(text.lower().split())
    parts = _PATTERN.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise UsageError(f"not a duration: {text!r} (use e.g. 30s, 15m, 1h, 7d, 4w)")
    seconds = sum(int(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise UsageError("a duration must be positive")
    return seconds


def format_duration(seconds: int) -> str:
    """The largest whole units of ``seconds``: ``90`` gives ``1m30s``, ``0`` gives ``0s``."""
    if seconds <= 0:
        return "0s"
    out = []
    for unit, size in sorted(_UNITS.items(), key=lambda item: -item[1]):
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def time_left(seconds: float, *, with_seconds: bool = False) -> str:
    """What is left, in its two largest units: ``3d 4h``, ``2h 5m``, ``5m``; ``expired`` at 0.

    Whole minutes (less than one is ``<1m``) unless ``with_seconds`` (``4m 12s``, ``12s``),
    for a disappearing message's last minutes. The burner's expiry (``list``, the chat's
    status line) and message timers read the same way everywhere.
    """
    left = int(seconds)
    if left <= 0:
        return "expired"
    shown: list[str] = []
    for name, size in _LEFT_UNITS if with_seconds else _LEFT_UNITS[:-1]:
        count, left = divmod(left, size)
        if count or shown:
            shown.append(f"{count}{name}")
        if len(shown) == 2:
            break
    return " ".join(shown) or "<1m"
