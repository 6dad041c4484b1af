"""A lean WebSocket client connection for the bench's clients, on websockets' sans-I/O layer.

The bench's clients share this machine's two cores with the server they measure, so
every microsecond a client spends per frame is taken from the server's throughput.
The ``websockets`` asyncio client pays for generality the bench does not use (send
locks, a fragment assembler with its own flow control, keepalive, a drain after every
frame); this connection keeps only what RFC 6455 requires (the HTTP upgrade, masked
client frames and the close handshake, all from :class:`websockets.client.ClientProtocol`)
and leaves the rest of the cores to the server. The echo and the relay are driven
through it alike, so their ratio compares the servers and not two client stacks.

Received messages go, in order, either into a deque that :meth:`LeanConnection.recv`
and ``async for`` read (a future exists only while the consumer waits), or, under
:meth:`LeanConnection.run`, straight to a callback from ``data_received``, which saves
the consumer task's wake-up on every frame of the hot loops.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Final

from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosedOK, InvalidState
from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import CLOSED, OPEN
from websockets.uri import parse_uri

__all__ = ["MAX_SIZE", "LeanConnection", "open"]

#: The largest message accepted by default: every frame of the relay protocol is 16,384 bytes.
MAX_SIZE: Final = 16_384
#: How long :meth:`LeanConnection.close` waits for the server to end the TCP connection.
CLOSE_TIMEOUT: Final = 10.0

_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT
_TEXT: Final = Opcode.TEXT


async def open(
    port: int, host: str = "127.0.0.1", timeout: float = 30.0, max_size: int = MAX_SIZE
) -> LeanConnection:
    """A connection to ``ws://host:port/`` once the server has accepted the upgrade.

    ``max_size``: the largest message accepted; a larger one fails the connection.
    """
    loop = asyncio.get_running_loop()
    uri = f"ws://{host}:{port}/"
    conn: LeanConnection | None = None
    try:
        async with asyncio.timeout(timeout):
            _, conn = await loop.create_connection(lambda: LeanConnection(uri, max_size), host, port)
            await conn.opened
    except BaseException:
        if conn is not None:
            conn.abort()
        raise
    return conn


class LeanConnection(asyncio.Protocol):
    """One client connection: binary messages of at most ``max_size`` bytes, no
    compression, no pings of its own (it answers the server's, as RFC 6455 requires).

    :meth:`send` writes at once and never waits: the bench bounds what it keeps in flight,
    so the transport's buffer stays small without a drain per frame; :meth:`drain` is there
    for a caller that does not.
    """

    __slots__ = (
        "_done",
        "_fragments",
        "_frames",
        "_handler",
        "_lost",
        "_paused",
        "_protocol",
        "_resumed",
        "_transport",
        "_waiter",
        "opened",
    )

    def __init__(self, uri: str, max_size: int = MAX_SIZE) -> None:
        loop = asyncio.get_running_loop()
        self._protocol = ClientProtocol(parse_uri(uri), max_size=max_size)
        self._transport: asyncio.Transport | None = None
        self._frames: deque[bytes] = deque()
        self._fragments: list[bytes] = []
        self._waiter: asyncio.Future[None] | None = None  # only while recv() waits
        self._handler: Callable[[bytes], None] | None = None  # only inside run()
        self._done: asyncio.Future[None] | None = None  # run()'s end
        self._paused = False
        self._resumed: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] = loop.create_future()
        #: Done once the server accepted the upgrade; fails if it did not.
        self.opened: asyncio.Future[None] = loop.create_future()

    # -- what the bench calls -------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Send one binary message (one masked frame)."""
        protocol = self._protocol
        try:
            protocol.send_binary(data)
        except InvalidState:
            if protocol.state is CLOSED:
                raise protocol.close_exc from None
            raise
        transport = self._transport
        assert transport is not None
        for chunk in protocol.data_to_send():
            transport.write(chunk)

    async def drain(self) -> None:
        """Wait until the transport's write buffer is below its high-water mark."""
        if self._paused:
            if self._resumed is None:
                self._resumed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._resumed)

    async def recv(self) -> bytes:
        """The next message; raises :exc:`~websockets.exceptions.ConnectionClosed` once closed."""
        frames = self._frames
        while not frames:
            if self._lost.done():
                raise self._protocol.close_exc
            await self._wait()
        return frames.popleft()

    def __aiter__(self) -> LeanConnection:
        return self

    async def __anext__(self) -> bytes:
        """The next message; ends after a normal close, raises after an abnormal one."""
        frames = self._frames
        while not frames:
            if self._lost.done():
                exc = self._protocol.close_exc
                if isinstance(exc, ConnectionClosedOK):
                    raise StopAsyncIteration
                raise exc
            await self._wait()
        return frames.popleft()

    async def run(self, handler: Callable[[bytes], None]) -> None:
        """Hand every message to ``handler`` as it arrives, until the connection closes.

        ``handler`` runs inside ``data_received``, so a frame costs no task switch; it must
        not block. Returns after a normal close; raises what ``handler`` raised (it then gets
        no more messages) or, after an abnormal close, the close.
        """
        if self._handler is not None or self._waiter is not None:
            raise RuntimeError("this connection already has a consumer")
        frames = self._frames
        while frames:
            handler(frames.popleft())
        if self._lost.done():
            self._raise_if_abnormal()
            return
        done = asyncio.get_running_loop().create_future()
        self._handler, self._done = handler, done
        try:
            await done
        finally:
            self._handler = self._done = None

    async def close(self) -> None:
        """The close handshake: a close frame, the server's answer, then the end of TCP."""
        protocol = self._protocol
        if protocol.state is OPEN:
            protocol.send_close(CloseCode.NORMAL_CLOSURE)
            self._flush()
        if not self._lost.done():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await asyncio.shield(self._lost)
        if not self._lost.done():
            self.abort()
            await asyncio.shield(self._lost)

    def abort(self) -> None:
        """Drop the TCP connection at once (a failed handshake, a close that timed out)."""
        if self._transport is not None:
            self._transport.abort()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        protocol = self._protocol
        protocol.send_request(protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        protocol = self._protocol
        protocol.receive_data(data)
        events = protocol.events_received()
        self._flush()  # pongs, the echo of a close, the end of the stream
        queued = False
        for event in events:
            if not isinstance(event, Frame):  # the upgrade's response: the first event
                if not self.opened.done():
                    if protocol.handshake_exc is None:
                        self.opened.set_result(None)
                    else:
                        self.opened.set_exception(protocol.handshake_exc)
                continue
            opcode = event.opcode
            if opcode is _BINARY or opcode is _CONT:
                if event.fin and not self._fragments:
                    message = bytes(event.data)
                else:
                    self._fragments.append(bytes(event.data))
                    if not event.fin:
                        continue
                    message = b"".join(self._fragments)
                    self._fragments.clear()
                handler = self._handler
                if handler is None:
                    self._frames.append(message)
                    queued = True
                else:
                    try:
                        handler(message)
                    except Exception as exc:
                        self._handler = None
                        if self._done is not None and not self._done.done():
                            self._done.set_exception(exc)
            elif opcode is _TEXT:
                protocol.fail(CloseCode.UNSUPPORTED_DATA, "binary messages only")
                self._flush()
                break
            # PING, PONG and CLOSE: the sans-I/O layer has answered them already.
        if queued:
            self._wake()

    def eof_received(self) -> None:
        self._protocol.receive_eof()
        self._flush()  # our half-close, once the server has closed its side

    def connection_lost(self, exc: Exception | None) -> None:
        protocol = self._protocol
        protocol.receive_eof()  # idempotent; the state is CLOSED from here on
        protocol.data_to_send()  # nothing can be written any more
        if not self.opened.done():
            self.opened.set_exception(protocol.handshake_exc or ConnectionError("connection lost"))
        self._lost.set_result(None)
        self._wake()
        done = self._done
        if done is not None and not done.done():
            close = protocol.close_exc
            if isinstance(close, ConnectionClosedOK):
                done.set_result(None)
            else:
                done.set_exception(close)
        self.resume_writing()

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        if self._resumed is not None:
            if not self._resumed.done():
                self._resumed.set_result(None)
            self._resumed = None

    # -- inside ---------------------------------------------------------------------------

    def _flush(self) -> None:
        transport = self._transport
        assert transport is not None
        for chunk in self._protocol.data_to_send():
            if chunk:
                transport.write(chunk)
            elif transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()

    async def _wait(self) -> None:
        if self._waiter is not None or self._handler is not None:
            raise RuntimeError("this connection already has a consumer")
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _raise_if_abnormal(self) -> None:
        close = self._protocol.close_exc
        if not isinstance(close, ConnectionClosedOK):
            raise close
