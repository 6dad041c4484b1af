"""The alerts panel: every contact on alert, what it means, what to do, and clearing.

Clearing is one explicit act per alert, never a side effect of reading, so an alert
cannot scroll away unseen (docs/protocol.md §17.6).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from burnerkit.errors import BurnerError
from burnerkit.tui.screens.dialog import Dialog
from burnerkit.tui.words import advice

__all__ = ["AlertItem", "AlertsScreen"]


@dataclass(frozen=True, slots=True)
class AlertItem:
    """One contact's alert kinds (``notice``: a fact the app noticed, like an undeliverable)."""

    alias: str
    kinds: tuple[str, ...]
    notice: bool = False


class AlertsScreen(Dialog[None]):
    """Up/Down choose; ``c`` clears the chosen contact's alerts (the events stay for the debrief)."""

    AUTO_FOCUS = "#alert-list"
    BINDINGS = [  # noqa: RUF012
        Binding("escape", "close", "Close"),
        Binding("c", "clear", "Clear the chosen alert"),
    ]

    def __init__(self, items: list[AlertItem]) -> None:
        super().__init__()
        self.items = list(items)

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(classes="dialog danger", id="alerts"):
            yield Label("Alerts", classes="dialog-title")
            yield OptionList(id="alert-list")
            yield Static("", id="dialog-status")
            yield Label(
                "c: clear the chosen alert (only once you have dealt with it) · Escape", classes="hint"
            )

    def on_mount(self) -> None:  # noqa: D102
        self._fill()

    def _fill(self) -> None:
        options = self.query_one("#alert-list", OptionList)
        options.clear_options()
        for item in self.items:
            text = Text()
            text.append(f"{item.alias or 'this burner'}: {', '.join(item.kinds)}\n", style="bold red")
            text.append("\n".join(f"  • {advice(kind, item.alias)}" for kind in item.kinds))
            options.add_option(Option(text))
        options.display = bool(self.items)
        if not self.items:
            self.say("[green]no alerts[/]")
        else:
            options.highlighted = 0
            options.focus()

    def action_clear(self) -> None:
        """Clear the highlighted contact's alerts: an explicit act, never automatic."""
        index = self.query_one("#alert-list", OptionList).highlighted
        if index is None or not self.items:
            return
        item = self.items[index]
        try:
            self.app.clear_alert(item)
        except BurnerError as exc:
            self.failed(exc)
            return
        del self.items[index]
        self.app.notify(f"alerts of {item.alias or 'this burner'} cleared (kept in the debrief)")
        self._fill()
