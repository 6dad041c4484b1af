"""Invitations: make one (link and QR code), or accept one someone gave you.

The links are docs/protocol.md §17.2; the short one is the default because its QR code fits
a terminal.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Static

from burnerkit.app.views import ContactView, InviteView
from burnerkit.errors import BurnerError
from burnerkit.tui.screens.dialog import Dialog
from burnerkit.tui.widgets.qr import QrCode
from burnerkit.tui.words import stamp

__all__ = ["AcceptScreen", "InviteScreen"]

#: Columns inside the invitation window (76 wide, less border, padding and scroll bar).
_QR_COLUMNS = 70


class InviteScreen(Dialog[InviteView]):
    """Name whoever will accept (optional), then a one-time link and its QR code."""

    def compose(self) -> ComposeResult:  # noqa: D102
        with VerticalScroll(classes="dialog", id="invite"):
            yield Label("Invite someone: a one-time link", classes="dialog-title")
            yield Input(placeholder="what to call them (optional), then Enter", id="invite-alias")
            yield Static("", id="dialog-status")
            yield Static("", id="invite-link")
        yield Static("Escape closes · PageUp/PageDown scroll", classes="hint")

    @on(Input.Submitted, "#invite-alias")
    def _make(self, event: Input.Submitted) -> None:
        event.input.disabled = True
        self.say("asking the relay for a queue…")
        self.run_worker(self._invite(event.value.strip() or None), group="invite", exclusive=True)

    async def _invite(self, alias: str | None) -> None:
        try:
            view = await self.app.messenger_or_fail.invite(alias)
        except BurnerError as exc:
            self.failed(exc)
            self.query_one("#invite-alias", Input).disabled = False
            return
        self.say(
            f"one-time invitation for [b]{view.alias}[/], valid until "
            f"{stamp(view.expires_at, self.app.localtime)}; they become your contact once they "
            "accept. Hand it over in person if you can:"
        )
        self.query_one("#invite-link", Static).update(view.link)
        window = self.query_one("#invite", VerticalScroll)
        await window.mount(QrCode(view.link, max_width=_QR_COLUMNS, id="invite-qr"))
        window.focus()


class AcceptScreen(Dialog[ContactView]):
    """Paste a ``burner:`` link and name the inviter; dismissed with the new contact."""

    def compose(self) -> ComposeResult:  # noqa: D102
        with VerticalScroll(classes="dialog", id="accept"):
            yield Label("Accept an invitation link", classes="dialog-title")
            yield Input(placeholder="paste the burner: link", id="accept-link")
            yield Input(placeholder="what to call them, then Enter", id="accept-alias")
            yield Static("", id="dialog-status")

    @on(Input.Submitted, "#accept-link")
    def _next(self) -> None:
        self.query_one("#accept-alias", Input).focus()

    @on(Input.Submitted, "#accept-alias")
    def _accept(self) -> None:
        # A link copied from a terminal may come wrapped over lines.
        link = "".join(self.query_one("#accept-link", Input).value.split())
        alias = self.query_one("#accept-alias", Input).value.strip()
        if not link or not alias:
            self.say("[b red]a link and a name, please[/]")
            return
        self.say("accepting: making our queue and greeting them…")
        self.run_worker(self._run(link, alias), group="accept", exclusive=True)

    async def _run(self, link: str, alias: str) -> None:
        try:
            view = await self.app.messenger_or_fail.accept(link, alias)
        except BurnerError as exc:
            self.failed(exc)
            return
        self.app.notify(f"paired with {view.alias}: compare safety codes (F6) to verify")
        self.dismiss(view)
