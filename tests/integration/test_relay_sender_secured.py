"""Sender-secured queues and the refused-sender notice, against a real relay process.

docs/protocol.md §14.4 (NEW flags, SEND's sender key), §14.7 (delivery flag bit 1) and
§14.8 (sender-secured queues). The attack: Mallory intercepts Alice's one-time invitation
and sends on its queue first; Bob, the intended acceptor, comes later. The defence: the
queue belongs to the first key that signs a SEND to it; Bob is refused at once, with the
answer a missing queue gets, and Alice's next delivery tells her someone was refused.
"""

from __future__ import annotations

import asyncio

import pytest

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.errors import RelayRejectedError
from burnerkit.relay.client import QueueCredentials, ReceivedMessage
from burnerkit.relay.protocol import (
    QUEUE_ID_SIZE,
    Err,
    ErrorCode,
    Ids,
    Key,
    New,
    Ok,
    Send,
    ServerTransmission,
    Sub,
    decode_frame,
    derive_queue_key,
    encode_frame,
    open_ids,
)
from tests.integration.harness import (
    RNG,
    Peer,
    Relays,
    client,
    corr,
    drain,
    nothing_delivered,
    opened,
    peers,
    received,
    send_id,
)

pytestmark = pytest.mark.asyncio


async def secured_queue(peer: Peer) -> QueueCredentials:
    key = SigningKey.generate(RNG)
    dh = X25519PrivateKey.generate(RNG)
    tx = await peer.request(b"", New(key.verify_key.raw, dh.public_key.raw, sender_secured=True), key)
    assert isinstance(tx.response, Ids), tx
    queue_key = derive_queue_key(dh, tx.response.server_dh)
    ids = open_ids(queue_key, tx.response.sealed)
    return QueueCredentials(ids.recipient_id, ids.sender_id, key, queue_key)


def keyed_send(body: bytes, key: SigningKey, the_send_id: bytes | None = None) -> Send:
    """A SEND as ``RelayClient.send(..., sender_key=key)`` makes it: carrying the key it is signed by."""
    return Send(send_id() if the_send_id is None else the_send_id, body, key.verify_key.raw)


async def answered_as_a_missing_queue(
    peer: Peer, queue: QueueCredentials, command: Send, key: SigningKey | None
) -> ServerTransmission:
    """Send ``command`` to the queue and to a missing one under the same corr id: the two
    answers must be the same frame, byte for byte. Returns the queue's answer."""
    corr_id = corr()
    tx, answer = await peer.request_raw(peer.frame(queue.sender_id, command, key, corr_id))
    missing = RNG.random_bytes(QUEUE_ID_SIZE)
    _, missing_answer = await peer.request_raw(peer.frame(missing, command, key, corr_id))
    # The entity is copied into the answer: put the queue's back where the missing one was.
    assert answer == missing_answer.replace(missing, queue.sender_id)
    return tx


