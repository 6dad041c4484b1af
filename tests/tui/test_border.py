"""``burner chat`` refuses a burner at the border (§17.12) and says how to bring it back."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from burnerkit.app.home import Home
from burnerkit.app.issuer import IssuerKeyPair
from burnerkit.crypto.rng import SystemRandom
from burnerkit.tui.app import ChatApp
from burnerkit.tui.screens.unlock import UnlockScreen
from tests.tui.helpers import PASS, Clock, mint, paste, shown, until, utc

pytestmark = pytest.mark.asyncio


async def test_chat_refuses_a_burner_at_the_border_and_says_how_to_return(tmp_path: Path, url: str) -> None:
    clock = Clock()
    office = IssuerKeyPair.generate(SystemRandom())
    alice = mint(tmp_path, "alice", url, clock)
    await alice.carry_issuer(office.public)
    alice.cross_border()
    alice.close()
    app = ChatApp(Home(tmp_path / "alice"), clock=clock, localtime=utc)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, UnlockScreen), "the unlock screen shows")
        paste(app, PASS)
        await pilot.press("enter")
        await until(pilot, lambda: "at the border" in shown(app, "#unlock-status"), "the refusal shows")
        status = shown(app, "#unlock-status")
        assert "its vault key is with its issuer" in status
        assert "burner border return alice" in status
        assert "try again" not in status
        assert app.messenger is None
        assert isinstance(app.screen, UnlockScreen)
        assert not app.screen.query_one("#passphrase", Input).disabled
