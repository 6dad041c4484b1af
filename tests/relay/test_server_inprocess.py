"""The relay server in-process, driven over real WebSockets with the sans-IO encoders.

Each test starts a :class:`RelayServer` on a free loopback port with a ``MemoryStore``
and talks to it with raw ``websockets`` connections: no client library, so what is
asserted is the wire itself. Every frame received is checked to be exactly
``FRAME_SIZE`` bytes (``Peer.recv``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import StoreError
from burnerkit.relay.client import QueueCredentials
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    MAX_BODY_SIZE,
    SEND_ID_SIZE,
    Ack,
    ClientCommand,
    Del,
    Delivery,
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
    decode_server_frame,
    derive_queue_key,
    encode_client_frame,
    open_delivery,
    open_ids,
)
from burnerkit.relay.server.config import RelayConfig
from burnerkit.relay.server.logs import LOGGER_NAME, JsonFormatter
from burnerkit.relay.server.server import RelayServer
from burnerkit.relay.server.store.base import MessageStore, PutResult, StoredMessage
from burnerkit.relay.server.store.memory import MemoryStore
from tests.test_architecture import needs_linter, plant, run_lint_imports

RNG = SystemRandom()
ZERO_CORR = bytes(24)
ROOT = Path(__file__).resolve().parents[2]


def corr() -> bytes:
    return RNG.random_bytes(24)


def send_id() -> bytes:
    return RNG.random_bytes(SEND_ID_SIZE)


class Peer:
    """One raw connection: keeps its session value, checks every frame's size."""

    def __init__(self, ws: ClientConnection, session_id: bytes) -> None:
        self.ws = ws
        self.session_id = session_id
        self.pushed: list[ServerTransmission] = []

    @classmethod
    async def open(cls, port: int) -> Peer:
        ws = await connect(
            f"ws://127.0.0.1:{port}", max_size=FRAME_SIZE, compression=None, ping_interval=None
        )
        hello = await cls._recv_from(ws)
        assert hello.corr_id == ZERO_CORR
        assert hello.entity == b""
        assert isinstance(hello.response, Hello)
        return cls(ws, hello.response.session_id)

    @staticmethod
    async def _recv_from(ws: ClientConnection) -> ServerTransmission:
        data = await asyncio.wait_for(ws.recv(), 5)
        assert isinstance(data, bytes)
        assert len(data) == FRAME_SIZE
        return decode_server_frame(data)

    async def recv(self) -> ServerTransmission:
        return await self._recv_from(self.ws)

    def frame(
        self,
        entity: bytes,
        command: ClientCommand,
        key: SigningKey | None = None,
        corr_id: bytes | None = None,
    ) -> bytes:
        return encode_client_frame(
            corr() if corr_id is None else corr_id,
            entity,
            command,
            session_id=self.session_id,
            signing_key=key,
        )

    async def request_raw(self, frame: bytes) -> tuple[ServerTransmission, bytes]:
        """Send a frame, return the answer with its corr_id (and its raw bytes); pushes are kept."""
        await self.ws.send(frame)
        corr_id = frame[2 + 1 + frame[2] + 1 : 2 + 1 + frame[2] + 1 + 24]
        while True:
            data = await asyncio.wait_for(self.ws.recv(), 5)
            assert isinstance(data, bytes)
            assert len(data) == FRAME_SIZE
            tx = decode_server_frame(data)
            if tx.corr_id == corr_id:
                return tx, data
            assert tx.corr_id == ZERO_CORR
            self.pushed.append(tx)

    async def request(
        self, entity: bytes, command: ClientCommand, key: SigningKey | None = None
    ) -> ServerTransmission:
        tx, _ = await self.request_raw(self.frame(entity, command, key))
        return tx

    async def push(self) -> ServerTransmission:
        if self.pushed:
            return self.pushed.pop(0)
        tx = await self.recv()
        assert tx.corr_id == ZERO_CORR
        return tx

    async def nothing_pushed(self, wait: float = 0.1) -> None:
        assert self.pushed == []
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.ws.recv(), wait)


