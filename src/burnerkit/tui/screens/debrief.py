"""The debrief view (F10): every anomaly of the burner's life, per contact, never content.

What ``burner debrief`` prints (docs/protocol.md §17.10), read-only: cleared alerts stay
listed here, which is the point of a debrief.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Label, Static

from burnerkit.app.debrief import Debrief
from burnerkit.tui.screens.dialog import Dialog
from burnerkit.tui.words import LocalTime, stamp

__all__ = ["DebriefScreen", "debrief_text"]


def debrief_text(report: Debrief, localtime: LocalTime) -> Text:
    """The report as the window shows it: the per-contact summaries, then every event."""
    text = Text()
    if not report.events:
        text.append("nothing to report: no anomaly recorded", style="green")
        return text
    text.append(f"{len(report.events)} event(s), {report.alerts} alert(s)\n", style="bold")
    for contact in report.contacts:
        text.append(f"  {contact.summary}\n", style="bold red" if contact.alerts else "")
    text.append("\n")
    for e in report.events:
        who = e.contact or "this burner"
        text.append(f"{stamp(e.at, localtime)}  {who}: ")
        text.append(e.kind, style="bold red" if e.alert else "bold")
        text.append(f": {e.detail}\n")
    return text


class DebriefScreen(Dialog[None]):
    """The debrief, scrollable; Escape closes it."""

    AUTO_FOCUS = "#debrief-events"

    def __init__(self, report: Debrief, localtime: LocalTime) -> None:
        super().__init__()
        self.report = report
        self.localtime = localtime

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(classes="dialog", id="debrief"):
            yield Label(f"Debrief of {self.report.burner}", classes="dialog-title")
            with VerticalScroll(id="debrief-events"):
                yield Static(debrief_text(self.report, self.localtime), id="debrief-text")
            yield Label("Never any message content; cleared alerts stay listed · Escape", classes="hint")
