"""How relay frames travel: the :class:`Transport` seam and its two implementations.

A transport moves whole frames (docs/protocol.md §14: every frame is exactly
:data:`~burnerkit.relay.protocol.FRAME_SIZE` bytes) and knows nothing of what they
carry. :class:`WebSocketTransport` is the real one; :class:`MemoryTransport` is an
in-memory reference implementation with the same behaviour on failure, so that the
client's tests need no socket.

Failure contract, for every implementation: once the connection is gone, ``send`` and
``recv`` raise :class:`~burnerkit.errors.RelayUnavailableError` (or
:class:`~burnerkit.errors.RelayTimeoutError` for a connect that took too long), and
nothing else. The websockets library, ``OSError`` and timeouts are translated in one
place, :func:`map_exceptions` (httpx ``map_httpcore_exceptions``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol

import websockets.exceptions
from websockets.asyncio.client import ClientConnection, connect
from websockets.uri import parse_uri

from burnerkit.errors import RelayError, RelayTimeoutError, RelayUnavailableError

from .protocol import FRAME_SIZE

__all__ = ["MemoryTransport", "Transport", "WebSocketTransport", "check_url", "map_exceptions"]

#: Most specific first: ``TimeoutError`` is an ``OSError`` and must be matched before it.
#: Messages are fixed facts; the original exception, which may name the host, stays in
#: ``__cause__`` for whoever debugs, not in text the app might log or show.
_MAPPING: Final[tuple[tuple[type[BaseException], type[RelayError], str], ...]] = (
    (TimeoutError, RelayTimeoutError, "relay did not answer in time"),
    (websockets.exceptions.ConnectionClosed, RelayUnavailableError, "relay connection closed"),
    (websockets.exceptions.InvalidHandshake, RelayUnavailableError, "relay refused the websocket handshake"),
    (websockets.exceptions.WebSocketException, RelayUnavailableError, "relay websocket failed"),
    (OSError, RelayUnavailableError, "relay unreachable"),
    (EOFError, RelayUnavailableError, "relay connection closed"),
)


@contextmanager
def map_exceptions() -> Iterator[None]:
    """Translate websockets, ``OSError`` and timeout exceptions into the relay errors.

    The one boundary where foreign exceptions become ours; the original is kept as
    ``__cause__``. Anything not in the table (a ``ValueError`` from misuse, a
    cancellation) passes through untouched.

    Raises:
        RelayTimeoutError: for a ``TimeoutError``.
        RelayUnavailableError: for a websockets error, an ``OSError`` or an ``EOFError``.
    """
    try:
        yield
    except RelayError:
        raise
    except Exception as exc:
        for foreign, mapped, message in _MAPPING:
            if isinstance(exc, foreign):
                raise mapped(f"{message} ({type(exc).__name__})") from exc
        raise


def check_url(url: str, *, ssl: ssl_module.SSLContext | None = None) -> None:
    """Refuse a relay URL :meth:`WebSocketTransport.connect` could never use.

    Raises:
        ValueError: unless ``url`` is a valid ``ws://`` or ``wss://`` URL, or if ``ssl``
            is given with a ``ws://`` URL.
    """
    try:
        parsed = parse_uri(url)
    except websockets.exceptions.InvalidURI as exc:
        raise ValueError("relay url must be a ws:// or wss:// url") from exc
    if ssl is not None and not parsed.secure:
        raise ValueError("ssl settings need a wss:// relay url")


class Transport(Protocol):
    """A bidirectional pipe of whole frames to one relay."""

    async def send(self, frame: bytes) -> None:
        """Send one frame.

        Raises:
            RelayUnavailableError: if the connection is gone.
        """
        ...

    async def recv(self) -> bytes:
        """Wait for the next frame.

        Raises:
            RelayUnavailableError: if the connection is gone.
        """
        ...

    async def close(self) -> None:
        """Close the connection; closing twice is harmless. Never raises."""
        ...


class WebSocketTransport:
    """Frames as binary WebSocket messages (the ``websockets`` asyncio client)."""

    __slots__ = ("_ws",)

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        ssl: ssl_module.SSLContext | None = None,
        open_timeout: float = 10.0,
    ) -> WebSocketTransport:
        """Open a WebSocket to ``url`` (``ws://`` or ``wss://``).

        Compression is off (frames are ciphertext and padding; compressing them would
        only leak their content length) and the largest message accepted is one frame.

        Args:
            url: the relay's address.
            ssl: TLS settings for ``wss://``; the system defaults when None.
            open_timeout: seconds allowed for TCP, TLS and the WebSocket handshake.

        Raises:
            RelayUnavailableError: if the relay cannot be reached or refuses.
            RelayTimeoutError: if the handshake takes longer than ``open_timeout``.
            ValueError: as :func:`check_url`.
        """
        # websockets treats an explicit ssl=None on wss:// as an error, so we pass it
        # only when we have one; it then builds the default context itself.
        check_url(url, ssl=ssl)
        extra: dict[str, Any] = {} if ssl is None else {"ssl": ssl}
        with map_exceptions():
            ws = await connect(
                url,
                open_timeout=open_timeout,
                max_size=FRAME_SIZE,
                compression=None,
                # WebSocket pings are small frames whose size shows through TLS; the
                # protocol's own PING travels in a full frame instead.
                ping_interval=None,
                **extra,
            )
        return cls(ws)

    async def send(self, frame: bytes) -> None:
        """Send one frame as a binary message.

        Raises:
            RelayUnavailableError: if the connection is gone.
        """
        with map_exceptions():
            await self._ws.send(frame)

    async def recv(self) -> bytes:
        """Wait for the next message; a text message comes back as its bytes.

        Raises:
            RelayUnavailableError: if the connection is gone or the relay broke the
                WebSocket protocol (an oversize message included).
        """
        with map_exceptions():
            return await self._ws.recv(decode=False)

    async def close(self) -> None:
        """Close the WebSocket; errors while closing are ignored."""
        with contextlib.suppress(RelayError), map_exceptions():
            await self._ws.close()

    def __repr__(self) -> str:
        return "WebSocketTransport()"


class _Link:
    """The shared state of one memory connection: a queue per direction."""

    __slots__ = ("closed", "queues")

    def __init__(self) -> None:
        self.closed = False
        self.queues: tuple[asyncio.Queue[bytes | None], asyncio.Queue[bytes | None]] = (
            asyncio.Queue(),
            asyncio.Queue(),
        )

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for queue in self.queues:
                queue.put_nowait(None)  # wakes a reader blocked in recv


class MemoryTransport:
    """One end of an in-memory connection; make both ends with :meth:`pair`.

    Behaves like :class:`WebSocketTransport` where it matters: frames arrive whole and
    in order; a frame larger than ``max_size`` breaks the connection (as a WebSocket
    peer closes with 1009); after either end closes, both ends' ``send`` and ``recv``
    raise :class:`~burnerkit.errors.RelayUnavailableError`, frames still in flight
    included.
    """

    __slots__ = ("_inbox", "_link", "_max_size", "_outbox")

    def __init__(self, link: _Link, side: int, max_size: int) -> None:
        self._link = link
        self._inbox = link.queues[side]
        self._outbox = link.queues[1 - side]
        self._max_size = max_size

    @classmethod
    def pair(cls, *, max_size: int = FRAME_SIZE) -> tuple[MemoryTransport, MemoryTransport]:
        """Two connected ends: ``(client_side, server_side)``."""
        link = _Link()
        return cls(link, 0, max_size), cls(link, 1, max_size)

    @property
    def closed(self) -> bool:
        """Whether the connection is gone (either end closed it)."""
        return self._link.closed

    async def send(self, frame: bytes) -> None:
        """Queue one frame for the other end.

        Raises:
            RelayUnavailableError: if the connection is gone or the frame is too large.
        """
        if self._link.closed:
            raise RelayUnavailableError("relay connection closed")
        if len(frame) > self._max_size:
            self._link.close()
            raise RelayUnavailableError("relay connection closed (message too big)")
        self._outbox.put_nowait(bytes(frame))

    async def recv(self) -> bytes:
        """Wait for the next frame from the other end.

        Raises:
            RelayUnavailableError: if the connection is gone.
        """
        if self._link.closed:
            raise RelayUnavailableError("relay connection closed")
        frame = await self._inbox.get()
        if frame is None or self._link.closed:
            raise RelayUnavailableError("relay connection closed")
        return frame

    async def close(self) -> None:
        """Close both ends."""
        self._link.close()

    def __repr__(self) -> str:
        return f"MemoryTransport(closed={self._link.closed})"