Queue = QueueCredentials


async def new_queue(peer: Peer) -> Queue:
    key = SigningKey.generate(RNG)
    dh = X25519PrivateKey.generate(RNG)
    tx = await peer.request(b"", New(key.verify_key.raw, dh.public_key.raw), key)
    assert tx.entity == b""
    assert isinstance(tx.response, Ids)
    queue_key = derive_queue_key(dh, tx.response.server_dh)
    ids = open_ids(queue_key, tx.response.sealed)
    return QueueCredentials(ids.recipient_id, ids.sender_id, key, queue_key)


def opened(queue: Queue, tx: ServerTransmission, *, answering: bool = False) -> tuple[bytes, Delivery]:
    """A pushed MSG, or (``answering``) the MSG that answers an ACK in place of its OK."""
    assert (tx.corr_id != ZERO_CORR) == answering
    assert tx.entity == queue.recipient_id
    assert isinstance(tx.response, Msg)
    return tx.response.msg_id, open_delivery(queue.queue_key, tx.response.msg_id, tx.response.sealed)


class Relay:
    def __init__(self, server: RelayServer, store: MessageStore) -> None:
        self.server = server
        self.store = store
        self.peers: list[Peer] = []

    @property
    def port(self) -> int:
        return self.server.bound_port

    async def peer(self) -> Peer:
        peer = await Peer.open(self.port)
        self.peers.append(peer)
        return peer


StartRelay = Callable[..., Any]


@pytest_asyncio.fixture
async def start_relay() -> AsyncIterator[StartRelay]:
    relays: list[Relay] = []

    async def start(
        store: MessageStore | None = None, clock: Callable[[], float] | None = None, **overrides: Any
    ) -> Relay:
        store = MemoryStore() if store is None else store
        config = RelayConfig(port=0, store=":memory:", **overrides)
        server = RelayServer(store, config) if clock is None else RelayServer(store, config, clock=clock)
        await server.start()
        relay = Relay(server, store)
        relays.append(relay)
        return relay

    yield start
    for relay in relays:
        for peer in relay.peers:
            await peer.ws.close()
        await relay.server.stop()


@pytest_asyncio.fixture
async def relay(start_relay: StartRelay) -> Relay:
    result: Relay = await start_relay()
    return result


# -- queues and delivery --------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_new_answers_ids_that_open_with_the_queue_key(relay: Relay) -> None:
    peer = await relay.peer()
    queue = await new_queue(peer)
    assert len(queue.recipient_id) == len(queue.sender_id) == 24
    assert queue.recipient_id != queue.sender_id
    record = await relay.store.queue_by_recipient(queue.recipient_id)
    assert record is not None
    assert record.sender_id == queue.sender_id
    assert record.queue_key == queue.queue_key
    assert record.recipient_key == queue.recipient_key.verify_key.raw


@pytest.mark.asyncio
async def test_new_needs_proof_of_possession(relay: Relay) -> None:
    peer = await relay.peer()
    key, other = SigningKey.generate(RNG), SigningKey.generate(RNG)
    dh = X25519PrivateKey.generate(RNG).public_key.raw
    assert (await peer.request(b"", New(key.verify_key.raw, dh), other)).response == Err(ErrorCode.AUTH)
    assert (await peer.request(b"", New(key.verify_key.raw, dh))).response == Err(ErrorCode.AUTH)


@pytest.mark.asyncio
async def test_new_with_an_invalid_dh_key_is_cmd(relay: Relay) -> None:
    peer = await relay.peer()
    key = SigningKey.generate(RNG)
    tx = await peer.request(b"", New(key.verify_key.raw, bytes(32)), key)
    assert tx.response == Err(ErrorCode.CMD)


