"""The duress passphrase typed into the chat's unlock screen (docs/protocol.md §17.11).

A coerced owner opens ``burner chat`` and types the duress passphrase: the chat must show
the decoy as it shows any burner, the real key must be gone, and the chosen contact must get
its alert.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burnerkit.app import duress
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.errors import VaultLockedError
from burnerkit.tui.app import ChatApp
from burnerkit.tui.screens.main import MainScreen
from burnerkit.tui.screens.unlock import UnlockScreen
from tests.tui.helpers import PASS, Clock, contact_rows, mint, pair, paste, until, utc

pytestmark = pytest.mark.asyncio

DURESS = "open sesame please"


async def test_duress_passphrase_in_the_chat_opens_the_decoy_and_alerts_the_contact(
    tmp_path: Path, url: str
) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    alice.arm_duress(DURESS, alert=["bob"])
    assert await alice.flush_outbox() == []
    alice.close()
    await bob.receive(wait=5, idle=0.05)
    home = Home(tmp_path / "alice")
    app = ChatApp(home, "alice", clock=clock, localtime=utc)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, UnlockScreen), "the unlock screen shows")
        paste(app, DURESS)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, MainScreen), "the decoy opens as any burner")
        assert app.messenger is not None
        assert app.messenger.name == "alice"
        assert contact_rows(app) == []
    await asyncio.to_thread(duress.join_alerts, 30)
    with pytest.raises(VaultLockedError):
        Messenger.open(home, "alice", PASS, clock=clock)
    await bob.receive(wait=5, idle=0.05)
    assert bob.contact("alice").alerts == ["duress"]
    bob.close()
