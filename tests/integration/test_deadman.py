"""The dead-man switch over a real relay process, with in-process Messengers on clocks we move.

Alice minted her burner with a check-in window of 2 hours; Bob has none. Each test moves
the two clocks by hand (:class:`Clock`), so a window passes without waiting for it. The
end-to-end tests (tests/e2e/test_deadman.py) run the same story as real ``burner`` steps.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from burnerkit.app import checkin
from burnerkit.app.checkin import CHECKIN_KIND, CheckIn
from burnerkit.app.content import Heartbeat
from burnerkit.app.home import Home
from burnerkit.app.ledger import process_delivery
from burnerkit.app.liveness import LIVENESS_KIND, PeerLiveness, heartbeat_period
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import Contact
from burnerkit.app.views import InboxResult
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import NotFoundError, UsageError
from burnerkit.relay.client import RelayClient
from tests.integration.harness import Relays

PASS = "correct horse battery"
START = 1_900_000_000.0
HOUR = 3600
WINDOW = 2 * HOUR


class Clock:
    """A clock the test moves: ``clock.now += 3600``."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


People = tuple[Messenger, Messenger, Clock, Clock]


@pytest.fixture
def people(tmp_path: Path, relays: Relays) -> Iterator[People]:
    """Alice (check-in window 2h) and Bob, paired; each on a clock of their own."""
    url = relays.start().url
    alice_clock, bob_clock = Clock(), Clock()
    alice = Messenger.create(
        Home(tmp_path / "alice"),
        "alice",
        PASS,
        relay_url=url,
        lifetime=7 * 86400,
        kdf=FAST_TEST_KDF,
        clock=alice_clock,
        check_in=WINDOW,
    )
    bob = Messenger.create(
        Home(tmp_path / "bob"),
        "bob",
        PASS,
        relay_url=url,
        lifetime=7 * 86400,
        kdf=FAST_TEST_KDF,
        clock=bob_clock,
    )
    view = asyncio.run(alice.invite("bob"))
    asyncio.run(bob.accept(view.link, "alice"))
    assert asyncio.run(alice.receive()).new_contacts == ["bob"]
    yield alice, bob, alice_clock, bob_clock
    alice.close()
    bob.close()


def reopen(messenger: Messenger, clock: Clock) -> Messenger:
    """Lock ``messenger`` and unlock it again (a new ``burner`` command) on ``clock``."""
    home = messenger.home
    messenger.close()
    return Messenger.open(home, None, PASS, clock=clock)


def switch_of(messenger: Messenger) -> CheckIn:
    data = messenger._vault.get(CHECKIN_KIND, b"burner")
    assert data is not None
    return CheckIn.from_bytes(data)


def liveness_bytes(messenger: Messenger) -> dict[bytes, bytes]:
    return dict(messenger._vault.items(LIVENESS_KIND))


def test_mint_refuses_windows_that_make_no_sense(tmp_path: Path) -> None:
    home = Home(tmp_path / "home")
    for window, lifetime, said in [
        (59, 86400, "too short: at least 1m"),
        (86400, 86400, "not shorter than the burner's lifetime (1d)"),
        (2 * 86400, 86400, "not shorter than the burner's lifetime (1d)"),
    ]:
        with pytest.raises(UsageError, match=re.escape(said)):
            Messenger.create(
                home,
                "x",
                PASS,
                relay_url="ws://127.0.0.1:1",
                lifetime=lifetime,
                check_in=window,
                kdf=FAST_TEST_KDF,
            )
    assert not home.root.exists()  # nothing was made


def test_unlock_checks_in_and_the_deadline_moves(people: People) -> None:
    alice, _, alice_clock, _ = people
    assert switch_of(alice).deadline == int(START) + WINDOW
    alice_clock.now += WINDOW - 60
    alice = reopen(alice, alice_clock)
    assert switch_of(alice).checked_in_at == int(START) + WINDOW - 60
    assert alice.info().check_in == WINDOW
    alice.close()


def test_burner_past_its_window_burns_when_opened_and_its_queues_go(people: People) -> None:
    alice, _, alice_clock, _ = people
    home = alice.home
    alice.close()
    alice_clock.now += WINDOW
    with pytest.raises(NotFoundError, match=r"not unlocked within its check-in window \(2h\): it has burned"):
        Messenger.open(home, None, PASS, clock=alice_clock)
    assert not home.root.exists()


