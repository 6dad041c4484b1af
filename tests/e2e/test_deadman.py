"""The dead-man switch through real ``burner`` processes: burn past the window, heartbeats, silences.

A window of hours cannot pass in a test, so the steps that happen "later" are small
scripts on the real Messenger (:func:`later`) whose clock runs that far ahead, in a
process of their own: what a traveller whose machine's clock says that time would see.
Everything else is a ``burner`` command on the real clock, which then counts as a clock
set back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from burnerkit.app.home import Home
from burnerkit.app.liveness import LIVENESS_KIND, PeerLiveness
from burnerkit.app.messenger import Messenger
from tests.e2e.helpers import (
    STEP_TIMEOUT,
    Person,
    files_under,
    killed,
    mint,
    pair_by_link,
    queue_ids,
    start_child,
)

HOUR = 3600

#: Opening the burner with the clock ``offset`` seconds ahead, in the child script.
LATER = """
import time
from burnerkit.errors import BurnerError


def at(offset):
    home = Home(Path(os.environ["BURNER_HOME"]))
    return Messenger.open(
        home, None, os.environ["BURNER_PASSPHRASE"], relay_timeout=5.0, clock=lambda: time.time() + offset
    )
"""


def later(person: Person, tmp_path: Path, script: str, *, name: str = "later") -> subprocess.Popen[str]:
    """Start ``script`` (it may call ``at(offset)``) in a process with ``person``'s environment."""
    return start_child(person, LATER + script, tmp_path / f"{person.name}-{name}.py")


def finished(child: subprocess.Popen[str]) -> str:
    """The child's stdout, once it exited 0."""
    stdout, stderr = child.communicate(timeout=STEP_TIMEOUT)
    assert child.returncode == 0, f"exit {child.returncode}\n{stdout}\n{stderr}"
    assert "Traceback" not in stderr, stderr
    return stdout


#: Open ``offset`` seconds ahead and print what happened: "open", or the error's message.
OPEN_AT = """
try:
    at({offset}).close()
    print("open")
except BurnerError as exc:
    print(exc)
"""

BURNED = "burner 'alice' was not unlocked within its check-in window (1h): it has burned"


def liveness_of(person: Person) -> list[PeerLiveness]:
    """What ``person``'s vault holds of its contacts' heartbeats (read in this process)."""
    with Messenger.open(Home(person.home), None, person.passphrase) as messenger:
        return [PeerLiveness.from_bytes(data) for _, data in messenger._vault.items(LIVENESS_KIND)]


def _pair(relay_url: str, people: Any, alice_window: str) -> tuple[Person, Person]:
    alice, bob = people("alice", "bob")
    alice.mint(relay_url, "--check-in", alice_window).finish()
    mint(relay_url, bob)
    pair_by_link(alice, bob, inviter_calls="bob", acceptor_calls="alice")
    return alice, bob


def test_new_refuses_a_check_in_window_that_makes_no_sense(relay, people):
    (alice,) = people("alice")
    short = alice.mint(relay.url, "--check-in", "30s").finish(expect=2)
    assert short.error == (
        "burner: a check-in window of 30s is too short: at least 1m, "
        "or the burner burns while its passphrase is typed"
    )
    long = alice.mint(relay.url, "--check-in", "2d").finish(expect=2)
    assert long.error == (
        "burner: a check-in window of 2d is not shorter than the burner's lifetime (1d): "
        "it would never fire; use a shorter --check-in or a longer --expires"
    )
    assert files_under(alice.home) == []  # nothing was minted, no passphrase asked
    minted = alice.run("new", "alice", "--relay", relay.url, "--check-in", "24h", "--expires", "1w")
    assert "burns unless unlocked every 1d" in minted.stdout
    assert alice.json("list")[0]["name"] == "alice"


