"""The main screen against a real relay process: contacts, live messages, sending, status."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tui.helpers import Clock, chat_app, mint, pair, shown, until


@pytest.mark.asyncio
async def test_message_from_a_contact_shows_live_and_a_reply_goes_out(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.main is not None and app.main.link is True, "the relay is connected")
        await bob.send("alice", "hello from bob")
        await until(pilot, lambda: "hello from bob" in shown(app, "#lines"), "bob's message shows")
        await pilot.press(*"hi bob", "enter")
        await until(pilot, lambda: "hi bob  ✓ delivered" in shown(app, "#lines"), "the reply is delivered")
    assert [m.text for m in (await bob.receive(wait=5)).messages] == ["hi bob"]
    bob.close()