def test_heartbeat_arrives_and_is_not_shown(people: People) -> None:
    alice, bob, alice_clock, bob_clock = people
    alice_clock.now += 60
    alice = reopen(alice, alice_clock)  # the unlock seals a heartbeat for bob
    assert alice.outbox_size() == 1
    asyncio.run(alice.flush_outbox())
    bob_clock.now += 120
    result = asyncio.run(bob.receive(wait=10.0))
    assert result.messages == []
    assert result.events == []
    assert bob.history("alice") == []
    liveness = PeerLiveness.from_bytes(next(iter(liveness_bytes(bob).values())))
    assert (liveness.window, liveness.heard_at, liveness.silent_at) == (WINDOW, int(START) + 60, 0)
    assert bob.contact("alice").silent_since == 0
    # A second unlock within the heartbeat period seals none.
    alice_clock.now += 60
    alice = reopen(alice, alice_clock)
    assert alice.outbox_size() == 0
    alice.close()


def test_silent_contact_is_warned_once_and_the_warning_clears(people: People) -> None:
    alice, bob, alice_clock, bob_clock = people
    alice = reopen(alice, alice_clock)
    asyncio.run(alice.flush_outbox())
    asyncio.run(bob.receive(wait=10.0))
    silent_after = int(START) + WINDOW + heartbeat_period(WINDOW)

    bob_clock.now = silent_after - 1
    assert asyncio.run(bob.receive()).events == []
    assert bob.contact("alice").silent_since == 0

    bob_clock.now = silent_after
    events = asyncio.run(bob.receive()).events
    assert [(e.alias, e.kind, e.alert) for e in events] == [("alice", "silent", False)]
    assert "past its check-in window of 2h" in events[0].detail
    assert bob.contact("alice").silent_since == int(START)
    bob_clock.now += HOUR
    assert asyncio.run(bob.receive()).events == []  # once per silence
    assert bob.contact("alice").silent_since == int(START)

    # Alice unlocks again (her heartbeat period passed): the silence ends.
    alice_clock.now += WINDOW - 60
    alice = reopen(alice, alice_clock)
    asyncio.run(alice.flush_outbox())
    result = asyncio.run(bob.receive(wait=10.0))
    assert result.messages == []
    assert result.events == []
    assert bob.contact("alice").silent_since == 0
    assert [e.kind for e in bob.events()] == ["silent"]

    # A later silence is warned about again.
    bob_clock.now = alice_clock.now + WINDOW + heartbeat_period(WINDOW)
    assert [e.kind for e in asyncio.run(bob.receive()).events] == ["silent"]
    alice.close()


def test_a_message_ends_a_silence_too(people: People) -> None:
    alice, bob, alice_clock, bob_clock = people
    alice = reopen(alice, alice_clock)
    asyncio.run(alice.flush_outbox())
    asyncio.run(bob.receive(wait=10.0))
    bob_clock.now += 3 * HOUR
    assert [e.kind for e in asyncio.run(bob.receive()).events] == ["silent"]
    # No new unlock, so no heartbeat: only a message, sent in a session still open.
    alice_clock.now += WINDOW - 60
    asyncio.run(alice.send("bob", "still here"))
    assert [m.text for m in asyncio.run(bob.receive(wait=10.0)).messages] == ["still here"]
    assert bob.contact("alice").silent_since == 0
    alice.close()


