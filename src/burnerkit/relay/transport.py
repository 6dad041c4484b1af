"""How relay frames travel: the :class:`Transport` seam and its two implementations.

A transport moves whole frames (docs/protocol.md §14: every frame is exactly
:data:`~burnerkit.relay.protocol.FRAME_SIZE` bytes) and knows nothing of what they
carry. :class:`WebSocketTransport` is the real one; :class:`MemoryTransport` is an
in-memory reference implementation with the same behaviour on failure, for peers that
need no socket (the scripted relays of the client's tests).

Failure contract, for every implementation: once the connection is gone, ``send`` and
``recv`` raise :class:`~burnerkit.errors.RelayUnavailableError`, and nothing else. The
websockets library, ``OSError`` and timeouts are translated at two boundaries: a connect
that fails becomes a ``RelayUnavailableError`` naming the URL and the cause
(:func:`connect_cause`, docs/protocol.md §14.13); a failure on an open connection goes
through :func:`map_exceptions` (httpx ``map_httpcore_exceptions``).

A ``wss://`` URL with a ``#sha256=`` pin is verified by the pin alone: no CA, no host
name, and an exact compare of the leaf certificate's SHA-256 as soon as the TLS handshake
is done, before the WebSocket handshake sends a byte (§14.13).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hmac
import socket
import ssl as ssl_module
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final, Protocol, cast

import websockets.exceptions
from websockets.asyncio.client import ClientConnection, connect

from burnerkit.crypto.certs import fingerprint
from burnerkit.errors import RelayError, RelayTimeoutError, RelayUnavailableError, UsageError

from .protocol import FRAME_SIZE
from .url import RelayUrl, check_relay_url

__all__ = [
    "CONNECT_TIMEOUT",
    "PIN_MISMATCH",
    "MemoryTransport",
    "Transport",
    "WebSocketTransport",
    "connect_cause",
    "map_exceptions",
    "parse_url",
]

#: Seconds a connect may take (TCP, TLS, WebSocket handshake), apart from a command's own
#: time limit: "unreachable" must come quickly, and a reachable relay answers in well under it.
CONNECT_TIMEOUT: Final = 3.0
#: The cause given when a pinned relay shows another certificate.
PIN_MISMATCH: Final = "TLS: certificate does not match the pinned fingerprint"
#: OpenSSL verification codes (``X509_V_ERR_*``) and the plain words we show for them.
_TLS_REASONS: Final = {
    9: "certificate not yet valid",
    10: "certificate expired",
    18: "self-signed certificate; pin it with #sha256= in the url",
    19: "self-signed certificate in the chain",
    20: "certificate of an unknown issuer",
    21: "certificate of an unknown issuer",
    62: "certificate name mismatch",
    64: "certificate name mismatch",
}

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


def parse_url(url: str, *, ssl: ssl_module.SSLContext | None = None) -> RelayUrl:
    """Check a relay URL :meth:`WebSocketTransport.connect` is handed (syntax and pin only).

    Whether a ``ws://`` URL may leave this machine is the app's decision, made where the
    URL comes from a person (:func:`~burnerkit.relay.url.check_relay_url` with ``insecure``);
    here any well-formed URL goes.

    Raises:
        ValueError: unless ``url`` is a valid relay URL (§14.13), or if ``ssl`` is given
            with a ``ws://`` URL or with a pinned one (a pin brings its own check).
    """
    try:
        relay = check_relay_url(url, insecure=True)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    if ssl is not None and not relay.secure:
        raise ValueError("ssl settings need a wss:// relay url")
    if ssl is not None and relay.pin is not None:
        raise ValueError("a pinned relay url brings its own certificate check: give no ssl settings")
    return relay


def connect_cause(exc: BaseException) -> str | None:
    """Why a connect failed, in the words of §14.13; None for an exception that is not a network failure.

    Each phrase is a fixed fact (the host and port are in the URL the error names).
    """
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        reason = _TLS_REASONS.get(exc.verify_code, exc.verify_message or "certificate not trusted")
        return f"TLS: {reason}"
    if isinstance(exc, ssl_module.SSLError):
        return f"TLS: handshake failed ({(exc.reason or 'unknown reason').lower().replace('_', ' ')})"
    if isinstance(exc, socket.gaierror):
        return "DNS lookup failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, websockets.exceptions.InvalidStatus):
        return f"not a relay: HTTP {exc.response.status_code} instead of a websocket"
    if isinstance(exc, websockets.exceptions.InvalidMessage) and isinstance(exc.__cause__, EOFError):
        return "connection closed"
    if isinstance(exc, websockets.exceptions.InvalidHandshake):
        return "not a relay: the websocket handshake failed"
    if isinstance(exc, websockets.exceptions.ConnectionClosed | EOFError | ConnectionError):
        return "connection closed"
    if isinstance(exc, OSError):
        # Python 3.11's create_connection folds the failures of several addresses (a name
        # with an IPv6 and an IPv4 address) into one OSError without an errno.
        text = str(exc)
        if exc.errno is None and text.startswith("Multiple exceptions:"):
            refused = f"[Errno {errno.ECONNREFUSED}]"
            parts = text.split(", [Errno")
            if all(refused in part or part.startswith(f" {errno.ECONNREFUSED}]") for part in parts):
                return "connection refused"
            return "connection failed"
        return (exc.strerror or "network error").lower()
    return None


def _pin_context() -> ssl_module.SSLContext:
    """TLS without CA or name checks: the pin, compared after the handshake, replaces both."""
    context = ssl_module.SSLContext(ssl_module.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl_module.CERT_NONE
    context.minimum_version = ssl_module.TLSVersion.TLSv1_2
    return context


class _PinVerdict:
    """Whether the certificate a pinned connection met was refused (set by the connection)."""

    __slots__ = ("refused",)

    def __init__(self) -> None:
        self.refused = False


def _pinned_connection(pin: bytes, verdict: _PinVerdict) -> type[ClientConnection]:
    """A connection class that checks the pin the moment TLS is up, before any byte is sent."""

    class PinnedConnection(ClientConnection):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            ssl_object = transport.get_extra_info("ssl_object")
            der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
            if der is None or not hmac.compare_digest(fingerprint(der), pin):
                verdict.refused = True
                # Abort, not close: nothing, not even the HTTP upgrade, goes to a relay
                # that is not the one pinned.
                cast(asyncio.Transport, transport).abort()

    return PinnedConnection


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
        open_timeout: float = CONNECT_TIMEOUT,
    ) -> WebSocketTransport:
        """Open a WebSocket to ``url`` (``ws://`` or ``wss://``, perhaps pinned).

        Compression is off (frames are ciphertext and padding; compressing them would
        only leak their content length) and the largest message accepted is one frame.
        The handshake carries only what RFC 6455 needs (no ``User-Agent``, no ``Origin``,
        no extension offer): docs/protocol.md §14.13a.

        Args:
            url: the relay's address; a ``#sha256=`` pin replaces CA verification.
            ssl: TLS settings for an unpinned ``wss://``; the system defaults (which
                honour ``SSL_CERT_FILE``) when None.
            open_timeout: seconds allowed for TCP, TLS and the WebSocket handshake.

        Raises:
            RelayUnavailableError: the relay cannot be reached; ``url`` and ``cause`` say
                which and why (refused, DNS, TLS, timed out, closed, not a relay).
            ValueError: as :func:`parse_url`.
        """
        relay = parse_url(url, ssl=ssl)
        verdict = _PinVerdict()
        extra: dict[str, Any] = {}
        if relay.pin is not None:
            extra = {"ssl": _pin_context(), "create_connection": _pinned_connection(relay.pin, verdict)}
        elif ssl is not None:
            # websockets treats an explicit ssl=None on wss:// as an error, so we pass it
            # only when we have one; it then builds the default context itself.
            extra = {"ssl": ssl}
        try:
            ws = await connect(
                relay.address,
                open_timeout=open_timeout,
                max_size=FRAME_SIZE,
                compression=None,
                # WebSocket pings are small frames whose size shows through TLS; the
                # protocol's own PING travels in a full frame instead.
                ping_interval=None,
                # websockets would send "User-Agent: Python/3.x websockets/N": a header
                # that tells the relay, and a tap on ws://, which client this is (§14.13a).
                user_agent_header=None,
                **extra,
            )
        except Exception as exc:
            cause = PIN_MISMATCH if verdict.refused else connect_cause(exc)
            if cause is None:
                raise
            raise RelayUnavailableError(url=relay.address, cause=cause) from exc
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
