"""A conversation: messages with their delivery state and timers, anomalies inline."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from burnerkit.app.durations import time_left
from burnerkit.app.views import EventView, HistoryEntry, InboxMessage
from burnerkit.tui.words import LocalTime, clock_time

__all__ = ["Conversation", "Line", "render_lines"]

_STATUS = {
    "delivered": ("✓ delivered", "green"),
    "queued": ("… queued", "yellow"),
    "refused": ("✗ refused: not delivered", "bold red"),
}


@dataclass(frozen=True, slots=True)
class Line:
    """One line of a conversation, in time order (``at`` in milliseconds)."""

    at: int
    text: Text


def _message(
    *,
    outgoing: bool,
    alias: str,
    text: str,
    sent_at: int,
    status: str,
    burn: bool,
    expires_at: int,
    now: float,
    localtime: LocalTime,
) -> Line:
    line = Text()
    line.append(clock_time(sent_at / 1000, localtime) + " ", style="dim")
    line.append("you" if outgoing else alias, style="bold cyan" if outgoing else "bold magenta")
    line.append(": ")
    if outgoing and burn and not text:
        line.append("(burn-on-read: not kept here)", style="dim italic")
    else:
        line.append(text)
    if status in _STATUS:
        label, style = _STATUS[status]
        line.append(f"  {label}", style=style)
    if expires_at:
        line.append(f"  ⏱ {time_left(expires_at - now, with_seconds=True)}", style="yellow")
    if burn:
        line.append("  🔥 burns when read" if outgoing else "  🔥 gone once you leave", style="red")
    return Line(sent_at, line)


def render_lines(
    alias: str,
    history: list[HistoryEntry],
    ephemeral: list[InboxMessage],
    events: list[EventView],
    *,
    now: float,
    localtime: LocalTime,
) -> Text:
    """The conversation with ``alias`` as text, oldest first.

    Stored messages, the burn-on-read ones held in memory, and the anomalies recorded
    for the contact, inline.
    """
    lines: list[Line] = []
    for entry in history:
        if entry.expires_at and entry.expires_at <= now:
            continue  # past its time: deleted at the next purge, hidden already
        if not entry.outgoing and entry.burn_on_read:
            continue  # shown from memory (the inbox deletes it as it hands it over)
        lines.append(
            _message(
                outgoing=entry.outgoing,
                alias=alias,
                text=entry.text,
                sent_at=entry.sent_at,
                status=entry.status,
                burn=entry.burn_on_read,
                expires_at=entry.expires_at,
                now=now,
                localtime=localtime,
            )
        )
    for message in ephemeral:
        lines.append(
            _message(
                outgoing=False,
                alias=alias,
                text=message.text,
                sent_at=message.sent_at,
                status="",
                burn=True,
                expires_at=message.expires_at,
                now=now,
                localtime=localtime,
            )
        )
    for event in events:
        mark = Text()
        mark.append(clock_time(event.at, localtime) + " ", style="dim")
        style = "bold white on red" if event.alert else "black on yellow"
        mark.append(f" {'⚠ ' if event.alert else ''}{event.kind} ", style=style)
        mark.append(f" {event.detail}", style="red" if event.alert else "yellow")
        lines.append(Line(event.at * 1000, mark))
    lines.sort(key=lambda line: line.at)
    if not lines:
        return Text("no messages yet: type below and press Enter", style="dim")
    return Text("\n").join(line.text for line in lines)


class Conversation(VerticalScroll):
    """The scrolling conversation; :meth:`show` replaces what it shows and scrolls to the end."""

    def compose(self) -> ComposeResult:  # noqa: D102
        yield Static(id="lines")

    def show(self, text: Text) -> None:
        """Show ``text`` and keep the newest line in view."""
        self.query_one("#lines", Static).update(text)
        self.scroll_end(animate=False)
