"""``burner chat`` on a real pseudo-terminal while a border image of a burner is used (issue 16, item 6).

Alice runs the real ``burner chat`` process. Bob and the image of his burner (a copy of his
whole home) type ``burner send``: the chat shows the clone alert in its banner and marks Bob
in the contact list; F10 opens the debrief, which lists the fork under Bob. An image of
Alice's own burner reads her queue: the chat shows the displaced alert.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

from tests.e2e.helpers import Person, mint, pair_by_link
from tests.integration.harness import Relays, free_port, wait_until

#: A hang guard only.
DEADLINE = 60.0
#: What xterm sends for F10 and Ctrl+Q.
F10, CTRL_Q = b"\x1b[21~", b"\x11"
_SGR = re.compile(rb"\x1b\[[0-9;:]*m")


class Chat:
    """``burner chat`` of ``person`` on an 80x24 pseudo-terminal."""

    def __init__(self, person: Person) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        env = person.env({"TERM": "xterm-256color"})
        self.process = subprocess.Popen(
            [sys.executable, "-m", "burnerkit", "chat"],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = b""

    def shown(self) -> bytes:
        """Everything drawn so far, without colours and styles."""
        return _SGR.sub(b"", self.seen)

    def expect(self, pattern: bytes, what: str) -> None:
        """Read the terminal until ``pattern`` (a regex) was drawn."""
        deadline = time.monotonic() + DEADLINE
        while not re.search(pattern, self.shown()):
            assert self.process.poll() is None, f"burner chat exited; saw {self.seen[-3000:]!r}"
            assert time.monotonic() < deadline, f"never saw {what}; saw {self.shown()[-3000:]!r}"
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                self.seen += os.read(self.master, 65536)

    def press(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def close(self) -> int:
        self.press(CTRL_Q)
        deadline = time.monotonic() + DEADLINE
        while self.process.poll() is None and time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += os.read(self.master, 65536)
                except OSError:
                    break
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait(timeout=DEADLINE)
        os.close(self.master)
        return code


def test_burner_chat_shows_a_cloned_contact_and_its_debrief(tmp_path: Path, url: str) -> None:
    alice, bob = Person(tmp_path, "alice"), Person(tmp_path, "bob")
    mint(url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    image = Person(tmp_path / "border", "bob")
    shutil.copytree(bob.home, image.home)

    chat = Chat(alice)
    try:
        chat.expect(rb"relay connected", "the main screen")
        bob.run("send", "alice", "from the original")
        image.run("send", "alice", "from the copy")
        chat.expect(rb"ALERT\s+bob: fork", "the clone alert banner")
        chat.expect(rb"bob( \(\d+\))? \xe2\x9a\xa0", "bob marked on alert in the contact list")
        chat.press(F10)
        chat.expect(rb"Debrief of alice", "the debrief window")
        chat.expect(rb"bob: 1 fork \(1 alert\)", "bob's line in the debrief")
    finally:
        code = chat.close()
    assert code == 0
    assert b"Traceback" not in chat.seen
    assert b"from the copy" not in chat.shown()


def test_burner_chat_shows_that_its_own_burner_was_copied(tmp_path: Path, relays: Relays) -> None:
    # A relay of this test alone, so that its subscription count is the chat's.
    relay = relays.start("--metrics-port", str(free_port()))
    alice, bob = Person(tmp_path, "alice"), Person(tmp_path, "bob")
    mint(relay.url, alice, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    image = Person(tmp_path / "border", "alice")
    shutil.copytree(alice.home, image.home)

    wait_until(lambda: relay.metric("subscriptions_active") == 0, "the pairing's subscriptions are gone")
    chat = Chat(alice)
    try:
        chat.expect(rb"relay connected", "the main screen")
        wait_until(lambda: relay.metric("subscriptions_active") >= 1, "the chat has subscribed")
        # The image's inbox takes alice's queue from the chat's subscription.
        image.run("inbox", expect=None)
        chat.expect(rb"ALERT\s+bob: displaced", "the displaced alert banner")
        chat.press(F10)
        chat.expect(rb"bob: 1 displaced \(1 alert\)", "the debrief lists it")
    finally:
        code = chat.close()
    assert code == 0
    assert b"Traceback" not in chat.seen
