"""What the chat UI tests share: burners on a fixed clock, pairing, and waiting on the app."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textual.pilot import Pilot
from textual.widgets import Input, Label, Static

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.tui.app import ChatApp

PASS = "correct horse battery"
#: 2030-03-17 17:46:40 UTC: every screen shows times from this fixed clock.
T0 = 1_900_000_000.0
#: A hang guard only: no test asserts how long anything takes.
DEADLINE = 30.0


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def utc(seconds: float) -> time.struct_time:
    """The screens' local time, fixed to UTC so snapshots do not depend on the machine."""
    return time.gmtime(seconds)


def mint(root: Path, name: str, url: str, clock: Clock, lifetime: int = 7 * 86400) -> Messenger:
    return Messenger.create(
        Home(root / name), name, PASS, relay_url=url, lifetime=lifetime, kdf=FAST_TEST_KDF, clock=clock
    )


async def pair(inviter: Messenger, acceptor: Messenger, inviter_calls: str, acceptor_calls: str) -> None:
    """Pair by link through the relay, both sides in this process."""
    link = (await inviter.invite(inviter_calls)).link
    await acceptor.accept(link, acceptor_calls)
    assert (await inviter.receive(wait=5, idle=0.05)).new_contacts == [inviter_calls]


def chat_app(messenger: Messenger, clock: Clock, **options: object) -> ChatApp:
    """The app on an unlocked burner, with the test's clock and UTC times."""
    return ChatApp(messenger.home, messenger.name, messenger=messenger, clock=clock, localtime=utc, **options)  # type: ignore[arg-type]


async def until(pilot: Pilot[Any], condition: Callable[[], bool], what: str) -> None:
    """Let the app run until ``condition`` holds; fail (not hang) if it never does."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await pilot.pause(0.02)


def shown(app: ChatApp, selector: str) -> str:
    """The plain text a Static widget of the current screen shows."""
    widget = app.screen.query_one(selector, Static)
    return str(widget.render())


def on_main(app: ChatApp, selector: str) -> str:
    """The plain text a Static widget of the main screen shows, windows open or not."""
    assert app.main is not None
    return str(app.main.query_one(selector, Static).render())


def lines(app: ChatApp) -> str:
    """The open conversation, as plain text."""
    return on_main(app, "#lines")


def status(app: ChatApp) -> str:
    return on_main(app, "#status")


def banner(app: ChatApp) -> str:
    """The alert banner's text, or "" while it is hidden."""
    assert app.main is not None
    widget = app.main.query_one("#banner", Static)
    return str(widget.render()) if widget.display else ""


def contact_rows(app: ChatApp) -> list[str]:
    """The contact list's rows, as plain text."""
    from burnerkit.tui.widgets.contacts import ContactItem

    return [
        str(label.render())
        for item in (app.main.query(ContactItem) if app.main else [])
        for label in item.query(Label)
    ]


def connected(app: ChatApp) -> bool:
    return app.main is not None and app.main.link is True


def paste(app: ChatApp, text: str) -> None:
    """Put ``text`` into the focused text field as a paste would (a key press each is slow)."""
    field = app.focused
    assert isinstance(field, Input), f"the focus is on {field!r}, not a text field"
    field.insert_text_at_cursor(text)
