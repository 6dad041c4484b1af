"""Durations as people type them: ``30s``, ``15m``, ``1h``, ``7d``, ``4w``."""

from __future__ import annotations

import re
from typing import Final

from burnerkit.errors import UsageError

__all__ = ["format_duration", "parse_duration"]

_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN: Final = re.compile(r"([0-9]{1,9})([smhdw])")


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
