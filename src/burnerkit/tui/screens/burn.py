"""Burning the burner from the app: says what happens, asks for the name, then does it.

Typing the name, not pressing a key, confirms: a burn cannot be undone (docs/protocol.md §15.7).
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input, Label, Static

from burnerkit.errors import BurnerError
from burnerkit.tui.screens.dialog import Dialog

__all__ = ["BurnScreen"]

_WHAT_HAPPENS = (
    "Burning {name} is irreversible. It will:\n"
    "  1. shred the vault's key, so nothing it holds can be read, even from an earlier copy;\n"
    "  2. tell each contact, with a signed burn notice (they stop writing to {name});\n"
    "  3. delete every relay queue of {name} (your contacts' messages to you are refused from then on);\n"
    "  4. remove its files from this device, and close this window.\n"
    "Contacts, messages and keys are gone for good."
)


class BurnScreen(Dialog[None]):
    """Type the burner's name and Enter to burn it."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.burner = name

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(classes="dialog danger", id="burn"):
            yield Label(f"Burn {self.burner}?", classes="dialog-title")
            yield Static(_WHAT_HAPPENS.format(name=self.burner), id="burn-what")
            yield Input(placeholder=f"type {self.burner} to burn it, then Enter", id="burn-name")
            yield Static("Escape: keep it.", id="dialog-status")

    @on(Input.Submitted, "#burn-name")
    def _confirm(self, event: Input.Submitted) -> None:
        if event.value.strip() != self.burner:
            self.say(f"[b red]that is not {self.burner}: nothing was burned[/]")
            return
        event.input.disabled = True
        self.say("burning: shredding the key, telling the contacts, deleting relay queues…")
        self.run_worker(self._burn(), group="burn", exclusive=True)

    async def _burn(self) -> None:
        app = self.app
        await app.pause_live()
        try:
            # The screens' timers skip once the burn's key step closes the vault (Messenger.gone).
            report = await app.messenger_or_fail.burn()
        except BurnerError as exc:
            self.failed(exc)
            app.resume_live()
            return
        farewell = (
            f"burned {report.name}: vault shredded, {report.notices_sent} contact(s) told, "
            f"{report.queues_deleted} relay queue(s) deleted"
        )
        if report.queues_failed:
            farewell += f", {report.queues_failed} unreachable (unlinkable without the shredded key)"
        app.burned(farewell)
