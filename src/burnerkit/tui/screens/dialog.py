"""What every modal window shares: Escape closes it, errors become notifications."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import Static

from burnerkit.errors import BurnerError
from burnerkit.tui.live import stop_workers

if TYPE_CHECKING:
    from burnerkit.tui.app import ChatApp

__all__ = ["Dialog"]

T = TypeVar("T")


class Dialog(ModalScreen[T]):
    """A modal window over the main screen."""

    app: ChatApp
    #: The first text field takes the keys when the window opens.
    AUTO_FOCUS = "Input"
    BINDINGS = [Binding("escape", "close", "Close")]  # noqa: RUF012

    async def on_unmount(self) -> None:  # noqa: D102
        await stop_workers(self)

    def action_close(self) -> None:
        """Close without a result."""
        self.dismiss(None)

    def failed(self, error: BurnerError, *, where: str = "#dialog-status") -> None:
        """Show a Messenger error: as a notification, and in the window's status line."""
        self.app.notify(str(error), severity="error", timeout=8)
        for status in self.query(where).results(Static):
            status.update(f"[b red]{error}[/]")

    def say(self, text: str, *, where: str = "#dialog-status") -> None:
        """Put ``text`` (Rich markup) in the window's status line."""
        for status in self.query(where).results(Static):
            status.update(text)
