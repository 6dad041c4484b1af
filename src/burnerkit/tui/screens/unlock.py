"""Unlocking: the passphrase, once, then which burner (when it opens several).

The Argon2 derivation takes a second or more on purpose, so it runs in a thread worker
while the screen says "unlocking…"; a wrong passphrase shows the error and asks again.
No burner's name is on disk (docs/protocol.md §15.1): with several burners and none
named, the passphrase is tried on each and the names it opens are offered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, OptionList, Static
from textual.worker import WorkerFailed

from burnerkit.app.messenger import Messenger
from burnerkit.errors import BurnerAtBorderError, BurnerError, VaultError, VaultLockedError

if TYPE_CHECKING:
    from burnerkit.tui.app import ChatApp

__all__ = ["ChooseBurnerScreen", "UnlockScreen"]


class ChooseBurnerScreen(Screen[str]):
    """Pick one of the home's burners; dismissed with its name."""

    def __init__(self, names: list[str]) -> None:
        super().__init__()
        self.names = names

    def compose(self) -> ComposeResult:  # noqa: D102
        with Vertical(id="unlock-box"):
            yield Label("Which burner? (Up/Down, Enter)", id="unlock-title")
            yield OptionList(*self.names, id="burners")
        yield Footer()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.names[event.option_index])


class UnlockScreen(Screen[None]):
    """The passphrase, masked; ``$BURNER_PASSPHRASE`` (given to the app) skips the typing."""

    app: ChatApp

    def __init__(self, name: str | None) -> None:
        super().__init__()
        self.burner = name

    def compose(self) -> ComposeResult:  # noqa: D102
        title = "Unlock a burner" if self.burner is None else f"Unlock burner {self.burner}"
        with Vertical(id="unlock-box"):
            yield Label(title, id="unlock-title")
            yield Input(password=True, placeholder="passphrase, then Enter", id="passphrase")
            yield Static("", id="unlock-status")
        yield Footer()

    def on_mount(self) -> None:  # noqa: D102
        if self.app.passphrase is not None:
            self._unlock(self.app.passphrase)

    @on(Input.Submitted, "#passphrase")
    def _typed(self, event: Input.Submitted) -> None:
        if event.value:
            self._unlock(event.value)

    def _unlock(self, passphrase: str) -> None:
        field = self.query_one("#passphrase", Input)
        field.disabled = True
        self.query_one("#unlock-status", Static).update("unlocking… (deriving the key from the passphrase)")
        self.run_worker(self._open(passphrase), group="unlock", exclusive=True)

    async def _open(self, passphrase: str) -> None:
        app = self.app
        worker = self.run_worker(lambda: self._open_or_list(passphrase), thread=True, exit_on_error=False)
        try:
            opened = await worker.wait()
        except WorkerFailed as failed:
            error = failed.error
            if not isinstance(error, BurnerError):
                raise
            self._refused(error)
            return
        if isinstance(opened, Messenger):
            app.unlocked(opened)
        else:
            app.push_screen(ChooseBurnerScreen(opened), lambda name: self._chosen(name, passphrase))

    def _open_or_list(self, passphrase: str) -> Messenger | list[str]:
        """The burner asked for, unlocked; or the names the passphrase opens, to choose from."""
        app = self.app
        burner = self.burner
        if burner is None and app.home.count() > 1:
            found = Messenger.survey(app.home, passphrase, clock=app.clock, relay_timeout=app.relay_timeout)
            if not found:
                raise VaultLockedError
            if len(found) > 1:
                return [info.name for info in found]
            burner = found[0].name
        return Messenger.open(app.home, burner, passphrase, clock=app.clock, relay_timeout=app.relay_timeout)

    def _chosen(self, name: str | None, passphrase: str) -> None:
        if name is not None:
            self.burner = name
            self._unlock(passphrase)

    def _refused(self, error: BurnerError) -> None:
        field = self.query_one("#passphrase", Input)
        field.disabled = False
        field.value = ""
        field.focus()
        # Another try cannot open a burner at the border: its message says what can.
        hint = (
            "; try again"
            if isinstance(error, VaultError) and not isinstance(error, BurnerAtBorderError)
            else ""
        )
        self.query_one("#unlock-status", Static).update(f"[b red]{error}[/]{hint}")
