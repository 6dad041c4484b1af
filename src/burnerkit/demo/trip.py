"""The main scenario (``make demo``): a real relay, two burners, the real ``burner`` command.

Everything runs as it would for a user: a relay process on loopback with its SQLite
store, and every step a separate ``burner`` process with its own home and passphrase
(from ``$BURNER_PASSPHRASE``, as a script would). Nothing is simulated; the scenario
checks what each step prints and stops with :class:`DemoFailedError` if anything is off.
It also reads the relay's file as someone who seized it would: unrelated queue ids and
bodies of one size (docs/protocol.md §14.11).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from burnerkit.errors import DemoFailedError

__all__ = ["run"]

Say = Callable[[str], None]
_STEP_TIMEOUT = 120.0
#: ``burner inbox`` exits 13 while a contact is on alert (docs/cli.md).
_EXIT_ALERT = 13


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailedError(f"demo check failed: {what}")


class _Stage:
    """The relay and the people, each with a home directory and a passphrase."""

    def __init__(self, root: Path, relay_url: str, say: Say) -> None:
        self.root = root
        self.relay_url = relay_url
        self.say = say
        #: A copy of someone's home -> whose it is (the copy opens with their passphrase).
        self.images: dict[str, str] = {}

    def env(self, person: str) -> dict[str, str]:
        env = dict(os.environ)
        env["BURNER_HOME"] = str(self.root / person)
        # A script's way; people get a prompt.
        env["BURNER_PASSPHRASE"] = f"demo passphrase of {self.images.get(person, person)}"
        env.pop("BURNER_INSECURE_FAST_KDF", None)
        return env

    def burner(self, person: str, *args: str, show: tuple[str, ...] | None = None, expect: int = 0) -> str:
        """Run ``burner ARGS`` as ``person``; narrate it; return its stdout."""
        shown = " ".join(_quote(a) for a in (show if show is not None else args))
        self.say(f"  {person}$ burner {shown}")
        proc = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "burnerkit", *args],
            env=self.env(person),
            capture_output=True,
            text=True,
            timeout=_STEP_TIMEOUT,
            check=False,
        )
        for line in (proc.stdout + proc.stderr).splitlines():
            self.say(f"      {_clip(line)}")
        _check(proc.returncode == expect, f"'burner {shown}' exited {proc.returncode}, expected {expect}")
        return proc.stdout

    def spawn(self, person: str, *args: str) -> subprocess.Popen[str]:
        self.say(f"  {person}$ burner {' '.join(_quote(a) for a in args)} &")
        return subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [sys.executable, "-m", "burnerkit", *args],
            env=self.env(person),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )


def _clip(line: str, width: int = 150) -> str:
    """A long line (a 1,900-character link) cut to fit a terminal."""
    return line if len(line) <= width else f"{line[: width - 20]}...{line[-16:]}"


def _quote(arg: str) -> str:
    return repr(arg) if (" " in arg or not arg) else arg


@contextlib.contextmanager
def _relay(root: Path) -> Iterator[tuple[str, Path]]:
    store = root / "relay.sqlite"
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [sys.executable, "-m", "burnerkit", "relay", "serve", "--port", "0", "--store", str(store)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        _check(line.startswith("relay listening on "), f"the relay did not start ({line!r})")
        yield line.removeprefix("relay listening on "), store
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - the relay stops on SIGTERM
            proc.kill()
            proc.wait()


def _relay_view(store: Path, say: Say) -> tuple[int, int, set[int]]:
    """Print what the relay's database holds; returns (queues, messages, body sizes)."""
    db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        queues = db.execute("SELECT recipient_id, sender_id FROM queues").fetchall()
        messages = db.execute("SELECT recipient_id, msg_id, length(body) FROM messages").fetchall()
    finally:
        db.close()
    say(f"      {len(queues)} queues, each two unrelated random ids (recipient id / sender id):")
    for recipient_id, sender_id in queues[:6]:
        say(f"        {bytes(recipient_id).hex()[:20]}...  /  {bytes(sender_id).hex()[:20]}...")
    if len(queues) > 6:
        say(f"        ... and {len(queues) - 6} more")
    sizes = {int(size) for _, _, size in messages}
    say(f"      {len(messages)} messages waiting, body sizes {sorted(sizes)} bytes (every envelope the same)")
    return len(queues), len(messages), sizes


