"""The landed path made trustworthy: nothing lost, nothing hijacked, nothing quiet.

The Messenger against real relay processes. Each test reproduces one way the path
once lost a message, accepted a hijacked invitation, or raised an alert that did not
stick, and asserts the defence (docs/protocol.md §17.6, §14.8).
"""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from burnerkit.app.home import Home
from burnerkit.app.ledger import find_contact
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import OutboxEntry
from burnerkit.app.views import InboxResult
from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import IdentityError, InvitationConsumedError, UsageError
from burnerkit.relay.client import RelayClient
from tests.integration.harness import Relays
from tests.integration.test_messenger import PASS, Clock, pair

NOW = 1_900_000_000.0


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def url(relays: Relays) -> str:
    return relays.start().url


def mint(tmp_path: Path, name: str, url: str, clock: Clock) -> Messenger:
    # A relay that is down is given up on after 2 s, not the default 10.
    return Messenger.create(
        Home(tmp_path / name), name, PASS, relay_url=url, kdf=FAST_TEST_KDF, clock=clock, relay_timeout=2.0
    )


def texts(result: InboxResult) -> list[str]:
    return [m.text for m in result.messages]


def read(messenger: Messenger, count: int) -> InboxResult:
    """Receive until ``count`` messages were shown (an inbox stops after 0.5 s of quiet, which a
    loaded machine can exceed between two deliveries); what the runs showed, merged."""
    merged = InboxResult([], [], [], [])
    for _ in range(20):
        result = asyncio.run(messenger.receive(wait=1.0))
        merged.messages.extend(result.messages)
        merged.events.extend(result.events)
        merged.new_contacts.extend(result.new_contacts)
        if len(merged.messages) >= count:
            break
    return merged


def kinds(messenger: Messenger) -> list[str]:
    return [e.kind for e in messenger.events()]


def test_first_message_sent_right_after_accepting_is_not_lost(tmp_path: Path, url: str, clock: Clock) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    link = asyncio.run(alice.invite("bob")).link
    asyncio.run(bob.accept(link, "alice"))
    # Bob writes at once, before Alice has taken in the acceptance.
    assert asyncio.run(bob.send("alice", "hi")).delivered
    first = read(alice, 1)
    assert first.new_contacts == ["bob"]
    assert texts(first) == ["hi"]
    asyncio.run(bob.send("alice", "second"))
    second = read(alice, 1)
    assert texts(second) == ["second"]
    assert second.events == [], "no gap: nothing was dropped"
    assert [(e.text, e.outgoing) for e in alice.history("bob")] == [("hi", False), ("second", False)]
    for messenger in (alice, bob):
        messenger.close()


