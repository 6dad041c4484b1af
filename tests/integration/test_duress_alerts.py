"""Duress alerts at the contact's side, over a real relay (docs/protocol.md §17.11).

The attacks: the coercer (or the relay) replaying the alert, or anyone forging one, to
raise a false alarm or to wear it out; and an alert that would show, or change anything
else, at the contact. The sender's side (key destroyed first, same files) is
tests/integration/test_duress.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burnerkit.app import duress
from burnerkit.app.home import Home
from burnerkit.app.ledger import find_contact
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import VaultLockedError
from burnerkit.relay.client import RelayClient
from tests.integration.harness import Relays
from tests.integration.test_burning import PASS, T0, Clock, kinds, mint, pair

DURESS = "open sesame please"


@pytest.fixture
def url(relays: Relays) -> str:
    return relays.start().url


def armed_pair(tmp_path: Path, url: str, clock: Clock) -> tuple[Messenger, Messenger]:
    """Alice (duress armed, alerting bob) and bob, paired, with bob holding alice's alert key."""
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob, "bob", "alice")
    asyncio.run(alice.send("bob", "before"))
    alice.arm_duress(DURESS, alert=["bob"])
    assert asyncio.run(alice.flush_outbox()) == []
    alice.close()
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["before"]  # the key is never shown
    return alice, bob


def coerce(tmp_path: Path, clock: Clock) -> Messenger:
    decoy = Messenger.open(Home(tmp_path / "alice"), "alice", DURESS, clock=clock)
    duress.join_alerts(timeout=30)
    return decoy


def held(bob: Messenger) -> duress.HeldKey:
    contact = find_contact(bob._vault, "alice")
    data = bob._vault.get(duress.HELD_KEY_KIND, contact.contact_id)
    assert data is not None
    return duress.HeldKey.from_bytes(data)


def resend(url: str, sender_id: bytes, sender_key: bytes, body: bytes) -> None:
    async def go() -> None:
        async with RelayClient(url, rng=SystemRandom()) as client:
            await client.send(sender_id, body, sender_key=SigningKey.from_bytes(sender_key))

    asyncio.run(go())


def test_contacts_receive_the_duress_alert_and_nothing_else_changes_for_them(
    tmp_path: Path, url: str
) -> None:
    clock = Clock(T0)
    _, bob = armed_pair(tmp_path, url, clock)
    events_before, history_before = kinds(bob), bob.history("alice")
    assert not held(bob).spent
    coerce(tmp_path, clock).close()
    result = asyncio.run(bob.receive())
    assert result.messages == []
    assert kinds(bob) == [*events_before, ("alice", "duress")]
    assert bob.history("alice") == history_before
    view = bob.contact("alice")
    assert view.alerts == ["duress"]
    assert not view.burned
    assert held(bob).spent
    with pytest.raises(VaultLockedError):
        Messenger.open(Home(tmp_path / "alice"), "alice", PASS, clock=clock)
    bob.close()


def test_replayed_duress_alert_changes_nothing_at_the_contact(
    tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock(T0)
    alice, bob = armed_pair(tmp_path, url, clock)
    sent: list[bytes] = []
    real_body = duress.alert_body

    def recording(key: bytes, rng: Random) -> bytes:
        sent.append(real_body(key, rng))
        return sent[-1]

    monkeypatch.setattr(duress, "alert_body", recording)
    alice = Messenger.open(Home(tmp_path / "alice"), "alice", PASS, clock=clock)
    to_bob = find_contact(alice._vault, "bob")
    alice.close()
    coerce(tmp_path, clock).close()
    asyncio.run(bob.receive())
    assert kinds(bob)[-1] == ("alice", "duress")
    contact, events, alert = (
        find_contact(bob._vault, "alice").to_bytes(),
        kinds(bob),
        bob.contact("alice").alerts,
    )
    (body,) = sent
    resend(url, to_bob.peer.sender_id, to_bob.sender_key, body)
    asyncio.run(bob.receive())
    assert kinds(bob) == events  # not a second alert, and not a malformed delivery either
    assert find_contact(bob._vault, "alice").to_bytes() == contact
    assert bob.contact("alice").alerts == alert
    bob.close()


def test_forged_duress_alert_raises_no_duress_alert_and_leaves_the_key_unspent(
    tmp_path: Path, url: str
) -> None:
    """A body under another key is what any other stray body is (malformed), not a duress alert."""
    clock = Clock(T0)
    _, bob = armed_pair(tmp_path, url, clock)
    alice = Messenger.open(Home(tmp_path / "alice"), "alice", PASS, clock=clock)
    to_bob = find_contact(alice._vault, "bob")
    alice.close()
    forged = duress.alert_body(bytes(32), SystemRandom())
    resend(url, to_bob.peer.sender_id, to_bob.sender_key, forged)
    asyncio.run(bob.receive())
    assert kinds(bob)[-1] == ("alice", "malformed")  # as any body that is no envelope
    assert "duress" not in [kind for _, kind in kinds(bob)]
    assert not held(bob).spent
    coerce(tmp_path, clock).close()  # the genuine alert still fires
    asyncio.run(bob.receive())
    assert kinds(bob)[-1] == ("alice", "duress")
    bob.close()


def test_duress_unlock_without_alerts_sends_nothing(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob, "bob", "alice")
    alice.arm_duress(DURESS)
    alice.close()
    before = kinds(bob)
    coerce(tmp_path, clock).close()
    assert asyncio.run(bob.receive()).messages == []
    assert kinds(bob) == before
    bob.close()


def test_removing_a_contact_forgets_its_alert_key(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    _, bob = armed_pair(tmp_path, url, clock)
    contact_id = find_contact(bob._vault, "alice").contact_id
    asyncio.run(bob.remove_contact("alice"))
    assert bob._vault.get(duress.HELD_KEY_KIND, contact_id) is None
    bob.close()


def test_chosen_contacts_relay_move_is_reported_as_a_stale_alert(tmp_path: Path, relays: Relays) -> None:
    """The kit is sealed in the decoy: a move of the queue cannot be written into it, so it is said."""
    one, two = relays.start(), relays.start()
    clock = Clock(T0)
    alice, bob = mint(tmp_path, "alice", one.url, clock), mint(tmp_path, "bob", one.url, clock)
    pair(alice, bob, "bob", "alice")
    alice.arm_duress(DURESS, alert=["bob"])
    assert asyncio.run(alice.flush_outbox()) == []
    assert alice.duress_alerts() == (["bob"], [])
    asyncio.run(bob.receive())
    asyncio.run(bob.relay_set(two.url))
    asyncio.run(alice.receive())
    assert find_contact(alice._vault, "bob").peer.relay_url == two.url
    assert alice.duress_alerts() == (["bob"], ["bob"])
    alice.arm_duress("another duress one", alert=["bob"])  # arming again makes a fresh kit
    assert alice.duress_alerts() == (["bob"], [])
    asyncio.run(alice.remove_contact("bob"))
    assert alice.duress_alerts() == (["a removed contact"], ["a removed contact"])
    alice.close()
    bob.close()
