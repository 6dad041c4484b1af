"""One WebSocket connection of the relay, as an asyncio protocol over websockets' sans-I/O layer.

docs/protocol.md §14.1 (transport). Why not ``websockets.asyncio.server``: it hands each
frame to a reader task through a queue and sends each one under an async lock, a cost
per frame we do not need. Here the frames go straight from ``data_received`` to the server's
handler, synchronously, and its answers straight into the transport; the protocol
rules (the HTTP upgrade, masking, fragments, ping and close handshakes, the size limit)
stay websockets', through :class:`websockets.server.ServerProtocol`.

Theory of operation
-------------------
A :class:`Link` starts ``CONNECTING``: it waits (at most ``open_timeout``) for the HTTP
upgrade request, asks the handler whether to admit it (else answers 503) and, once it
has answered 101, tells the handler :meth:`LinkHandler.link_opened`. Every complete
message then goes to :meth:`LinkHandler.link_received` in the order it arrived.

Input stops ("paused") for as long as any of its reasons holds: the transport's write
buffer is above its high mark (a peer that does not read its answers gets no more
commands run), or the handler asked (:meth:`Link.pause`, for a connection with too many
commands in flight). Messages that were already in the bytes read when input paused
wait in a backlog and go to the handler, in order, once every reason is gone.

The common frame, a whole masked binary message, is parsed here, by offsets ("fast
mode"), not by websockets' general parser. Fast mode starts
once the upgrade is done with nothing of a frame left in the sans-I/O parser, and ends
for good at the first frame of any other kind (a fragment, a control frame, a length
beyond ``max_size``): from its first byte on, the stream goes to the sans-I/O layer,
which then sees every byte to the end, from a frame boundary.

Output: :meth:`Link.send` queues a frame, and every frame queued during one turn of
the event loop goes out in one write at the end of it (one system call for all the
answers and deliveries of a turn, not one each; one :class:`Outbox` callback writes
every link's); asyncio's transport buffers what the socket does not take. Our frames
are unmasked binary messages, so we write their header ourselves; the sans-I/O layer's
own output (pong, close) follows the frames queued before it. :meth:`Link.send` raises
:class:`LinkClosed` once the connection is closing.

TLS (``wss://``): the link runs it too, with ``ssl.SSLContext.wrap_bio`` over two memory
buffers, on a plain TCP transport: bytes in are decrypted before anything above sees them,
and everything written is encrypted on its way out. asyncio's own TLS transport would keep
a large read buffer per connection for as long as it lives (see :meth:`Link._tls_received`).

Closing: a close frame from the peer is answered by the sans-I/O layer; we then close
the TCP connection after the peer's, or after ``close_timeout``. :meth:`Link.close`
starts the closing handshake from our side. :meth:`LinkHandler.link_closed` is called
once, when the TCP connection is gone (and only for a link that was opened).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
import ssl
from collections import deque
from typing import Final, Protocol

from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

try:  # the C version websockets ships; the pure Python one where it did not build
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover
    from websockets.utils import apply_mask

__all__ = ["Link", "LinkClosed", "LinkHandler", "Outbox", "Pause"]

#: websockets' own logger would write peer addresses and request lines; ours is a
#: detached, disabled logger, so nothing of it reaches any handler.
_SILENT: Final = logging.Logger("burnerkit.relay.websockets")
_SILENT.disabled = True

#: TCP keepalive finds peers that vanished without a FIN. We do not use WebSocket pings
#: for that: a ping is a small frame of its own size, and every frame of ours is one size.
_KEEPALIVE: Final = (("TCP_KEEPIDLE", 120), ("TCP_KEEPINTVL", 30), ("TCP_KEEPCNT", 4))

#: Bytes of plaintext read from TLS per call: a frame and its header, with room to spare.
_TLS_READ: Final = 2 * 16_384

_DATA: Final = (Opcode.BINARY, Opcode.TEXT)
#: First two bytes of the frame fast mode parses: FIN and BINARY; MASK and a 16-bit length.
_FAST_B0: Final = 0x82
_FAST_B1: Final = 0x80 | 126
#: Header of an unmasked binary message (FIN and BINARY), by payload length.
_B0: Final = 0x82


class LinkClosed(Exception):
    """The connection is closing or closed: the frame was not sent.

    Internal to the relay server; never leaves it.
    """


class Pause(enum.IntFlag):
    """Why a link reads no input (any of them)."""

    WRITING = 1  #: the peer does not take its answers fast enough
    INFLIGHT = 2  #: the handler has enough of this connection's commands running
    STOPPING = 4  #: the relay is stopping: no command is read before its close is sent


class LinkHandler(Protocol):
    """What the relay server does with its links."""

    def link_admit(self) -> bool:
        """Whether to accept one more connection (else it gets HTTP 503)."""
        ...

    def link_opened(self, link: Link) -> None:
        """The upgrade is done; the link may send and will receive."""
        ...

    def link_received(self, link: Link, data: bytes | str) -> None:
        """One complete message (a text message arrives as ``str``)."""
        ...

    def link_closed(self, link: Link) -> None:
        """The TCP connection of an opened link is gone."""
        ...


# Holds up relay_vs_ws_echo: a write per frame, at once, costs the relay more per message.
class Outbox:
    """The links that queued frames in this turn of the loop, written by one callback after it.

    Links share one (the relay's), so a turn costs the loop one handle, not one per link.
    """

    __slots__ = ("_links", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._links: list[Link] = []

    def add(self, link: Link) -> None:
        """``link`` queued its first frame of this turn."""
        if not self._links:
            self._loop.call_soon(self._write)
        self._links.append(link)

    def _write(self) -> None:
        links, self._links = self._links, []
        for link in links:
            try:
                link._write_pending()
            except Exception as exc:  # a bug: the other links still get their frames out
                self._loop.call_exception_handler({"message": "link write failed", "exception": exc})


class Link(asyncio.Protocol):
    """One connection; created by the loop's ``create_server`` for each accepted socket."""

    __slots__ = (
        "_backlog",
        "_buffer",
        "_close_timer",
        "_fast",
        "_fast_ended",
        "_fragments",
        "_handler",
        "_loop",
        "_max_size",
        "_open_timer",
        "_opened",
        "_outbox",
        "_paused",
        "_pending",
        "_tls",
        "_tls_context",
        "_tls_in",
        "_tls_out",
        "_transport",
        "_write_limit",
        "_ws",
        "close_timeout",
        "closed",
        "context",
        "open_timeout",
    )

    def __init__(
        self,
        handler: LinkHandler,
        *,
        max_size: int,
        write_limit: int,
        open_timeout: float,
        close_timeout: float,
        outbox: Outbox,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._handler = handler
        self._loop = asyncio.get_running_loop()
        #: writes this link's frames of a turn after it (shared with the server's other links)
        self._outbox = outbox
        self._ws = ServerProtocol(max_size=max_size, logger=_SILENT)
        self._max_size = max_size
        #: fast mode (see the module docstring), and the bytes of a frame it has in part
        self._fast = False
        self._fast_ended = False
        self._buffer = b""
        #: frames (header, payload, ...) queued in this turn of the loop
        self._pending: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        #: TLS, when the relay serves wss://: our own TLS object over memory buffers (see _tls_received)
        self._tls_context = tls
        self._tls: ssl.SSLObject | None = None
        self._tls_in: ssl.MemoryBIO | None = None
        self._tls_out: ssl.MemoryBIO | None = None
        self._write_limit = write_limit
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self._open_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._paused = Pause(0)  #: the reasons that hold
        self._backlog: deque[bytes | str] = deque()
        #: the frames of a fragmented message so far (None between messages)
        self._fragments: list[Frame] | None = None
        self._opened = False
        #: resolved once the TCP connection is gone
        self.closed: asyncio.Future[None] = self._loop.create_future()
        #: the handler's own state for this connection
        self.context: object = None

    # -- for the handler ------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Send one binary message (written with the rest of this turn's output, after it).

        Raises:
            LinkClosed: if the connection is closing or closed.
        """
        if self._ws.state is not State.OPEN or self._transport is None:
            raise LinkClosed
        pending = self._pending
        if not pending:
            self._outbox.add(self)
        pending.append(_header(len(frame)))
        pending.append(frame)

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (no-op if one has started)."""
        if self._ws.state is State.OPEN:
            self._ws.send_close(code, reason)
            self._flush()
            self._expect_close()

    def abort(self) -> None:
        """Cut the TCP connection at once."""
        if self._transport is not None:
            self._transport.abort()

    def pause(self, reason: Pause) -> None:
        """Stop reading input for ``reason`` (in addition to any other)."""
        if not self._paused and self._transport is not None:
            with contextlib.suppress(RuntimeError):  # the transport is closing
                self._transport.pause_reading()
        self._paused |= reason

    def resume(self, reason: Pause) -> None:
        """``reason`` no longer holds: read again once no other does."""
        if not self._paused & reason:
            return
        self._paused &= ~reason
        self._drain_backlog()
        if not self._paused and self._transport is not None:
            with contextlib.suppress(RuntimeError):
                self._transport.resume_reading()

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # noqa: D102
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=self._write_limit)
        _keepalive(transport)
        if self._tls_context is not None:
            self._tls_in, self._tls_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            self._tls = self._tls_context.wrap_bio(self._tls_in, self._tls_out, server_side=True)
        self._open_timer = self._loop.call_later(self.open_timeout, self._open_expired)

    def data_received(self, data: bytes) -> None:  # noqa: D102
        if self._tls is not None:
            self._tls_received(data)
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
        if self._fast:
            self._read_fast(data)
        else:
            self._read(data)

    def _read(self, data: bytes) -> None:
        """Feed the sans-I/O layer (the upgrade, and everything after fast mode ends)."""
        ws = self._ws
        ws.receive_data(data)
        events = ws.events_received()
        self._flush()
        if ws.close_expected():
            self._expect_close()
        for event in events:
            if isinstance(event, Frame):
                self._frame(event)
            elif isinstance(event, Request):
                self._request(event)
        if (
            self._opened
            and ws.state is State.OPEN
            and self._fragments is None
            and not ws.close_expected()
            and not getattr(getattr(ws, "reader", None), "buffer", b"?")
            and not self._fast_ended
        ):
            self._fast = True

    def _read_fast(self, data: bytes) -> None:
        """Parse whole masked binary frames by offsets; hand anything else to _read, for good."""
        # Holds up relay_vs_ws_echo and relay_idle_conn_kib: the general parser for each frame costs both.
        buf = self._buffer + data if self._buffer else data
        end = len(buf)
        at = 0
        with memoryview(buf) as view:
            while end - at >= 2:
                if buf[at] != _FAST_B0 or buf[at + 1] != _FAST_B1:
                    break
                if end - at < 4:
                    self._buffer = buf[at:]
                    return
                length = (buf[at + 2] << 8) | buf[at + 3]
                if length > self._max_size or length < 126:
                    break
                stop = at + 8 + length
                if stop > end:
                    self._buffer = buf[at:]
                    return
                payload = apply_mask(view[at + 8 : stop], buf[at + 4 : at + 8])
                at = stop
                self._deliver(payload)
                if not self._fast or self._transport is None:
                    return  # closed meanwhile: what is left is not read
            else:
                self._buffer = buf[at:] if at < end else b""
                return
        # Not a frame of ours: from here on, the sans-I/O layer reads the stream.
        self._fast = False
        self._fast_ended = True
        self._buffer = b""
        self._read(buf[at:])

    def _tls_received(self, data: bytes) -> None:
        """Decrypt what came in, and go on with the plaintext.

        Not asyncio's TLS transport: it keeps a 256 KiB read buffer for as long as each
        connection lives (shrinking it took a patch of asyncio's internals); here the
        plaintext is read in pieces that live only as long as this call. This holds up the
        memory per idle TLS connection (docs/performance.md, the relay's memory text).
        """
        tls, incoming = self._tls, self._tls_in
        assert tls is not None
        assert incoming is not None
        incoming.write(data)
        chunks: list[bytes] = []
        ended = False
        try:
            while True:
                chunk = tls.read(_TLS_READ)
                if not chunk:
                    ended = True
                    break
                chunks.append(chunk)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass
        except ssl.SSLZeroReturnError:
            ended = True
        except (ssl.SSLError, ValueError, OSError):
            # A failed handshake or a corrupt record: nothing of it reaches the handler.
            self._tls_write(b"")  # the alert, if TLS has one to send
            if self._transport is not None:
                self._transport.close()
            return
        self._tls_write(b"")
        if chunks:
            self._received(b"".join(chunks) if len(chunks) > 1 else chunks[0])
        if ended and self._transport is not None:
            self.eof_received()
            self._close_transport()

    def _tls_write(self, data: bytes) -> None:
        """Encrypt ``data`` (and flush whatever TLS itself has to say) onto the TCP connection."""
        tls, outgoing, transport = self._tls, self._tls_out, self._transport
        assert tls is not None
        assert outgoing is not None
        if data:
            tls.write(data)
        if outgoing.pending and transport is not None:
            transport.write(outgoing.read())

    def _write(self, data: bytes) -> None:
        if self._tls is not None:
            self._tls_write(data)
        elif self._transport is not None:
            self._transport.write(data)

    def _close_transport(self) -> None:
        """Close our side: after TLS's close_notify, or the TCP connection as it is."""
        transport = self._transport
        if transport is None:
            return
        if self._tls is not None:
            with contextlib.suppress(ssl.SSLError, ValueError, OSError):
                self._tls.unwrap()
            self._tls_write(b"")
        transport.close()

    def eof_received(self) -> bool | None:  # noqa: D102
        self._fast = False
        self._buffer = b""
        self._ws.receive_eof()
        self._ws.events_received()
        self._flush()
        return None  # close our side too: the peer can no longer finish a close handshake

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        self._ws.receive_eof()  # idempotent; the state is now CLOSED
        for timer in (self._open_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        self._open_timer = self._close_timer = None
        self._backlog.clear()
        self._fragments = None
        self._pending.clear()
        self._fast = False
        self._buffer = b""
        opened, self._opened = self._opened, False
        self._transport = None
        self._tls = self._tls_in = self._tls_out = None
        if not self.closed.done():
            self.closed.set_result(None)
        if opened:
            self._handler.link_closed(self)

    def pause_writing(self) -> None:  # noqa: D102
        self.pause(Pause.WRITING)

    def resume_writing(self) -> None:  # noqa: D102
        self.resume(Pause.WRITING)

    # -- internals ------------------------------------------------------------------------

    def _request(self, request: Request) -> None:
        ws = self._ws
        if self._open_timer is not None:
            self._open_timer.cancel()
            self._open_timer = None
        response = ws.accept(request) if self._handler.link_admit() else ws.reject(503, "relay busy\n")
        ws.send_response(response)
        self._flush()
        if ws.state is State.OPEN:
            self._opened = True
            self._handler.link_opened(self)
        else:
            self._expect_close()

    def _frame(self, frame: Frame) -> None:
        if frame.opcode in _DATA:
            if frame.fin:
                data = bytes(frame.data) if not isinstance(frame.data, bytes) else frame.data
                self._deliver(data if frame.opcode is Opcode.BINARY else _text(data))
                return
            self._fragments = [frame]
        elif frame.opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(frame)
            if frame.fin:
                first = self._fragments[0]
                data = b"".join(part.data for part in self._fragments)
                self._fragments = None
                self._deliver(data if first.opcode is Opcode.BINARY else _text(data))
        # PING, PONG and CLOSE are answered by the sans-I/O layer itself.

    def _deliver(self, data: bytes | str) -> None:
        if self._paused or self._backlog:
            self._backlog.append(data)
            return
        self._handler.link_received(self, data)

    def _drain_backlog(self) -> None:
        while self._backlog and not self._paused and self._ws.state is State.OPEN:
            self._handler.link_received(self, self._backlog.popleft())
        if self._ws.state is not State.OPEN:
            self._backlog.clear()

    def _write_pending(self) -> None:
        """Write the frames queued in this turn (called by the outbox, or before other output)."""
        if self._pending and self._transport is not None:
            self._write(b"".join(self._pending))
        self._pending.clear()

    def _flush(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._pending:
            self._write_pending()  # our frames first: they were queued before this output
        for data in self._ws.data_to_send():
            if data:
                self._write(data)
            elif self._tls is None and transport.can_write_eof():
                with contextlib.suppress(Exception):  # OSError, or RuntimeError if closing
                    transport.write_eof()
            else:
                self._close_transport()  # TLS: no half-close

    def _expect_close(self) -> None:
        if self._close_timer is None and self._transport is not None:
            loop = asyncio.get_running_loop()
            self._close_timer = loop.call_later(self.close_timeout, self.abort)

    def _open_expired(self) -> None:
        self._open_timer = None
        if self._ws.state is State.CONNECTING:
            self.abort()


def _header(length: int) -> bytes:
    """RFC 6455 §5.2 header of an unmasked binary message of ``length`` bytes."""
    if length < 126:
        return bytes((_B0, length))
    if length < 1 << 16:
        return bytes((_B0, 126)) + length.to_bytes(2, "big")
    return bytes((_B0, 127)) + length.to_bytes(8, "big")


def _text(data: bytes) -> str:
    # Our protocol has no text messages: the handler only needs to know it got one.
    return data.decode("utf-8", errors="replace")


def _keepalive(transport: asyncio.Transport) -> None:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE:
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)