def test_messages_written_while_the_inviter_follows_are_shown_once(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    link = asyncio.run(alice.invite("bob")).link
    shown: list[str] = []
    contacts: list[str] = []

    def on_result(result: InboxResult) -> None:
        shown.extend(texts(result))
        contacts.extend(result.new_contacts)

    async def scenario() -> None:
        follower = asyncio.create_task(alice.follow(on_result))
        await asyncio.sleep(0.3)  # let it subscribe; the test waits for what it shows below
        await bob.accept(link, "alice")
        for text in ("one", "two", "three"):
            await bob.send("alice", text)
        async with asyncio.timeout(15):
            while len(shown) < 3:
                await asyncio.sleep(0.05)
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower

    asyncio.run(scenario())
    assert contacts == ["bob"]
    assert shown == ["one", "two", "three"]
    again = asyncio.run(alice.receive())
    assert texts(again) == []
    assert again.events == []
    for messenger in (alice, bob):
        messenger.close()


def test_follow_subscribes_to_an_invitation_made_after_it_started(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    # A second process on Alice's vault makes the invitation while the first follows.
    other = Messenger.open(Home(tmp_path / "alice"), "alice", PASS, clock=clock)
    shown: list[str] = []

    async def scenario() -> None:
        follower = asyncio.create_task(alice.follow(lambda result: shown.extend(texts(result))))
        await asyncio.sleep(0.3)
        link = (await other.invite("bob")).link
        await bob.accept(link, "alice")
        await bob.send("alice", "found you")
        async with asyncio.timeout(15):
            while not shown:
                await asyncio.sleep(0.05)
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower

    asyncio.run(scenario())
    assert shown == ["found you"]
    for messenger in (alice, other, bob):
        messenger.close()


def test_message_delivered_before_its_acceptance_is_kept_until_the_acceptance(
    tmp_path: Path, relays: Relays, clock: Clock
) -> None:
    # Alice's relay is down while Bob accepts and writes: both wait in Bob's outbox. Then
    # they reach Alice's queue in the wrong order (as a hostile network or two racing
    # flushes could make them): the message first, the acceptance after it.
    alice_relay, bob_relay = relays.start(), relays.start()
    alice, bob = mint(tmp_path, "alice", alice_relay.url, clock), mint(tmp_path, "bob", bob_relay.url, clock)
    link = asyncio.run(alice.invite("bob")).long_link
    alice_relay.stop()
    asyncio.run(bob.accept(link, "alice"))
    assert asyncio.run(bob.send("alice", "before you knew me")).status == "queued"
    entries = sorted(
        (OutboxEntry.from_bytes(data) for _, data in bob._vault.items("outbox")), key=lambda e: e.created_at
    )
    assert len(entries) == 2
    key = SigningKey.from_bytes(find_contact(bob._vault, "alice").sender_key)
    alice_relay.start()

    async def send_reversed() -> None:
        async with RelayClient(alice_relay.url) as client:
            for entry in reversed(entries):
                await client.send(entry.peer.sender_id, entry.envelope, send_id=entry.send_id, sender_key=key)

    asyncio.run(send_reversed())
    got = read(alice, 1)
    assert got.new_contacts == ["bob"]
    assert texts(got) == ["before you knew me"]
    assert "undecryptable" not in kinds(alice)
    assert alice._vault.items("pending") == [], "the kept delivery was opened and removed"
    for messenger in (alice, bob):
        messenger.close()


def test_hijacked_invitation_is_refused_and_both_sides_learn_it(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob, mallory = (mint(tmp_path, name, url, clock) for name in ("alice", "bob", "mallory"))
    link = asyncio.run(alice.invite("bob")).long_link
    asyncio.run(mallory.accept(link, "alice"))  # the interceptor is first
    with pytest.raises(InvitationConsumedError, match="already used: it may have been intercepted"):
        asyncio.run(bob.accept(link, "alice"))
    assert bob.contacts() == [], "no dead contact claims to be paired"
    assert "invitation-used" in kinds(bob)
    assert bob._vault.items("outbox") == []
    got = asyncio.run(alice.receive())
    assert got.new_contacts == ["bob"]  # Mallory, under the name Alice gave the link
    assert "sender-refused" in [e.kind for e in got.alerts]
    (view,) = alice.contacts()
    assert view.alerts == ["sender-refused"]
    assert not view.verified
    for messenger in (alice, bob, mallory):
        messenger.close()


def test_accepting_our_own_invitation_is_refused_before_anything_is_created(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice = mint(tmp_path, "alice", url, clock)
    link = asyncio.run(alice.invite("bob")).link
    before = {kind: alice._vault.items(kind) for kind in ("contact", "invite", "outbox", "orphan")}
    with pytest.raises(UsageError, match="own invitation"):
        asyncio.run(alice.accept(link, "me"))
    assert {kind: alice._vault.items(kind) for kind in before} == before
    alice.close()


def test_accepting_the_same_link_twice_is_refused_before_anything_is_created(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    link = asyncio.run(alice.invite("bob")).long_link
    asyncio.run(bob.accept(link, "alice"))
    before = {kind: bob._vault.items(kind) for kind in ("contact", "outbox", "orphan")}
    with pytest.raises(UsageError, match="already accepted this invitation: it is contact 'alice'"):
        asyncio.run(bob.accept(link, "alice-again"))
    assert {kind: bob._vault.items(kind) for kind in before} == before
    for messenger in (alice, bob):
        messenger.close()


def test_fork_alert_sticks_until_the_user_clears_it(tmp_path: Path, url: str, clock: Clock) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob)
    alice.verify("bob", alice.verify("bob").safety_code)
    assert alice.contacts()[0].verified
    bob.close()
    shutil.copytree(tmp_path / "bob", tmp_path / "bob-image")  # the border copy
    original = Messenger.open(Home(tmp_path / "bob"), "bob", PASS, clock=clock)
    clone = Messenger.open(Home(tmp_path / "bob-image"), "bob", PASS, clock=clock)
    asyncio.run(original.send("alice", "from the real one"))
    asyncio.run(clone.send("alice", "from the copy"))
    first = asyncio.run(alice.receive())
    assert [e.kind for e in first.alerts] == ["fork"]
    for _ in range(2):  # it sticks: later runs still show it
        (view,) = alice.contacts()
        assert view.alerts == ["fork"]
        assert not view.verified
        assert asyncio.run(alice.receive()).alerts == []  # the event is shown once, the status stays
    # A matching safety code does not answer a clone alert: a clone holds the same keys.
    alice.verify("bob", alice.verify("bob").safety_code)
    assert alice.contacts()[0].alerts == ["fork"]
    cleared = alice.clear_alerts("bob")
    assert cleared.alerts == []
    assert cleared.verified
    assert "fork" in kinds(alice), "the event stays for the debrief"
    for messenger in (alice, original, clone):
        messenger.close()


def test_failed_safety_code_comparison_puts_the_contact_on_alert(
    tmp_path: Path, url: str, clock: Clock
) -> None:
    alice, bob = mint(tmp_path, "alice", url, clock), mint(tmp_path, "bob", url, clock)
    pair(alice, bob)
    with pytest.raises(IdentityError, match="does not match"):
        alice.verify("bob", "1" * 60)
    (view,) = alice.contacts()
    assert view.alerts == ["code-mismatch"]
    assert not view.verified
    # The right code later answers it: that is what the comparison is for.
    alice.verify("bob", view.safety_code)
    (view,) = alice.contacts()
    assert view.alerts == []
    assert view.verified
    for messenger in (alice, bob):
        messenger.close()


def test_concurrent_outbox_flushes_of_one_vault_never_send_an_entry_twice(
    tmp_path: Path, relays: Relays, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice_relay = relays.start()
    alice, bob = (
        mint(tmp_path, "alice", alice_relay.url, clock),
        mint(tmp_path, "bob", alice_relay.url, clock),
    )
    pair(alice, bob)
    alice_relay.stop()
    for n in range(5):
        assert asyncio.run(bob.send("alice", f"m{n}")).status == "queued"
    second = Messenger.open(Home(tmp_path / "bob"), "bob", PASS, clock=clock)  # another process's view
    alice_relay.start()
    sent: Counter[bytes] = Counter()
    real_send = RelayClient.send

    async def counting_send(self: RelayClient, sender_id: bytes, body: bytes, **kwargs: Any) -> None:
        sent[kwargs["send_id"]] += 1
        await asyncio.sleep(0.01)  # widen the window in which two flushes could overlap
        await real_send(self, sender_id, body, **kwargs)

    monkeypatch.setattr(RelayClient, "send", counting_send)

    async def both() -> None:
        await asyncio.gather(bob.flush_outbox(), second.flush_outbox())

    asyncio.run(both())
    assert len(sent) == 5
    assert set(sent.values()) == {1}
    assert texts(read(alice, 5)) == [f"m{n}" for n in range(5)]
    for messenger in (alice, bob, second):
        messenger.close()
