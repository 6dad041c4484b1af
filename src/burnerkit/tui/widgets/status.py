"""The status line: relay connection, outbox, and the burner's expiry countdown."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from burnerkit.app.durations import time_left

__all__ = ["StatusLine"]


class StatusLine(Static):
    """One line at the bottom of the main screen; the screen sets its attributes."""

    def show(self, *, link: bool | None, detail: str, queued: int, expires_in: float) -> None:
        """Redraw: ``link`` None while the first connection is being made."""
        text = Text()
        if link is None:
            text.append("… connecting to the relay", style="yellow")
        elif link:
            text.append("● relay connected", style="green")
        else:
            text.append("○ relay lost, reconnecting", style="bold red")
            if detail:
                text.append(f" ({detail})", style="red")
        if queued:
            text.append(f" │ {queued} queued, retrying", style="yellow")
        text.append(" │ ")
        left = time_left(expires_in)
        text.append(
            "EXPIRED" if left == "expired" else f"expires in {left}",
            style="bold red" if expires_in < 3600 else "",
        )
        self.update(text)
