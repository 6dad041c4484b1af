"""``burner chat`` on a real pseudo-terminal (80x24): it draws, and Ctrl+Q quits with exit 0."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.cli.main import run
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from tests.tui.helpers import PASS

#: A hang guard only.
DEADLINE = 60.0


def test_burner_chat_draws_on_a_real_terminal_and_quits_on_ctrl_q(tmp_path: Path, url: str) -> None:
    Messenger.create(Home(tmp_path), "alice", PASS, relay_url=url, kdf=FAST_TEST_KDF).close()
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {key: value for key, value in os.environ.items() if not key.startswith("BURNER_")}
    env.update(BURNER_HOME=str(tmp_path), BURNER_PASSPHRASE=PASS, TERM="xterm-256color")
    process = subprocess.Popen(
        [sys.executable, "-m", "burnerkit", "chat"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + DEADLINE
    try:
        while b"relay connected" not in seen:
            assert time.monotonic() < deadline, f"the main screen never drew; saw {seen[-2000:]!r}"
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                seen += os.read(master, 65536)
        assert b"Contacts" in seen
        assert b"Traceback" not in seen
        os.write(master, b"\x11")  # Ctrl+Q
        while process.poll() is None:
            assert time.monotonic() < deadline, "Ctrl+Q did not quit"
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    seen += os.read(master, 65536)
                except OSError:
                    break
        assert process.wait(timeout=DEADLINE) == 0
        assert b"Traceback" not in seen
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)


def test_burner_chat_without_a_burner_is_one_line_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["chat", "--home", str(tmp_path)]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"burner: no burner in {tmp_path}: make one with 'burner new NAME'\n"
