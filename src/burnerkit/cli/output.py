"""Printing for the faces: JSON for scripts, Rich for people, QR codes for phones."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import segno
from rich.console import Console

from burnerkit.app.views import ContactView

__all__ = ["alert_json", "alert_line", "console", "err_console", "print_json", "print_qr", "stamp"]

console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout, for scripts (``--json``)."""
    sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_qr(text: str) -> None:
    """``text`` as a QR code drawn with block characters (two rows per line)."""
    qr = segno.make(text, error="l", micro=False)
    qr.terminal(out=sys.stdout, compact=True, border=2)
    sys.stdout.flush()


def stamp(seconds: float) -> str:
    """A UTC time for people: ``2026-11-25 14:03``."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(seconds))


def alert_line(view: ContactView) -> str:
    """One line that says a contact is on alert, and how to clear it."""
    return (
        f"ALERT on {view.alias}: {', '.join(view.alerts)}; see 'burner alerts', "
        f"clear with 'burner alerts --clear {view.alias}'"
    )


def alert_json(view: ContactView) -> dict[str, Any]:
    """The ``--json`` item that says a contact is on alert."""
    return {"type": "alert", "contact": view.alias, "alerts": list(view.alerts)}
