"""The relay client against the real relay, and against a relay that misbehaves on cue.

Behaviour is tested against the real in-process :class:`RelayServer` (a ``MemoryStore``,
write-through, on loopback): ``Relay`` starts one, and the client reaches it through a
``Wire`` per connection, a transport that records every frame the client sends (with the
session it went out on) and, where a test says so, cuts the connection before a command
arrives or instead of its answer, answers a command itself (``RATE``, ``INTERNAL``, a
refusal), or hands the client a frame the relay did not send. The relay's state is read
from its store. Tests of a relay that breaks the protocol (no greeting, garbage, silence,
ids that do not open, answers to the wrong command) run against ``ScriptedRelay``, which
is the server end of :class:`~burnerkit.relay.protocol.ServerConnection` over
``MemoryTransport`` answering what the test scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
import websockets.exceptions
from websockets.asyncio.server import ServerConnection as WebSocketConnection
from websockets.asyncio.server import serve

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
    PUSHED,
    Ack,
    ClientTransmission,
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
    QueueIds,
    Send,
    ServerConnection,
    ServerResponse,
    Sub,
    decode_client_frame,
    decode_server_frame,
    derive_queue_key,
    encode_frame,
    encode_server_frame,
    seal_ids,
    verify_signature,
)
from burnerkit.relay.server.config import RelayConfig
from burnerkit.relay.server.server import RelayServer
from burnerkit.relay.server.store.memory import MemoryStore
from burnerkit.relay.transport import MemoryTransport, Transport, WebSocketTransport, map_exceptions

NOW = 1_700_000_000  #: the relay's clock: every delivery's received_at


@dataclass(frozen=True)
class Logged:
    conn: int
    session: bytes
    tx: ClientTransmission


@dataclass(frozen=True)
class QueueView:
    """A queue as the relay's store holds it."""

    recipient_key: bytes
    queue_key: bytes
    messages: list[tuple[bytes, bytes, bool]]  #: msg_id, body, quota marker, oldest first


def _take(script: dict[type, int], kind: type) -> bool:
    if script.get(kind, 0) > 0:
        script[kind] -= 1
        return True
    return False


class Wire:
    """One client connection to the real relay, through the test (see the module docstring)."""

    def __init__(self, relay: Relay, index: int, inner: Transport) -> None:
        self.relay = relay
        self.index = index
        self.inner = inner
        self.session = b""
        self.closed = False
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._lose_answers: set[bytes] = set()  # corr ids whose answer never reaches the client
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(RelayUnavailableError):
            while True:
                frame = await self.inner.recv()
                tx = decode_server_frame(frame)
                if isinstance(tx.response, Hello):
                    self.session = tx.response.session_id
                if tx.corr_id in self._lose_answers:
                    await self.close()
                    return
                if self.relay.wrong_queue_layer and isinstance(tx.response, Msg):
                    sealed = tx.response.sealed
                    tampered = Msg(tx.response.msg_id, sealed[:-1] + bytes([sealed[-1] ^ 1]))
                    frame = encode_server_frame(tx.corr_id, tx.entity, tampered)
                self._incoming.put_nowait(frame)
        self._incoming.put_nowait(None)

    async def send(self, frame: bytes) -> None:
        if self.closed:
            raise RelayUnavailableError("relay connection closed")
        tx = decode_client_frame(frame)
        relay = self.relay
        relay.log.append(Logged(self.index, self.session, tx))
        kind = type(tx.command)
        if _take(relay.drop_before, kind):  # the command never arrives
            await self.close()
            return
        scripted = relay.answers.get(kind)
        if scripted:  # answered here; the relay never sees it
            self.inject(encode_server_frame(tx.corr_id, tx.entity, scripted.pop(0)))
            return
        if _take(relay.drop_after, kind):  # it takes effect; its answer is lost with the connection
            self._lose_answers.add(tx.corr_id)
        await self.inner.send(frame)

    async def recv(self) -> bytes:
        frame = None if self.closed else await self._incoming.get()
        if frame is None or self.closed:
            raise RelayUnavailableError("relay connection closed")
        return frame

    def inject(self, frame: bytes) -> None:
        """The client gets ``frame`` as if the relay had sent it."""
        self._incoming.put_nowait(frame)

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._incoming.put_nowait(None)
            await self.inner.close()


