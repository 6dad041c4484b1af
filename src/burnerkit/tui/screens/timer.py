"""A contact's disappearing messages: a timer, and burn-on-read.

The timer travels in every message, so both sides apply the same one (docs/protocol.md §17.3).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Checkbox, Label, OptionList, Static

from burnerkit.app.views import ContactView
from burnerkit.errors import BurnerError
from burnerkit.tui.screens.dialog import Dialog
from burnerkit.tui.words import TIMER_CHOICES

__all__ = ["TimerScreen"]


class TimerScreen(Dialog[ContactView]):
    """Pick a timer (Enter applies); Tab then Space toggles burn-on-read."""

    AUTO_FOCUS = "#timer-choice"

    def __init__(self, view: ContactView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(classes="dialog", id="timer"):
            yield Label(f"Disappearing messages with {self.view.alias}", classes="dialog-title")
            yield Label("Our messages from the next one on vanish, on both sides, after:")
            yield OptionList(*(label for label, _ in TIMER_CHOICES), id="timer-choice")
            yield Checkbox("burn on read: gone once they have seen it", self.view.burn_on_read, id="bor")
            yield Static("Enter on a timer applies it; Escape leaves it as it is.", id="dialog-status")

    def on_mount(self) -> None:  # noqa: D102
        seconds = [value for _, value in TIMER_CHOICES]
        choice = self.query_one("#timer-choice", OptionList)
        choice.highlighted = seconds.index(self.view.timer) if self.view.timer in seconds else 0
        choice.focus()

    @on(OptionList.OptionSelected, "#timer-choice")
    def _apply(self, event: OptionList.OptionSelected) -> None:
        label, seconds = TIMER_CHOICES[event.option_index]
        burn = self.query_one("#bor", Checkbox).value
        try:
            view = self.app.messenger_or_fail.set_disappearing(self.view.alias, seconds, burn)
        except BurnerError as exc:
            self.failed(exc)
            return
        what = "no timer" if not seconds else f"⏱ {label}"
        self.app.notify(f"{view.alias}: {what}{', burn on read' if burn else ''}, from your next message")
        self.dismiss(view)
