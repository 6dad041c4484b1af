"""Moving a burner to another relay (``Messenger.relay_set``, docs/protocol.md §17.6).

Two relay processes, in-process Messengers: Alice moves from relay one to relay two while
Bob keeps writing; every message arrives once, the old queue goes from relay one, and a
move killed half way, replayed or forged changes nothing it should not.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.content import Move
from burnerkit.app.ledger import find_contact
from burnerkit.app.messenger import Messenger
from burnerkit.app.records import Contact, Orphan, OutboxEntry, replace
from burnerkit.app.views import InboxResult, RelayMove
from burnerkit.crypto.keys import SigningKey
from burnerkit.errors import RelayRejectedError
from burnerkit.protocol.session import Session
from burnerkit.relay.client import QueueCredentials, RelayClient
from burnerkit.relay.protocol import ErrorCode
from tests.integration.harness import RelayProcess, Relays
from tests.integration.test_messenger import Clock, mint, pair, reopen

NOW = 1_900_000_000.0


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def one_two(relays: Relays) -> tuple[RelayProcess, RelayProcess]:
    return relays.start(), relays.start()


def contact(messenger: Messenger, alias: str) -> Contact:
    return find_contact(messenger._vault, alias)


def texts(result: InboxResult) -> list[str]:
    return [m.text for m in result.messages]


def kinds(result: InboxResult) -> list[str]:
    return [e.kind for e in result.events]


def outbox(messenger: Messenger) -> list[OutboxEntry]:
    entries = (OutboxEntry.from_bytes(data) for _, data in messenger._vault.items("outbox"))
    return sorted(entries, key=lambda e: e.created_at)


async def queue_is_gone(url: str, creds: QueueCredentials) -> bool:
    async with RelayClient(url) as client:
        try:
            await client.subscribe(creds)
        except RelayRejectedError as exc:
            return exc.code == ErrorCode.AUTH
    return False


async def inject(messenger: Messenger, alias: str, envelope: bytes) -> None:
    """Put ``envelope`` on the queue ``messenger`` sends ``alias``'s messages to, signed as it
    signs them: what a relay that stored it can do again, or what its sender could."""
    peer = contact(messenger, alias)
    async with RelayClient(peer.peer.relay_url) as client:
        await client.send(peer.peer.sender_id, envelope, sender_key=SigningKey.from_bytes(peer.sender_key))


def seal(messenger: Messenger, alias: str, content: bytes, now: float) -> bytes:
    """An authentic message of ``messenger`` to ``alias`` carrying ``content``, as its session
    would seal any (the session advances, nothing goes to the outbox)."""
    with messenger._vault.transaction() as tx:
        sender = find_contact(tx, alias)
        session = Session.from_bytes(sender.session, rng=messenger._rng)
        envelope = session.send(content, now=now)
        tx.put("contact", sender.contact_id, replace(sender, session=session.to_bytes()).to_bytes())
    return envelope


def test_relay_move_keeps_the_conversation(
    tmp_path: Path, one_two: tuple[RelayProcess, RelayProcess], clock: Clock
) -> None:
    one, two = one_two
    alice, bob = mint(tmp_path, "alice", one.url, clock), mint(tmp_path, "bob", one.url, clock)
    pair(alice, bob)
    old_queue = contact(alice, "bob").queue
    asyncio.run(bob.send("alice", "before the move"))

    assert asyncio.run(alice.relay_set(two.url)) == [RelayMove("bob", "pending")]
    assert alice.relay_url == two.url
    moving = contact(alice, "bob")
    assert (moving.queue, moving.next_queue_relay) == (old_queue, two.url)
    # Bob has not heard of it yet: this one still goes to the old queue.
    asyncio.run(bob.send("alice", "sent to the old queue"))
    got = asyncio.run(bob.receive())
    assert (texts(got), kinds(got)) == ([], [])
    assert bob.contact("alice").relay_url == two.url  # bob now sends to relay two
    assert outbox(bob) == [], "the MoveDone went out with the same inbox"
    asyncio.run(bob.send("alice", "sent to the new queue"))

    got = asyncio.run(alice.receive())
    assert sorted(texts(got)) == ["before the move", "sent to the new queue", "sent to the old queue"]
    # Both relays are drained at once, so the new queue's messages may come first: a gap,
    # then the late ones. Nothing else, and nothing to alert on.
    assert set(kinds(got)) <= {"gap", "reordered"}
    assert [e for e in got.events if e.alert] == []
    moved = contact(alice, "bob")
    assert (moved.queue, moved.queue_relay, moved.next_queue) == (moving.next_queue, two.url, None)
    assert asyncio.run(alice.relay_set(two.url)) == [RelayMove("bob", "moved")]
    # The run that found the old queue retired drains it once more, then deletes it.
    assert texts(asyncio.run(alice.receive())) == []
    assert asyncio.run(queue_is_gone(one.url, old_queue))
    # Left: only the short link's queue of the pairing, kept until its invitation's expiry.
    assert [Orphan.from_bytes(data).keep_until > NOW for _, data in alice._vault.items("orphan")] == [True]

    asyncio.run(alice.send("bob", "still here"))
    asyncio.run(bob.send("alice", "me too"))
    assert texts(asyncio.run(bob.receive())) == ["still here"]
    assert texts(asyncio.run(alice.receive())) == ["me too"]
    for messenger in (alice, bob):
        messenger.close()


def test_relay_move_killed_before_the_move_went_out_is_finished_by_the_next_inbox(
    tmp_path: Path, one_two: tuple[RelayProcess, RelayProcess], clock: Clock
) -> None:
    one, two = one_two
    alice, bob = mint(tmp_path, "alice", one.url, clock), mint(tmp_path, "bob", one.url, clock)
    pair(alice, bob)
    for_carol = asyncio.run(alice.invite("carol")).link  # open on relay one during the move
    # The move's transaction committed (profile, next queue, Move in the outbox), then
    # the process died before the Move went out.
    asyncio.run(alice._prepare_moves(two.url, switch_profile=True))
    next_queue = contact(alice, "bob").next_queue
    (move,) = outbox(alice)
    alice.close()
    alice = reopen(tmp_path, "alice", clock)
    assert alice.relay_url == two.url
    assert alice._move_states() == [RelayMove("bob", "queued")]

    assert asyncio.run(alice.receive()).messages == []  # the next inbox sends the Move
    assert outbox(alice) == []
    assert contact(alice, "bob").next_queue == next_queue, "no second queue for the same move"
    asyncio.run(bob.receive())
    asyncio.run(bob.send("alice", "found you"))
    # The invitation stayed on relay one; its acceptance arrives there meanwhile.
    carol = mint(tmp_path, "carol", one.url, clock)
    asyncio.run(carol.accept(for_carol, "alice"))
    got = asyncio.run(alice.receive())
    assert (texts(got), got.new_contacts) == (["found you"], ["carol"])
    assert contact(alice, "bob").queue == next_queue
    assert contact(alice, "carol").queue_relay == one.url
    # Running it again after the crash: nothing more for bob (one Move, one queue), and the
    # contact the old invitation made is moved too.
    assert asyncio.run(alice.relay_set(two.url)) == [RelayMove("bob", "moved"), RelayMove("carol", "pending")]
    assert outbox(alice) == []
    assert move.peer == contact(alice, "bob").peer

    # Burned before the retired queue was deleted: every queue goes, each counted once.
    (retired,) = alice._retired()
    old_queue = Orphan.from_bytes(alice._vault.get("orphan", retired) or b"").queue
    queues = alice._owners().keys() | {key for key, _ in alice._vault.items("orphan")}
    report = asyncio.run(alice.burn())
    assert (report.queues_deleted, report.queues_failed) == (len(queues), 0)
    assert asyncio.run(queue_is_gone(one.url, old_queue))
    assert next_queue is not None
    assert asyncio.run(queue_is_gone(two.url, next_queue))
    bob.close()
    carol.close()


def test_replayed_move_changes_nothing(
    tmp_path: Path, one_two: tuple[RelayProcess, RelayProcess], clock: Clock
) -> None:
    one, two = one_two
    alice, bob = mint(tmp_path, "alice", one.url, clock), mint(tmp_path, "bob", one.url, clock)
    pair(alice, bob)
    asyncio.run(alice._prepare_moves(two.url, switch_profile=True))
    (move,) = outbox(alice)
    asyncio.run(alice.flush_outbox())
    asyncio.run(bob.receive())
    before = bob._vault.get("contact", contact(bob, "alice").contact_id)

    # The Move arrives again: the relay (or anyone with its bytes and the sender key)
    # stores it a second time.
    asyncio.run(inject(alice, "bob", move.envelope))
    got = asyncio.run(bob.receive())
    assert kinds(got) == ["replay"]
    assert bob._vault.get("contact", contact(bob, "alice").contact_id) == before
    assert outbox(bob) == [], "no second MoveDone"

    # A Move naming the address Bob already sends to changes nothing either.
    moved = contact(bob, "alice")
    asyncio.run(inject(alice, "bob", seal(alice, "bob", Move(moved.peer).encode(), clock())))
    assert kinds(asyncio.run(bob.receive())) == []
    after = contact(bob, "alice")
    assert (after.peer, after.sender_key) == (moved.peer, moved.sender_key)
    assert outbox(bob) == []
    for messenger in (alice, bob):
        messenger.close()


def test_forged_or_garbled_move_is_refused_and_the_contact_keeps_its_address(
    tmp_path: Path, one_two: tuple[RelayProcess, RelayProcess], clock: Clock
) -> None:
    one, two = one_two
    alice, bob = mint(tmp_path, "alice", one.url, clock), mint(tmp_path, "bob", one.url, clock)
    pair(alice, bob)
    peer = contact(bob, "alice").peer

    # Forged: a Move's envelope with one byte changed does not authenticate; the session
    # and the contact stay exactly as they were.
    asyncio.run(alice._prepare_moves(two.url, switch_profile=True))
    (move,) = outbox(alice)
    with alice._vault.transaction() as tx:
        tx.delete("outbox", move.send_id)
    forged = bytearray(move.envelope)
    forged[-40] ^= 0x01
    before = bob._vault.get("contact", contact(bob, "alice").contact_id)
    asyncio.run(inject(alice, "bob", bytes(forged)))
    got = asyncio.run(bob.receive())
    assert kinds(got) == ["undecryptable"]
    assert bob._vault.get("contact", contact(bob, "alice").contact_id) == before

    # Garbled: an authentic message whose Move names no valid address is bad content.
    garbled = Move(contact(alice, "bob").peer).encode()[:-3]
    asyncio.run(inject(alice, "bob", seal(alice, "bob", garbled, clock())))
    got = asyncio.run(bob.receive())
    assert sorted(kinds(got)) == ["gap", "malformed"]  # the gap: the forged Move's place in the chain
    assert contact(bob, "alice").peer == peer
    assert outbox(bob) == [], "no MoveDone for a move that does not parse"

    # Authentic, but to unencrypted ws:// on another machine: Bob's transport is not downgraded.
    plain = QueueAddress("ws://relay.example.org", bytes(24))
    asyncio.run(inject(alice, "bob", seal(alice, "bob", Move(plain).encode(), clock())))
    got = asyncio.run(bob.receive())
    (refused,) = got.events
    assert refused.kind == "malformed"
    assert refused.detail.endswith(": a relay move to unencrypted ws:// on another machine")
    assert contact(bob, "alice").peer == peer
    assert outbox(bob) == []
    for messenger in (alice, bob):
        messenger.close()


def test_follow_listens_on_the_relay_another_process_moved_us_to(
    tmp_path: Path, one_two: tuple[RelayProcess, RelayProcess], clock: Clock
) -> None:
    # `inbox --follow` runs while `relay set` (another process on the same vault) moves us:
    # what bob sends after switching goes to relay two, which the follower did not listen to.
    one, two = one_two
    alice, bob = mint(tmp_path, "alice", one.url, clock), mint(tmp_path, "bob", one.url, clock)
    pair(alice, bob)
    other = reopen(tmp_path, "alice", clock)
    shown: list[str] = []

    async def scenario() -> None:
        follower = asyncio.create_task(alice.follow(lambda result: shown.extend(texts(result))))
        await asyncio.sleep(0.3)
        assert await other.relay_set(two.url) == [RelayMove("bob", "pending")]
        await bob.receive()  # the Move: bob sends to relay two from now on
        assert bob.contact("alice").relay_url == two.url
        await bob.send("alice", "on the new relay")
        async with asyncio.timeout(15):
            while "on the new relay" not in shown:
                await asyncio.sleep(0.05)
        follower.cancel()
        with pytest.raises(asyncio.CancelledError):
            await follower

    asyncio.run(scenario())
    assert shown == ["on the new relay"]
    assert contact(alice, "bob").queue_relay == two.url, "the MoveDone switched the queue"
    for messenger in (alice, other, bob):
        messenger.close()