@pytest.mark.asyncio
async def test_send_sub_msg_ack_next(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    for body in (b"one", b"two"):
        tx = await sender.request(queue.sender_id, Send(send_id(), body))
        assert tx.response == Ok()
        assert tx.entity == queue.sender_id
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    first_id, first = opened(queue, await recipient.push())
    assert first.body == b"one"
    assert first.quota_marker is False
    await recipient.nothing_pushed()  # one outstanding message per subscription
    # The next message answers the ACK, in place of its OK (§14.8).
    answer = await recipient.request(queue.recipient_id, Ack(first_id), queue.recipient_key)
    second_id, second = opened(queue, answer, answering=True)
    assert second.body == b"two"
    assert second_id != first_id
    # The last one's ACK has no next message to answer it: OK.
    assert (await recipient.request(queue.recipient_id, Ack(second_id), queue.recipient_key)).response == Ok()
    await recipient.nothing_pushed()
    assert await relay.store.first_message(queue.recipient_id) is None


@pytest.mark.asyncio
async def test_a_message_sent_to_a_subscribed_queue_is_pushed(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    await recipient.nothing_pushed()
    assert (await sender.request(queue.sender_id, Send(send_id(), b"hi"))).response == Ok()
    _, delivery = opened(queue, await recipient.push())
    assert delivery.body == b"hi"


@pytest.mark.asyncio
async def test_uploaded_and_downloaded_frames_share_no_body_bytes(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    body = RNG.random_bytes(MAX_BODY_SIZE)
    upload = sender.frame(queue.sender_id, Send(send_id(), body))
    assert (await sender.request_raw(upload))[0].response == Ok()
    await recipient.ws.send(recipient.frame(queue.recipient_id, Sub(), queue.recipient_key))
    frames = [await asyncio.wait_for(recipient.ws.recv(), 5) for _ in range(2)]
    download = next(f for f in frames if isinstance(f, bytes) and decode_server_frame(f).corr_id == ZERO_CORR)
    assert isinstance(download, bytes)
    assert len(download) == len(upload) == FRAME_SIZE
    assert body[:32] in upload
    assert body[:32] not in download


@pytest.mark.asyncio
async def test_a_stale_ack_gets_no_msg_and_deletes_nothing(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    for body in (b"one", b"two", b"three"):
        assert (await sender.request(queue.sender_id, Send(send_id(), body))).response == Ok()
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    first_id, _ = opened(queue, await recipient.push())
    answer = await recipient.request(queue.recipient_id, Ack(first_id), queue.recipient_key)
    second_id, second = opened(queue, answer, answering=True)
    # The first id again, and an id never delivered: neither deletes anything.
    for stale in (first_id, RNG.random_bytes(24)):
        tx = await recipient.request(queue.recipient_id, Ack(stale), queue.recipient_key)
        assert tx.response == Err(ErrorCode.NO_MSG)
        assert tx.entity == queue.recipient_id
    waiting = await relay.store.first_message(queue.recipient_id)
    assert waiting is not None
    assert waiting.msg_id == second_id
    answer = await recipient.request(queue.recipient_id, Ack(second_id), queue.recipient_key)
    _, third = opened(queue, answer, answering=True)
    assert (second.body, third.body) == (b"two", b"three")


@pytest.mark.asyncio
async def test_ack_without_a_subscription_is_no_msg(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"))).response == Ok()
    stored = await relay.store.first_message(queue.recipient_id)
    assert stored is not None
    tx = await recipient.request(queue.recipient_id, Ack(stored.msg_id), queue.recipient_key)
    assert tx.response == Err(ErrorCode.NO_MSG)
    assert await relay.store.first_message(queue.recipient_id) == stored


@pytest.mark.asyncio
async def test_resubscribing_redelivers_the_unacknowledged_message(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"))).response == Ok()
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    first_id, _ = opened(queue, await recipient.push())
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    again_id, _ = opened(queue, await recipient.push())
    assert again_id == first_id
    assert (await recipient.request(queue.recipient_id, Ack(first_id), queue.recipient_key)).response == Ok()


# -- authentication -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_signed_command_replayed_on_another_connection_is_refused(relay: Relay) -> None:
    first, second = await relay.peer(), await relay.peer()
    queue = await new_queue(first)
    recorded = first.frame(queue.recipient_id, Sub(), queue.recipient_key)
    tx, _ = await second.request_raw(recorded)
    assert tx.response == Err(ErrorCode.AUTH)
    tx, _ = await first.request_raw(recorded)
    assert tx.response == Ok()


@pytest.mark.asyncio
async def test_missing_queue_and_wrong_key_get_identical_frames(relay: Relay) -> None:
    peer = await relay.peer()
    queue = await new_queue(peer)
    wrong = SigningKey.generate(RNG)
    corr_id = corr()
    wrong_key, wrong_key_frame = await peer.request_raw(peer.frame(queue.recipient_id, Sub(), wrong, corr_id))
    assert (await peer.request(queue.recipient_id, Del(), queue.recipient_key)).response == Ok()
    _, missing_frame = await peer.request_raw(
        peer.frame(queue.recipient_id, Sub(), queue.recipient_key, corr_id)
    )
    assert wrong_key.response == Err(ErrorCode.AUTH)
    assert missing_frame == wrong_key_frame
    _, unsigned_frame = await peer.request_raw(peer.frame(queue.recipient_id, Sub(), None, corr_id))
    assert unsigned_frame == wrong_key_frame


@pytest.mark.asyncio
async def test_every_recipient_command_needs_the_recipient_key(relay: Relay) -> None:
    peer = await relay.peer()
    queue = await new_queue(peer)
    wrong = SigningKey.generate(RNG)
    for command in (Sub(), Key(wrong.verify_key.raw), Ack(bytes(24)), Del()):
        assert (await peer.request(queue.recipient_id, command, wrong)).response == Err(ErrorCode.AUTH)
    assert await relay.store.queue_by_recipient(queue.recipient_id) is not None


@pytest.mark.asyncio
async def test_the_sender_id_is_not_a_recipient_id(relay: Relay) -> None:
    peer = await relay.peer()
    queue = await new_queue(peer)
    assert (await peer.request(queue.sender_id, Sub(), queue.recipient_key)).response == Err(ErrorCode.AUTH)
    assert (await peer.request(queue.recipient_id, Send(send_id(), b"x"))).response == Err(ErrorCode.AUTH)


@pytest.mark.asyncio
async def test_a_locked_queue_takes_only_signed_sends(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    sender_key, other = SigningKey.generate(RNG), SigningKey.generate(RNG)
    assert (
        await recipient.request(queue.recipient_id, Key(sender_key.verify_key.raw), queue.recipient_key)
    ).response == Ok()
    # Locking again to the same key is a retry; to another key it is refused.
    assert (
        await recipient.request(queue.recipient_id, Key(sender_key.verify_key.raw), queue.recipient_key)
    ).response == Ok()
    tx = await recipient.request(queue.recipient_id, Key(other.verify_key.raw), queue.recipient_key)
    assert tx.response == Err(ErrorCode.CMD)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"))).response == Err(ErrorCode.AUTH)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"), other)).response == Err(
        ErrorCode.AUTH
    )
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"), sender_key)).response == Ok()


@pytest.mark.asyncio
async def test_key_refuses_a_small_order_key(relay: Relay) -> None:
    peer = await relay.peer()
    queue = await new_queue(peer)
    identity = (1).to_bytes(32, "little")  # the neutral point: it would accept forged signatures
    assert (await peer.request(queue.recipient_id, Key(identity), queue.recipient_key)).response == Err(
        ErrorCode.CMD
    )


# -- subscriptions --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_second_subscriber_displaces_the_first_with_end(relay: Relay) -> None:
    first, second, sender = await relay.peer(), await relay.peer(), await relay.peer()
    queue = await new_queue(first)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"))).response == Ok()
    assert (await first.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    msg_id, _ = opened(queue, await first.push())
    assert (await second.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    end = await first.push()
    assert (end.corr_id, end.entity, end.response) == (ZERO_CORR, queue.recipient_id, End())
    # The unacknowledged message goes to the new holder; the old one can no longer ACK it.
    again_id, _ = opened(queue, await second.push())
    assert again_id == msg_id
    assert (await first.request(queue.recipient_id, Ack(msg_id), queue.recipient_key)).response == Err(
        ErrorCode.NO_MSG
    )
    assert (await second.request(queue.recipient_id, Ack(msg_id), queue.recipient_key)).response == Ok()
    assert relay.server.subscriptions_active == 1


@pytest.mark.asyncio
async def test_one_connection_subscribes_to_many_queues(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queues = [await new_queue(recipient) for _ in range(3)]
    for queue in queues:
        assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
        assert (await sender.request(queue.sender_id, Send(send_id(), queue.sender_id))).response == Ok()
    for queue in queues:
        _, delivery = opened(queue, await recipient.push())
        assert delivery.body == queue.sender_id
    await recipient.ws.close()
    for _ in range(50):
        if relay.server.subscriptions_active == 0:
            break
        await asyncio.sleep(0.01)
    assert relay.server.subscriptions_active == 0


@pytest.mark.asyncio
async def test_del_ends_the_subscription_on_another_connection(relay: Relay) -> None:
    subscriber, owner = await relay.peer(), await relay.peer()
    queue = await new_queue(owner)
    assert (await subscriber.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    assert (await owner.request(queue.recipient_id, Del(), queue.recipient_key)).response == Ok()
    end = await subscriber.push()
    assert (end.entity, end.response) == (queue.recipient_id, End())
    assert await relay.store.queue_by_recipient(queue.recipient_id) is None
    assert (await owner.request(queue.sender_id, Send(send_id(), b"x"))).response == Err(ErrorCode.AUTH)


# -- sends ----------------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_an_oversize_body_is_large(relay: Relay) -> None:
    peer = await relay.peer()
    queue = await new_queue(peer)
    tx = await peer.request(queue.sender_id, Send(send_id(), bytes(MAX_BODY_SIZE + 1)))
    assert tx.response == Err(ErrorCode.LARGE)
    assert await relay.store.first_message(queue.recipient_id) is None
    assert (await peer.request(queue.sender_id, Send(send_id(), bytes(MAX_BODY_SIZE)))).response == Ok()


@pytest.mark.asyncio
async def test_a_retried_send_is_stored_once(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    retry = send_id()
    for _ in range(2):
        assert (await sender.request(queue.sender_id, Send(retry, b"once"))).response == Ok()
    assert relay.server.metrics.messages_stored_total == 1


@pytest.mark.asyncio
async def test_quota_marks_the_last_message_and_refuses_the_next(start_relay: StartRelay) -> None:
    relay = await start_relay(quota=2)
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    for _ in range(2):
        assert (await sender.request(queue.sender_id, Send(send_id(), b"x"))).response == Ok()
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"))).response == Err(ErrorCode.QUOTA)
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    first_id, first = opened(queue, await recipient.push())
    answer = await recipient.request(queue.recipient_id, Ack(first_id), queue.recipient_key)
    _, second = opened(queue, answer, answering=True)
    assert (first.quota_marker, second.quota_marker) == (False, True)


@pytest.mark.asyncio
async def test_pipelined_sends_are_stored_in_order(relay: Relay) -> None:
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    frames = [sender.frame(queue.sender_id, Send(send_id(), str(i).encode())) for i in range(40)]
    for frame in frames:
        await sender.ws.send(frame)
    answers = [await sender.recv() for _ in frames]
    assert all(a.response == Ok() for a in answers)
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    bodies: list[bytes] = []
    while len(bodies) < len(frames):
        tx = await recipient.recv()
        if tx.response == Ok():  # the last ACK's answer: no next message to answer with
            assert tx.corr_id != ZERO_CORR
            continue
        msg_id, delivery = opened(queue, tx, answering=tx.corr_id != ZERO_CORR)
        bodies.append(delivery.body)
        await recipient.ws.send(recipient.frame(queue.recipient_id, Ack(msg_id), queue.recipient_key))
    assert bodies == [str(i).encode() for i in range(40)]


# -- bad input and limits -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_garbage_gets_cmd_and_the_connection_lives(relay: Relay) -> None:
    peer = await relay.peer()
    for garbage in (b"garbage", RNG.random_bytes(FRAME_SIZE), bytes(FRAME_SIZE), "text frame"):
        await peer.ws.send(garbage)
        tx = await peer.recv()
        assert (tx.corr_id, tx.entity, tx.response) == (ZERO_CORR, b"", Err(ErrorCode.CMD))
    assert (await peer.request(b"", Ping())).response == Pong()
    queue = await new_queue(peer)
    assert (await peer.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()


@pytest.mark.asyncio
async def test_fragments_and_websocket_pings_end_fast_parsing_without_losing_a_command(relay: Relay) -> None:
    # The link parses whole binary frames itself; anything else (a ping, a fragmented
    # message) hands the stream to websockets, which must then read every command right.
    peer = await relay.peer()
    assert (await peer.request(b"", Ping())).response == Pong()
    await asyncio.wait_for(await peer.ws.ping(), 5)
    frame = peer.frame(b"", Ping())
    await peer.ws.send([frame[:100], frame[100:5000], frame[5000:]])
    tx = await peer.recv()
    assert tx.response == Pong()
    queue = await new_queue(peer)
    assert (await peer.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()


@pytest.mark.asyncio
async def test_an_entity_where_none_belongs_is_cmd(relay: Relay) -> None:
    peer = await relay.peer()
    assert (await peer.request(bytes(24), Ping())).response == Err(ErrorCode.CMD)
    key = SigningKey.generate(RNG)
    assert (await peer.request(b"", Sub(), key)).response == Err(ErrorCode.CMD)
    assert (await peer.request(b"", Send(send_id(), b"x"))).response == Err(ErrorCode.CMD)


@pytest.mark.asyncio
async def test_the_rate_limit_answers_rate(start_relay: StartRelay) -> None:
    relay = await start_relay(rate_limit=1.0, rate_burst=3)
    peer = await relay.peer()
    answers = [(await peer.request(b"", Ping())).response for _ in range(5)]
    assert answers == [Pong(), Pong(), Pong(), Err(ErrorCode.RATE), Err(ErrorCode.RATE)]
    await asyncio.sleep(1.1)
    assert (await peer.request(b"", Ping())).response == Pong()


class FailingPuts(MemoryStore):
    async def put_message(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> PutResult:
        raise StoreError("disk full")


@pytest.mark.asyncio
async def test_a_store_failure_is_internal(start_relay: StartRelay) -> None:
    relay = await start_relay(store=FailingPuts())
    peer = await relay.peer()
    queue = await new_queue(peer)
    assert (await peer.request(queue.sender_id, Send(send_id(), b"x"))).response == Err(ErrorCode.INTERNAL)
    assert (await peer.request(b"", Ping())).response == Pong()


class FailingDeletes(MemoryStore):
    failing = True

    def delete_message_now(self, recipient_id: bytes, msg_id: bytes) -> bool:
        if self.failing:
            raise StoreError("disk full")  # delete_message fails too: it calls this
        return super().delete_message_now(recipient_id, msg_id)


@pytest.mark.asyncio
async def test_a_failed_delete_keeps_the_message_for_the_next_subscriber(start_relay: StartRelay) -> None:
    relay = await start_relay(store=FailingDeletes())
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    for body in (b"one", b"two"):
        assert (await sender.request(queue.sender_id, Send(send_id(), body))).response == Ok()
    first_id, first = opened(queue, await recipient.push())
    # The next message, from memory, answers the ACK before its delete fails (at once, in
    # the store's synchronous path); the last one's ACK has only the failure to answer.
    answer = await recipient.request(queue.recipient_id, Ack(first_id), queue.recipient_key)
    second_id, second = opened(queue, answer, answering=True)
    assert (first.body, second.body) == (b"one", b"two")
    failed = await recipient.request(queue.recipient_id, Ack(second_id), queue.recipient_key)
    assert failed.response == Err(ErrorCode.INTERNAL)
    # Nothing was deleted: a new subscriber gets both again, in order, once deletes work.
    store = relay.store
    assert isinstance(store, FailingDeletes)
    store.failing = False
    other = await relay.peer()
    assert (await other.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    again_id, again = opened(queue, await other.push())
    assert (again_id, again.body) == (first_id, b"one")
    answer = await other.request(queue.recipient_id, Ack(again_id), queue.recipient_key)
    last_id, last = opened(queue, answer, answering=True)
    assert (last_id, last.body) == (second_id, b"two")
    assert (await other.request(queue.recipient_id, Ack(last_id), queue.recipient_key)).response == Ok()
    assert await store.first_message(queue.recipient_id) is None


@pytest.mark.asyncio
async def test_the_sweeper_expires_old_messages(start_relay: StartRelay) -> None:
    now = [1_700_000_000.0]
    relay = await start_relay(clock=lambda: now[0], ttl=60, sweep_interval=0.05)
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"old"))).response == Ok()
    stored = await relay.store.first_message(queue.recipient_id)
    assert stored is not None
    assert stored.received_at == 1_700_000_000
    now[0] += 61
    for _ in range(100):
        if relay.server.metrics.messages_expired_total:
            break
        await asyncio.sleep(0.02)
    assert relay.server.metrics.messages_expired_total == 1
    assert await relay.store.first_message(queue.recipient_id) is None


# -- operations -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_metrics_are_aggregate(start_relay: StartRelay) -> None:
    relay = await start_relay(metrics_port=0)
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    assert (await sender.request(queue.sender_id, Send(send_id(), b"x"))).response == Ok()
    assert (await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)).response == Ok()
    await recipient.push()
    await sender.ws.send(b"junk")
    await sender.recv()
    port = relay.server.metrics_port
    assert port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    response = (await asyncio.wait_for(reader.read(), 5)).decode()
    writer.close()
    head, _, body = response.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 200 OK")
    samples = dict(line.rsplit(" ", 1) for line in body.splitlines() if not line.startswith("#"))
    assert samples["connections_total"] == "2"
    assert samples["connections_active"] == "2"
    assert samples["subscriptions_active"] == "1"
    assert samples["queues_created_total"] == "1"
    assert samples["messages_stored_total"] == "1"
    assert samples["messages_delivered_total"] == "1"
    assert samples['commands_total{command="send"}'] == "1"
    assert samples['errors_total{code="cmd"}'] == "1"
    for secret in (queue.recipient_id, queue.sender_id):
        assert secret.hex() not in body
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 404")
    writer.close()


@pytest.mark.asyncio
async def test_logs_hold_no_ids_and_no_addresses(
    start_relay: StartRelay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    relay = await start_relay(store=FailingPuts(), sweep_interval=0.01)
    recipient, sender = await relay.peer(), await relay.peer()
    queue = await new_queue(recipient)
    await sender.request(queue.sender_id, Send(send_id(), b"x"))
    await recipient.request(queue.recipient_id, Sub(), queue.recipient_key)
    await asyncio.sleep(0.05)
    await relay.server.stop()
    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    events = {json.loads(line)["event"] for line in lines}
    assert {"relay_started", "store_error", "sweep", "relay_stopping", "relay_stopped"} <= events
    text = "\n".join(lines)
    local_port = recipient.ws.local_address[1]
    for secret in (queue.recipient_id.hex(), queue.sender_id.hex(), "127.0.0.1", str(local_port)):
        assert secret not in text
    # The server's websockets logger is detached and silent; the client's (this test's) is not ours.
    assert {r.name for r in caplog.records if not r.name.startswith("websockets.client")} == {LOGGER_NAME}


@pytest.mark.asyncio
async def test_stop_closes_connections_and_the_store(relay: Relay) -> None:
    peer = await relay.peer()
    queue = await new_queue(peer)
    await relay.server.stop()
    with pytest.raises(ConnectionClosed) as closed:
        await peer.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1001
    with pytest.raises(StoreError):
        await relay.store.queue_by_recipient(queue.recipient_id)
    await relay.server.wait_closed()


@pytest.mark.asyncio
async def test_stop_lets_an_inflight_send_answer(start_relay: StartRelay) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    class SlowPuts(MemoryStore):
        async def put_message(
            self,
            sender_id: bytes,
            send_id: bytes,
            message: StoredMessage,
            *,
            quota: int,
            on_accepted: Callable[[PutResult], None] | None = None,
        ) -> PutResult:
            entered.set()
            await release.wait()
            return await super().put_message(
                sender_id, send_id, message, quota=quota, on_accepted=on_accepted
            )

    relay = await start_relay(store=SlowPuts())
    peer = await relay.peer()
    queue = await new_queue(peer)
    frame = peer.frame(queue.sender_id, Send(send_id(), b"x"))
    await peer.ws.send(frame)
    await entered.wait()
    stopping = asyncio.create_task(relay.server.stop())
    await asyncio.sleep(0.05)
    assert not stopping.done()
    release.set()
    answer = await peer.recv()
    assert answer.response == Ok()
    await stopping
    with pytest.raises(ConnectionClosed):
        await peer.recv()


@pytest.mark.asyncio
async def test_max_connections_refuses_the_next_handshake(start_relay: StartRelay) -> None:
    relay = await start_relay(max_connections=1)
    await relay.peer()
    with pytest.raises(Exception, match="503"):
        await Peer.open(relay.port)


# -- the import contract and the command line -----------------------------------------------------


@needs_linter
def test_the_server_may_not_import_the_session(tmp_path: Path) -> None:
    result = run_lint_imports(
        tmp_path, plant(tmp_path, "relay/server/server.py", "import burnerkit.protocol.session")
    )
    assert result.returncode != 0, result.stdout
    assert "The relay server cannot decrypt BROKEN" in result.stdout


def burner(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "burnerkit", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )


def test_cli_serves_until_sigterm(tmp_path: Path) -> None:
    process = burner("relay", "serve", "--port", "0", "--store", ":memory:", cwd=tmp_path)
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("relay listening on ws://127.0.0.1:")
    port = int(line.rsplit(":", 1)[1])
    assert port > 0

    async def ping() -> ServerTransmission:
        peer = await Peer.open(port)
        try:
            return await peer.request(b"", Ping())
        finally:
            await peer.ws.close()

    assert asyncio.run(ping()).response == Pong()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    events = [json.loads(line)["event"] for line in err.splitlines()]
    assert events[0] == "relay_started"
    assert events[-1] == "relay_stopped"


def test_cli_reports_a_taken_port_in_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = burner("relay", "serve", "--port", str(port), "--store", ":memory:", cwd=tmp_path)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 1
    assert out == ""
    assert err == f"burner: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_cli_defaults_to_a_sqlite_file_in_the_current_directory(tmp_path: Path) -> None:
    process = burner("relay", "serve", "--port", "0", cwd=tmp_path)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("relay listening on ws://")
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=10)
    assert process.returncode == 0
    assert (tmp_path / "burner-relay.sqlite").exists()
