"""Burn notices and expiry at the contact's side, over a real relay, with injected clocks (§17.7).

What the CLI tests (tests/e2e/test_burn.py) cannot reach without waiting for real time or
forging: a notice forged, signed for another contact, or replayed; a burner whose clock is
set back after its expiry; a contact refusing a peer past its expiry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burnerkit.app.content import BurnNotice
from burnerkit.app.home import Home
from burnerkit.app.ledger import find_contact
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import ContactBurnedError, IdentityExpiredError, NotFoundError, RelayRejectedError
from burnerkit.protocol.session import Session
from burnerkit.relay.client import RelayClient
from tests.integration.harness import Relays

PASS = "correct horse battery"
T0 = 1_900_000_000.0


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


def pair(inviter: Messenger, acceptor: Messenger, inviter_calls: str, acceptor_calls: str) -> None:
    link = asyncio.run(inviter.invite(inviter_calls)).link
    asyncio.run(acceptor.accept(link, acceptor_calls))
    assert asyncio.run(inviter.receive()).new_contacts == [inviter_calls]
    asyncio.run(acceptor.receive())  # the inviter's expiry


@pytest.fixture
def url(relays: Relays) -> str:
    return relays.start().url


def kinds(messenger: Messenger) -> list[tuple[str, str]]:
    return [(event.alias, event.kind) for event in messenger.events()]


def contact_bytes(messenger: Messenger, alias: str) -> bytes:
    return find_contact(messenger._vault, alias).to_bytes()


def send_crafted(bob: Messenger, alias: str, content: bytes, now: float) -> None:
    """Bob's session seals ``content`` (whatever it is) and it goes out as his next message."""
    real = Session.send

    def send(self: Session, _content: bytes, *, now: float) -> bytes:
        return real(self, content, now=now)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Session, "send", send)
        asyncio.run(bob.send(alias, "placeholder"))


def test_contacts_learn_each_others_expiry_when_they_pair(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    alice, bob = mint(tmp_path, "alice", url, clock, 3600), mint(tmp_path, "bob", url, clock, 7200)
    pair(alice, bob, "bob", "alice")
    # The acceptor's expiry came with its Hello; the inviter's comes with its first Text.
    assert find_contact(alice._vault, "bob").peer_expires_at == int(T0) + 7200
    assert find_contact(bob._vault, "alice").peer_expires_at == 0
    asyncio.run(alice.send("bob", "first words"))
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["first words"]
    assert find_contact(bob._vault, "alice").peer_expires_at == int(T0) + 3600
    asyncio.run(alice.send("bob", "said once"))  # not again: its first Text told it
    assert find_contact(alice._vault, "bob").expiry_told
    alice.close()
    bob.close()


def test_forged_burn_notice_signed_by_another_key_is_ignored(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob, "bob", "alice")
    # Sealed in bob's session (as a thief of his session state could), signed by a key that
    # is not bob's identity for alice.
    body = BurnNotice.body(int(T0), True)
    forged = BurnNotice(int(T0), True, SigningKey.generate(SystemRandom()).sign(body))
    send_crafted(bob, "alice", forged.encode(), T0)
    asyncio.run(alice.receive())
    assert kinds(alice)[-1] == ("bob", "malformed")
    assert [c.burned for c in alice.contacts()] == [False]
    # Nothing changed: alice still talks to bob, and bob's genuine messages still arrive.
    asyncio.run(alice.send("bob", "still here"))
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["still here"]
    alice.close()
    bob.close()


def test_burn_notice_signed_for_another_contact_is_ignored(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    alice, bob, carol = (mint(tmp_path, name, url, clock) for name in ("alice", "bob", "carol"))
    pair(alice, bob, "bob", "alice")
    pair(carol, bob, "bob", "carol")
    # bob's genuine notice for carol, signed by his identity for carol, sent inside his session with alice.
    carol_session = Session.from_bytes(find_contact(bob._vault, "carol").session, rng=SystemRandom())
    body = BurnNotice.body(int(T0), False)
    for_carol = BurnNotice(int(T0), False, carol_session.sign_burn_notice(body))
    assert carol_session.burn_notice_signed(body, for_carol.signature) is False  # not its own peer's
    before = contact_bytes(alice, "bob")
    send_crafted(bob, "alice", for_carol.encode(), T0)
    asyncio.run(alice.receive())
    assert kinds(alice)[-1] == ("bob", "malformed")
    after = find_contact(alice._vault, "bob")
    assert not after.burned
    assert after.session != b""  # the session advanced by one message, nothing more
    assert contact_bytes(alice, "bob") != before
    for person in (alice, bob, carol):
        person.close()


def test_replayed_burn_notice_is_ignored(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob, "bob", "alice")
    sent: list[tuple[bytes, bytes, SigningKey | None]] = []
    real = RelayClient.send

    async def record(self: RelayClient, sender_id: bytes, body: bytes, **kwargs: object) -> None:
        sent.append((sender_id, body, kwargs.get("sender_key")))  # type: ignore[arg-type]
        await real(self, sender_id, body, **kwargs)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RelayClient, "send", record)
        report = asyncio.run(bob.burn(erase_conversations=True))
    assert (report.notices_sent, report.notices_failed) == (1, 0)
    (notice,) = sent

    async def replay() -> None:
        async with RelayClient(url, rng=SystemRandom()) as client:
            await client.send(notice[0], notice[1], sender_key=notice[2])

    # The relay (or anyone who kept the envelope and bob's sender key) delivers it again.
    asyncio.run(replay())
    asyncio.run(alice.receive())
    # Taken once; the copy meets a contact whose session is gone and changes nothing.
    assert sorted(kinds(alice)) == [("bob", "abandoned"), ("bob", "burned")]
    assert find_contact(alice._vault, "bob").burned
    # Alice deleted her queue for bob as she took the notice: a later replay finds no queue.
    with pytest.raises(RelayRejectedError):
        asyncio.run(replay())
    alice.close()


def test_burn_notice_drops_the_contacts_outbox_and_session(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob, "bob", "alice")
    asyncio.run(bob.burn())

    async def no_flush(self: Messenger) -> list[str]:
        return []

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Messenger, "_flush_outbox", no_flush)
        asyncio.run(alice.send("bob", "queued before the notice is read"))
        assert alice.outbox_size() == 1
        asyncio.run(alice.receive())
    assert alice.outbox_size() == 0
    contact = find_contact(alice._vault, "bob")
    assert (contact.burned, contact.session) == (True, b"")
    with pytest.raises(ContactBurnedError):
        asyncio.run(alice.send("bob", "after"))
    with pytest.raises(ContactBurnedError):
        alice.verify("bob")
    assert alice.history("bob")[0].text == "queued before the notice is read"  # not asked to erase
    alice.close()


