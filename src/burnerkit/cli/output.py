"""Printing for the faces: JSON for scripts, Rich for people, QR codes for phones.

Rich and segno load on first use, not on import: every ``burner`` run imports this
module, and ``burner --version`` or ``--help`` should cost no more than Typer itself.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from burnerkit.app.views import ContactView

__all__ = [
    "LazyConsole",
    "alert_json",
    "alert_line",
    "console",
    "err_console",
    "print_json",
    "print_qr",
    "remaining",
    "spinner",
    "stamp",
]


#: The only markup our messages use; plain output drops it.
_MARKUP = re.compile(r"\[(?:bold|/bold|/)\]")


class LazyConsole:
    """A Rich console for a terminal, made on first use; plain text for pipes and files."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def rich(self) -> Console:
        """The Rich console itself."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, highlight=False, soft_wrap=True)
        return self._console

    def print(self, *objects: str, markup: bool = True, style: str | None = None) -> None:
        """One line, as :meth:`rich.console.Console.print` would show it."""
        stream = sys.stderr if self._stderr else sys.stdout
        if self._console is None and not stream.isatty():
            # What Rich prints off a terminal (no colour, no wrapping), without importing
            # it: scripts and the tests run burner thousands of times.
            text = " ".join(objects)
            stream.write((_MARKUP.sub("", text) if markup else text) + "\n")
            stream.flush()
            return
        self.rich.print(*objects, markup=markup, style=style)


console = LazyConsole(stderr=False)
err_console = LazyConsole(stderr=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout, for scripts (``--json``)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_qr(text: str) -> None:
    """``text`` as a QR code drawn with block characters (two rows per line)."""
    import segno

    qr = segno.make(text, error="l", micro=False)
    qr.terminal(out=sys.stdout, compact=True, border=2)
    sys.stdout.flush()


@contextlib.contextmanager
def spinner(text: str, *, quiet: bool = False) -> Iterator[None]:
    """A spinner with ``text`` on stderr while the block runs, when stderr is a terminal.

    Never in pipes (scripts and tests read stderr) nor with ``quiet`` (``--json``).
    """
    if quiet or not sys.stderr.isatty():
        yield
        return
    with err_console.rich.status(text, spinner="dots"):
        yield


def stamp(seconds: float) -> str:
    """A time for people, in local time with its zone: ``2026-12-07 14:03 CET``."""
    return time.strftime("%Y-%m-%d %H:%M %Z", time.localtime(seconds))


def remaining(until: float, now: float) -> str:
    """How long until ``until``, as people say it: ``in 3d 4h``, ``in 5m``, or ``expired``."""
    from burnerkit.app.durations import time_left

    left = time_left(until - now)
    return left if left == "expired" else f"in {left}"


def alert_line(view: ContactView) -> str:
    """One line that says a contact is on alert, and how to clear it."""
    return (
        f"ALERT on {view.alias}: {', '.join(view.alerts)}; see 'burner alerts', "
        f"clear with 'burner alerts --clear {view.alias}'"
    )


def alert_json(view: ContactView) -> dict[str, Any]:
    """The ``--json`` item that says a contact is on alert."""
    return {"type": "alert", "contact": view.alias, "alerts": list(view.alerts)}
