"""The help overlay: every key of the chat UI (F1 or ?)."""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from burnerkit.tui.words import KEYS

__all__ = ["HelpScreen"]


class HelpScreen(ModalScreen[None]):
    """The keys, in a table; any of Escape, F1, ? or q closes it."""

    BINDINGS = [  # noqa: RUF012
        Binding("escape,f1,question_mark,q", "app.pop_screen", "Close"),
    ]

    def compose(self) -> ComposeResult:  # noqa: D102
        table = Table(box=None, show_header=False, padding=(0, 1))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        for key, what in KEYS:
            table.add_row(key, what)
        with Vertical(classes="dialog", id="help"):
            yield Label("Keys  (everything works without a mouse)", classes="dialog-title")
            yield Static(table)
            yield Label("Escape closes this window.", classes="hint")