def _files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def run(say: Say = print) -> int:
    """Run the scenario, narrating through ``say``; returns 0 (or raises DemoFailedError)."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="burner-demo-") as tmp:
        root = Path(tmp)
        say("burnerkit demo: a relay on loopback, two burners, the real 'burner' command")
        say(f"(everything lives in {root} and is removed at the end)")
        say("")
        with _relay(root) as (url, store):
            say(f"0. The relay runs: 'burner relay serve' on {url}, SQLite store {store.name}.")
            _scenario(_Stage(root, url, say), store)
        say("")
        elapsed = time.monotonic() - started
        say(f"All checks passed in {elapsed:.1f} s; the relay is stopped, the files removed.")
    return 0


def _scenario(stage: _Stage, store: Path) -> None:
    say, url = stage.say, stage.relay_url
    say("1. Alice and Bob each mint a burner: no phone number, no account, an expiry.")
    stage.burner("alice", "new", "alice", "--relay", url, "--expires", "1d")
    stage.burner("bob", "new", "bob", "--relay", url, "--expires", "1d")

    say("2. Alice invites Bob with a one-time link (also shown as a QR code without --json).")
    link = _json(stage.burner("alice", "invite", "--for", "bob", "--json"))["link"]
    _check(str(link).startswith("burner:"), "the invitation is a burner: link")
    say(
        f"      the link is {len(link)} characters: the invitation (X25519 + ML-KEM-768 prekeys, signed)"
        " waits sealed on Alice's relay, and the link fetches and checks it; the first to accept"
        " wins, a second is refused and both sides are told"
    )
    short = f"{link[:32]}...{link[-8:]}"
    stage.burner("bob", "accept", link, "--name", "alice", show=("accept", short, "--name", "alice"))
    out = stage.burner("alice", "inbox")
    _check("new contact bob" in out, "Alice's inbox takes in Bob's acceptance")

    say("3. They chat through the relay, both ways.")
    stage.burner("alice", "send", "bob", "Landed. The meeting moved to 15:00.")
    got = _json(stage.burner("bob", "inbox", "--json"))
    _check([m["text"] for m in got] == ["Landed. The meeting moved to 15:00."], "Bob reads Alice's message")
    stage.burner("bob", "send", "alice", "Understood. Room 412.")
    _check("Room 412" in stage.burner("alice", "inbox"), "Alice reads Bob's answer")

    say("4. Bob is offline: Alice's messages wait on the relay, sealed and padded.")
    stage.burner("alice", "send", "bob", "Bring the signed copy.")
    stage.burner("alice", "send", "bob", "This one disappears an hour after it arrives.", "--disappear", "1h")
    say("   What the relay's database holds right now:")
    _, waiting, sizes = _relay_view(store, say)
    _check(waiting >= 2 and len(sizes) == 1, "the waiting messages are all one size")
    say("   Bob comes back online:")
    got = _json(stage.burner("bob", "inbox", "--json"))
    _check(len(got) == 2, "Bob gets both messages sent while he was offline")
    _check(_json(stage.burner("bob", "inbox", "--json")) == [], "a message is never shown twice")

    say("5. They compare safety codes by voice; Bob confirms Alice's.")
    code = _json(stage.burner("alice", "verify", "bob", "--json"))["safety_code"]
    stage.burner("bob", "verify", "alice", "--code", str(code))

    say("6. They meet and pair again with a short code read aloud (SPAKE2 through the relay's")
    say("   mailbox: the relay sees a number and ciphertext; a wrong guess destroys the code).")
    offer = stage.spawn("alice", "pair", "--name", "bob", "--replace", "--json", "--timeout", "60")
    assert offer.stdout is not None
    first = offer.stdout.readline()
    pair_code = str(_json(first).get("code", ""))
    _check(bool(pair_code), f"Alice's burner shows a code ({first.strip()!r})")
    say(f"      code: {pair_code}")
    stage.burner("bob", "pair", pair_code, "--name", "alice", "--replace")
    rest, err = offer.communicate(timeout=_STEP_TIMEOUT)
    for line in (rest + err).splitlines():
        say(f"      {line}")
    _check(offer.returncode == 0, "Alice's side of the pairing completes")
    contacts = _json(stage.burner("alice", "contacts", "--json"))
    _check(contacts[0]["verified"] is True, "a contact paired by code starts verified")
    stage.burner("alice", "send", "bob", "Paired by voice now.")
    _check("Paired by voice now." in stage.burner("bob", "inbox"), "the re-paired session works")
    _clone_alert(stage)

    say("7. Bob's trip is over: he burns his burner.")
    bob_home = stage.root / "bob"
    say(f"      before: {len(_files_under(bob_home))} files in Bob's home")
    stage.burner("bob", "burn", "--yes")
    left = _files_under(bob_home)
    say(f"      after: {len(left)} files in Bob's home")
    _check(not left, "nothing of Bob's burner is left on disk")
    stage.burner("bob", "list")
    say("   The relay no longer holds Bob's queues:")
    _relay_view(store, say)
    say("   Alice's burner takes Bob's burn notice, signed by his key for her: Bob shows burned.")
    stage.burner("alice", "inbox")
    _check(_json(stage.burner("alice", "contacts", "--json"))[0]["burned"] is True, "Alice sees Bob burned")


def _clone_alert(stage: _Stage) -> None:
    """A copy of Bob's burner sends: Alice's burner raises the clone alert (§17.6, §17.10)."""
    say = stage.say
    say("6b. Bob's phone was imaged at a border: someone holds a copy of his whole home and,")
    say("   later, his passphrase. Bob writes; then the copy writes as Bob.")
    shutil.copytree(stage.root / "bob", stage.root / "bob-image")
    stage.images["bob-image"] = "bob"
    stage.burner("bob", "send", "alice", "Through the checkpoint.")
    stage.burner("bob-image", "send", "alice", "Change of plan: meet me at the station.")
    say("   Alice's burner reads Bob's message and refuses the copy's (same ratchet position):")
    out = stage.burner("alice", "inbox", expect=_EXIT_ALERT)
    _check("Through the checkpoint." in out and "station" not in out, "the copy's message is refused")
    _check(_json(stage.burner("alice", "contacts", "--json"))[0]["alerts"] == ["fork"], "bob is on alert")
    stage.burner("alice", "debrief")
    shutil.rmtree(stage.root / "bob-image")
    say("   Alice warns Bob by voice and clears the alert (the debrief keeps it):")
    stage.burner("alice", "alerts", "--clear", "bob")


def _json(text: str) -> Any:
    try:
        return json.loads(text.strip().splitlines()[-1] if text.strip() else "null")
    except (ValueError, IndexError) as exc:
        raise DemoFailedError(f"demo check failed: expected JSON, got {text!r}") from exc