def _captured_heartbeat(alice: Messenger, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Flush Alice's outbox (one heartbeat) and return the envelope she sent."""
    sent: list[bytes] = []
    real = RelayClient.send

    async def send(self: RelayClient, sender_id: bytes, body: bytes, **kwargs: object) -> None:
        sent.append(body)
        await real(self, sender_id, body, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(RelayClient, "send", send)
    asyncio.run(alice.flush_outbox())
    monkeypatch.undo()
    (envelope,) = sent
    return envelope


def _bob_queue(bob: Messenger) -> bytes:
    (contact,) = [Contact.from_bytes(data) for _, data in bob._vault.items("contact")]
    return contact.queue.recipient_id


def test_replayed_heartbeat_changes_nothing(people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, alice_clock, bob_clock = people
    alice = reopen(alice, alice_clock)
    envelope = _captured_heartbeat(alice, monkeypatch)
    asyncio.run(bob.receive(wait=10.0))
    before = liveness_bytes(bob)
    assert before
    # Replayed much later, when Alice is silent: it must not look like a sign of life.
    bob_clock.now += 3 * HOUR
    with bob._vault.transaction() as tx:
        process_delivery(tx, SystemRandom(), _bob_queue(bob), envelope, bob.now())
    assert liveness_bytes(bob) == before
    assert [e.kind for e in bob.events()] == ["replay"]
    assert bob.contact("alice").silent_since == int(START)
    alice.close()


def test_forged_heartbeat_changes_nothing(people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, alice_clock, bob_clock = people
    alice = reopen(alice, alice_clock)
    asyncio.run(alice.flush_outbox())
    asyncio.run(bob.receive(wait=10.0))
    before = liveness_bytes(bob)
    alice_clock.now += HOUR
    alice = reopen(alice, alice_clock)
    envelope = bytearray(_captured_heartbeat(alice, monkeypatch))
    envelope[-1] ^= 0x01  # the body's tag: a forgery of Alice's next heartbeat
    bob_clock.now += 3 * HOUR
    with bob._vault.transaction() as tx:
        process_delivery(tx, SystemRandom(), _bob_queue(bob), bytes(envelope), bob.now())
    assert liveness_bytes(bob) == before
    assert [e.kind for e in bob.events()] == ["undecryptable"]
    alice.close()


def test_heartbeat_sent_at_ahead_of_our_clock_counts_as_now(people: People) -> None:
    # A peer (or whoever holds its keys) with its clock ahead cannot hide a later silence.
    alice, bob, alice_clock, bob_clock = people
    alice_clock.now = START + HOUR
    alice = reopen(alice, alice_clock)
    asyncio.run(alice.flush_outbox())
    bob_clock.now = START + 30
    asyncio.run(bob.receive(wait=10.0))
    liveness = PeerLiveness.from_bytes(next(iter(liveness_bytes(bob).values())))
    assert liveness.heard_at == int(START) + 30
    alice.close()


def test_follow_checks_in_while_it_runs(people: People, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob, alice_clock, _ = people
    alice = reopen(alice, alice_clock)
    asyncio.run(alice.flush_outbox())
    monkeypatch.setattr(checkin, "TICK", 0.05)
    monkeypatch.setattr(checkin, "heartbeat_period", lambda window: 1)
    first = switch_of(alice).checked_in_at

    async def follow_until_checked_in() -> None:
        task = asyncio.create_task(alice.follow(lambda news: None))
        alice_clock.now += WINDOW - 60  # the session runs on, close to the deadline
        while switch_of(alice).checked_in_at == first:
            await asyncio.sleep(0.05)
        # ... and its heartbeat goes out without a new unlock.
        while alice.outbox_size():
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(follow_until_checked_in(), 30))
    assert switch_of(alice).checked_in_at == int(START) + WINDOW - 60
    # The deadline moved with it: an unlock an hour after the old deadline is in time.
    alice_clock.now = START + WINDOW + HOUR
    alice = reopen(alice, alice_clock)
    events = asyncio.run(bob.receive(wait=10.0))
    assert events.messages == []
    alice.close()


def test_heartbeat_content_is_its_window() -> None:
    assert Heartbeat(WINDOW).encode() == bytes.fromhex("0700001c20")


def test_follow_warns_of_a_contact_going_silent_while_it_runs(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, alice_clock, bob_clock = people
    alice = reopen(alice, alice_clock)
    asyncio.run(alice.flush_outbox())
    asyncio.run(bob.receive(wait=10.0))
    monkeypatch.setattr(checkin, "TICK", 0.05)
    news: list[InboxResult] = []

    async def follow_until_warned() -> None:
        task = asyncio.create_task(bob.follow(news.append))
        bob_clock.now += 3 * HOUR  # the chat stays open while alice says nothing
        while not news:
            await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(asyncio.wait_for(follow_until_warned(), 30))
    assert [(e.alias, e.kind) for n in news for e in n.events] == [("alice", "silent")]
    assert bob.contact("alice").silent_since == int(START)
    alice.close()


def test_a_burned_contact_gets_no_heartbeat(people: People) -> None:
    """Bob burns: his notice drops his session at Alice's, so her next check-in must skip him
    (sealing in a dropped session would fail every unlock of hers from then on)."""
    alice, bob, alice_clock, _ = people
    asyncio.run(bob.burn())
    result = asyncio.run(alice.receive(wait=10.0))
    assert alice.contact("bob").burned
    assert [event.kind for event in result.events] == ["burned"]
    alice_clock.now += heartbeat_period(WINDOW) + 60
    alice = reopen(alice, alice_clock)
    assert alice.outbox_size() == 0
    assert switch_of(alice).checked_in_at == int(alice_clock.now)
    alice.close()
