"""The relay attacks of BRIEF §5, each against a real relay process, each asserting its defence.

docs/protocol.md §14.6 to §14.9. Attacks that need frames no honest client sends use a
raw WebSocket (:class:`~tests.integration.harness.Peer`) and the sans-IO encoders;
the others use :class:`~burnerkit.relay.client.RelayClient`. The ``relays`` fixture
stops every relay with SIGTERM, asserts exit code 0, and checks that its output holds no
traceback.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as sync_connect

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.errors import RelayRejectedError
from burnerkit.relay.client import SubscriptionEnded
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    MAX_BODY_SIZE,
    MSG_ID_SIZE,
    Ack,
    ClientCommand,
    Del,
    End,
    Err,
    ErrorCode,
    Hello,
    Ids,
    Key,
    Msg,
    New,
    Ok,
    Ping,
    Pong,
    Send,
    ServerTransmission,
    Sub,
    decode_client_frame,
    decode_frame,
    decode_server_frame,
    derive_queue_key,
    encode_client_frame,
    encode_frame,
    open_ids,
)
from burnerkit.relay.server.logs import LOGGER_NAME
from tests.integration.harness import (
    FAST,
    RNG,
    ZERO_CORR,
    Peer,
    Recorder,
    Relays,
    TcpProxy,
    client,
    corr,
    corr_id_of,
    drain,
    new_queue,
    nothing_delivered,
    opened,
    peers,
    received,
    recording_client,
    send_id,
    spellings,
    without_timestamps,
    ws_frames,
)

# -- limits ----------------------------------------------------------------------------------

#: An unsigned SEND's content without its body: sig_len, version, corr_id, entity, tag,
#: send_id and the body's u16 length.
_SEND_OVERHEAD = 1 + 1 + 24 + 1 + 24 + 1 + 16 + 2


@pytest.mark.asyncio
async def test_oversize_body_is_refused(relays: Relays) -> None:
    relay = relays.start()
    peer = await Peer.open(relay.port)
    queue = await new_queue(peer)
    largest_a_frame_holds = FRAME_SIZE - 2 - _SEND_OVERHEAD
    for size in (MAX_BODY_SIZE + 1, largest_a_frame_holds):
        tx = await peer.request(queue.sender_id, Send(send_id(), b"\xaa" * size))
        assert tx.response == Err(ErrorCode.LARGE), size
        assert tx.entity == queue.sender_id
    biggest = b"\x01" * MAX_BODY_SIZE
    assert (await peer.request(queue.sender_id, Send(send_id(), biggest))).response == Ok()
    # The client library refuses before anything goes out.
    async with client(relay.url) as sender:
        with pytest.raises(ValueError, match="at most 15872"):
            await sender.send(queue.sender_id, bytes(MAX_BODY_SIZE + 1))
    # Nothing of the refused bodies was stored.
    assert (await peer.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    msg_id, delivery = opened(queue, await peer.push())
    assert delivery.body == biggest
    assert (await peer.request(queue.recipient_id, Ack(msg_id), queue.recipient_key)).response == Ok()
    await peer.nothing_pushed()
    await peer.close()
    await relay.astop()


@pytest.mark.asyncio
async def test_queue_quota_is_enforced(relays: Relays) -> None:
    relay = relays.start("--quota", "8")
    async with client(relay.url) as recipient, client(relay.url) as sender:
        creds = await recipient.create_queue()
        for number in range(8):
            await sender.send(creds.sender_id, f"m{number}".encode())
        with pytest.raises(RelayRejectedError) as full:
            await sender.send(creds.sender_id, b"one too many")
        assert full.value.code == ErrorCode.QUOTA
        await recipient.subscribe(creds)
        messages = await drain(recipient, creds, 8)
        assert [m.body for m in messages] == [f"m{n}".encode() for n in range(8)]
        # The marker rides on the message that filled the queue, and only on it.
        assert [m.quota_marker for m in messages] == [False] * 7 + [True]
        await nothing_delivered(recipient)  # the refused message was not stored
        await sender.send(creds.sender_id, b"after the drain")
        after = await received(recipient)
        assert (after.body, after.quota_marker) == (b"after the drain", False)
    await relay.astop()


@pytest.mark.asyncio
async def test_queue_quota_is_enforced_at_the_default_of_128(relays: Relays) -> None:
    relay = relays.start()
    async with client(relay.url) as recipient, client(relay.url) as sender:
        creds = await recipient.create_queue()
        await asyncio.gather(*(sender.send(creds.sender_id, f"m{n}".encode()) for n in range(128)))
        with pytest.raises(RelayRejectedError) as full:
            await sender.send(creds.sender_id, b"129")
        assert full.value.code == ErrorCode.QUOTA
        await recipient.subscribe(creds)
        messages = await drain(recipient, creds, 128)
        assert sorted(m.body for m in messages) == sorted(f"m{n}".encode() for n in range(128))
        assert [n for n, m in enumerate(messages, 1) if m.quota_marker] == [128]
        await nothing_delivered(recipient, 0.2)
    await relay.astop()


@pytest.mark.asyncio
async def test_command_flood_from_one_connection_is_rate_limited(relays: Relays) -> None:
    """Each command beyond a connection's token bucket gets ``ERR RATE`` and takes no effect;
    the flooding connection stays open and other connections are not slowed."""
    burst = 6
    # One token back per 100 s: none comes back while the test runs.
    relay = relays.start("--rate-limit", "0.01", "--rate-burst", str(burst))
    maker, reader, flooder, honest = await peers(relay.port, 4)
    queue = await new_queue(maker)
    bodies: dict[bytes, bytes] = {}
    for number in range(burst + 4):  # all sent before any answer is read
        frame = flooder.frame(queue.sender_id, Send(send_id(), f"flood {number}".encode()))
        bodies[corr_id_of(frame)] = f"flood {number}".encode()
        await flooder.send_raw(frame)
    answers: dict[bytes, object] = {}
    for _ in bodies:
        tx = decode_server_frame(await flooder.recv_raw())
        answers[tx.corr_id] = tx.response
    assert sorted(answers) == sorted(bodies)
    accepted = [bodies[corr_id] for corr_id, answer in answers.items() if answer == Ok()]
    assert len(accepted) == burst
    assert [answer for answer in answers.values() if answer != Ok()] == [Err(ErrorCode.RATE)] * 4
    # The next command on the flooding connection is refused too, and the connection lives.
    assert (await flooder.request(b"", Ping())).response == Err(ErrorCode.RATE)
    # Another connection still has its whole bucket.
    assert (await honest.request(queue.sender_id, Send(send_id(), b"honest"))).response == Ok()
    # Exactly the accepted messages were stored (the honest one waits behind them).
    assert (await reader.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    msg_id, delivery = opened(queue, await reader.push())
    delivered = [delivery.body]
    for _ in range(burst - 1):  # the reader's bucket: SUB and five ACKs
        ack = reader.frame(queue.recipient_id, Ack(msg_id), queue.recipient_key)
        msg_id, delivery = opened(queue, (await reader.request_raw(ack))[0], answering=True)
        delivered.append(delivery.body)
    assert sorted(delivered) == sorted(accepted)
    for peer in (maker, reader, flooder, honest):
        await peer.close()
    await relay.astop()


@pytest.mark.asyncio
async def test_expired_messages_are_swept(relays: Relays) -> None:
    relay = relays.start("--ttl", "1", "--sweep-interval", "1")
    async with client(relay.url) as recipient, client(relay.url) as sender:
        creds = await recipient.create_queue()
        for number in range(3):
            await sender.send(creds.sender_id, f"old {number}".encode())
        # Offline recipient; the sweeper runs every second and drops what is over a second old.
        deadline = time.monotonic() + 10
        while sum(e.get("expired", 0) for e in relay.events() if e["event"] == "sweep") < 3:
            assert time.monotonic() < deadline, relay.log_text()
            await asyncio.sleep(0.1)
        await recipient.subscribe(creds)
        await nothing_delivered(recipient, 0.5)
        # The queue itself lives on.
        await sender.send(creds.sender_id, b"fresh")
        assert (await received(recipient)).body == b"fresh"
    await relay.astop()
    sweeps = [e for e in relay.events() if e["event"] == "sweep"]
    assert sum(e["expired"] for e in sweeps) >= 3
    assert set(sweeps[0]) == {"ts", "level", "event", "expired"}  # a count, nothing per queue


# -- authentication --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_replayed_recipient_command_on_another_connection_is_refused(relays: Relays) -> None:
    relay = relays.start()
    owner, attacker, sender = await peers(relay.port, 3)
    queue = await new_queue(owner)
    sender_key = SigningKey.generate(RNG)
    # What an observer records on the owner's connection (signed over the owner's session).
    recorded = {
        "sub": owner.frame(queue.recipient_id, Sub(), queue.recipient_key),
        "key": owner.frame(queue.recipient_id, Key(sender_key.verify_key.raw), queue.recipient_key),
        "ack": owner.frame(queue.recipient_id, Ack(bytes(MSG_ID_SIZE)), queue.recipient_key),
        "del": owner.frame(queue.recipient_id, Del(), queue.recipient_key),
        "new": owner.frame(
            b"", New(queue.recipient_key.verify_key.raw, bytes(range(32))), queue.recipient_key
        ),
    }
    for name, frame in recorded.items():
        tx, _ = await attacker.request_raw(frame)
        assert tx.response == Err(ErrorCode.AUTH), name
    # None of them took effect: the queue is there, unlocked, and nobody subscribed.
    assert (await sender.request(queue.sender_id, Send(send_id(), b"unsigned"))).response == Ok()
    await attacker.nothing_pushed(0.1)
    # The same recorded SUB is fine on the connection it was made for.
    assert (await owner.request_raw(recorded["sub"]))[0].response == Ok()
    assert opened(queue, await owner.push())[1].body == b"unsigned"
    # A signed SEND to a locked queue, replayed on another connection, is refused too.
    assert (
        await owner.request(queue.recipient_id, Key(sender_key.verify_key.raw), queue.recipient_key)
    ).response == Ok()
    signed_send = sender.frame(queue.sender_id, Send(send_id(), b"signed"), sender_key)
    assert (await sender.request_raw(signed_send))[0].response == Ok()
    assert (await attacker.request_raw(signed_send))[0].response == Err(ErrorCode.AUTH)
    for peer in (owner, attacker, sender):
        await peer.close()
    await relay.astop()


@pytest.mark.asyncio
async def test_ack_mac_replayed_on_another_connection_is_refused(relays: Relays) -> None:
    """A MAC'd ACK is keyed by the session of its connection: recorded there, it is worthless
    anywhere else, even on a connection that holds the queue's subscription (§14.4)."""
    relay = relays.start()
    owner, thief, sender = await peers(relay.port, 3)
    queue = await new_queue(owner)
    for body in (b"first", b"second"):
        assert (await sender.request(queue.sender_id, Send(send_id(), body))).response == Ok()
    assert (await owner.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    msg_id, delivery = opened(queue, await owner.push())
    assert delivery.body == b"first"
    recorded = owner.mac_ack(queue, msg_id)
    # The thief takes the subscription over (it holds the recipient key too: the worst case
    # for the MAC, whose key is derived from the queue key and the session, not the holder).
    assert (await thief.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    assert (await owner.push()).response == End()
    again, _ = opened(queue, await thief.push())
    assert again == msg_id  # redelivered to the new holder
    tx, _ = await thief.request_raw(recorded)
    assert tx.response == Err(ErrorCode.AUTH)
    # Replayed where it was made, it authenticates but names nothing outstanding there.
    assert (await owner.request_raw(recorded))[0].response == Err(ErrorCode.NO_MSG)
    # Nothing was deleted: the genuine ACK on the thief's own session works, answered by the next.
    answer, _ = await thief.request_raw(thief.mac_ack(queue, msg_id))
    assert opened(queue, answer, answering=True)[1].body == b"second"
    await thief.nothing_pushed(0.05)
    for peer in (owner, thief, sender):
        await peer.close()
    await relay.astop()


@pytest.mark.asyncio
async def test_ack_with_wrong_mac_gets_the_same_error_as_missing_queue(relays: Relays) -> None:
    """A wrong MAC on a live, subscribed queue and a MAC'd ACK to a queue that is gone get
    the same frame, byte for byte; so does the owner's own MAC once the queue is deleted."""
    relay = relays.start()
    owner, sender = await Peer.open(relay.port), await Peer.open(relay.port)
    queue = await new_queue(owner)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"m"))).response == Ok()
    assert (await owner.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    msg_id, _ = opened(queue, await owner.push())
    corr_id = corr()
    forged = dataclasses.replace(queue, queue_key=RNG.random_bytes(32))
    wrong_tx, wrong_answer = await owner.request_raw(owner.mac_ack(forged, msg_id, corr_id))
    assert wrong_tx.response == Err(ErrorCode.AUTH)
    # Without the subscription (another connection), the relay derives the key from the store.
    _, unsubscribed_answer = await sender.request_raw(sender.mac_ack(forged, msg_id, corr_id))
    assert unsubscribed_answer == wrong_answer
    assert (await owner.request(queue.recipient_id, Del(), queue.recipient_key)).response == Ok()
    _, missing_answer = await owner.request_raw(owner.mac_ack(forged, msg_id, corr_id))
    assert missing_answer == wrong_answer
    _, owner_answer = await owner.request_raw(owner.mac_ack(queue, msg_id, corr_id))
    assert owner_answer == wrong_answer
    # A MAC is for ACK only: on any other command the frame does not even parse.
    signed_sub = decode_client_frame(owner.frame(queue.recipient_id, Sub(), queue.recipient_key))
    mac_sub = encode_frame(bytes([32]) + bytes(32) + signed_sub.signed)
    await owner.send_raw(mac_sub)
    refused = decode_server_frame(await owner.recv_raw())
    assert (refused.corr_id, refused.response) == (ZERO_CORR, Err(ErrorCode.CMD))
    await owner.close()
    await sender.close()
    await relay.astop()


@pytest.mark.asyncio
async def test_missing_queue_and_wrong_key_get_the_same_error(relays: Relays) -> None:
    """The answer to a wrong key on a live queue and to the same command once the queue is
    gone are the same frame, byte for byte (one corr_id for both; with two corr_ids, they
    differ only there)."""
    relay = relays.start()
    owner, attacker = await Peer.open(relay.port), await Peer.open(relay.port)
    wrong = SigningKey.generate(RNG)
    recipient_commands: list[ClientCommand] = [
        Sub(),
        Key(wrong.verify_key.raw),
        Ack(bytes(MSG_ID_SIZE)),
        Del(),
    ]
    for command in recipient_commands:
        for key in (wrong, None):
            queue = await new_queue(owner)
            corr_id = corr()
            frame = attacker.frame(queue.recipient_id, command, key, corr_id)
            wrong_key_tx, wrong_key_answer = await attacker.request_raw(frame)
            assert wrong_key_tx.response == Err(ErrorCode.AUTH)
            assert (await owner.request(queue.recipient_id, Del(), queue.recipient_key)).response == Ok()
            _, missing_answer = await attacker.request_raw(frame)
            assert missing_answer == wrong_key_answer, command
            # Even the owner's own key, on the deleted queue, gets the same frame.
            _, owner_answer = await attacker.request_raw(
                attacker.frame(queue.recipient_id, command, queue.recipient_key, corr_id)
            )
            assert owner_answer == wrong_key_answer
            _, other_corr = await attacker.request_raw(attacker.frame(queue.recipient_id, command, key))
            assert mask_corr(other_corr) == mask_corr(wrong_key_answer)
    # SEND: a queue locked to another key, and a queue that is gone.
    sender_key = SigningKey.generate(RNG)
    for key in (wrong, None):
        queue = await new_queue(owner)
        assert (
            await owner.request(queue.recipient_id, Key(sender_key.verify_key.raw), queue.recipient_key)
        ).response == Ok()
        frame = attacker.frame(queue.sender_id, Send(send_id(), b"x"), key, corr())
        locked_tx, locked_answer = await attacker.request_raw(frame)
        assert locked_tx.response == Err(ErrorCode.AUTH)
        assert (await owner.request(queue.recipient_id, Del(), queue.recipient_key)).response == Ok()
        assert (await attacker.request_raw(frame))[1] == locked_answer
    await owner.close()
    await attacker.close()
    await relay.astop()


def mask_corr(frame: bytes) -> bytes:
    """A server frame with its corr_id (content bytes 1..24) zeroed."""
    return frame[:3] + ZERO_CORR + frame[3 + 24 :]


@pytest.mark.asyncio
async def test_stale_ack_never_deletes_an_undelivered_message(relays: Relays) -> None:
    relay = relays.start()
    first, second, stranger, sender = await peers(relay.port, 4)
    queue = await new_queue(first)
    for body in (b"m1", b"m2", b"m3"):
        assert (await sender.request(queue.sender_id, Send(send_id(), body))).response == Ok()

    async def ack_answer(peer: Peer, msg_id: bytes) -> ServerTransmission:
        return await peer.request(queue.recipient_id, Ack(msg_id), queue.recipient_key)

    async def ack(peer: Peer, msg_id: bytes) -> Ok | Err:
        response = (await ack_answer(peer, msg_id)).response
        assert isinstance(response, Ok | Err)
        return response

    assert (await first.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    id1, delivery = opened(queue, await first.push())
    assert delivery.body == b"m1"
    id2, delivery = opened(queue, await ack_answer(first, id1), answering=True)  # the next answers
    assert delivery.body == b"m2"
    # Stale, foreign and random ids: NO_MSG, and m2 stays outstanding.
    assert await ack(first, id1) == Err(ErrorCode.NO_MSG)
    assert await ack(first, RNG.random_bytes(MSG_ID_SIZE)) == Err(ErrorCode.NO_MSG)
    assert await ack(stranger, id2) == Err(ErrorCode.NO_MSG)  # right key, no subscription
    await first.nothing_pushed(0.1)
    # A second subscriber gets m2 again: nothing above deleted it.
    assert (await second.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    assert isinstance((await first.push()).response, End)
    again, delivery = opened(queue, await second.push())
    assert (again, delivery.body) == (id2, b"m2")
    # The displaced subscriber's ACK of the very message it was given deletes nothing either.
    assert await ack(first, id2) == Err(ErrorCode.NO_MSG)
    await second.nothing_pushed(0.1)
    id3, delivery = opened(queue, await ack_answer(second, id2), answering=True)
    assert delivery.body == b"m3"
    assert await ack(second, id3) == Ok()
    await second.nothing_pushed(0.1)
    for peer in (first, second, stranger, sender):
        await peer.close()
    await relay.astop()


# -- malformed input -------------------------------------------------------------------------


def _structured_content() -> st.SearchStrategy[bytes]:
    """Contents that get past the first checks of the parser and fail (or not) deeper in."""
    return st.builds(
        lambda sig_len, sig, version, corr_id, entity_len, entity, tag, rest: (
            bytes([sig_len])
            + sig
            + bytes([version])
            + corr_id
            + bytes([entity_len])
            + entity
            + bytes([tag])
            + rest
        ),
        st.sampled_from([0, 64, 1, 63, 65, 255]),
        st.binary(min_size=0, max_size=70),
        st.sampled_from([1, 0, 2, 255]),
        st.binary(min_size=24, max_size=24),
        st.sampled_from([0, 24, 1, 23, 25, 255]),
        st.binary(min_size=0, max_size=30),
        st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 0x7F, 0x80, 0x82, 0x84, 0xFF]),
        st.binary(max_size=120),
    )


def _filled(sizes: st.SearchStrategy[int]) -> st.SearchStrategy[bytes]:
    """Long byte strings (hypothesis draws few long binaries): a size, a head and one fill byte."""
    return st.builds(
        lambda size, head, fill: (head + bytes([fill]) * size)[:size],
        sizes,
        st.binary(max_size=8),
        st.integers(0, 255),
    )


def _commands() -> st.SearchStrategy[ClientCommand]:
    """Commands with arbitrary fields, bodies over the limit included."""
    key = st.binary(min_size=32, max_size=32)
    largest = FRAME_SIZE - 2 - _SEND_OVERHEAD - 64
    commands: list[st.SearchStrategy[ClientCommand]] = [
        st.builds(New, key, key),
        st.just(Sub()),
        st.builds(Key, key),
        st.builds(
            Send,
            st.binary(min_size=16, max_size=16),
            st.one_of(st.binary(max_size=64), _filled(st.integers(MAX_BODY_SIZE - 2, largest))),
        ),
        st.builds(Ack, st.binary(min_size=24, max_size=24)),
        st.just(Del()),
        st.just(Ping()),
    ]
    return st.one_of(commands)


@st.composite
def _well_formed(
    draw: st.DrawFn, session_id: bytes, queue: tuple[bytes, bytes], keys: list[SigningKey | None]
) -> bytes:
    """Frames that parse: any command, mostly with the entity it needs, signed or not."""
    command = draw(_commands())
    entity = b"" if isinstance(command, New | Ping) else draw(st.sampled_from([*queue, RNG.random_bytes(24)]))
    if draw(st.integers(0, 7)) == 0:
        entity = queue[0] if entity == b"" else b""  # an entity where none belongs, or none where one must
    key = draw(st.sampled_from(keys))
    return encode_client_frame(corr(), entity, command, session_id=session_id, signing_key=key)


def _mutated(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    def flip(frame: bytes, edits: list[tuple[int, int]]) -> bytes:
        data = bytearray(frame)
        for position, value in edits:
            data[position] = value
        return bytes(data)

    position = st.one_of(st.integers(0, 200), st.integers(0, FRAME_SIZE - 1))
    return st.builds(
        flip,
        st.sampled_from(valid),
        st.lists(st.tuples(position, st.integers(0, 255)), min_size=1, max_size=6),
    )


def _truncated(valid: list[bytes]) -> st.SearchStrategy[bytes]:
    return st.builds(
        lambda frame, length: frame[:length], st.sampled_from(valid), st.integers(0, FRAME_SIZE - 1)
    )


def test_garbage_frames_never_crash_the_relay(relays: Relays) -> None:
    """Random, mutated, truncated and structured frames, text frames included: each gets
    exactly one answer of exactly FRAME_SIZE bytes, the connection lives on, and afterwards
    the relay serves an honest client as before. Only a message over FRAME_SIZE ends a
    connection (WebSocket 1009, message too big), and only that connection."""
    relay = relays.start()
    answers: list[bytes] = []
    with sync_connect(relay.url, max_size=FRAME_SIZE, compression=None, open_timeout=5) as ws:
        hello = decode_server_frame(_recv(ws))
        assert isinstance(hello.response, Hello)
        session_id = hello.response.session_id
        owner = SigningKey.generate(RNG)
        dh = X25519PrivateKey.generate(RNG)
        new = encode_client_frame(
            corr(),
            b"",
            New(owner.verify_key.raw, dh.public_key.raw),
            session_id=session_id,
            signing_key=owner,
        )
        ws.send(new)
        answer = decode_server_frame(_recv(ws)).response
        assert isinstance(answer, Ids)
        ids = open_ids(derive_queue_key(dh, answer.server_dh), answer.sealed)
        queue = (ids.recipient_id, ids.sender_id)
        valid = [
            new,
            *(
                encode_client_frame(corr(), entity, command, session_id=session_id, signing_key=key)
                for entity, command, key in (
                    (queue[0], Sub(), owner),
                    (queue[1], Send(send_id(), b"body"), None),
                    (queue[0], Ack(bytes(24)), owner),
                    (queue[0], Key(owner.verify_key.raw), owner),
                    (queue[0], Del(), owner),
                    (b"", Ping(), None),
                )
            ),
        ]
        well_formed = _well_formed(session_id, queue, [None, owner, SigningKey.generate(RNG)])
        garbage = st.one_of(
            st.binary(max_size=FRAME_SIZE),
            _filled(st.sampled_from([FRAME_SIZE - 1, FRAME_SIZE])),
            st.binary(max_size=FRAME_SIZE - 2).map(encode_frame),
            _structured_content().map(encode_frame),
            well_formed,
            well_formed,
            _mutated(valid),
            _truncated(valid),
            st.text(max_size=300),
        )

        @settings(
            max_examples=600,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(garbage)
        def one_frame(frame: bytes | str) -> None:
            ws.send(frame)
            while True:
                data = _recv(ws)
                tx = decode_server_frame(data)
                if tx.corr_id != ZERO_CORR or not isinstance(tx.response, Msg | End):
                    break  # not a push (a SUB of the owner may succeed, and deliver)
            answers.append(data)
            assert tx.response != Err(ErrorCode.RATE)
            if isinstance(frame, bytes) and _parses(frame):
                assert tx.corr_id == decode_client_frame(frame).corr_id
            else:
                assert (tx.corr_id, tx.entity, tx.response) == (ZERO_CORR, b"", Err(ErrorCode.CMD))

        one_frame()
        # Still the same connection, still answering.
        ping = encode_client_frame(corr(), b"", Ping(), session_id=session_id)
        ws.send(ping)
        assert _answer(ws, corr_id_of(ping)).response == Pong()
    assert len(answers) >= 100
    kinds = {type(decode_server_frame(answer).response).__name__ for answer in answers}
    assert {"Err", "Ok", "Pong", "Ids"} <= kinds, kinds
    codes = {decode_server_frame(a).response for a in answers} & {Err(code) for code in ErrorCode}
    assert {Err(ErrorCode.CMD), Err(ErrorCode.AUTH), Err(ErrorCode.LARGE)} <= codes, codes
    assert {len(answer) for answer in answers} == {FRAME_SIZE}

    # One byte over the frame size: the WebSocket layer closes that connection (1009).
    with sync_connect(relay.url, max_size=FRAME_SIZE, compression=None, open_timeout=5) as ws:
        _recv(ws)  # HELLO
        ws.send(bytes(FRAME_SIZE + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009

    assert relay.running
    asyncio.run(_an_honest_round_trip(relay.url))


def _recv(ws: object) -> bytes:
    data = ws.recv(timeout=5, decode=False)  # type: ignore[attr-defined]
    assert isinstance(data, bytes)
    assert len(data) == FRAME_SIZE
    return data


def _answer(ws: object, corr_id: bytes) -> ServerTransmission:
    while True:
        tx = decode_server_frame(_recv(ws))
        if tx.corr_id == corr_id:
            return tx


def _parses(frame: bytes) -> bool:
    try:
        decode_client_frame(frame)
    except Exception:
        return False
    return True


async def _an_honest_round_trip(url: str) -> None:
    async with client(url) as recipient, client(url) as sender:
        creds = await recipient.create_queue()
        await sender.send(creds.sender_id, b"still here")
        await recipient.subscribe(creds)
        message = await received(recipient)
        assert message.body == b"still here"
        await recipient.ack(creds, message.msg_id)


# -- what the wire shows ---------------------------------------------------------------------


@pytest.mark.asyncio
async def test_every_frame_on_the_wire_is_one_size(relays: Relays) -> None:
    """Every WebSocket data frame, both ways, on every TCP connection of a session with
    NEW, KEY, SUB, SEND, MSG, ACK, ERR, END, DEL and PING, is one binary frame of
    FRAME_SIZE bytes. What else crosses the wire: the HTTP upgrade at the start of a
    connection and the WebSocket closing handshake at its end (no pings, no text)."""
    relay = relays.start("--quota", "3")
    proxy = TcpProxy(lambda: relay.port or 0)
    await proxy.start()
    recorder = Recorder()
    sender_key = SigningKey.generate(RNG)
    async with (
        recording_client(proxy.url, recorder, **FAST) as recipient,
        recording_client(proxy.url, recorder, **FAST) as sender,
        recording_client(proxy.url, recorder, **FAST) as clone,
    ):
        creds = await recipient.create_queue()
        await recipient.lock(creds, sender_key.verify_key.raw)
        for body in (b"", b"x" * 100, b"y" * MAX_BODY_SIZE):
            await sender.send(creds.sender_id, body, sender_key=sender_key)
        with pytest.raises(RelayRejectedError):
            await sender.send(creds.sender_id, b"quota", sender_key=sender_key)  # ERR QUOTA
        with pytest.raises(RelayRejectedError):
            await sender.send(creds.sender_id, b"unsigned")  # ERR AUTH
        await recipient.subscribe(creds)
        first = await received(recipient)
        await recipient.ack(creds, first.msg_id)
        await received(recipient)
        await clone.subscribe(creds)  # END to the recipient
        assert isinstance(await recipient.next_delivery(5), SubscriptionEnded)
        await drain(clone, creds, 2)
        await clone.delete_queue(creds)
        raw = await Peer.open(proxy.port)
        assert (await raw.request(b"", Ping())).response == Pong()
        await raw.send_raw(b"\xff" * FRAME_SIZE)  # malformed: its length field is too large
        assert decode_server_frame(await raw.recv_raw()).response == Err(ErrorCode.CMD)
        await raw.close()
    await relay.astop()
    await proxy.close()

    seen_commands = {type(decode_client_frame(frame).command).__name__ for frame in recorder.outgoing()}
    seen_responses = {type(decode_server_frame(frame).response).__name__ for frame in recorder.incoming()}
    assert {"New", "Key", "Sub", "Send", "Ack", "Del"} <= seen_commands
    assert {"Hello", "Ids", "Ok", "Err", "Msg", "End"} <= seen_responses
    assert {len(frame) for _, frame in recorder.frames} == {FRAME_SIZE}
    errors = {decode_server_frame(f).response for f in recorder.incoming()} - {Ok(), End()}
    assert {Err(ErrorCode.QUOTA), Err(ErrorCode.AUTH)} <= errors

    assert len(proxy.captures) == 4
    data_frames = 0
    for capture in proxy.captures:
        for stream in (bytes(capture.up), bytes(capture.down)):
            frames = ws_frames(stream)
            *data, last = frames
            assert last.opcode == 0x8  # close, and only at the end
            for frame in data:
                assert (frame.fin, frame.opcode, frame.length) == (True, 0x2, FRAME_SIZE)
            data_frames += len(data)
    assert data_frames == len(recorder.frames) + len(raw.sent) + len(raw.received)


@pytest.mark.asyncio
async def test_no_ip_or_queue_id_in_logs(relays: Relays) -> None:
    """After a run with several clients, queues, messages, errors, an END and a DEL, the
    relay's log text (stderr, every line) holds no IP address, no port number, and no
    queue id, message id, session id, key or send id in hex, base64, base32 or repr."""
    relay = relays.start("--quota", "4")
    recorder = Recorder()
    secrets: list[bytes] = []
    async with (
        recording_client(relay.url, recorder, **FAST) as alice,
        recording_client(relay.url, recorder, **FAST) as bob,
        recording_client(relay.url, recorder, **FAST) as carol,
    ):
        people = {"alice": alice, "bob": bob, "carol": carol}
        queues = {name: await c.create_queue() for name, c in people.items()}
        for creds in queues.values():
            secrets += [
                creds.recipient_id,
                creds.sender_id,
                creds.queue_key,
                creds.recipient_key.verify_key.raw,
            ]
        for name, c in people.items():
            for other, creds in queues.items():
                if other != name:
                    await c.send(creds.sender_id, f"{name} to {other}".encode())
            await c.subscribe(queues[name])
        for name, c in people.items():
            for message in await drain(c, queues[name], 2):
                secrets.append(message.msg_id)
        for _ in range(4):
            await alice.send(queues["bob"].sender_id, b"fill")
        with pytest.raises(RelayRejectedError):
            await alice.send(queues["bob"].sender_id, b"over quota")
        await received(bob)
        async with recording_client(relay.url, recorder, **FAST) as bobs_clone:
            await bobs_clone.subscribe(queues["bob"])
            secrets.append((await received(bobs_clone)).msg_id)
            await bobs_clone.delete_queue(queues["bob"])
        raw = await Peer.open(relay.port)
        secrets.append(raw.session_id)
        queue = await new_queue(raw)
        secrets += [queue.recipient_id, queue.sender_id, queue.queue_key]
        raw_send_id = send_id()
        secrets.append(raw_send_id)
        assert (await raw.request(queue.sender_id, Send(raw_send_id, b"x"))).response == Ok()
        await raw.send_raw(b"garbage " + queue.recipient_id)
        await raw.recv_raw()
        assert (await raw.request(queue.recipient_id, Ack(bytes(24)), queue.recipient_key)).response == Err(
            ErrorCode.NO_MSG
        )
        await raw.close()
    await relay.astop()

    log = relay.log_text()
    records = [json.loads(line) for line in log.splitlines()]
    assert [r["event"] for r in records][:1] == ["relay_started"]
    assert records[-1]["event"] == "relay_stopped"
    text = without_timestamps(log)
    ports = {relay.port, raw.local_port, *recorder.local_ports}
    assert len(ports) >= 6
    forbidden = {"127.0.0.1", "localhost", "::1", *map(str, ports)}
    for secret in secrets:
        forbidden |= spellings(secret)
    found = sorted(word for word in forbidden if word in text)
    assert found == [], found
    # Every field is a number, a flag or a short name chosen in code.
    for record in records:
        for name, value in record.items():
            if isinstance(value, str):
                assert re.fullmatch(r"[A-Za-z_.]{1,40}", value), (name, value)
                if name == "logger":
                    assert value.startswith(LOGGER_NAME) or value.startswith("burnerkit.")
            else:
                assert value is None or isinstance(value, int | float | bool), (name, value)


@pytest.mark.asyncio
async def test_upload_and_download_bytes_cannot_be_matched(relays: Relays) -> None:
    """The body a sender uploads and the MSG the recipient downloads share no 8-byte
    substring (apart from zero padding), and the same message downloaded twice shares none
    with itself: every delivery is sealed afresh under the queue layer."""
    relay = relays.start()
    recipient, sender = await Peer.open(relay.port), await Peer.open(relay.port)
    queue = await new_queue(recipient)
    body = RNG.random_bytes(MAX_BODY_SIZE)
    upload = sender.frame(queue.sender_id, Send(send_id(), body))
    assert (await sender.request_raw(upload))[0].response == Ok()
    downloads = []
    for _ in range(2):  # the second SUB delivers the unacknowledged message again
        assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
        assert recipient.pushed == []
        download = await recipient.recv_raw()
        msg_id, delivery = opened(queue, decode_server_frame(download))
        assert delivery.body == body
        downloads.append((msg_id, download))
    assert downloads[0][0] == downloads[1][0]  # one message, one msg id
    upload_content = decode_frame(upload)
    first, second = (decode_frame(d) for _, d in downloads)
    assert body not in first
    assert not grams(upload_content) & grams(first)
    assert not grams(upload_content) & grams(second)
    assert not grams(first[_SEALED_AT:]) & grams(second[_SEALED_AT:])
    assert len(first) == len(second)
    await recipient.close()
    await sender.close()
    await relay.astop()


#: Where the sealed delivery starts in a MSG's content: version, corr_id, entity, tag, msg_id, u16.
_SEALED_AT = 1 + 24 + 1 + 24 + 1 + 24 + 2


def grams(data: bytes, size: int = 8) -> set[bytes]:
    """Every ``size``-byte substring of ``data`` that is not all zeros."""
    zero = bytes(size)
    return {data[i : i + size] for i in range(len(data) - size + 1)} - {zero}
