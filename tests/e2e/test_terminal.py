"""The passphrase prompt on a real terminal: hidden, asked twice for a new burner, never echoed."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

PASSPHRASE = "typed on a real terminal"
_ANSI = re.compile(rb"\x1b\[[0-9;]*m")


def plain(seen: bytes) -> bytes:
    """What the terminal shows, without Rich's colour codes."""
    return _ANSI.sub(b"", seen)


class Terminal:
    """``burner ARGS`` with a pseudo-terminal as its stdin, stdout and stderr."""

    def __init__(self, home: Path, *args: str) -> None:
        self.master, slave = pty.openpty()
        env = {key: value for key, value in os.environ.items() if not key.startswith("BURNER_")}
        env.update(BURNER_HOME=str(home), BURNER_INSECURE_FAST_KDF="1")
        # A new session has no controlling terminal, so getpass falls back to stdin, the pty,
        # and turns its echo off there: what a user's shell gives it.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "burnerkit", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.seen = b""

    def expect(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text.encode() not in self.seen:
            left = deadline - time.monotonic()
            assert left > 0, f"no {text!r} on the terminal; saw {self.seen!r}"
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child closed the terminal
                    chunk = b""
                assert chunk, f"the terminal closed before {text!r}; saw {self.seen!r}"
                self.seen += chunk

    def type(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\n")

    def finish(self, timeout: float = 30.0) -> int:
        code = self.process.wait(timeout=timeout)
        while True:
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if not ready:
                break
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                break
            if not chunk:
                break
            self.seen += chunk
        os.close(self.master)
        return code


def test_new_burner_asks_for_the_passphrase_twice_without_echoing_it(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, "new", "alice", "--offline")
    terminal.expect("passphrase for alice: ")
    terminal.type(PASSPHRASE)
    terminal.expect("again: ")
    terminal.type(PASSPHRASE)
    assert terminal.finish() == 0
    assert b"minted burner alice" in plain(terminal.seen)
    assert PASSPHRASE.encode() not in terminal.seen

    opened = Terminal(tmp_path, "contacts")
    opened.expect("passphrase: ")  # the home's only burner: its name is sealed, the prompt cannot say it
    opened.type(PASSPHRASE)
    assert opened.finish() == 0
    assert b"no contacts yet" in plain(opened.seen)
    assert PASSPHRASE.encode() not in opened.seen


def test_mistyped_new_passphrase_is_refused_and_no_burner_is_made(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, "new", "alice", "--offline")
    terminal.expect("passphrase for alice: ")
    terminal.type(PASSPHRASE)
    terminal.expect("again: ")
    terminal.type(PASSPHRASE + " with a typo")
    assert terminal.finish() == 2
    assert b"burner: the two passphrases differ" in terminal.seen
    assert not (tmp_path / "alice").exists()


def test_wrong_passphrase_on_the_prompt_is_exit_4(tmp_path: Path) -> None:
    terminal = Terminal(tmp_path, "new", "alice", "--offline")
    terminal.expect("passphrase for alice: ")
    terminal.type(PASSPHRASE)
    terminal.expect("again: ")
    terminal.type(PASSPHRASE)
    assert terminal.finish() == 0
    wrong = Terminal(tmp_path, "contacts")
    wrong.expect("passphrase: ")
    wrong.type("not the passphrase")
    assert wrong.finish() == 4
    assert b"burner: wrong passphrase, or the vault header is damaged" in wrong.seen
    assert b"Traceback" not in wrong.seen
