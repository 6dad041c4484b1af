"""The main screen against a real relay process: live messages, unread counts, delivery
states, the outbox retried after an outage, reconnects, timers and burn-on-read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.tui.screens.alerts import AlertsScreen
from tests.integration.harness import Relays
from tests.tui.helpers import (
    PASS,
    Clock,
    banner,
    chat_app,
    connected,
    contact_rows,
    lines,
    mint,
    pair,
    paste,
    status,
    until,
)

pytestmark = pytest.mark.asyncio


async def test_message_from_a_contact_shows_live_and_a_reply_goes_out(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        assert "● relay connected" in status(app)
        await bob.send("alice", "hello from bob")
        await until(pilot, lambda: "hello from bob" in lines(app), "bob's message shows")
        await pilot.press(*"hi bob", "enter")
        await until(pilot, lambda: "you: hi bob  ✓ delivered" in lines(app), "the reply is delivered")
    assert [m.text for m in (await bob.receive(wait=5, idle=0.05)).messages] == ["hi bob"]
    bob.close()


async def test_unread_count_shows_until_the_conversation_is_opened(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice = mint(tmp_path, "alice", url, clock)
    bob, carol = mint(tmp_path, "bob", url, clock), mint(tmp_path, "carol", url, clock)
    await pair(alice, bob, "bob", "alice")
    await pair(alice, carol, "carol", "alice")
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        assert app.main is not None
        assert app.main.current == "bob"
        await carol.send("alice", "one")
        await carol.send("alice", "two")
        await until(pilot, lambda: "? carol (2)" in contact_rows(app), "carol's unread count shows")
        assert "? bob" in contact_rows(app)
        assert "one" not in lines(app)  # bob's conversation is open
        await pilot.press("tab", "down")  # the composer, then the contact list, then carol
        await until(pilot, lambda: "carol: two" in lines(app), "carol's conversation opens")
        assert contact_rows(app) == ["? bob", "? carol"]
    bob.close()
    carol.close()


async def test_relay_outage_shows_lost_then_reconnected_and_the_queued_message_goes_out(
    tmp_path: Path, relays: Relays
) -> None:
    relay = relays.start()
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", relay.url, clock), mint(tmp_path, "bob", relay.url, clock)
    await pair(alice, bob, "bob", "alice")
    app = chat_app(alice, clock, flush_every=0.2)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await relay.astop()
        await until(pilot, lambda: "○ relay lost, reconnecting" in status(app), "the outage shows")
        paste(app, "are you there?")
        await pilot.press("enter")
        await until(pilot, lambda: "are you there?  … queued" in lines(app), "the message waits")
        assert "1 queued, retrying" in status(app)
        await relay.astart()  # same port, same store
        await until(pilot, lambda: "● relay connected" in status(app), "the reconnect shows")
        await until(pilot, lambda: "are you there?  ✓ delivered" in lines(app), "a flush delivers it")
        assert "queued" not in status(app)
    assert [m.text for m in (await bob.receive(wait=5, idle=0.05)).messages] == ["are you there?"]
    bob.close()


async def test_disappearing_message_shows_its_time_left_and_vanishes(tmp_path: Path, url: str) -> None:
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    app = chat_app(alice, clock, tick_every=0.05, flush_every=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await bob.send("alice", "this goes in five minutes", timer=300)
        await until(pilot, lambda: "five minutes  ⏱ 5m 0s" in lines(app), "the timer shows")
        clock.now += 299
        await until(pilot, lambda: "five minutes  ⏱ 1s" in lines(app), "the countdown runs")
        clock.now += 1
        await until(pilot, lambda: "five minutes" not in lines(app), "the message is hidden")
        await until(pilot, lambda: alice.history("bob") == [], "the outbox tick deletes it")
    bob.close()


async def test_burn_on_read_message_is_shown_once_and_gone_once_its_conversation_is_left(
    tmp_path: Path, url: str
) -> None:
    clock = Clock()
    alice = mint(tmp_path, "alice", url, clock)
    bob, carol = mint(tmp_path, "bob", url, clock), mint(tmp_path, "carol", url, clock)
    await pair(alice, bob, "bob", "alice")
    await pair(alice, carol, "carol", "alice")
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await bob.send("alice", "read me once", burn_on_read=True)
        await until(pilot, lambda: "read me once  🔥 gone once you leave" in lines(app), "it shows")
        assert alice.history("bob") == []  # its only copy is on the screen
        await pilot.press("tab", "down")  # to carol
        await until(pilot, lambda: "read me once" not in lines(app), "carol's conversation shows")
        await pilot.press("up")  # back to bob
        await until(pilot, lambda: "no messages yet" in lines(app), "bob's conversation is empty")
    bob.close()
    carol.close()


async def test_cloned_contact_raises_the_alert_banner_and_the_contact_is_marked(
    tmp_path: Path, url: str
) -> None:
    # Bob's burner imaged at the border: the copy and the original both write to alice.
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    bob.close()
    shutil.copytree(tmp_path / "bob", tmp_path / "bob-image")
    original = Messenger.open(Home(tmp_path / "bob"), "bob", PASS, clock=clock)
    clone = Messenger.open(Home(tmp_path / "bob-image"), "bob", PASS, clock=clock)
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await original.send("alice", "from the real one")
        await clone.send("alice", "from the copy")
        await until(pilot, lambda: "bob: fork" in banner(app), "the clone alert banner shows")
        assert any(row.startswith("? bob") and "⚠" in row for row in contact_rows(app)), contact_rows(app)
        assert alice.contact("bob").alerts == ["fork"]
        await pilot.press("f8")
        await until(pilot, lambda: isinstance(app.screen, AlertsScreen), "the alerts panel opens")
    original.close()
    clone.close()


async def test_our_own_burner_cloned_shows_the_displaced_alert(tmp_path: Path, url: str) -> None:
    # Alice's own burner imaged: the copy subscribes to her queue and takes it over.
    clock = Clock()
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    await pair(alice, bob, "bob", "alice")
    shutil.copytree(tmp_path / "alice", tmp_path / "alice-image")
    clone = Messenger.open(Home(tmp_path / "alice-image"), "alice", PASS, clock=clock)
    app = chat_app(alice, clock)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: connected(app), "the relay is connected")
        await clone.receive(wait=0.2, idle=0.05)
        await until(pilot, lambda: "displaced" in banner(app), "the displaced alert banner shows")
        assert alice.contact("bob").alerts == ["displaced"]
    clone.close()
    bob.close()
