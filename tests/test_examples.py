"""The example scripts run against a real relay: the relay client pair, and the Messenger API."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_examples_exchange_queued_messages_with_the_recipient_offline(tmp_path):
    store = str(tmp_path / "r.sqlite")
    relay = subprocess.Popen(
        [sys.executable, "-m", "burnerkit", "relay", "serve", "--port", "0", "--store", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert relay.stdout is not None
        url = relay.stdout.readline().split()[-1]
        assert url.startswith("ws://127.0.0.1:")
        creds = str(tmp_path / "inbox.creds")
        sender_id = run(str(ROOT / "examples/relay_receiver.py"), "create", url, creds).strip()
        assert (tmp_path / "inbox.creds").stat().st_mode & 0o077 == 0
        sent = run(str(ROOT / "examples/relay_sender.py"), url, sender_id, "first", "second")
        assert sent.splitlines() == ["stored: first", "stored: second"]
        got = run(str(ROOT / "examples/relay_receiver.py"), "fetch", url, creds)
        assert got.splitlines() == ["first", "second"]
        assert run(str(ROOT / "examples/relay_receiver.py"), "fetch", url, creds) == ""
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=20) == 0
        if relay.stdout is not None:
            relay.stdout.close()


def test_messenger_api_example_pairs_chats_and_burns(tmp_path):
    store = str(tmp_path / "r.sqlite")
    relay = subprocess.Popen(
        [sys.executable, "-m", "burnerkit", "relay", "serve", "--port", "0", "--store", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert relay.stdout is not None
        url = relay.stdout.readline().split()[-1]
        out = run(str(ROOT / "examples/messenger_api.py"), url, str(tmp_path / "homes"))
        assert out.splitlines() == [
            "alice's new contacts: ['bob']",
            "alice #1: Landed. Room 412.",
            "bob #2: On my way.",
            "safety codes match: True",
            "burned bob: 1 relay queues deleted",
        ]
        assert not (tmp_path / "homes" / "bob").exists()  # the home goes with its last burner
    finally:
        relay.send_signal(signal.SIGTERM)
        assert relay.wait(timeout=20) == 0
        if relay.stdout is not None:
            relay.stdout.close()
