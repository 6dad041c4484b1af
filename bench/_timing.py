"""One timed loop shared by the synchronous measurements."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["rate"]


def rate(step: Callable[[], object], seconds: float) -> float:
    """Call ``step`` repeatedly for about ``seconds`` and return calls per second.

    The clock is read after every call, so the loop overshoots the deadline by at
    most one call; the rate divides by the time actually spent. At least one call
    is always made.
    """
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        step()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)
