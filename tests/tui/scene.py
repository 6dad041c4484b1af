"""A fixed scene for the snapshot tests and the README's screenshot.

Alice has three contacts on one relay: Bob (verified, a conversation with a delivered
message, a disappearing one and, once the app runs, a burn-on-read one), Carol (a
safety code that did not match: on alert, one unread message) and Dave (nothing yet).
Every time comes from a fixed clock, so the screen is the same on every run.

Regenerate docs/images/chat.svg (starts its own relay process on loopback)::

    .venv/bin/python -m tests.tui.scene docs/images/chat.svg
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.errors import IdentityError
from burnerkit.tui.app import ChatApp
from tests.tui.helpers import PASS, Clock, connected, contact_rows, lines, mint, pair, until, utc

#: What Bob sends burn-on-read while the app runs (the scene's last line).
SECRET = "the code word is tulip"


async def build(root: Path, url: str, clock: Clock) -> None:
    """Make the scene's burners under ``root`` and leave them closed."""
    alice = mint(root, "alice", url, clock)
    bob, carol, dave = (mint(root, name, url, clock) for name in ("bob", "carol", "dave"))
    for peer, name in ((bob, "bob"), (carol, "carol"), (dave, "dave")):
        await pair(alice, peer, name, "alice")
    alice.verify("bob", bob.verify("alice").safety_code)
    clock.now += 60
    await bob.send("alice", "landed. the border check took an hour")
    clock.now += 60
    await alice.receive(wait=5, idle=0.05)
    await alice.send("bob", "they kept the phone?")
    clock.now += 60
    await bob.send("alice", "for an hour. meet at 18:00, usual place", timer=3600)
    clock.now += 60
    await carol.send("alice", "new number, same me")
    await alice.receive(wait=5, idle=0.05)
    clock.now += 60
    with contextlib.suppress(IdentityError):  # the mismatch is the point: carol goes on alert
        alice.verify("carol", "12345 67890")
    await carol.send("alice", "did you get my last?")
    for messenger in (alice, bob, carol, dave):
        messenger.close()


def open_app(root: Path, clock: Clock) -> ChatApp:
    """The app on the scene's Alice, with the scene's clock and UTC times."""
    alice = Messenger.open(Home(root / "alice"), "alice", PASS, clock=clock)
    return ChatApp(alice.home, "alice", messenger=alice, clock=clock, localtime=utc)


async def arrive(root: Path, clock: Clock, app: ChatApp, pilot: object) -> None:
    """Let the app connect and take in Carol's waiting message and Bob's burn-on-read one."""
    from textual.pilot import Pilot

    assert isinstance(pilot, Pilot)
    await until(pilot, lambda: connected(app), "the relay is connected")
    await until(pilot, lambda: "usual place" in lines(app), "bob's conversation shows")
    # Carol's waiting message comes on her own connection (docs/protocol.md §14.13a), not
    # necessarily before anything on Bob's: the screen is the same only once it is in.
    await until(pilot, lambda: any("carol (1)" in row for row in contact_rows(app)), "carol's message")
    bob = Messenger.open(Home(root / "bob"), "bob", PASS, clock=clock)
    try:
        await bob.send("alice", SECRET, burn_on_read=True)
    finally:
        bob.close()
    await until(pilot, lambda: SECRET in lines(app), "the burn-on-read message shows")
    await pilot.pause()


def main(target: str) -> None:
    """Write the scene's main screen at 80x24 as an SVG to ``target``."""
    relay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "burnerkit",
            "relay",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--store",
            ":memory:",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert relay.stdout is not None
        url = "ws://" + relay.stdout.readline().split("ws://")[1].strip()
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            clock = Clock()
            asyncio.run(build(root, url, clock))

            async def shoot() -> None:
                app = open_app(root, clock)
                async with app.run_test(size=(80, 24)) as pilot:
                    await arrive(root, clock, app, pilot)
                    Path(target).write_text(app.export_screenshot(title="burner chat"))

            asyncio.run(shoot())
    finally:
        relay.terminate()
        relay.wait()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/images/chat.svg")
