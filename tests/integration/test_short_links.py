"""Short invitation links against a real relay process (docs/protocol.md §17.2).

The invitation waits sealed on a link queue of the inviter's relay; the acceptor fetches it
and checks it against the link's commitment. What these tests prove: a short link pairs like
a long one, is one-time like it (a second acceptor is refused and both sides learn it), cannot
be made to carry another invitation, and its queue does not outlive the invitation.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burnerkit.app.addresses import parse_link
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import Invite
from burnerkit.app.shortlink import ShortLink, link_keys, seal_invitation
from burnerkit.crypto import aead
from burnerkit.crypto.kdf import LABEL_LINK_SEAL
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import (
    HandshakeError,
    InvitationConsumedError,
    RelayError,
    RelayRejectedError,
    UsageError,
)
from burnerkit.relay.client import QueueCredentials, ReceivedMessage, RelayClient
from burnerkit.relay.protocol import ErrorCode
from tests.integration.harness import Relays
from tests.integration.test_messenger import PASS, Clock, mint

KINDS = ("contact", "invite", "outbox", "orphan", "event", "message", "pending")


def state(messenger: Messenger) -> dict[str, list[tuple[bytes, bytes]]]:
    return {kind: messenger._vault.items(kind) for kind in KINDS}


def short(link: str) -> ShortLink:
    parsed = parse_link(link)
    assert isinstance(parsed, ShortLink)
    return parsed


async def queue_exists(url: str, creds: QueueCredentials) -> bool:
    async with RelayClient(url) as client:
        try:
            await client.subscribe(creds)
        except RelayRejectedError as exc:
            code = exc.code
        else:
            return True
    assert code == ErrorCode.AUTH  # no such queue
    return False


@pytest.fixture
def url(relays: Relays) -> str:
    return relays.start().url


@pytest.fixture
def clock() -> Clock:
    return Clock(1_800_000_000)


def test_short_link_pairs_and_its_queue_goes_when_the_invitation_expires(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    view = asyncio.run(alice.invite("bob", lifetime=3600))
    assert view.link.startswith("burner:s1.")
    assert view.long_link.startswith("burner:i1.")
    assert len(view.link) < 200 < len(view.long_link)
    asyncio.run(bob.accept(view.link, "alice"))
    assert asyncio.run(alice.receive()).new_contacts == ["bob"]
    asyncio.run(alice.send("bob", "over the short link"))
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["over the short link"]
    asyncio.run(bob.send("alice", "and back"))
    assert [m.text for m in asyncio.run(alice.receive()).messages] == ["and back"]
    assert alice.contact("bob").safety_code == bob.contact("alice").safety_code
    # Kept for a later holder of the link (whose acceptance would alert us) until the
    # invitation would have expired; then the next run deletes it.
    link_queue = short(view.link).credentials()
    assert asyncio.run(queue_exists(url, link_queue))
    clock.now = view.expires_at
    asyncio.run(alice.receive())
    assert not asyncio.run(queue_exists(url, link_queue))
    assert alice._vault.items("orphan") == []
    for messenger in (alice, bob):
        messenger.close()


def test_short_link_used_by_an_interceptor_first_alerts_both_sides(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob, mallory = (mint(tmp_path, name, url, clock) for name in ("alice", "bob", "mallory"))
    link = asyncio.run(alice.invite("bob")).link
    asyncio.run(mallory.accept(link, "alice"))  # the interceptor is first
    assert asyncio.run(alice.receive()).new_contacts == ["bob"]  # Mallory, under bob's name
    with pytest.raises(InvitationConsumedError, match="already used: it may have been intercepted"):
        asyncio.run(bob.accept(link, "alice"))
    assert bob.contacts() == [], "no dead contact claims to be paired"
    assert "invitation-used" in [e.kind for e in bob.events()]
    got = asyncio.run(alice.receive())
    assert "sender-refused" in [e.kind for e in got.alerts]
    assert alice.contact("bob").alerts == ["sender-refused"]
    # The same burner using the link again is refused before anything is made.
    before = state(mallory)
    with pytest.raises(UsageError, match="already accepted this invitation"):
        asyncio.run(mallory.accept(link, "alice2"))
    assert state(mallory) == before
    for messenger in (alice, bob, mallory):
        messenger.close()


async def _replace_link_message(url: str, creds: QueueCredentials, body: bytes) -> None:
    """What the relay (or whoever can write the link queue) does: drop the real copy, put another."""
    async with RelayClient(url) as client:
        await client.subscribe(creds)
        event = await client.next_delivery(timeout=5)
        assert isinstance(event, ReceivedMessage)
        await client.ack(creds, event.msg_id)
        await client.send(creds.sender_id, body)


@pytest.mark.parametrize("sealed_under", ["a wrong key", "the link's own key"])
def test_relay_substituted_invitation_is_refused(
    tmp_path: Path, url: str, clock: Clock, sealed_under: str
) -> None:
    alice, bob, mallory = (mint(tmp_path, name, url, clock) for name in ("alice", "bob", "mallory"))
    view = asyncio.run(alice.invite("bob"))
    (invite,) = (Invite.from_bytes(data) for _, data in alice._vault.items("invite"))
    assert invite.link_queue is not None
    substitute = parse_link(asyncio.run(mallory.invite("alice")).long_link)
    assert isinstance(substitute, bytes)
    if sealed_under == "a wrong key":
        # The relay does not know k: the best it can do is seal under some key of its own.
        body = seal_invitation(substitute, SystemRandom())
    else:
        # The strongest case: sealed under the link's key, which only a holder of the link has.
        nonce = SystemRandom().random_bytes(aead.NONCE_SIZE)
        key = link_keys(short(view.link).secret).seal_key
        body = nonce + aead.seal(key, nonce, substitute, LABEL_LINK_SEAL)
    asyncio.run(_replace_link_message(url, invite.link_queue, body))
    before = state(bob)
    with pytest.raises(HandshakeError, match="not the one this link names"):
        asyncio.run(bob.accept(view.link, "alice"))
    assert state(bob) == before, "nothing stored"
    assert asyncio.run(mallory.receive()).new_contacts == [], "mallory's invitation was never accepted"
    for messenger in (alice, bob, mallory):
        messenger.close()


def test_inviter_deletes_the_link_queue_of_an_expired_invitation_and_on_burn(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    expired = short(asyncio.run(alice.invite("bob", lifetime=60)).link)
    waiting = short(asyncio.run(alice.invite("carol")).link)
    clock.now += 120
    alice.close()
    alice = Messenger.open(Home(tmp_path / "alice"), "alice", PASS, clock=clock)  # purges the expired
    asyncio.run(alice.receive())  # its orphan sweep reaches the relay
    assert not asyncio.run(queue_exists(url, expired.credentials()))
    with pytest.raises(HandshakeError, match="no longer on its relay"):
        asyncio.run(bob.accept(expired.to_text(), "alice"))
    assert asyncio.run(queue_exists(url, waiting.credentials()))
    report = asyncio.run(alice.burn())
    assert (report.queues_deleted, report.queues_failed) == (2, 0)  # the invitation's queue and its link's
    assert not asyncio.run(queue_exists(url, waiting.credentials()))
    bob.close()


def test_short_link_of_an_unreachable_relay_is_a_relay_error(tmp_path: Path, relays: Relays) -> None:
    relay = relays.start()
    alice = mint(tmp_path, "alice", relay.url, Clock(1_800_000_000))
    link = asyncio.run(alice.invite("bob")).link
    relay.stop()
    bob = Messenger.create(
        Home(tmp_path / "bob"), "bob", PASS, relay_url=relay.url, kdf=FAST_TEST_KDF, relay_timeout=1.0
    )
    with pytest.raises(RelayError):
        asyncio.run(bob.accept(link, "alice"))
    assert bob.contacts() == []
    for messenger in (alice, bob):
        messenger.close()