class Relay:
    """The real relay in this process, and the client's connections to it."""

    def __init__(self, server: RelayServer, store: MemoryStore) -> None:
        self.server = server
        self.store = store
        self.connections: list[Wire] = []
        self.log: list[Logged] = []
        self.refuse = False
        self.drop_before: dict[type, int] = {}
        self.drop_after: dict[type, int] = {}
        self.answers: dict[type, list[ServerResponse]] = {}
        self.wrong_queue_layer = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.bound_port}"

    async def connect(self) -> Wire:
        """The client's transport factory."""
        if self.refuse:
            raise RelayUnavailableError("relay unreachable (test)")
        inner = await WebSocketTransport.connect(self.url, open_timeout=2.0)
        wire = Wire(self, len(self.connections), inner)
        self.connections.append(wire)
        return wire

    async def drop_all(self) -> None:
        for wire in self.connections:
            await wire.close()

    def seen(self, kind: type) -> list[Logged]:
        return [entry for entry in self.log if isinstance(entry.tx.command, kind)]

    @property
    def queues(self) -> dict[bytes, QueueView]:
        # The reference store's own dicts: the one place this file reads the relay's insides.
        return {
            rid: QueueView(
                queue.record.recipient_key,
                queue.record.queue_key,
                [(m.msg_id, m.body, m.quota_marker) for _, m in queue.messages.values()],
            )
            for rid, queue in self.store._queues.items()
        }

    @property
    def by_sender(self) -> dict[bytes, bytes]:
        return dict(self.store._by_sender)


@contextlib.asynccontextmanager
async def running_relay(**config: Any) -> AsyncIterator[Relay]:
    """A relay in this process on a free loopback port: MemoryStore, write-through, clock at NOW."""
    store = MemoryStore()
    server = RelayServer(
        store, RelayConfig(port=0, store=":memory:", write_behind=0, **config), clock=lambda: NOW
    )
    await server.start()
    relay = Relay(server, store)
    try:
        yield relay
    finally:
        await relay.drop_all()
        await server.stop()


@pytest_asyncio.fixture
async def start_relay() -> AsyncIterator[Callable[..., Any]]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(**config: Any) -> Relay:
            return await stack.enter_async_context(running_relay(**config))

        yield start


@pytest_asyncio.fixture
async def relay(start_relay: Callable[..., Any]) -> Relay:
    started: Relay = await start_relay()
    return started


class ScriptedRelay:
    """A relay that says only what the test scripts, over the server end of RelayConnection."""

    def __init__(
        self,
        answer: Callable[[ServerConnection, ClientTransmission], bytes | None] = lambda conn, tx: None,
        greeting: str = "hello",  # or "silent", "garbage", "ok"
    ) -> None:
        self.answer = answer
        self.greeting = greeting
        self.connections: list[MemoryTransport] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.rng = DeterministicRandom(b"scripted relay")

    async def connect(self) -> MemoryTransport:
        client_side, server_side = MemoryTransport.pair()
        self.connections.append(server_side)
        self._tasks.append(asyncio.create_task(self._serve(server_side)))
        return client_side

    async def _serve(self, transport: MemoryTransport) -> None:
        conn = ServerConnection(self.rng.random_bytes(32))
        with contextlib.suppress(RelayUnavailableError):
            if self.greeting == "silent":
                await asyncio.Event().wait()
            elif self.greeting != "hello":
                ok = encode_server_frame(PUSHED, b"", Ok())
                await transport.send(encode_frame(b"\xff") if self.greeting == "garbage" else ok)
                await asyncio.Event().wait()
            await transport.send(conn.greet())
            while True:
                tx = conn.receive(await transport.recv())
                reply = self.answer(conn, tx)
                if reply is not None:
                    await transport.send(reply)

    async def __aenter__(self) -> ScriptedRelay:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for transport in self.connections:
            await transport.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def make_client(relay: Relay | ScriptedRelay, seed: bytes = b"client", timeout: float = 2.0) -> RelayClient:
    return RelayClient(
        "ws://relay.invalid",
        rng=DeterministicRandom(seed),
        timeout=timeout,
        backoff=(0.001, 0.01),
        transport_factory=relay.connect,
    )