def test_expired_burner_burns_itself_and_a_clock_set_back_revives_nothing(tmp_path: Path, url: str) -> None:
    clock = Clock(T0)
    alice, bob = mint(tmp_path, "alice", url, clock, lifetime=3600), mint(tmp_path, "bob", url, clock)
    pair(bob, alice, "alice", "bob")
    alice.close()
    clock.now += 3601  # past the expiry: the next start burns it
    with pytest.raises(IdentityExpiredError, match="it has burned itself"):
        reopen(tmp_path, "alice", clock)
    assert not (tmp_path / "alice").exists()
    clock.now -= 7200  # the owner (or an adversary) turns the clock back: nothing to revive
    with pytest.raises(NotFoundError):
        reopen(tmp_path, "alice", clock)
    asyncio.run(bob.receive())
    assert kinds(bob) == [("alice", "burned")]
    bob.close()


def test_authenticated_time_is_a_floor_under_a_clock_set_back(tmp_path: Path, url: str) -> None:
    alice_clock, bob_clock = Clock(T0), Clock(T0)
    alice = mint(tmp_path, "alice", url, alice_clock)
    bob = mint(tmp_path, "bob", url, bob_clock, lifetime=3600)
    pair(alice, bob, "bob", "alice")
    bob.close()
    # bob's clock is set back; alice's (right) is past bob's expiry when she writes.
    alice_clock.now = T0 + 3600 + 60
    bob_clock.now = T0 + 10
    asyncio.run(alice.send("bob", "the time is later than you think"))
    bob = reopen(tmp_path, "bob", bob_clock)  # by its own clock it is alive
    assert [m.text for m in asyncio.run(bob.receive()).messages] == ["the time is later than you think"]
    assert bob.now() >= T0 + 3600 + 60  # the authenticated time is its floor now
    bob.close()
    with pytest.raises(IdentityExpiredError, match="it has burned itself"):
        reopen(tmp_path, "bob", bob_clock)
    assert not (tmp_path / "bob").exists()
    alice.close()


def test_contact_refuses_messages_after_the_peers_expiry(tmp_path: Path, url: str) -> None:
    alice_clock, bob_clock = Clock(T0), Clock(T0)
    alice = mint(tmp_path, "alice", url, alice_clock)
    bob = mint(tmp_path, "bob", url, bob_clock, lifetime=3600)
    pair(alice, bob, "bob", "alice")
    bob_clock.now = T0 + 3000  # bob's clock lags: he believes he is alive
    asyncio.run(bob.send("alice", "from beyond"))
    alice_clock.now = T0 + 3600 + 1
    got = asyncio.run(alice.receive())
    assert got.messages == []
    assert kinds(alice)[-1] == ("bob", "expired-peer")
    assert alice.history("bob") == []
    alice.close()
    bob.close()