async def test_first_signed_send_locks_a_secured_queue(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as alice, client(relay.url) as bob, client(relay.url) as mallory:
        creds = await alice.create_queue(sender_secured=True)
        bob_key, mallory_key = SigningKey.generate(RNG), SigningKey.generate(RNG)
        await bob.send(creds.sender_id, b"first", sender_key=bob_key)
        await bob.send(creds.sender_id, b"second", sender_key=bob_key)  # locked to Bob: still his
        with pytest.raises(RelayRejectedError) as refused:
            await mallory.send(creds.sender_id, b"mallory", sender_key=mallory_key)
        assert refused.value.code is ErrorCode.AUTH
        await alice.subscribe(creds)
        got = await drain(alice, creds, 3)
        assert [(m.body, m.sender_refused) for m in got] == [
            (b"first", False),
            (b"second", False),
            (b"", True),
        ]
        await nothing_delivered(alice, 0.1)


async def test_second_sender_of_a_secured_queue_is_refused(relays: Relays) -> None:
    """The intercepted invitation: Mallory sends first and owns the queue; Bob, later, is
    refused with AUTH, the very frame a missing queue gets; Alice learns of it."""
    relay = relays.start()
    mallory, bob = await peers(relay.port, 2)
    async with client(relay.url) as alice:
        queue = await alice.create_queue(sender_secured=True)
        mallory_key, bob_key = SigningKey.generate(RNG), SigningKey.generate(RNG)
        hijack = keyed_send(b"hi, I am bob", mallory_key)
        assert (await mallory.request(queue.sender_id, hijack, mallory_key)).response == Ok()
        bob_send = keyed_send(b"hi, this is bob", bob_key)
        tx = await answered_as_a_missing_queue(bob, queue, bob_send, bob_key)
        assert tx.response == Err(ErrorCode.AUTH)
        # Bob's retries change nothing: the queue stays Mallory's.
        assert (await bob.request(queue.sender_id, bob_send, bob_key)).response == Err(ErrorCode.AUTH)
        again = keyed_send(b"again", mallory_key)
        assert (await mallory.request(queue.sender_id, again, mallory_key)).response == Ok()
        await alice.subscribe(queue)
        got = await drain(alice, queue, 3)
        # One notice for all of Bob's tries; where it sits among Mallory's is the store's order.
        assert sorted((m.body, m.sender_refused) for m in got) == [
            (b"", True),
            (b"again", False),
            (b"hi, I am bob", False),
        ]
        assert got[0].body == b"hi, I am bob"
        await nothing_delivered(alice, 0.1)
    for peer in (mallory, bob):
        await peer.close()
    await relay.astop()
    # Nothing about the queue is logged, its refusals included.
    log = relay.log_text()
    assert queue.sender_id.hex() not in log
    assert queue.recipient_id.hex() not in log


async def test_unsigned_send_to_a_secured_queue_is_refused(relays: Relays) -> None:
    """Unsigned, carrying a key but unsigned, or signed without the key it needs: each is
    refused as a missing queue would be, and none locks the queue."""
    relay = relays.start()
    (sender,) = await peers(relay.port, 1)
    async with client(relay.url) as alice:
        queue = await alice.create_queue(sender_secured=True)
        key = SigningKey.generate(RNG)
        attempts: list[tuple[Send, SigningKey | None]] = [
            (Send(send_id(), b"unsigned"), None),
            (keyed_send(b"key, no signature", key), None),
            (Send(send_id(), b"signature, no key"), key),
        ]
        for command, signer in attempts:
            tx = await answered_as_a_missing_queue(sender, queue, command, signer)
            assert tx.response == Err(ErrorCode.AUTH), command
        # Nothing was locked: the first SEND that is signed and carries its key is stored.
        assert (await sender.request(queue.sender_id, keyed_send(b"proper", key), key)).response == Ok()
        await alice.subscribe(queue)
        got = await drain(alice, queue, 2)
        assert sorted((m.body, m.sender_refused) for m in got) == [(b"", True), (b"proper", False)]
        await nothing_delivered(alice, 0.1)
    await sender.close()
    await relay.astop()


async def test_retry_of_the_locking_send_is_a_duplicate(relays: Relays) -> None:
    """The SEND that locked the queue, repeated (its OK lost), on the same connection or
    re-signed on a new one: OK, and the message is stored once."""
    relay = relays.start()
    first, second = await peers(relay.port, 2)
    async with client(relay.url) as alice:
        queue = await alice.create_queue(sender_secured=True)
        key = SigningKey.generate(RNG)
        locking = keyed_send(b"once", key)
        frame = first.frame(queue.sender_id, locking, key)
        assert (await first.request_raw(frame))[0].response == Ok()
        assert (await first.request_raw(frame))[0].response == Ok()
        assert (await second.request(queue.sender_id, locking, key)).response == Ok()
        await alice.subscribe(queue)
        (message,) = await drain(alice, queue, 1)
        assert (message.body, message.sender_refused) == (b"once", False)
        await nothing_delivered(alice, 0.2)
    for peer in (first, second):
        await peer.close()
    await relay.astop()


async def test_concurrent_first_sends_from_two_connections_lock_once(relays: Relays) -> None:
    relay = relays.start()
    senders = await peers(relay.port, 4)
    async with client(relay.url) as alice:
        queue = await alice.create_queue(sender_secured=True)
        keys = [SigningKey.generate(RNG) for _ in senders]
        frames = [
            peer.frame(queue.sender_id, keyed_send(f"from {n}".encode(), key), key)
            for n, (peer, key) in enumerate(zip(senders, keys, strict=True))
        ]
        answers = await asyncio.gather(
            *(peer.request_raw(frame) for peer, frame in zip(senders, frames, strict=True))
        )
        responses = [tx.response for tx, _ in answers]
        assert sorted(map(repr, responses)) == sorted([repr(Ok())] + [repr(Err(ErrorCode.AUTH))] * 3)
        winner = responses.index(Ok())
        await alice.subscribe(queue)
        got = await drain(alice, queue, 2)
        assert sorted((m.body, m.sender_refused) for m in got) == [
            (b"", True),
            (f"from {winner}".encode(), False),
        ]
    for peer in senders:
        await peer.close()
    await relay.astop()


async def test_refused_sender_notice_reaches_the_recipient(relays: Relays) -> None:
    """With no other message to carry it: pushed to the recipient online, and kept across a
    relay restart for a recipient who was offline."""
    relay = relays.start()
    owner_key, mallory_key = SigningKey.generate(RNG), SigningKey.generate(RNG)
    async with client(relay.url) as alice, client(relay.url) as sender:
        queue = await alice.create_queue(sender_secured=True)
        await sender.send(queue.sender_id, b"hello", sender_key=owner_key)
        await alice.subscribe(queue)
        assert [m.body for m in await drain(alice, queue, 1)] == [b"hello"]
        with pytest.raises(RelayRejectedError) as refused:
            await sender.send(queue.sender_id, b"hijack", sender_key=mallory_key)
        assert refused.value.code is ErrorCode.AUTH
        notice = await received(alice)
        assert (notice.sender_refused, notice.body, notice.quota_marker) == (True, b"", False)
        await alice.ack(queue, notice.msg_id)
        await nothing_delivered(alice, 0.1)
    # Offline now: refused again, and the relay restarts before Alice comes back.
    async with client(relay.url) as sender:
        with pytest.raises(RelayRejectedError):
            await sender.send(queue.sender_id, b"unsigned")
    await relay.astop()
    await relay.astart()
    async with client(relay.url) as alice:
        await alice.subscribe(queue)
        notice = await received(alice)
        assert isinstance(notice, ReceivedMessage)
        assert (notice.sender_refused, notice.body) == (True, b"")
        await alice.ack(queue, notice.msg_id)
        await nothing_delivered(alice, 0.1)
    await relay.astop()


async def test_refused_sender_notices_do_not_fill_the_queue(relays: Relays) -> None:
    """Many refusals leave one notice; a full queue gets none, and the owner's sender keeps
    its quota."""
    relay = relays.start("--quota", "4")
    (mallory,) = await peers(relay.port, 1)
    owner_key, mallory_key = SigningKey.generate(RNG), SigningKey.generate(RNG)
    async with client(relay.url) as alice, client(relay.url) as sender:
        queue = await alice.create_queue(sender_secured=True)
        await sender.send(queue.sender_id, b"locks it", sender_key=owner_key)
        for _ in range(30):
            tx = await mallory.request(queue.sender_id, keyed_send(b"spam", mallory_key), mallory_key)
            assert tx.response == Err(ErrorCode.AUTH)
        await alice.subscribe(queue)
        got = await drain(alice, queue, 2)
        assert sorted((m.body, m.sender_refused) for m in got) == [(b"", True), (b"locks it", False)]
        await nothing_delivered(alice, 0.1)
    async with client(relay.url) as sender:
        for n in range(4):
            await sender.send(queue.sender_id, f"m{n}".encode(), sender_key=owner_key)
        tx = await mallory.request(queue.sender_id, keyed_send(b"spam", mallory_key), mallory_key)
        assert tx.response == Err(ErrorCode.AUTH)
        with pytest.raises(RelayRejectedError) as full:
            await sender.send(queue.sender_id, b"m4", sender_key=owner_key)
        assert full.value.code is ErrorCode.QUOTA
    async with client(relay.url) as alice:
        await alice.subscribe(queue)
        got = await drain(alice, queue, 4)
        assert [(m.body, m.sender_refused, m.quota_marker) for m in got] == [
            (b"m0", False, False),
            (b"m1", False, False),
            (b"m2", False, False),
            (b"m3", False, True),
        ]
        await nothing_delivered(alice, 0.1)
    await mallory.close()
    await relay.astop()


async def test_key_on_a_secured_queue_follows_the_one_lock(relays: Relays) -> None:
    """KEY and the first signed SEND lock the same way, once: KEY of another key than the
    one a SEND locked is ERR CMD; a KEY first makes SENDs by any other key refused (with
    the notice, the queue being secured)."""
    relay = relays.start()
    owner, sender = await peers(relay.port, 2)
    locker, other = SigningKey.generate(RNG), SigningKey.generate(RNG)
    locked_by_send = await secured_queue(owner)
    assert (await sender.request(locked_by_send.sender_id, keyed_send(b"x", locker), locker)).response == Ok()
    key_other = Key(other.verify_key.raw)
    assert (
        await owner.request(locked_by_send.recipient_id, key_other, locked_by_send.recipient_key)
    ).response == Err(ErrorCode.CMD)
    key_same = Key(locker.verify_key.raw)
    assert (
        await owner.request(locked_by_send.recipient_id, key_same, locked_by_send.recipient_key)
    ).response == Ok()
    locked_by_key = await secured_queue(owner)
    assert (
        await owner.request(locked_by_key.recipient_id, key_same, locked_by_key.recipient_key)
    ).response == Ok()
    assert (await sender.request(locked_by_key.sender_id, keyed_send(b"y", other), other)).response == Err(
        ErrorCode.AUTH
    )
    assert (await sender.request(locked_by_key.sender_id, keyed_send(b"z", locker), locker)).response == Ok()
    assert (
        await owner.request(locked_by_key.recipient_id, Sub(), locked_by_key.recipient_key)
    ).response == Ok()
    deliveries = set()
    msg_id, delivery = opened(locked_by_key, await owner.push())
    deliveries.add((delivery.body, delivery.sender_refused))
    answer, _ = await owner.request_raw(owner.mac_ack(locked_by_key, msg_id))
    nxt = answer if answer.response != Ok() else await owner.push()
    _, delivery = opened(locked_by_key, nxt, answering=answer.response != Ok())
    deliveries.add((delivery.body, delivery.sender_refused))
    assert deliveries == {(b"", True), (b"z", False)}
    for peer in (owner, sender):
        await peer.close()
    await relay.astop()


async def test_an_open_queue_is_as_before(relays: Relays) -> None:
    """Without the flag nothing changes: unsigned SENDs are stored, a signed one does not
    lock the queue, and a refusal (after KEY) leaves no notice."""
    relay = relays.start()
    async with client(relay.url) as alice, client(relay.url) as sender:
        queue = await alice.create_queue()
        key, other = SigningKey.generate(RNG), SigningKey.generate(RNG)
        await sender.send(queue.sender_id, b"signed", sender_key=key)
        await sender.send(queue.sender_id, b"unsigned")
        await sender.send(queue.sender_id, b"other", sender_key=other)
        await alice.lock(queue, key.verify_key.raw)
        with pytest.raises(RelayRejectedError):
            await sender.send(queue.sender_id, b"refused")
        await alice.subscribe(queue)
        got = await drain(alice, queue, 3)
        assert [(m.body, m.sender_refused) for m in got] == [
            (b"signed", False),
            (b"unsigned", False),
            (b"other", False),
        ]
        await nothing_delivered(alice, 0.2)
    await relay.astop()


async def test_small_order_sender_key_cannot_lock_a_secured_queue(relays: Relays) -> None:
    """A SEND carrying the identity point as its key, with the signature (R = identity,
    S = 0) that a lax verifier accepts for any message under it: refused as a missing queue
    would be, and the queue stays free for a real key."""
    relay = relays.start()
    (sender,) = await peers(relay.port, 1)
    async with client(relay.url) as alice:
        queue = await alice.create_queue(sender_secured=True)
        identity = b"\x01" + bytes(31)
        forged_signature = identity + bytes(32)
        command = Send(send_id(), b"forged", identity)
        corr_id = corr()

        def forged(entity: bytes) -> bytes:
            unsigned = decode_frame(sender.frame(entity, command, None, corr_id))
            return encode_frame(b"\x40" + forged_signature + unsigned[1:])

        tx, answer = await sender.request_raw(forged(queue.sender_id))
        assert tx.response == Err(ErrorCode.AUTH)
        missing = RNG.random_bytes(QUEUE_ID_SIZE)
        _, missing_answer = await sender.request_raw(forged(missing))
        assert answer == missing_answer.replace(missing, queue.sender_id)
        key = SigningKey.generate(RNG)
        assert (await sender.request(queue.sender_id, keyed_send(b"real", key), key)).response == Ok()
        await alice.subscribe(queue)
        got = await drain(alice, queue, 2)
        assert sorted((m.body, m.sender_refused) for m in got) == [(b"", True), (b"real", False)]
    await sender.close()
    await relay.astop()
