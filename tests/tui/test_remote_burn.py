"""``burner chat`` obeys its issuer's burn order (§17.9): the chat leaves and the burner is gone."""

from __future__ import annotations

from pathlib import Path

import pytest

from burnerkit.app.issuer import BurnOrder, IssuerKeyPair, send_order
from burnerkit.crypto.rng import SystemRandom
from tests.tui.helpers import Clock, chat_app, connected, mint, until

pytestmark = pytest.mark.asyncio


async def test_valid_burn_order_burns_the_burner_while_it_chats(tmp_path: Path, url: str) -> None:
    clock = Clock()
    rng = SystemRandom()
    office = IssuerKeyPair.generate(rng)
    alice = mint(tmp_path, "alice", url, clock)
    address = await alice.carry_issuer(office.public)
    directory = alice._directory
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        order = BurnOrder.issue(office, address.order_id, now=clock(), rng=rng)
        await send_order(address, order, rng, timeout=10.0)
        await until(pilot, lambda: app.return_value is not None, "the app leaves")
    assert isinstance(app.return_value, str)
    assert app.return_value.startswith("burner 'alice' was burned by its issuer's order")
    assert not directory.exists()
