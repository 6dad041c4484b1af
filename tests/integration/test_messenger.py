"""The Messenger facade against a real relay process, with an injected clock.

What the CLI tests (tests/e2e) cannot reach without waiting for real time: expiry with
the clock turned back, disappearing timers, and clones made by copying a vault.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import IdentityExpiredError, UsageError
from tests.integration.harness import RelayProcess, Relays, free_port, wait_until

PASS = "correct horse battery"


class Clock:
    """A clock the test sets by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def mint(tmp_path: Path, name: str, url: str, clock: Clock, lifetime: int = 86400) -> Messenger:
    return Messenger.create(
        Home(tmp_path / name), name, PASS, relay_url=url, lifetime=lifetime, kdf=FAST_TEST_KDF, clock=clock
    )


def reopen(tmp_path: Path, name: str, clock: Clock) -> Messenger:
    return Messenger.open(Home(tmp_path / name), name, PASS, clock=clock)


def pair(alice: Messenger, bob: Messenger) -> None:
    link = asyncio.run(alice.invite("bob")).link
    asyncio.run(bob.accept(link, "alice"))
    assert asyncio.run(alice.receive()).new_contacts == ["bob"]


@pytest.fixture
def relay(relays: Relays) -> RelayProcess:
    return relays.start("--metrics-port", str(free_port()))


@pytest.fixture
def url(relay: RelayProcess) -> str:
    return relay.url


def test_expired_burner_refuses_even_when_the_clock_is_turned_back(tmp_path: Path, url: str) -> None:
    # Opened with allow_expired (as `burner burn` does); a plain start burns it (test_burning.py).
    clock = Clock(1_900_000_000.0)
    alice, bob = mint(tmp_path, "alice", url, clock, lifetime=3600), mint(tmp_path, "bob", url, clock)
    pair(alice, bob)
    alice.close()
    clock.now += 3601  # past the expiry: one run sees it
    expired = Messenger.open(Home(tmp_path / "alice"), "alice", PASS, clock=clock, allow_expired=True)
    with pytest.raises(IdentityExpiredError, match="expired"):
        asyncio.run(expired.send("bob", "too late"))
    expired.close()
    clock.now -= 7200  # the owner (or an adversary) turns the clock back
    expired = Messenger.open(Home(tmp_path / "alice"), "alice", PASS, clock=clock, allow_expired=True)
    with pytest.raises(IdentityExpiredError):
        asyncio.run(expired.send("bob", "still here?"))
    with pytest.raises(IdentityExpiredError):
        asyncio.run(expired.receive())
    report = asyncio.run(expired.burn())  # burning is what an expired burner may still do
    assert report.queues_failed == 0
    assert not (tmp_path / "alice").exists()  # the home goes with its last burner
    bob.close()


def test_disappearing_messages_are_deleted_on_both_sides_after_their_timer(tmp_path: Path, url: str) -> None:
    clock = Clock(1_900_000_000.0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob)
    asyncio.run(alice.send("bob", "kept"))
    asyncio.run(alice.send("bob", "gone in a minute", timer=60))
    got = asyncio.run(bob.receive()).messages
    assert [(m.text, m.expires_at) for m in got] == [("kept", 0), ("gone in a minute", int(clock.now) + 60)]
    # The timer is now the conversation's, on both sides (Signal's rule).
    assert bob.contacts()[0].timer == 60
    alice.close()
    bob.close()
    clock.now += 61
    alice, bob = reopen(tmp_path, "alice", clock), reopen(tmp_path, "bob", clock)
    assert [h.text for h in alice.history("bob")] == ["kept"]
    assert [h.text for h in bob.history("alice")] == ["kept"]
    with pytest.raises(UsageError, match="30s to 4w"):
        asyncio.run(alice.send("bob", "too short", timer=5))
    alice.close()
    bob.close()


def test_burn_on_read_message_is_shown_once_then_gone_from_both_vaults(tmp_path: Path, url: str) -> None:
    clock = Clock(1_900_000_000.0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob)
    asyncio.run(alice.send("bob", "read me once", burn_on_read=True))
    got = asyncio.run(bob.receive()).messages
    assert [(m.text, m.burn_on_read) for m in got] == [("read me once", True)]
    assert asyncio.run(bob.receive()).messages == []
    assert bob.history("alice") == []
    assert alice.history("bob") == []  # delivered, so the sender's copy went too
    alice.close()
    bob.close()


def test_cloned_burner_sending_raises_a_fork_alert_at_the_peer(tmp_path: Path, url: str) -> None:
    """A seized device imaged at the border: the copy and the original both send."""
    clock = Clock(1_900_000_000.0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob)
    asyncio.run(alice.send("bob", "before the border"))
    asyncio.run(bob.receive())
    bob.close()
    shutil.copytree(tmp_path / "bob", tmp_path / "bob-image")
    original = reopen(tmp_path, "bob", clock)
    clone = Messenger.open(Home(tmp_path / "bob-image"), "bob", PASS, clock=clock)
    asyncio.run(original.send("alice", "from the real bob"))
    asyncio.run(clone.send("alice", "from the copy"))
    result = asyncio.run(alice.receive())
    assert [m.text for m in result.messages] == ["from the real bob"]
    assert [e.kind for e in result.events] == ["fork"]
    assert alice.events()[-1].kind == "fork"
    for messenger in (alice, original, clone):
        messenger.close()


def test_clone_subscribing_to_our_queue_is_recorded_as_a_displacement(
    tmp_path: Path, relay: RelayProcess, url: str
) -> None:
    """The relay tells the first subscriber when another connection takes its queue."""
    clock = Clock(1_900_000_000.0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob)
    bob.close()
    shutil.copytree(tmp_path / "bob", tmp_path / "bob-image")
    original = reopen(tmp_path, "bob", clock)
    clone = Messenger.open(Home(tmp_path / "bob-image"), "bob", PASS, clock=clock)

    def subscriptions() -> float:
        return relay.metric("subscriptions_active")

    wait_until(lambda: subscriptions() == 0, "the pairing's receive has let go of its subscriptions")

    async def both() -> None:
        # The original listens until the relay's END has come (then half a second of quiet).
        waiting = asyncio.create_task(original.receive(wait=60.0, idle=0.5))
        await asyncio.to_thread(wait_until, lambda: subscriptions() >= 1, "the original has subscribed")
        await clone.receive()
        await waiting

    asyncio.run(both())
    assert "displaced" in [e.kind for e in original.events()]
    for messenger in (alice, original, clone):
        messenger.close()
