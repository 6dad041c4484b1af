"""The relay client over MemoryTransport, against a small scripted relay.

``FakeRelay`` is a reference implementation of the relay's side of the protocol, kept
small: it decodes every client frame with the real decoder, checks signatures over
its session value as the relay does, keeps queues in dicts, and answers with the real
encoders. Switches on it script the failures (drop the connection before or after a
command takes effect, answer RATE, say nothing, send garbage). Every frame it
receives is logged with the session it arrived on, so tests assert on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
import websockets.exceptions
from websockets.asyncio.server import ServerConnection, serve

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import (
    RelayError,
    RelayRejectedError,
    RelayTimeoutError,
    RelayUnavailableError,
)
from burnerkit.relay.client import (
    QueueCredentials,
    ReceivedMessage,
    RelayClient,
    SubscriptionEnded,
    UnreadableMessage,
)
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    MAX_BODY_SIZE,
    QUEUE_QUOTA,
    Ack,
    ClientTransmission,
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
    QueueIds,
    Send,
    ServerResponse,
    Sub,
    decode_client_frame,
    derive_ack_key,
    derive_queue_key,
    encode_frame,
    encode_server_frame,
    seal_delivery,
    seal_ids,
    verify_ack_mac,
    verify_signature,
)
from burnerkit.relay.transport import MemoryTransport, WebSocketTransport, map_exceptions

PUSHED = bytes(24)
NOW = 1_700_000_000


@dataclass
class FakeQueue:
    recipient_key: bytes
    queue_key: bytes
    sender_id: bytes
    sender_key: bytes | None = None
    messages: list[tuple[bytes, bytes, bool]] = field(default_factory=list)  # msg_id, body, quota
    send_ids: set[bytes] = field(default_factory=set)
    quota: int = QUEUE_QUOTA
    subscriber: FakeConnection | None = None
    outstanding: bytes | None = None


@dataclass(eq=False)
class FakeConnection:
    index: int
    session: bytes
    transport: MemoryTransport


@dataclass(frozen=True)
class Logged:
    conn: int
    session: bytes
    tx: ClientTransmission


class FakeRelay:
    def __init__(self) -> None:
        self.rng = DeterministicRandom(b"fake relay")
        self.queues: dict[bytes, FakeQueue] = {}
        self.by_sender: dict[bytes, bytes] = {}
        self.connections: list[FakeConnection] = []
        self.log: list[Logged] = []
        self.tasks: list[asyncio.Task[None]] = []
        # Scripted failures.
        self.refuse = False
        self.drop_before: dict[type, int] = {}  # close before the command takes effect
        self.drop_after: dict[type, int] = {}  # let it take effect, close instead of answering
        self.answers: dict[type, list[ServerResponse]] = {}  # answer the next commands of a kind so
        self.greeting = "hello"  # or "silent", "garbage", "ok"
        self.bad_ids = False
        self.silent = False
        self.garbage = False
        self.wrong_queue_layer = False

    # -- the transport factory the client is given ---------------------------------------

    async def connect(self) -> MemoryTransport:
        if self.refuse:
            raise RelayUnavailableError("relay unreachable (test)")
        client_side, server_side = MemoryTransport.pair()
        conn = FakeConnection(len(self.connections), self.rng.random_bytes(32), server_side)
        self.connections.append(conn)
        self.tasks.append(asyncio.create_task(self.serve(conn)))
        return client_side

    async def drop_all(self) -> None:
        for conn in self.connections:
            await conn.transport.close()

    async def stop(self) -> None:
        await self.drop_all()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    # -- what the test asserts on --------------------------------------------------------

    def seen(self, kind: type) -> list[Logged]:
        return [entry for entry in self.log if isinstance(entry.tx.command, kind)]

    def sessions(self) -> list[bytes]:
        return [conn.session for conn in self.connections]

    # -- the relay -----------------------------------------------------------------------

    async def serve(self, conn: FakeConnection) -> None:
        try:
            greeting = {
                "hello": encode_server_frame(PUSHED, b"", Hello(conn.session)),
                "garbage": encode_frame(b"\xff"),
                "ok": encode_server_frame(PUSHED, b"", Ok()),
            }.get(self.greeting)
            if greeting is None:
                await asyncio.Event().wait()
            else:
                await conn.transport.send(greeting)
            while True:
                tx = decode_client_frame(await conn.transport.recv())
                self.log.append(Logged(conn.index, conn.session, tx))
                await self.handle(conn, tx)
        except RelayUnavailableError:
            pass
        finally:
            await conn.transport.close()
            for queue in self.queues.values():
                if queue.subscriber is conn:
                    queue.subscriber, queue.outstanding = None, None

    def _take(self, script: dict[type, int], tx: ClientTransmission) -> bool:
        kind = type(tx.command)
        if script.get(kind, 0) > 0:
            script[kind] -= 1
            return True
        return False

    async def handle(self, conn: FakeConnection, tx: ClientTransmission) -> None:
        if self._take(self.drop_before, tx):
            await conn.transport.close()
            return
        if self.silent:
            return
        if self.garbage:
            await conn.transport.send(encode_frame(b"\xff not a response"))
            return
        scripted = self.answers.get(type(tx.command))
        response = scripted.pop(0) if scripted else self.execute(conn, tx)
        if self._take(self.drop_after, tx):
            await conn.transport.close()
            return
        await conn.transport.send(encode_server_frame(tx.corr_id, tx.entity, response))
        for queue in self.queues.values():
            await self.deliver(queue)

    def execute(self, conn: FakeConnection, tx: ClientTransmission) -> ServerResponse:
        match tx.command:
            case New(recipient_key, recipient_dh):
                if tx.entity or not verify_signature(recipient_key, tx, conn.session):
                    return Err(ErrorCode.AUTH)
                server_dh = X25519PrivateKey.generate(self.rng)
                queue_key = derive_queue_key(server_dh, recipient_dh)
                ids = QueueIds(self.rng.random_bytes(24), self.rng.random_bytes(24))
                self.queues[ids.recipient_id] = FakeQueue(recipient_key, queue_key, ids.sender_id)
                self.by_sender[ids.sender_id] = ids.recipient_id
                sealed = seal_ids(queue_key, ids, self.rng)
                if self.bad_ids:
                    sealed = sealed[:-1] + bytes([sealed[-1] ^ 1])
                return Ids(server_dh.public_key.raw, sealed)
            case Send(send_id, body):
                rid = self.by_sender.get(tx.entity)
                queue = None if rid is None else self.queues[rid]
                if queue is None or (
                    queue.sender_key is not None and not verify_signature(queue.sender_key, tx, conn.session)
                ):
                    return Err(ErrorCode.AUTH)
                if send_id in queue.send_ids:
                    return Ok()
                if len(queue.messages) >= queue.quota:
                    return Err(ErrorCode.QUOTA)
                queue.send_ids.add(send_id)
                queue.messages.append((self.rng.random_bytes(24), body, False))
                return Ok()
        queue = self.queues.get(tx.entity)
        if isinstance(tx.command, Ack):
            # The client authenticates ACK by MAC under the queue key, bound to the session.
            ack_key = None if queue is None else derive_ack_key(queue.queue_key, conn.session)
            if queue is None or not verify_ack_mac(ack_key, tx, conn.session):
                return Err(ErrorCode.AUTH)
        elif queue is None or not verify_signature(queue.recipient_key, tx, conn.session):
            return Err(ErrorCode.AUTH)
        match tx.command:
            case Sub():
                old = queue.subscriber
                if old is not None and old is not conn and not old.transport.closed:
                    end = encode_server_frame(PUSHED, tx.entity, End())
                    self.tasks.append(asyncio.create_task(old.transport.send(end)))
                queue.subscriber, queue.outstanding = conn, None
                return Ok()
            case Ack(msg_id):
                if queue.subscriber is not conn or queue.outstanding != msg_id:
                    return Err(ErrorCode.NO_MSG)
                queue.messages.pop(0)
                queue.outstanding = None
                return Ok()
            case Key(sender_key):
                queue.sender_key = sender_key
                return Ok()
            case Del():
                del self.queues[tx.entity]
                del self.by_sender[queue.sender_id]
                return Ok()
        return Err(ErrorCode.CMD)

    async def deliver(self, queue: FakeQueue) -> None:
        conn = queue.subscriber
        if conn is None or queue.outstanding is not None or not queue.messages or conn.transport.closed:
            return
        msg_id, body, quota = queue.messages[0]
        key = bytes(32) if self.wrong_queue_layer else queue.queue_key
        sealed = seal_delivery(key, msg_id, Delivery(NOW, quota, body), self.rng)
        rid = next(r for r, q in self.queues.items() if q is queue)
        queue.outstanding = msg_id
        with contextlib.suppress(RelayUnavailableError):
            await conn.transport.send(encode_server_frame(PUSHED, rid, Msg(msg_id, sealed)))


@pytest_asyncio.fixture
async def relay() -> AsyncIterator[FakeRelay]:
    fake = FakeRelay()
    yield fake
    await fake.stop()


def make_client(relay: FakeRelay, seed: bytes = b"client", timeout: float = 2.0) -> RelayClient:
    return RelayClient(
        "ws://relay.invalid",
        rng=DeterministicRandom(seed),
        timeout=timeout,
        backoff=(0.001, 0.01),
        transport_factory=relay.connect,
    )


@pytest_asyncio.fixture
async def client(relay: FakeRelay) -> AsyncIterator[RelayClient]:
    async with make_client(relay) as c:
        yield c


async def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def reconnect(relay: FakeRelay, client: RelayClient) -> None:
    """Break every connection and wait until the client has a new one."""
    before = len(relay.connections)
    await relay.drop_all()
    await wait_for(lambda: len(relay.connections) > before and client.connected)


# -- queues --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_queue_opens_ids(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()

    queue = relay.queues[creds.recipient_id]
    assert relay.by_sender[creds.sender_id] == creds.recipient_id
    assert creds.queue_key == queue.queue_key
    assert creds.recipient_key.verify_key.raw == queue.recipient_key
    [new] = relay.seen(New)
    assert new.tx.entity == b""
    assert verify_signature(queue.recipient_key, new.tx, new.session)


def test_credentials_round_trip_and_keep_secrets_out_of_repr() -> None:
    rng = DeterministicRandom(b"creds")
    creds = QueueCredentials(rng.random_bytes(24), rng.random_bytes(24), SigningKey.generate(rng), bytes(32))

    assert QueueCredentials.from_bytes(creds.to_bytes()) == creds
    assert creds != creds.to_bytes()
    assert hash(QueueCredentials.from_bytes(creds.to_bytes())) == hash(creds)
    assert len(creds.to_bytes()) == 113
    text = repr(creds)
    for secret in (creds.recipient_id, creds.sender_id, creds.recipient_key.private_bytes()):
        assert secret.hex()[:8] not in text
    with pytest.raises(ValueError, match="known version"):
        QueueCredentials.from_bytes(b"\x02" + creds.to_bytes()[1:])
    with pytest.raises(ValueError, match="recipient_id"):
        QueueCredentials(b"short", creds.sender_id, creds.recipient_key, creds.queue_key)


@pytest.mark.asyncio
async def test_lock_refuses_unsigned_sends_and_delete_removes_the_queue(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    sender_key = SigningKey.generate(DeterministicRandom(b"sender"))
    await client.lock(creds, sender_key.verify_key.raw)

    with pytest.raises(RelayRejectedError) as refused:
        await client.send(creds.sender_id, b"unsigned")
    assert refused.value.code == ErrorCode.AUTH
    await client.send(creds.sender_id, b"signed", sender_key=sender_key)
    assert len(relay.queues[creds.recipient_id].messages) == 1

    await client.delete_queue(creds)
    assert creds.recipient_id not in relay.queues
    with pytest.raises(RelayRejectedError) as gone:
        await client.delete_queue(creds)
    assert gone.value.code == ErrorCode.AUTH


# -- sending -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_send_retries_after_a_dropped_connection_with_the_same_send_id(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    relay.drop_after[Send] = 1  # stored, then the connection dies before the OK

    await client.send(creds.sender_id, b"hello")

    sends = relay.seen(Send)
    assert len(sends) == 2
    assert sends[0].tx.command == sends[1].tx.command  # same send_id, same body
    assert sends[0].session != sends[1].session
    assert [body for _, body, _ in relay.queues[creds.recipient_id].messages] == [b"hello"]


@pytest.mark.asyncio
async def test_send_waits_for_a_connection_and_goes_out_once(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    relay.drop_before[Send] = 1  # the first SEND never arrives

    await client.send(creds.sender_id, b"once")

    assert len(relay.seen(Send)) == 2
    assert len(relay.queues[creds.recipient_id].messages) == 1


@pytest.mark.asyncio
async def test_quota_raises_rejected_and_is_not_retried(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    relay.queues[creds.recipient_id].quota = 1
    await client.send(creds.sender_id, b"fits")

    with pytest.raises(RelayRejectedError) as excinfo:
        await client.send(creds.sender_id, b"full")

    assert excinfo.value.code == ErrorCode.QUOTA
    assert len(relay.seen(Send)) == 2


@pytest.mark.asyncio
async def test_rate_and_internal_are_retried_with_the_same_send_id(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    relay.answers[Send] = [Err(ErrorCode.RATE), Err(ErrorCode.INTERNAL)]

    await client.send(creds.sender_id, b"later")

    sends = relay.seen(Send)
    assert len(sends) == 3
    assert len({entry.tx.command for entry in sends}) == 1
    assert len({entry.tx.corr_id for entry in sends}) == 3
    assert len(relay.queues[creds.recipient_id].messages) == 1


@pytest.mark.asyncio
async def test_send_checks_its_arguments(client: RelayClient) -> None:
    with pytest.raises(ValueError, match="sender_id"):
        await client.send(b"short", b"x")
    with pytest.raises(ValueError, match="body"):
        await client.send(bytes(24), bytes(MAX_BODY_SIZE + 1))


# -- receiving -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_subscribe_delivers_opened_messages_one_at_a_time_until_ack(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    await client.send(creds.sender_id, b"one")
    await client.send(creds.sender_id, b"two")

    await client.subscribe(creds)
    first = await client.next_delivery(1.0)
    assert isinstance(first, ReceivedMessage)
    assert (first.recipient_id, first.body, first.received_at, first.quota_marker) == (
        creds.recipient_id,
        b"one",
        NOW,
        False,
    )
    with pytest.raises(RelayTimeoutError):
        await client.next_delivery(0.02)  # nothing else until the ACK

    await client.ack(creds, first.msg_id)
    second = await client.next_delivery(1.0)
    assert isinstance(second, ReceivedMessage)
    assert second.body == b"two"
    await client.ack(creds, second.msg_id)
    assert relay.queues[creds.recipient_id].messages == []


@pytest.mark.asyncio
async def test_deliveries_iterates_until_the_client_closes(relay: FakeRelay) -> None:
    client = make_client(relay)
    async with client:
        creds = await client.create_queue()
        await client.subscribe(creds)
        await client.send(creds.sender_id, b"x")
        bodies = []
        async for event in client.deliveries():
            assert isinstance(event, ReceivedMessage)
            bodies.append(event.body)
            await client.ack(creds, event.msg_id)
            break
    assert bodies == [b"x"]
    assert [event async for event in client.deliveries()] == []
    with pytest.raises(RelayUnavailableError):
        await client.next_delivery(1.0)
    with pytest.raises(RelayUnavailableError):
        await client.create_queue()


@pytest.mark.asyncio
async def test_resubscribes_after_reconnect_signed_over_the_new_session(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)

    await relay.drop_all()
    await wait_for(lambda: len(relay.seen(Sub)) == 2)
    await client.send(creds.sender_id, b"after")
    event = await client.next_delivery(1.0)

    assert isinstance(event, ReceivedMessage)
    assert event.body == b"after"
    first, second = relay.seen(Sub)
    assert first.session != second.session
    key = relay.queues[creds.recipient_id].recipient_key
    assert verify_signature(key, first.tx, first.session)
    assert verify_signature(key, second.tx, second.session)
    assert not verify_signature(key, first.tx, second.session)  # the old one would be refused


@pytest.mark.asyncio
async def test_ack_resent_after_reconnect_answered_no_msg_is_not_an_error(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    await client.send(creds.sender_id, b"m")
    await client.subscribe(creds)
    event = await client.next_delivery(1.0)
    assert isinstance(event, ReceivedMessage)
    relay.drop_after[Ack] = 1  # the relay deletes it, but the OK is lost

    await client.ack(creds, event.msg_id)

    acks = relay.seen(Ack)
    assert len(acks) == 2
    assert acks[0].session != acks[1].session
    assert relay.queues[creds.recipient_id].messages == []


@pytest.mark.asyncio
async def test_unacked_message_is_delivered_again_after_reconnect(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    await client.send(creds.sender_id, b"again")
    await client.subscribe(creds)
    first = await client.next_delivery(1.0)

    await relay.drop_all()
    second = await client.next_delivery(1.0)

    assert isinstance(first, ReceivedMessage)
    assert isinstance(second, ReceivedMessage)
    assert (second.msg_id, second.body) == (first.msg_id, b"again")


@pytest.mark.asyncio
async def test_end_surfaces_and_the_client_stops_resubscribing(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)

    async with make_client(relay, seed=b"clone") as clone:
        await clone.subscribe(QueueCredentials.from_bytes(creds.to_bytes()))
        event = await client.next_delivery(1.0)
        assert event == SubscriptionEnded(creds.recipient_id)

        client_conn = relay.seen(Sub)[0].conn
        await relay.connections[client_conn].transport.close()
        await client.send(creds.sender_id, b"still sending")  # proves it reconnected
    last_send = relay.seen(Send)[-1]
    assert last_send.conn != client_conn
    assert [entry for entry in relay.seen(Sub) if entry.conn == last_send.conn] == []


@pytest.mark.asyncio
async def test_refused_resubscription_ends_the_subscription(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    del relay.queues[creds.recipient_id]  # swept while we were away

    await relay.drop_all()

    assert await client.next_delivery(1.0) == SubscriptionEnded(creds.recipient_id, ErrorCode.AUTH)


@pytest.mark.asyncio
async def test_unopenable_delivery_surfaces_as_unreadable(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.send(creds.sender_id, b"x")
    relay.wrong_queue_layer = True

    await client.subscribe(creds)
    event = await client.next_delivery(1.0)

    assert isinstance(event, UnreadableMessage)
    assert event.recipient_id == creds.recipient_id
    await client.ack(creds, event.msg_id)


# -- failures are RelayErrors --------------------------------------------------------------


@pytest.mark.asyncio
async def test_connection_lost_during_new_raises_unavailable_and_is_not_repeated(
    relay: FakeRelay, client: RelayClient
) -> None:
    relay.drop_after[New] = 1

    with pytest.raises(RelayUnavailableError):
        await client.create_queue()

    assert len(relay.seen(New)) == 1
    assert await client.create_queue()  # the client itself recovers


@pytest.mark.asyncio
async def test_every_in_flight_command_fails_with_relay_errors_only(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    for kind in (New, Key, Del):
        relay.drop_before[kind] = 1
    relay.refuse = True  # and it does not come back

    results = await asyncio.gather(
        client.create_queue(timeout=0.3),
        client.lock(creds, bytes(range(32)), timeout=0.3),
        client.delete_queue(creds, timeout=0.3),
        client.send(creds.sender_id, b"x", timeout=0.3),
        client.subscribe(creds, timeout=0.3),
        client.ack(creds, bytes(24), timeout=0.3),
        return_exceptions=True,
    )

    assert all(isinstance(result, RelayError) for result in results), results
    # Commands that went out and were lost fail at once; repeatable ones wait until the deadline
    # and then blame the connection, whose failure is the cause.
    send_error = results[3]
    assert isinstance(send_error, RelayUnavailableError)
    assert isinstance(send_error.__cause__, RelayUnavailableError)


@pytest.mark.asyncio
async def test_unreachable_relay_raises_unavailable(relay: FakeRelay, client: RelayClient) -> None:
    relay.refuse = True
    await relay.drop_all()
    with pytest.raises(RelayUnavailableError) as excinfo:
        await client.create_queue(timeout=0.1)
    assert isinstance(excinfo.value.__cause__, RelayUnavailableError)


@pytest.mark.asyncio
async def test_silent_relay_raises_timeout(relay: FakeRelay, client: RelayClient) -> None:
    relay.silent = True
    with pytest.raises(RelayTimeoutError):
        await client.create_queue(timeout=0.05)


@pytest.mark.asyncio
async def test_malformed_answers_drop_the_connection_and_surface_as_relay_errors(
    relay: FakeRelay, client: RelayClient
) -> None:
    relay.garbage = True
    with pytest.raises(RelayUnavailableError) as excinfo:
        await client.create_queue(timeout=0.1)
    assert "malformed" in str(excinfo.value.__cause__)
    await wait_for(lambda: len(relay.connections) > 1)  # and it reconnects

    creds_error: list[BaseException] = []
    try:
        await client.send(bytes(24), b"x", timeout=0.1)
    except Exception as exc:
        creds_error.append(exc)
    assert len(creds_error) == 1
    assert isinstance(creds_error[0], RelayError)


@pytest.mark.asyncio
async def test_a_transport_breaking_its_contract_fails_calls_with_relay_errors() -> None:
    class Broken:
        async def send(self, frame: bytes) -> None:
            raise OSError("not translated")

        async def recv(self) -> bytes:
            raise OSError("not translated")

        async def close(self) -> None:
            pass

    async def factory() -> Broken:
        return Broken()

    async with RelayClient("ws://relay.invalid", transport_factory=factory, timeout=0.5) as client:
        with pytest.raises(RelayUnavailableError) as excinfo:
            await client.send(bytes(24), b"x")
        assert isinstance(excinfo.value.__cause__, OSError)
        with pytest.raises(RelayUnavailableError):
            await client.next_delivery(0.1)
        with pytest.raises(RelayUnavailableError, match="failed"):
            await client.send(bytes(24), b"x")
    await client.aclose()  # twice is harmless


def test_client_checks_its_configuration() -> None:
    with pytest.raises(ValueError, match="url"):
        RelayClient("http://relay.example")
    with pytest.raises(ValueError, match="wss"):
        RelayClient("ws://relay.example", ssl=ssl.create_default_context())
    with pytest.raises(ValueError, match="timeout"):
        RelayClient("ws://relay.example", timeout=0)
    with pytest.raises(ValueError, match="backoff"):
        RelayClient("ws://relay.example", backoff=(1.0, 0.5))


# -- transports ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_memory_transport_breaks_both_ends() -> None:
    client, server = MemoryTransport.pair()
    await client.send(b"a")
    assert await server.recv() == b"a"
    await client.send(b"in flight")
    await server.close()
    for end in (client, server):
        with pytest.raises(RelayUnavailableError):
            await end.recv()
        with pytest.raises(RelayUnavailableError):
            await end.send(b"b")


@pytest.mark.asyncio
async def test_memory_transport_refuses_an_oversize_frame_like_a_websocket() -> None:
    client, server = MemoryTransport.pair()
    with pytest.raises(RelayUnavailableError):
        await client.send(bytes(FRAME_SIZE + 1))
    with pytest.raises(RelayUnavailableError):
        await server.recv()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (TimeoutError(), RelayTimeoutError),
        (ConnectionRefusedError(), RelayUnavailableError),
        (websockets.exceptions.ConnectionClosedError(None, None), RelayUnavailableError),
        (websockets.exceptions.InvalidHandshake(), RelayUnavailableError),
        (EOFError(), RelayUnavailableError),
    ],
)
def test_map_exceptions_translates_at_the_boundary(raised: Exception, expected: type[RelayError]) -> None:
    with pytest.raises(expected) as excinfo, map_exceptions():
        raise raised
    assert excinfo.value.__cause__ is raised


def test_map_exceptions_leaves_misuse_alone() -> None:
    with pytest.raises(ValueError, match="misuse"), map_exceptions():
        raise ValueError("misuse")


@pytest.mark.asyncio
async def test_websocket_transport_round_trip_on_loopback() -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async with serve(echo, "127.0.0.1", 0, compression=None, max_size=FRAME_SIZE) as server:
        port = server.sockets[0].getsockname()[1]
        transport = await WebSocketTransport.connect(f"ws://127.0.0.1:{port}", open_timeout=2.0)
        frame = encode_frame(b"ping")
        await transport.send(frame)
        assert await transport.recv() == frame
        await transport.close()
        with pytest.raises(RelayUnavailableError):
            await transport.recv()
        await transport.close()


@pytest.mark.asyncio
async def test_websocket_transport_maps_a_refused_connection() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(RelayUnavailableError) as excinfo:
        await WebSocketTransport.connect(f"ws://127.0.0.1:{port}", open_timeout=2.0)
    assert isinstance(excinfo.value.__cause__, OSError)


@pytest.mark.asyncio
async def test_deleting_a_subscribed_queue_ends_its_subscription_quietly(
    relay: FakeRelay, client: RelayClient
) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    await client.delete_queue(creds)

    await reconnect(relay, client)
    await client.create_queue()

    assert len(relay.seen(Sub)) == 1
    with pytest.raises(RelayTimeoutError):
        await client.next_delivery(0.02)


@pytest.mark.asyncio
async def test_resubscription_answered_rate_is_retried(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    relay.answers[Sub] = [Err(ErrorCode.RATE)]

    await relay.drop_all()
    await wait_for(lambda: len(relay.seen(Sub)) == 3)
    await client.send(creds.sender_id, b"through")

    event = await client.next_delivery(1.0)
    assert isinstance(event, ReceivedMessage)
    assert event.body == b"through"


@pytest.mark.asyncio
async def test_failed_subscribe_leaves_no_subscription(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    relay.answers[Sub] = [Err(ErrorCode.AUTH)]
    with pytest.raises(RelayRejectedError):
        await client.subscribe(creds)

    await client.send(creds.sender_id, b"x")
    await reconnect(relay, client)
    await client.create_queue()

    assert len(relay.seen(Sub)) == 1  # never renewed


@pytest.mark.asyncio
async def test_ids_that_do_not_open_raise_unavailable(relay: FakeRelay, client: RelayClient) -> None:
    relay.bad_ids = True
    with pytest.raises(RelayUnavailableError, match="invalid queue answer"):
        await client.create_queue()


@pytest.mark.asyncio
async def test_wrong_answers_raise_relay_errors(relay: FakeRelay, client: RelayClient) -> None:
    relay.answers[New] = [Err(ErrorCode.AUTH), Ok()]
    with pytest.raises(RelayRejectedError) as excinfo:
        await client.create_queue()
    assert excinfo.value.code == ErrorCode.AUTH
    with pytest.raises(RelayUnavailableError, match="unexpected answer"):
        await client.create_queue()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "frame",
    [
        encode_server_frame(b"\x01" * 24, b"", Hello(bytes(32))),  # a second hello
        encode_server_frame(PUSHED, bytes(24), Ok()),  # an answer nobody asked for, pushed
    ],
)
async def test_protocol_violations_drop_the_connection(
    relay: FakeRelay, client: RelayClient, frame: bytes
) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    await relay.connections[0].transport.send(frame)

    await wait_for(lambda: len(relay.seen(Sub)) == 2)  # reconnected and resubscribed
    assert relay.connections[0].transport.closed


@pytest.mark.asyncio
async def test_pushes_for_queues_we_do_not_hold_are_ignored(relay: FakeRelay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    stranger = bytes(range(24))
    conn = relay.connections[0].transport
    await conn.send(encode_server_frame(PUSHED, stranger, End()))
    await conn.send(encode_server_frame(PUSHED, stranger, Msg(bytes(24), bytes(100))))
    await client.send(creds.sender_id, b"mine")

    event = await client.next_delivery(1.0)
    assert isinstance(event, ReceivedMessage)
    assert event.body == b"mine"


@pytest.mark.asyncio
@pytest.mark.parametrize("greeting", ["silent", "garbage", "ok"])
async def test_a_relay_that_does_not_greet_is_unavailable(relay: FakeRelay, greeting: str) -> None:
    relay.greeting = greeting
    client = RelayClient(
        "ws://relay.invalid",
        timeout=60.0,
        connect_timeout=0.05,
        backoff=(0.001, 0.01),
        transport_factory=relay.connect,
    )
    async with client:
        # The first connect's failure fails the call at once: long before its 60 s limit,
        # so well inside this guard's 30 s.
        async with asyncio.timeout(30):
            with pytest.raises(RelayUnavailableError) as excinfo:
                await client.create_queue()
        await wait_for(lambda: len(relay.connections) > 1)  # and it keeps trying behind the scenes
    assert isinstance(excinfo.value.__cause__, RelayError)
    cause = {
        "silent": "timed out",
        "garbage": "not a relay: malformed greeting",
        "ok": "not a relay: no hello",
    }
    assert excinfo.value.cause == cause[greeting]
    assert str(excinfo.value) == f"relay unreachable: ws://relay.invalid ({cause[greeting]})"


@pytest.mark.asyncio
async def test_client_over_a_real_websocket(relay: FakeRelay) -> None:
    async def bridge(ws: ServerConnection) -> None:
        client_side = await relay.connect()

        async def upstream() -> None:
            async for message in ws:
                assert isinstance(message, bytes)
                await client_side.send(message)

        async def downstream() -> None:
            with contextlib.suppress(RelayUnavailableError):
                while True:
                    await ws.send(await client_side.recv())

        tasks = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await client_side.close()

    async with serve(bridge, "127.0.0.1", 0, compression=None, max_size=FRAME_SIZE) as server:
        port = server.sockets[0].getsockname()[1]
        async with RelayClient(f"ws://127.0.0.1:{port}", timeout=2.0) as client:
            creds = await client.create_queue()
            await client.subscribe(creds)
            await client.send(creds.sender_id, b"over the wire")
            event = await client.next_delivery(2.0)
            assert isinstance(event, ReceivedMessage)
            assert event.body == b"over the wire"
            assert client.connected
