"""The anomaly events the Messenger records for hostile deliveries, over a real relay process.

Each test has Alice's Messenger receive, through a real relay, an envelope that must not
be read: one that does not authenticate, one whose counter jumps far ahead (a counter
bomb), and a second acceptance of an invitation already accepted. Each asserts the one
event kind recorded in Alice's vault (``Messenger.events()``), the alert it puts on the
contact (``Messenger.contacts()``), that the contact's stored session is byte for byte
what it was, and that Bob's next genuine message is read as if nothing had happened.

The hostile peer is Bob's own Messenger with what his session encrypts swapped for the
one ``send`` (:func:`bob_sends`): the envelope then travels as any of Bob's would, signed
with his sender key on his sender-secured queue, which is what a peer holding Bob's relay
credentials (a compromised device, a buggy client) could put in front of Alice. Bob's
stored session is left as it was, so his next message is the genuine one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from burnerkit.app.addresses import decode_link
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import Contact
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.protocol.handshake import accept_invitation
from burnerkit.protocol.session import Session
from tests.integration.harness import Relays

PASS = "correct horse battery"
NOW = 1_900_000_000.0

#: What Bob's session encrypts instead: given a copy of his session, the content and the time.
Craft = Callable[[Session, bytes, float], bytes]
#: The real ``Session.send``, for the crafts (the class attribute is swapped while they run).
SEND = Session.send


def mint(tmp_path: Path, name: str, url: str) -> Messenger:
    return Messenger.create(
        Home(tmp_path / name), name, PASS, relay_url=url, lifetime=86400, kdf=FAST_TEST_KDF, clock=lambda: NOW
    )


People = tuple[Messenger, Messenger, str]


@pytest.fixture
def people(tmp_path: Path, relays: Relays) -> Iterator[People]:
    """Alice and Bob, paired by short link, Bob past his acceptance (he has heard from Alice);
    and the long link of the same invitation."""
    url = relays.start().url
    alice, bob = mint(tmp_path, "alice", url), mint(tmp_path, "bob", url)
    view = asyncio.run(alice.invite("bob"))
    link = view.long_link
    asyncio.run(bob.accept(view.link, "alice"))
    assert asyncio.run(alice.receive()).new_contacts == ["bob"]
    asyncio.run(alice.send("bob", "hello bob"))
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["hello bob"]
    yield alice, bob, link
    alice.close()
    bob.close()


@contextmanager
def bob_sends(craft: Craft) -> Iterator[None]:
    """Every ``Session.send`` meanwhile returns ``craft``'s envelope, made from a copy of the
    session: the session itself is not advanced (so the next genuine message follows on)."""

    def send(self: Session, content: bytes, *, now: float) -> bytes:
        return craft(Session.from_bytes(self.to_bytes(), rng=SystemRandom()), content, now)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "send", send)
        yield
    assert Session.send is SEND


def session_of(messenger: Messenger, alias: str) -> bytes:
    """The contact's session as stored in the vault (read, not opened by the Messenger)."""
    contacts = [Contact.from_bytes(data) for _, data in messenger._vault.items("contact")]
    (contact,) = [c for c in contacts if c.alias == alias]
    return contact.session


def assert_refused_with(alice: Messenger, bob: Messenger, craft: Craft, kind: str) -> None:
    """Bob's crafted envelope reaches Alice: one ``kind`` event, nothing shown, session unchanged."""
    before = session_of(alice, "bob")
    events_before = alice.events()
    with bob_sends(craft):
        asyncio.run(bob.send("alice", "not to be read"))
    result = asyncio.run(alice.receive(wait=10.0))
    assert result.messages == []
    assert [e.kind for e in result.events] == [kind]
    assert [e.kind for e in alice.events()[len(events_before) :]] == [kind]
    assert alice.events()[-1].alias == "bob"
    assert session_of(alice, "bob") == before
    assert kind in alice.contact("bob").alerts  # on alert until the user clears it
    # The conversation goes on: Bob's next message is read, in order, with no other event.
    asyncio.run(bob.send("alice", "genuine"))
    result = asyncio.run(alice.receive(wait=10.0))
    assert [m.text for m in result.messages] == ["genuine"]
    assert result.events == []
    assert [h.text for h in alice.history("bob") if not h.outgoing] == ["genuine"]


def test_undecryptable_delivery_is_recorded_and_changes_no_session(people: People) -> None:
    alice, bob, _ = people

    def flipped(session: Session, content: bytes, now: float) -> bytes:
        envelope = bytearray(SEND(session, content, now=now))
        envelope[-1] ^= 0x01  # the body's tag
        return bytes(envelope)

    assert_refused_with(alice, bob, flipped, "undecryptable")


def test_counter_bomb_is_recorded_and_changes_no_session(people: People) -> None:
    alice, bob, _ = people

    def bomb(session: Session, content: bytes, now: float) -> bytes:
        session._ratchet._ns += 25_001  # the threat model's example: far past the skip limit
        return SEND(session, content, now=now)

    assert_refused_with(alice, bob, bomb, "counter-bomb")


def test_second_acceptance_envelope_is_recorded_and_changes_no_session(people: People) -> None:
    # The relay refuses a second acceptor's SEND on a sender-secured queue (the e2e hijack
    # test); here a second acceptance of the same invitation reaches Alice all the same.
    # Her invitation record is gone once accepted, so the envelope goes to Bob's session,
    # which names it by its invitation id (protocol §5.10): a second acceptance, not a
    # mere undecryptable delivery.
    alice, bob, link = people
    _, envelope = accept_invitation(decode_link(link), content=b"mallory", rng=SystemRandom(), now=NOW)

    def second_acceptance(session: Session, content: bytes, now: float) -> bytes:
        return envelope

    assert_refused_with(alice, bob, second_acceptance, "second-acceptance")
