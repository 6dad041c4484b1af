"""RelayServer.stop() with clients connected: every close handshake completes.

A real server on loopback and real ``websockets`` clients. What "completes" means is
seen from the client: it received the server's close frame (1001, going away), answered
it with its own, and the TCP connection then ended with the server's FIN, not a reset.
A server that stopped reading before closing never reads that answer: it cuts the
connection after its close timeout, with the client's close frame still unread, which
the kernel turns into a reset (``connection_exc`` is then a ``ConnectionResetError``).
"""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedOK
from websockets.protocol import State

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import SystemRandom
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    Hello,
    Ids,
    New,
    Ok,
    Sub,
    decode_server_frame,
    derive_queue_key,
    encode_client_frame,
    open_ids,
)
from burnerkit.relay.server.config import RelayConfig
from burnerkit.relay.server.server import RelayServer
from burnerkit.relay.server.store.base import QueueRecord
from burnerkit.relay.server.store.memory import MemoryStore

RNG = SystemRandom()
GOING_AWAY = 1001


def corr() -> bytes:
    return RNG.random_bytes(24)


async def hello(ws: ClientConnection) -> bytes:
    data = await asyncio.wait_for(ws.recv(decode=False), 5)
    tx = decode_server_frame(data)
    assert isinstance(tx.response, Hello)
    return tx.response.session_id


async def subscribed(ws: ClientConnection, session_id: bytes) -> None:
    """Make a queue and subscribe to it on ``ws``: a connection with state on the server."""
    key = SigningKey.generate(RNG)
    dh = X25519PrivateKey.generate(RNG)
    new = New(key.verify_key.raw, dh.public_key.raw)
    await ws.send(encode_client_frame(corr(), b"", new, session_id=session_id, signing_key=key))
    ids = decode_server_frame(await asyncio.wait_for(ws.recv(decode=False), 5)).response
    assert isinstance(ids, Ids)
    recipient_id = open_ids(derive_queue_key(dh, ids.server_dh), ids.sealed).recipient_id
    await ws.send(encode_client_frame(corr(), recipient_id, Sub(), session_id=session_id, signing_key=key))
    assert decode_server_frame(await asyncio.wait_for(ws.recv(decode=False), 5)).response == Ok()


@pytest.mark.asyncio
async def test_stop_with_clients_connected_completes_every_close_handshake() -> None:
    server = RelayServer(MemoryStore(), RelayConfig(port=0, store=":memory:"))
    await server.start()
    clients = [
        await connect(
            f"ws://127.0.0.1:{server.bound_port}",
            max_size=FRAME_SIZE,
            compression=None,
            ping_interval=None,
            close_timeout=30,  # the client must not be the side that gives up
        )
        for _ in range(3)
    ]
    sessions = [await hello(ws) for ws in clients]
    await subscribed(clients[0], sessions[0])
    await subscribed(clients[1], sessions[1])  # clients[2] only said hello
    assert server.connections_active == 3

    await server.stop()

    for ws in clients:
        with pytest.raises(ConnectionClosedOK) as closed:
            await ws.recv()
        await ws.wait_closed()
        assert ws.state is State.CLOSED
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == GOING_AWAY
        assert closed.value.sent is not None
        assert closed.value.sent.code == GOING_AWAY  # our answer to it
        assert closed.value.rcvd_then_sent is True  # the server started the handshake
        # The server read our answer and ended TCP with a FIN; a cut connection would be a reset.
        assert ws.connection_exc is None, repr(ws.connection_exc)
    assert server.connections_active == 0


class _StuckStore(MemoryStore):
    """A store whose queue lookups never return: a command that waits for it runs until cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def queue_by_recipient(self, recipient_id: bytes) -> QueueRecord | None:
        self.entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        raise AssertionError("unreachable")


@pytest.mark.asyncio
async def test_stop_cancels_a_command_still_waiting_for_the_store_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A short grace, so the test does not wait the real one out.
    monkeypatch.setattr("burnerkit.relay.server.server._STOP_GRACE", 0.2)
    store = _StuckStore()
    server = RelayServer(store, RelayConfig(port=0, store=":memory:"))
    await server.start()
    ws = await connect(
        f"ws://127.0.0.1:{server.bound_port}", max_size=FRAME_SIZE, compression=None, ping_interval=None
    )
    session_id = await hello(ws)
    key = SigningKey.generate(RNG)
    await ws.send(
        encode_client_frame(corr(), RNG.random_bytes(24), Sub(), session_id=session_id, signing_key=key)
    )
    await asyncio.wait_for(store.entered.wait(), 5)

    await server.stop()

    assert store.cancelled.is_set()  # the SUB's task was cancelled, not left behind
    with pytest.raises(ConnectionClosedOK) as closed:
        await ws.recv()  # and it got no answer: the close comes first
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == GOING_AWAY
    assert server.connections_active == 0