@pytest_asyncio.fixture
async def client(relay: Relay) -> AsyncIterator[RelayClient]:
    async with make_client(relay) as c:
        await wait_for(lambda: c.connected)  # as a test begins, the client holds a connection
        yield c


async def wait_for(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def reconnect(relay: Relay, client: RelayClient) -> None:
    """Break every connection and wait until the client has a new one."""
    before = len(relay.connections)
    await relay.drop_all()
    await wait_for(lambda: len(relay.connections) > before and client.connected)


# -- queues --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_queue_opens_ids(relay: Relay, client: RelayClient) -> None:
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
    relay: Relay, client: RelayClient
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
    relay: Relay, client: RelayClient
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
async def test_send_waits_for_a_connection_and_goes_out_once(relay: Relay, client: RelayClient) -> None:
    creds = await client.create_queue()
    relay.drop_before[Send] = 1  # the first SEND never arrives

    await client.send(creds.sender_id, b"once")

    assert len(relay.seen(Send)) == 2
    assert len(relay.queues[creds.recipient_id].messages) == 1


@pytest.mark.asyncio
async def test_quota_raises_rejected_and_is_not_retried(start_relay: Callable[..., Any]) -> None:
    relay: Relay = await start_relay(quota=1)
    async with make_client(relay) as client:
        creds = await client.create_queue()
        await client.send(creds.sender_id, b"fits")

        with pytest.raises(RelayRejectedError) as excinfo:
            await client.send(creds.sender_id, b"full")

    assert excinfo.value.code == ErrorCode.QUOTA
    assert len(relay.seen(Send)) == 2


@pytest.mark.asyncio
async def test_rate_and_internal_are_retried_with_the_same_send_id(relay: Relay, client: RelayClient) -> None:
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
    relay: Relay, client: RelayClient
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
async def test_deliveries_iterates_until_the_client_closes(relay: Relay) -> None:
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
    relay: Relay, client: RelayClient
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
    relay: Relay, client: RelayClient
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
async def test_unacked_message_is_delivered_again_after_reconnect(relay: Relay, client: RelayClient) -> None:
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
async def test_end_surfaces_and_the_client_stops_resubscribing(relay: Relay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)

    async with make_client(relay, seed=b"clone") as clone:
        await clone.subscribe(QueueCredentials.from_bytes(creds.to_bytes()))
        event = await client.next_delivery(1.0)
        assert event == SubscriptionEnded(creds.recipient_id)

        client_conn = relay.seen(Sub)[0].conn
        await relay.connections[client_conn].close()
        await client.send(creds.sender_id, b"still sending")  # proves it reconnected
    last_send = relay.seen(Send)[-1]
    assert last_send.conn != client_conn
    assert [entry for entry in relay.seen(Sub) if entry.conn == last_send.conn] == []


@pytest.mark.asyncio
async def test_refused_resubscription_ends_the_subscription(relay: Relay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    assert await relay.store.delete_queue(creds.recipient_id)  # swept while we were away

    await relay.drop_all()

    assert await client.next_delivery(1.0) == SubscriptionEnded(creds.recipient_id, ErrorCode.AUTH)


@pytest.mark.asyncio
async def test_unopenable_delivery_surfaces_as_unreadable(relay: Relay, client: RelayClient) -> None:
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
    relay: Relay, client: RelayClient
) -> None:
    relay.drop_after[New] = 1

    with pytest.raises(RelayUnavailableError):
        await client.create_queue()

    assert len(relay.seen(New)) == 1
    assert await client.create_queue()  # the client itself recovers


@pytest.mark.asyncio
async def test_every_in_flight_command_fails_with_relay_errors_only(
    relay: Relay, client: RelayClient
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
async def test_unreachable_relay_raises_unavailable(relay: Relay, client: RelayClient) -> None:
    relay.refuse = True
    await relay.drop_all()
    with pytest.raises(RelayUnavailableError) as excinfo:
        await client.create_queue(timeout=0.1)
    assert isinstance(excinfo.value.__cause__, RelayUnavailableError)


@pytest.mark.asyncio
async def test_silent_relay_raises_timeout() -> None:
    async with ScriptedRelay() as relay, make_client(relay) as client:  # answers nothing
        with pytest.raises(RelayTimeoutError):
            await client.create_queue(timeout=0.05)


@pytest.mark.asyncio
async def test_malformed_answers_drop_the_connection_and_surface_as_relay_errors() -> None:
    async with (
        ScriptedRelay(lambda conn, tx: encode_frame(b"\xff not a response")) as relay,
        make_client(relay) as client,
    ):
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
    async def echo(ws: WebSocketConnection) -> None:
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
    relay: Relay, client: RelayClient
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
async def test_resubscription_answered_rate_is_retried(relay: Relay, client: RelayClient) -> None:
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
async def test_failed_subscribe_leaves_no_subscription(relay: Relay, client: RelayClient) -> None:
    creds = await client.create_queue()
    relay.answers[Sub] = [Err(ErrorCode.AUTH)]
    with pytest.raises(RelayRejectedError):
        await client.subscribe(creds)

    await client.send(creds.sender_id, b"x")
    await reconnect(relay, client)
    await client.create_queue()

    assert len(relay.seen(Sub)) == 1  # never renewed


@pytest.mark.asyncio
async def test_ids_that_do_not_open_raise_unavailable() -> None:
    rng = DeterministicRandom(b"ids")

    def bad_ids(conn: ServerConnection, tx: ClientTransmission) -> bytes:
        assert isinstance(tx.command, New)
        server_dh = X25519PrivateKey.generate(rng)
        queue_key = derive_queue_key(server_dh, tx.command.recipient_dh)
        sealed = seal_ids(queue_key, QueueIds(rng.random_bytes(24), rng.random_bytes(24)), rng)
        tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
        return conn.answer(tx.corr_id, b"", Ids(server_dh.public_key.raw, tampered))

    async with ScriptedRelay(bad_ids) as relay, make_client(relay) as client:
        with pytest.raises(RelayUnavailableError, match="invalid queue answer"):
            await client.create_queue()


@pytest.mark.asyncio
async def test_wrong_answers_raise_relay_errors() -> None:
    answers: list[ServerResponse] = [Err(ErrorCode.AUTH), Ok()]

    def answer(conn: ServerConnection, tx: ClientTransmission) -> bytes:
        return conn.answer(tx.corr_id, tx.entity, answers.pop(0))

    async with ScriptedRelay(answer) as relay, make_client(relay) as client:
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
    relay: Relay, client: RelayClient, frame: bytes
) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    relay.connections[0].inject(frame)

    await wait_for(lambda: len(relay.seen(Sub)) == 2)  # reconnected and resubscribed
    assert relay.connections[0].closed


@pytest.mark.asyncio
async def test_pushes_for_queues_we_do_not_hold_are_ignored(relay: Relay, client: RelayClient) -> None:
    creds = await client.create_queue()
    await client.subscribe(creds)
    stranger = bytes(range(24))
    conn = relay.connections[0]
    conn.inject(encode_server_frame(PUSHED, stranger, End()))
    conn.inject(encode_server_frame(PUSHED, stranger, Msg(bytes(24), bytes(100))))
    await client.send(creds.sender_id, b"mine")

    event = await client.next_delivery(1.0)
    assert isinstance(event, ReceivedMessage)
    assert event.body == b"mine"


@pytest.mark.asyncio
@pytest.mark.parametrize("greeting", ["silent", "garbage", "ok"])
async def test_a_relay_that_does_not_greet_is_unavailable(greeting: str) -> None:
    async with ScriptedRelay(greeting=greeting) as relay:
        await _a_relay_that_does_not_greet_is_unavailable(relay, greeting)


async def _a_relay_that_does_not_greet_is_unavailable(relay: ScriptedRelay, greeting: str) -> None:
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
async def test_client_over_a_real_websocket(relay: Relay) -> None:
    async with RelayClient(relay.url, timeout=2.0) as client:
        creds = await client.create_queue()
        await client.subscribe(creds)
        await client.send(creds.sender_id, b"over the wire")
        event = await client.next_delivery(2.0)
        assert isinstance(event, ReceivedMessage)
        assert event.body == b"over the wire"
        assert client.connected
