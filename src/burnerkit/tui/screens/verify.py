"""Verifying a contact: compare safety codes by voice or in person, then type theirs.

A mismatch becomes an alert, not a message that can be dismissed (docs/protocol.md §4.2, §17.6).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from burnerkit.app.views import VerifyResult
from burnerkit.errors import BurnerError, IdentityError
from burnerkit.tui.screens.dialog import Dialog

__all__ = ["VerifyScreen"]


class VerifyScreen(Dialog[VerifyResult]):
    """Shows ``alias``'s safety code; the code the other side reads marks it verified."""

    def __init__(self, alias: str) -> None:
        super().__init__()
        self.alias = alias

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(classes="dialog", id="verify"):
            yield Label(f"Verify {self.alias}", classes="dialog-title")
            yield Static("", id="verify-code")
            yield Label("Ask them to read the code on their screen, and type it here:")
            yield Input(placeholder="the code they read, then Enter", id="verify-input")
            yield Static("", id="dialog-status")

    def on_mount(self) -> None:  # noqa: D102
        try:
            result = self.app.messenger_or_fail.verify(self.alias)
        except BurnerError as exc:
            self.failed(exc)
            return
        state = "[green]verified ✓[/]" if result.verified else "[yellow]not verified[/]"
        self.query_one("#verify-code", Static).update(f"safety code: [b]{result.safety_code}[/]   ({state})")

    @on(Input.Submitted, "#verify-input")
    def _check(self, event: Input.Submitted) -> None:
        try:
            result = self.app.messenger_or_fail.verify(self.alias, event.value)
        except IdentityError as exc:
            # A mismatch is an alert (the Messenger recorded it): the banner shows it too.
            self.failed(exc)
            event.input.value = ""
            self.app.refresh_main()
            return
        except BurnerError as exc:
            self.failed(exc)
            return
        self.app.notify(f"{self.alias} is verified ✓")
        self.dismiss(result)
