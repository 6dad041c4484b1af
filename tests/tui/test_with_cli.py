"""The app and the ``burner`` command chat through a real relay process, both ways.

Alice runs ``burner chat`` (the app, in this process); Bob types ``burner`` commands
(subprocesses, as a user would). When Bob burns his burner, his signed burn notice
reaches the app, which shows him burned and sends him nothing more (docs/protocol.md §17.7).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import Input, Static

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.tui.app import ChatApp
from tests.e2e.helpers import Person
from tests.tui.helpers import PASS, connected, contact_rows, lines, paste, shown, until, utc


@pytest.mark.asyncio
async def test_app_and_cli_chat_both_ways_and_the_app_shows_the_cli_side_burned(
    tmp_path: Path, url: str
) -> None:
    alice = Messenger.create(Home(tmp_path / "alice"), "alice", PASS, relay_url=url, kdf=FAST_TEST_KDF)
    bob = Person(tmp_path, "bob")
    minted = asyncio.to_thread(bob.run, "new", "bob", "--relay", url, "--expires", "1d")
    app = ChatApp(alice.home, "alice", messenger=alice, localtime=utc)
    async with app.run_test(size=(80, 24)) as pilot:
        await minted
        await until(pilot, lambda: connected(app), "the relay is connected")
        await pilot.press("f2", *"bob", "enter")
        await until(pilot, lambda: "burner:" in shown(app, "#invite-link"), "the link shows")
        link = shown(app, "#invite-link").replace("\n", "")
        await asyncio.to_thread(bob.run, "accept", link, "--name", "alice")
        await until(pilot, lambda: "? bob" in contact_rows(app), "bob's acceptance arrives")
        await pilot.press("escape", "enter")  # close the window; Enter on bob opens the message line

        paste(app, "hello from the app")
        await pilot.press("enter")
        await until(pilot, lambda: "hello from the app  ✓ delivered" in lines(app), "delivered")
        assert await asyncio.to_thread(bob.texts) == ["hello from the app"]

        await asyncio.to_thread(bob.run, "send", "alice", "hello from the command line")
        await until(pilot, lambda: "bob: hello from the command line" in lines(app), "the reply shows")

        await asyncio.to_thread(bob.run, "burn", "--yes")
        # Bob's signed burn notice arrives live: bob shows burned, and nothing more goes to him.
        await until(pilot, lambda: contact_rows(app) == ["? bob burned"], "bob shows burned")
        await until(pilot, lambda: " burned " in lines(app), "the event, inline in the conversation")
        assert app.screen.query_one("#composer", Input).disabled
        assert "burned" in str(app.screen.query_one("#chat-title", Static).render())
