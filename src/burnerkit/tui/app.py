"""The chat app: screens, keys, and the one unlocked Messenger they share.

Flow: the passphrase (once; the derivations in a thread), which burner (if the home
holds several, none was named and the passphrase opens more than one: no name is on
disk, so the passphrase comes first), then the main screen. The app's return value is
the line ``burner chat`` prints on the way out (after a burn).
"""

from __future__ import annotations

import time

from textual.app import App
from textual.binding import Binding

from burnerkit.app.home import Home
from burnerkit.app.messenger import Clock, Messenger
from burnerkit.errors import BurnerError, NotFoundError
from burnerkit.tui.screens.alerts import AlertItem
from burnerkit.tui.screens.help import HelpScreen
from burnerkit.tui.screens.main import MainScreen
from burnerkit.tui.screens.unlock import UnlockScreen
from burnerkit.tui.words import LocalTime

__all__ = ["ChatApp"]


class ChatApp(App[str]):
    """``burner chat``: one burner's contacts and conversations, live."""

    CSS_PATH = "burner.tcss"
    TITLE = "burner chat"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [  # noqa: RUF012
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        home: Home,
        burner: str | None = None,
        *,
        passphrase: str | None = None,
        messenger: Messenger | None = None,
        clock: Clock = time.time,
        localtime: LocalTime = time.localtime,
        relay_timeout: float = 10.0,
        tick_every: float = 1.0,
        flush_every: float = 3.0,
    ) -> None:
        """Chat as ``burner`` of ``home``.

        Args:
            home: where the burners live.
            burner: which one (asked when None and the home holds several).
            passphrase: ``$BURNER_PASSPHRASE``, when set: no typing (a wrong one is asked again).
            messenger: an already unlocked burner (tests): no unlock screen.
            clock: the time, for countdowns and timers (the messenger's own clock for the vault).
            localtime: seconds to local time, for the times shown.
            relay_timeout: seconds a relay call may take.
            tick_every: seconds between redraws of the countdowns.
            flush_every: seconds between retries of the outbox.
        """
        super().__init__()
        self.home = home
        self.burner = burner
        self.passphrase = passphrase
        self.messenger = messenger
        self.clock = clock
        self.localtime = localtime
        self.relay_timeout = relay_timeout
        self.tick_every = tick_every
        self.flush_every = flush_every
        self.main: MainScreen | None = None
        #: What stopped the app before it could start (no such burner): the command reports it.
        self.error: BurnerError | None = None

    @property
    def messenger_or_fail(self) -> Messenger:
        """The unlocked burner.

        Raises:
            NotFoundError: it is gone (burned) or not unlocked yet.
        """
        if self.messenger is None:
            raise NotFoundError("no burner is unlocked")
        return self.messenger

    def on_mount(self) -> None:  # noqa: D102
        if self.messenger is not None:
            self.unlocked(self.messenger)
            return
        try:
            if self.burner is not None or self.home.count() <= 1:
                self.home.check_choice(self.burner)
        except BurnerError as exc:
            self.error = exc
            self.exit(return_code=1)
            return
        self.push_screen(UnlockScreen(self.burner))

    def unlocked(self, messenger: Messenger) -> None:
        """The burner is open: on to the main screen."""
        self.messenger = messenger
        self.main = MainScreen()
        if len(self.screen_stack) > 1:
            self.switch_screen(self.main)
        else:
            self.push_screen(self.main)

    # -- what the windows ask of the main screen --------------------------------------------------

    async def pause_live(self) -> None:
        """Stop the receive loop (pairing by code and burning need the queues to themselves)."""
        if self.main is not None:
            await self.main.pause_live()

    def resume_live(self) -> None:
        """Start the receive loop again."""
        if self.main is not None and self.messenger is not None:
            self.main.resume_live()

    def refresh_main(self) -> None:
        """Redraw the main screen (after an action in a window changed something)."""
        if self.main is not None:
            self.main.call_later(self.main.refresh_view)

    def clear_alert(self, item: AlertItem) -> None:
        """Clear a contact's alerts, or dismiss a notice (an event no contact carries).

        Raises:
            NotFoundError: no such contact.
        """
        if item.notice:
            if self.main is not None:
                for kind in item.kinds:
                    self.main.dismissed[item.alias, kind] = int(self.messenger_or_fail.now()) + 1
            return
        self.messenger_or_fail.clear_alerts(item.alias)

    def burned(self, farewell: str) -> None:
        """The burner is gone: leave with ``farewell`` for the terminal."""
        self.messenger = None
        self.exit(farewell)

    def action_help(self) -> None:
        """Show the keys."""
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def on_unmount(self) -> None:  # noqa: D102
        if self.messenger is not None:
            self.messenger.watch_links(None)
            self.messenger.close()
            self.messenger = None
