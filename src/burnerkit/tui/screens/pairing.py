"""Pairing by short code: show a code and wait for the other side, or type theirs.

While a code is offered, the main screen's receive loop is paused: pairing listens on
the invitation's queue itself, and two subscriptions to one queue look to the relay like
a second device (a clone alert).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from burnerkit.app.views import ContactView
from burnerkit.errors import BurnerError
from burnerkit.tui.screens.dialog import Dialog

__all__ = ["JoinCodeScreen", "OfferCodeScreen"]


class OfferCodeScreen(Dialog[ContactView]):
    """Name the contact (optional), then show a code and wait; Escape cancels."""

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(classes="dialog", id="offer"):
            yield Label("Pair by short code: show a code", classes="dialog-title")
            yield Input(placeholder="what to call them (optional), then Enter", id="offer-alias")
            yield Static("", id="offer-code")
            yield Static("", id="dialog-status")
            yield Label("Escape cancels (the code then stops working).", classes="hint")

    @on(Input.Submitted, "#offer-alias")
    def _start(self, event: Input.Submitted) -> None:
        event.input.disabled = True
        self.say("asking the relay for a code…")
        self.run_worker(self._offer(event.value.strip() or None), group="pair", exclusive=True)

    def _show_code(self, code: str) -> None:
        self.query_one("#offer-code", Static).update(f"[b reverse] {code} [/]")
        self.say("read this code to the other side (voice or in person); waiting for them…")

    async def _offer(self, alias: str | None) -> None:
        app = self.app
        await app.pause_live()
        try:
            view = await app.messenger_or_fail.pair_offer(alias, self._show_code)
        except BurnerError as exc:
            self.failed(exc)
            return
        finally:
            app.resume_live()
        app.notify(f"paired with {view.alias} by code: verified")
        self.dismiss(view)


class JoinCodeScreen(Dialog[ContactView]):
    """Type the code the other side reads out, and a name for them."""

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(classes="dialog", id="join"):
            yield Label("Pair by short code: type their code", classes="dialog-title")
            yield Input(placeholder="the code, like 7-word-word", id="join-code")
            yield Input(placeholder="what to call them, then Enter", id="join-alias")
            yield Static("", id="dialog-status")

    @on(Input.Submitted, "#join-code")
    def _next(self) -> None:
        self.query_one("#join-alias", Input).focus()

    @on(Input.Submitted, "#join-alias")
    def _join(self) -> None:
        code = self.query_one("#join-code", Input).value.strip()
        alias = self.query_one("#join-alias", Input).value.strip()
        if not code or not alias:
            self.say("[b red]the code and a name, please[/]")
            return
        self.say("pairing…")
        self.run_worker(self._run(code, alias), group="pair", exclusive=True)

    async def _run(self, code: str, alias: str) -> None:
        try:
            view = await self.app.messenger_or_fail.pair_join(code, alias)
        except BurnerError as exc:
            self.failed(exc)
            return
        self.app.notify(f"paired with {view.alias} by code: verified")
        self.dismiss(view)