def test_burner_not_unlocked_within_its_window_burns_on_next_start(relay, people, tmp_path):
    alice, bob = people("alice", "bob")
    alice.mint(relay.url, "--check-in", "1h").finish()
    mint(relay.url, bob)
    before = queue_ids(relay.store_path)
    link = alice.json("invite", "--for", "bob")["link"]
    alice_queues = queue_ids(relay.store_path) - before  # the invitation's and its short link's
    bob.run("accept", link, "--name", "alice")
    bob_queues = queue_ids(relay.store_path) - before - alice_queues
    alice.run("inbox")
    assert (len(alice_queues), len(bob_queues)) == (2, 1)
    # Two hours later (one past the window), the next start burns it, queues first.
    assert finished(later(alice, tmp_path, OPEN_AT.format(offset=2 * HOUR))) == BURNED + "\n"
    assert not alice.directory.exists()
    assert files_under(alice.home) == []
    assert queue_ids(relay.store_path) & (alice_queues | bob_queues) == bob_queues
    assert alice.json("list") == []
    assert bob.json("contacts")[0]["alias"] == "alice"  # bob's burner is untouched


def test_clock_set_back_does_not_save_a_burner_past_its_window(relay, people, tmp_path):
    alice, _ = _pair(relay.url, people, "1h")
    # Two hours later the start sees the deadline passed, and dies before the burn.
    patch = """
async def burn(self):
    die()
Messenger.burn = burn
"""
    killed(later(alice, tmp_path, patch + OPEN_AT.format(offset=2 * HOUR)))
    assert alice.directory.exists()
    # The clock is back to now (two hours before what the burner saw): it burns all the same.
    outcome = alice.run("contacts", expect=3)
    assert outcome.error == f"burner: {BURNED}"
    assert not alice.directory.exists()


def test_burner_that_checks_in_in_time_stays(relay, people, tmp_path):
    alice, _ = _pair(relay.url, people, "1h")
    # 50 minutes, then 1h40 (50 minutes after that check-in), then 2h30: each within the window.
    for offset in (50 * 60, 100 * 60, 150 * 60):
        assert finished(later(alice, tmp_path, OPEN_AT.format(offset=offset), name=str(offset))) == "open\n"
    assert alice.json("contacts")[0]["alias"] == "bob"
    # Skipping one: 3h40 is more than an hour after the check-in at 2h30.
    assert finished(later(alice, tmp_path, OPEN_AT.format(offset=220 * 60), name="late")) == BURNED + "\n"


def test_heartbeat_arrives_and_is_not_shown(relay, people):
    alice, bob = _pair(relay.url, people, "1h")
    alice.run("inbox")  # the unlock seals a heartbeat for bob; the inbox sends it
    assert bob.json("inbox") == []  # no message, no event
    assert bob.json("history", "alice") == []
    assert bob.json("contacts")[0]["silent_since"] is None
    (liveness,) = liveness_of(bob)
    assert liveness.window == HOUR
    assert liveness.silent_at == 0
    # Alice, for her part, shows nothing she sent either.
    assert alice.json("history", "bob") == []


# In `make soak` (CI runs it), to keep `make test` under 2 minutes; the same
# check in one process: tests/integration/test_deadman.py.
@pytest.mark.slow
def test_silent_contact_is_warned_and_the_warning_clears(relay, people, tmp_path):
    alice, bob = _pair(relay.url, people, "2h")
    alice.run("inbox")  # heartbeat out
    assert bob.json("inbox") == []  # heartbeat in: alice checks in every 2h
    # Three hours later on bob's side (past 2h and the 30m grace), anything bob writes
    # carries that time into his burner.
    finished(later(bob, tmp_path, 'at(3 * 3600).set_disappearing("alice", 0, False)\n'))
    warned = bob.run("inbox")
    (line,) = [line for line in warned.stderr.splitlines() if "silent" in line]
    assert line.startswith("warning: alice: silent: no sign of life since ")
    assert "past its check-in window of 2h" in line
    again = bob.run("inbox")
    assert "silent" not in again.stderr  # once per silence
    assert "SILENT since" in bob.run("contacts").stdout
    assert bob.json("contacts")[0]["silent_since"] is not None

    # Alice unlocks 1h50 in (within her window; her heartbeat period has passed).
    finished(later(alice, tmp_path, "asyncio.run(at(110 * 60).flush_outbox())\n"))
    assert bob.json("inbox") == []
    assert bob.json("contacts")[0]["silent_since"] is None
    assert "SILENT" not in bob.run("contacts").stdout
