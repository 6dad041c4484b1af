"""The relay client: queues, sends that survive reconnects, subscriptions and deliveries.

docs/protocol.md §14. An asyncio loop around the sans-IO :mod:`burnerkit.relay.protocol`;
the bytes travel over a :class:`~burnerkit.relay.transport.Transport`.

Theory of operation
-------------------
One background task, the supervisor, owns the connection: it connects, reads the
relay's ``HELLO`` (a fresh session value per connection), resumes, then reads frames
until the connection breaks, backs off, and starts again, until the client is closed.
Callers never touch the transport.

A command is a ``_Pending`` record: a random 24-byte corr_id, the command, the key
that signs it and a future. It is encoded at the moment it goes out, over the session
value of the connection it goes out on, so a command sent again after a reconnect is
signed again. The reader resolves futures by corr_id and turns pushed ``MSG`` and
``END`` into events on the deliveries queue.

When a connection breaks:

- a command that is safe to repeat (``SEND``, which carries its idempotency key
  ``send_id``; ``SUB``; ``ACK``) stays pending and goes out again on the next
  connection, with the same corr_id and the same ``send_id``;
- any other command (``NEW``, ``KEY``, ``DEL``) that was already sent fails with
  :class:`~burnerkit.errors.RelayUnavailableError`: we cannot know whether it took
  effect, and repeating it is not harmless (a second queue, an ``AUTH`` after a
  delete). One that had not gone out yet simply waits for the next connection;
- every active subscription is renewed with a ``SUB`` signed over the new session,
  before any other pending command goes out.

Retry rules
-----------
- Reconnect delay after the n-th failure in a row (n from 0): ``d = min(max,
  initial·2ⁿ)``, then a uniform pick in ``[d/2, d]`` ("equal jitter", so a fleet of
  burners does not reconnect in step). The count restarts once a connection has
  carried a frame after its ``HELLO``.
- ``ERR RATE`` and ``ERR INTERNAL`` mean the command had no effect: it is sent again,
  after the same backoff, for every command. Any other ``ERR`` is final and raises
  :class:`~burnerkit.errors.RelayRejectedError` with the relay's code.
- Each public call has one overall time limit (``timeout``, the client's default
  when None) that covers connecting, every retry and every reconnect.
- Each connect (TCP, TLS, WebSocket handshake and the relay's ``HELLO``) has its own,
  shorter limit (``connect_timeout``, 3 s). Until the client has had a first connection,
  a connect that fails fails every call waiting at once, with the URL and the cause
  (docs/protocol.md §14.13): a relay that refuses, a name that does not resolve or a
  certificate that does not verify will not change its mind within a call's time limit,
  and the person waiting should hear so in seconds. The supervisor keeps trying in the
  background; once connected, outages are ridden out as above.

Delivery is at least once: a message whose ``ACK`` was lost comes again, so callers
deduplicate by ``msg_id`` (or by the end-to-end sequence number).

Pairing mailboxes (§14.12) follow the same rules: ``MB_ALLOC`` and ``MB_JOIN`` are not
repeated after a lost connection (like ``NEW``); ``MB_PUT`` carries the index of our
message, so repeating it stores it once; every open mailbox is re-attached with
``MB_GET`` on a new connection, and the relay pushes the other side's messages again,
which we deduplicate by index. Each mailbox has its own inbox, apart from
:meth:`RelayClient.deliveries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ssl as ssl_module
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import (
    DecryptionError,
    RelayError,
    RelayRejectedError,
    RelayTimeoutError,
    RelayUnavailableError,
    RemoteProtocolError,
)

from .protocol import (
    CORR_ID_SIZE,
    MAILBOX_BODY_SIZE,
    MAX_BODY_SIZE,
    MSG_ID_SIZE,
    QUEUE_ID_SIZE,
    SEND_ID_SIZE,
    Ack,
    ClientCommand,
    Del,
    End,
    Err,
    ErrorCode,
    Hello,
    Ids,
    Key,
    MailboxEndReason,
    MbAlloc,
    MbDel,
    MbEnd,
    MbGet,
    MbJoin,
    MbMsg,
    MbOpen,
    MbPut,
    Msg,
    New,
    Ok,
    Ping,
    Pong,
    Send,
    ServerResponse,
    ServerTransmission,
    Sub,
    decode_server_frame,
    derive_ack_key,
    derive_queue_key,
    encode_client_frame,
    open_delivery,
    open_ids,
)
from .transport import CONNECT_TIMEOUT, Transport, WebSocketTransport, parse_url

__all__ = [
    "Mailbox",
    "MailboxEnded",
    "QueueCredentials",
    "ReceivedMessage",
    "RelayClient",
    "RelayEvent",
    "SubscriptionEnded",
    "TransportFactory",
    "UnreadableMessage",
    "check_relay",
]

#: Makes a fresh connection to the relay; raises only ``RelayError``.
TransportFactory = Callable[[], Awaitable[Transport]]

_PUSHED: Final = bytes(CORR_ID_SIZE)
#: Answers that mean "the command had no effect, try again later".
_TRANSIENT: Final = frozenset({ErrorCode.RATE, ErrorCode.INTERNAL})
_KEY_SIZE: Final = 32
_CREDENTIALS_VERSION: Final = 1
_CREDENTIALS_SIZE: Final = 1 + 2 * QUEUE_ID_SIZE + 2 * _KEY_SIZE
#: Backoff stops growing long before this; it only keeps 2**n a small number.
_MAX_DOUBLINGS: Final = 30


def _check_size(name: str, data: bytes, size: int) -> None:
    if len(data) != size:
        raise ValueError(f"{name} must be {size} bytes")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class QueueCredentials:
    """What the recipient of one queue must keep: both ids and both secrets.

    Give ``sender_id`` (and only that) to the peer who sends to this queue. The
    signing key proves ownership of the queue; ``queue_key`` opens what the relay
    delivers. Store it with :meth:`to_bytes` inside the vault: it is secret, and it
    links the two ids of the queue, which the relay is never told.
    """

    recipient_id: bytes
    sender_id: bytes
    recipient_key: SigningKey
    queue_key: bytes

    def __post_init__(self) -> None:
        _check_size("recipient_id", self.recipient_id, QUEUE_ID_SIZE)
        _check_size("sender_id", self.sender_id, QUEUE_ID_SIZE)
        _check_size("queue_key", self.queue_key, _KEY_SIZE)

    def to_bytes(self) -> bytes:
        """``version ‖ recipient id ‖ sender id ‖ signing key seed ‖ queue key`` (113 bytes)."""
        return (
            bytes([_CREDENTIALS_VERSION])
            + self.recipient_id
            + self.sender_id
            + self.recipient_key.private_bytes()
            + self.queue_key
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> QueueCredentials:
        """Load credentials written by :meth:`to_bytes`.

        Raises:
            ValueError: if ``data`` has the wrong length or an unknown version.
        """
        if len(data) != _CREDENTIALS_SIZE or data[0] != _CREDENTIALS_VERSION:
            raise ValueError("not queue credentials of a known version")
        ids_end = 1 + 2 * QUEUE_ID_SIZE
        return cls(
            recipient_id=bytes(data[1 : 1 + QUEUE_ID_SIZE]),
            sender_id=bytes(data[1 + QUEUE_ID_SIZE : ids_end]),
            recipient_key=SigningKey.from_bytes(data[ids_end : ids_end + _KEY_SIZE]),
            queue_key=bytes(data[ids_end + _KEY_SIZE :]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueCredentials):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(self.recipient_id)

    def __repr__(self) -> str:
        # Not even the ids: they are what the relay must never see linked, and a repr
        # ends up in logs.
        return "QueueCredentials(<secret>)"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message the relay delivered, with its queue layer removed.

    ``ack`` it once it is stored; until then the relay delivers nothing else on that
    queue, and it delivers this one again after a reconnect.
    """

    recipient_id: bytes = field(repr=False)
    msg_id: bytes
    received_at: int  #: relay clock when it stored the message, whole seconds
    quota_marker: bool  #: the queue filled up here; senders were refused after it
    body: bytes = field(repr=False)
    #: not a message but the relay's notice (``body`` is empty): it refused a SEND to this
    #: sender-secured queue, unsigned or signed by another key than the one it is locked to
    #: (someone else holds the sender id: an intercepted invitation). ``ack`` it as any.
    sender_refused: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionEnded:
    """The client no longer receives from this queue and will not resubscribe.

    ``code`` is None when the relay ended it with ``END`` (another connection
    subscribed: the same credentials are in use elsewhere, the basis of clone alerts),
    or the relay's error code when it refused to renew the subscription after a
    reconnect (``AUTH``: the queue is gone).
    """

    recipient_id: bytes = field(repr=False)
    code: ErrorCode | None = None


@dataclass(frozen=True, slots=True)
class UnreadableMessage:
    """The relay delivered a message whose queue layer did not open.

    Only the relay (or someone on the connection, if TLS is broken) can cause this:
    the queue layer is between relay and recipient. The message blocks its queue until
    it is acknowledged; ``ack`` it to move on, and count it as an anomaly.
    """

    recipient_id: bytes = field(repr=False)
    msg_id: bytes


#: What :meth:`RelayClient.deliveries` yields.
RelayEvent = ReceivedMessage | SubscriptionEnded | UnreadableMessage


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Mailbox:
    """One side of a pairing mailbox: its nameplate, and the token that speaks for the side."""

    nameplate: int
    token: bytes

    def __repr__(self) -> str:
        return f"Mailbox(nameplate={self.nameplate})"


@dataclass(frozen=True, slots=True)
class MailboxEnded:
    """The mailbox closed (``MB_END``): nothing more will arrive in it."""

    reason: MailboxEndReason


class _MailboxState:
    """Our side of one open mailbox: its inbox, the indexes seen, our next index."""

    __slots__ = ("ended", "inbox", "lock", "mailbox", "next_index", "seen")

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox
        #: bodies of the other side in order, then at most one MailboxEnded; None: client closed
        self.inbox: asyncio.Queue[bytes | MailboxEnded | None] = asyncio.Queue()
        self.seen: set[int] = set()
        self.next_index = 0
        self.ended: MailboxEndReason | None = None
        self.lock = asyncio.Lock()

    def end(self, reason: MailboxEndReason) -> None:
        if self.ended is None:
            self.ended = reason
            self.inbox.put_nowait(MailboxEnded(reason))


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class _AckMac:
    """Authenticate an ACK by MAC under the queue key, not by signature (§14.4)."""

    queue_key: bytes


@dataclass(eq=False, slots=True)
class _Pending:
    """One command waiting for its answer."""

    corr_id: bytes
    entity: bytes
    command: ClientCommand
    key: SigningKey | _AckMac | None
    repeatable: bool  #: safe to send again on a new connection
    future: asyncio.Future[ServerResponse]
    generation: int | None = None  #: the connection it went out on, None if not (yet)


@dataclass(eq=False, slots=True)
class _Connection:
    transport: Transport
    session_id: bytes
    generation: int
    productive: bool = False  #: carried a frame after HELLO


class RelayClient:
    """An async client for one relay.

    Use it as an async context manager (or call :meth:`aclose`)::

        async with RelayClient("wss://relay.example") as client:
            creds = await client.create_queue()
            await client.subscribe(creds)
            async for event in client.deliveries():
                ...

    Every failure it raises is a :class:`~burnerkit.errors.RelayError`; wrong
    arguments raise ``ValueError``.
    """

    def __init__(
        self,
        url: str,
        *,
        rng: Random | None = None,
        ssl: ssl_module.SSLContext | None = None,
        timeout: float = 10.0,
        connect_timeout: float = CONNECT_TIMEOUT,
        backoff: tuple[float, float] = (0.05, 2.0),
        transport_factory: TransportFactory | None = None,
        on_link: Callable[[bool], None] | None = None,
    ) -> None:
        """Configure a client; nothing connects until it is entered or used.

        Args:
            url: the relay's ``ws://`` or ``wss://`` address.
            rng: randomness for keys, corr_ids, send_ids and jitter (``SystemRandom``).
            ssl: TLS settings for ``wss://``.
            timeout: default overall time limit of each call.
            connect_timeout: limit of each connect, greeting included (never more
                than ``timeout``).
            backoff: initial and largest reconnect delay, in seconds.
            transport_factory: makes connections instead of the WebSocket default
                (tests pass one over :class:`~burnerkit.relay.transport.MemoryTransport`).
            on_link: told True when a connection is up, False when one is lost or
                could not be made (not when the client closes): a face's status line.

        Raises:
            ValueError: for an unusable url, timeout or backoff.
        """
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive")
        initial, largest = backoff
        if not 0 < initial <= largest:
            raise ValueError("backoff must be (initial, largest) with 0 < initial <= largest")
        if transport_factory is None:
            parse_url(url, ssl=ssl)
        self._url = url
        #: What errors name: the URL without its pin.
        self._address = url.partition("#")[0]
        self._connect_timeout = min(connect_timeout, timeout)
        self._connected_once = False
        self._ssl = ssl
        self._rng: Random = SystemRandom() if rng is None else rng
        self._timeout = timeout
        self._backoff = (initial, largest)
        self._factory: TransportFactory = (
            self._connect_websocket if transport_factory is None else transport_factory
        )
        self._pending: dict[bytes, _Pending] = {}
        self._subs: dict[bytes, QueueCredentials] = {}
        self._mailboxes: dict[bytes, _MailboxState] = {}
        self._events: asyncio.Queue[RelayEvent | None] = asyncio.Queue()
        self._conn: _Connection | None = None
        self._generation = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._fatal: BaseException | None = None
        self._last_error: RelayError | None = None
        self._on_link = on_link

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        """Whether a connection to the relay is up right now."""
        return self._conn is not None

    async def aclose(self) -> None:
        """Close the connection and end the deliveries stream; closing twice is harmless.

        Calls still waiting raise :class:`~burnerkit.errors.RelayUnavailableError`.
        """
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in (self._supervisor, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        # The supervisor closes its connection on the way out.
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_pending(lambda: RelayUnavailableError("relay client closed"))
        self._subs.clear()
        self._events.put_nowait(None)
        self._wake_mailboxes()

    # -- queues ----------------------------------------------------------------------------

    async def create_queue(
        self, *, sender_secured: bool = False, timeout: float | None = None
    ) -> QueueCredentials:
        """Create a queue owned by a fresh Ed25519 key (``NEW``).

        The relay's answer is sealed to a fresh X25519 key of ours; the same exchange
        keys the queue layer of every later delivery.

        Args:
            sender_secured: the first ``send`` signed with a ``sender_key`` locks the queue
                to that key; unsigned sends, and sends signed by any other key, are refused
                (``AUTH``) and leave a delivery with ``sender_refused`` (docs/protocol.md §14.8).
            timeout: overall time limit, the client's default when None.

        Returns:
            The new queue's credentials; store them before handing out the sender id.

        Raises:
            RelayRejectedError: the relay refused (for example ``AUTH``).
            RelayUnavailableError: the relay is unreachable, the connection broke after
                the command went out (the queue may exist; it is lost either way), or
                the answer did not authenticate.
            RelayTimeoutError: no answer within ``timeout``.
        """
        signing_key = SigningKey.generate(self._rng)
        dh_key = X25519PrivateKey.generate(self._rng)
        creds, _ = await self.create_queue_with_keys(
            signing_key, dh_key, sender_secured=sender_secured, timeout=timeout
        )
        return creds

    async def create_queue_with_keys(
        self,
        signing_key: SigningKey,
        dh_key: X25519PrivateKey,
        *,
        sender_secured: bool = False,
        timeout: float | None = None,
    ) -> tuple[QueueCredentials, bytes]:
        """:meth:`create_queue` owned by keys the caller chose (derived from a secret, say).

        A short invitation link (docs/protocol.md §17.2) names a queue whose keys its
        holder derives; the relay's X25519 key, the other half of the queue key, is
        returned too, since whoever derives the keys needs it to open deliveries.

        Returns:
            The queue's credentials, and the relay's X25519 public key (``server_dh``).

        Raises:
            The errors of :meth:`create_queue`.
        """
        command = New(signing_key.verify_key.raw, dh_key.public_key.raw, sender_secured)
        response = await self._request(
            b"", command, key=signing_key, repeatable=False, limit=self._limit(timeout)
        )
        if not isinstance(response, Ids):
            raise self._unexpected(response)
        try:
            queue_key = derive_queue_key(dh_key, response.server_dh)
            ids = open_ids(queue_key, response.sealed)
        except (RemoteProtocolError, DecryptionError) as exc:
            raise RelayUnavailableError("relay sent an invalid queue answer") from exc
        return QueueCredentials(ids.recipient_id, ids.sender_id, signing_key, queue_key), response.server_dh

    async def lock(
        self, creds: QueueCredentials, sender_verify_key: bytes, *, timeout: float | None = None
    ) -> None:
        """Accept only sends signed by ``sender_verify_key`` on this queue from now on (``KEY``).

        Args:
            creds: the queue's credentials.
            sender_verify_key: the sender's raw Ed25519 public key, learned end to end.
            timeout: overall time limit, the client's default when None.

        Raises:
            ValueError: unless ``sender_verify_key`` is 32 bytes.
            RelayRejectedError: the relay refused (``AUTH``: no such queue; ``CMD``: locked
                to another key already, by KEY or, on a sender-secured queue, by a SEND).
            RelayUnavailableError: unreachable, or the connection broke after the
                command went out (whether the lock took effect is unknown).
            RelayTimeoutError: no answer within ``timeout``.
        """
        _check_size("sender_verify_key", sender_verify_key, _KEY_SIZE)
        response = await self._request(
            creds.recipient_id,
            Key(bytes(sender_verify_key)),
            key=creds.recipient_key,
            repeatable=False,
            limit=self._limit(timeout),
        )
        self._expect_ok(response)

    async def delete_queue(self, creds: QueueCredentials, *, timeout: float | None = None) -> None:
        """Delete the queue and every message on it (``DEL``); its subscription ends.

        Args:
            creds: the queue's credentials.
            timeout: overall time limit, the client's default when None.

        Raises:
            RelayRejectedError: the relay refused (``AUTH``: no such queue).
            RelayUnavailableError: unreachable, or the connection broke after the
                command went out (whether the queue is gone is unknown; a second try
                answers ``AUTH`` if it is).
            RelayTimeoutError: no answer within ``timeout``.
        """
        response = await self._request(
            creds.recipient_id,
            Del(),
            key=creds.recipient_key,
            repeatable=False,
            limit=self._limit(timeout),
        )
        self._expect_ok(response)
        if self._subs.get(creds.recipient_id) is creds:
            del self._subs[creds.recipient_id]

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self,
        sender_id: bytes,
        body: bytes,
        *,
        sender_key: SigningKey | None = None,
        send_id: bytes | None = None,
        timeout: float | None = None,
    ) -> None:
        """Leave ``body`` on the queue ``sender_id`` and return once the relay stored it.

        One random ``send_id`` is picked per call (or ``send_id`` is used) and every
        retry carries it, so the relay stores the message once however often it goes
        out. An outbox that outlives the process keeps its own ``send_id`` and passes
        it to every later call for the same message. Connection losses,
        ``RATE`` and ``INTERNAL`` are retried until ``timeout``.

        Args:
            sender_id: the queue's sender id, from its recipient.
            body: at most :data:`~burnerkit.relay.protocol.MAX_BODY_SIZE` bytes.
            sender_key: signs the command and carries its verify key: for a queue locked
                to that key, or a sender-secured queue, which the first signed send locks.
            send_id: the idempotency key, 16 bytes; random when None.
            timeout: overall time limit for every attempt, the client's default when None.

        Raises:
            ValueError: if ``sender_id`` is not 24 bytes, ``send_id`` not 16, or ``body`` is too long.
            RelayRejectedError: the relay refused for good (``QUOTA``: the queue is
                full; ``LARGE``; ``AUTH``: no such queue, locked to another key, or
                sender-secured and the send unsigned).
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no final answer within ``timeout``. The
                message may be stored; calling ``send`` again may store it twice, so
                rely on end-to-end deduplication.
        """
        _check_size("sender_id", sender_id, QUEUE_ID_SIZE)
        if len(body) > MAX_BODY_SIZE:
            raise ValueError(f"body must be at most {MAX_BODY_SIZE} bytes")
        if send_id is None:
            send_id = self._rng.random_bytes(SEND_ID_SIZE)
        _check_size("send_id", send_id, SEND_ID_SIZE)
        command = Send(bytes(send_id), bytes(body), None if sender_key is None else sender_key.verify_key.raw)
        response = await self._request(
            bytes(sender_id), command, key=sender_key, repeatable=True, limit=self._limit(timeout)
        )
        self._expect_ok(response)

    # -- receiving -------------------------------------------------------------------------

    async def subscribe(self, creds: QueueCredentials, *, timeout: float | None = None) -> None:
        """Receive this queue's messages as events of :meth:`deliveries` (``SUB``).

        The subscription outlives connections: after a reconnect the client renews it
        by itself, until the relay ends it (a :class:`SubscriptionEnded` event) or the
        queue is deleted.

        Args:
            creds: the queue's credentials.
            timeout: overall time limit, the client's default when None.

        Raises:
            RelayRejectedError: the relay refused (``AUTH``: no such queue).
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no answer within ``timeout``.

        A failed call leaves no subscription behind.
        """
        rid = creds.recipient_id
        previous = self._subs.get(rid)
        self._subs[rid] = creds
        try:
            response = await self._request(
                rid, Sub(), key=creds.recipient_key, repeatable=True, limit=self._limit(timeout)
            )
            self._expect_ok(response)
        except BaseException:
            if previous is None and self._subs.get(rid) is creds:
                del self._subs[rid]
            raise

    async def ack(self, creds: QueueCredentials, msg_id: bytes, *, timeout: float | None = None) -> None:
        """Tell the relay the message ``msg_id`` is stored: delete it, deliver the next (``ACK``).

        A ``NO_MSG`` answer is not an error. It means the relay has no delivered
        message of that id on this subscription: either an earlier ``ACK`` of it got
        through and only the ``OK`` was lost with the connection, or the subscription
        was renewed since the delivery and the message will be delivered again (at
        least once). Neither asks anything of the caller. We accept it on any
        connection, not only after a reconnect: a repeated ``ACK`` and the renewed
        subscription's redelivery can cross, so the caller's ``ack`` of that
        redelivery meets ``NO_MSG`` on the very connection it arrived on.

        Args:
            creds: the queue's credentials.
            msg_id: the delivered message's id.
            timeout: overall time limit, the client's default when None.

        Raises:
            ValueError: unless ``msg_id`` is 24 bytes.
            RelayRejectedError: the relay refused (``AUTH``).
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no answer within ``timeout``.
        """
        _check_size("msg_id", msg_id, MSG_ID_SIZE)
        response = await self._request(
            creds.recipient_id,
            Ack(bytes(msg_id)),
            key=_AckMac(creds.queue_key),
            repeatable=True,
            limit=self._limit(timeout),
        )
        # The next message may answer instead of OK; _dispatch has delivered it already.
        if response == Err(ErrorCode.NO_MSG) or isinstance(response, Msg):
            return
        self._expect_ok(response)

    async def ping(self, *, timeout: float | None = None) -> None:
        """One ``PING``/``PONG`` round trip: the relay is there and speaks the protocol.

        Raises:
            RelayUnavailableError: the relay could not be reached (``url`` and ``cause``
                say which and why).
            RelayTimeoutError: connected, but no answer within ``timeout``.
        """
        response = await self._request(b"", Ping(), key=None, repeatable=True, limit=self._limit(timeout))
        if not isinstance(response, Pong):
            raise self._unexpected(response)

    async def deliveries(self) -> AsyncIterator[RelayEvent]:
        """Every event of every subscription, in arrival order, until the client closes.

        Yields:
            :class:`ReceivedMessage`, :class:`SubscriptionEnded` or :class:`UnreadableMessage`.
        """
        while True:
            item = await self._events.get()
            if item is None:
                self._events.put_nowait(None)  # for any other reader
                return
            yield item

    async def next_delivery(self, timeout: float | None = None) -> RelayEvent:
        """The next event of :meth:`deliveries`.

        Args:
            timeout: seconds to wait; None waits as long as it takes.

        Raises:
            RelayTimeoutError: nothing arrived within ``timeout``.
            RelayUnavailableError: the client is closed.
        """
        try:
            async with asyncio.timeout(timeout):
                item = await self._events.get()
        except TimeoutError as exc:
            raise RelayTimeoutError("no delivery in time") from exc
        if item is None:
            self._events.put_nowait(None)
            raise RelayUnavailableError("relay client closed")
        return item

    # -- pairing mailboxes -----------------------------------------------------------------

    async def mailbox_allocate(self, *, timeout: float | None = None) -> Mailbox:
        """Open a pairing mailbox under a fresh nameplate, as its side A (``MB_ALLOC``).

        Args:
            timeout: overall time limit, the client's default when None.

        Returns:
            The nameplate and our token. Read the other side's messages with
            :meth:`mailbox_receive`; :meth:`mailbox_delete` it when done.

        Raises:
            RelayRejectedError: the relay refused (``QUOTA``: too many mailboxes).
            RelayUnavailableError: unreachable, or the connection broke after the command
                went out (a mailbox may exist; it expires unused).
            RelayTimeoutError: no answer within ``timeout``.
        """
        return await self._open_mailbox(MbAlloc(), timeout)

    async def mailbox_join(self, nameplate: int, *, timeout: float | None = None) -> Mailbox:
        """Join the mailbox of ``nameplate`` as its side B (``MB_JOIN``).

        Args:
            nameplate: the number at the start of the short code.
            timeout: overall time limit, the client's default when None.

        Raises:
            ValueError: unless ``nameplate`` is 1..65,535.
            RelayRejectedError: ``MAILBOX``: no open mailbox has that nameplate, or it
                already has two sides (and is now closed); ``QUOTA``.
            RelayUnavailableError: unreachable, or the connection broke after the command
                went out.
            RelayTimeoutError: no answer within ``timeout``.
        """
        if not 1 <= nameplate <= 0xFFFF:
            raise ValueError("nameplate must be between 1 and 65535")
        return await self._open_mailbox(MbJoin(nameplate), timeout)

    async def _open_mailbox(self, command: MbAlloc | MbJoin, timeout: float | None) -> Mailbox:
        response = await self._request(b"", command, key=None, repeatable=False, limit=self._limit(timeout))
        if not isinstance(response, MbOpen):
            raise self._unexpected(response)
        state = self._mailboxes.get(response.token)
        if state is None:  # pragma: no cover - _dispatch registers it with the answer
            raise RelayUnavailableError("relay sent an unexpected answer")
        return state.mailbox

    async def mailbox_put(self, mailbox: Mailbox, body: bytes, *, timeout: float | None = None) -> None:
        """Leave our next message in the mailbox (``MB_PUT``); it is pushed to the other side.

        Retried across reconnects with the same index, so it is stored once.

        Args:
            mailbox: from :meth:`mailbox_allocate` or :meth:`mailbox_join`.
            body: at most :data:`~burnerkit.relay.protocol.MAILBOX_BODY_SIZE` bytes.
            timeout: overall time limit, the client's default when None.

        Raises:
            ValueError: if ``body`` is too long.
            RelayRejectedError: ``MAILBOX``: the mailbox is closed or unknown; ``QUOTA``:
                we put the most messages a side may.
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no answer within ``timeout``.
        """
        if len(body) > MAILBOX_BODY_SIZE:
            raise ValueError(f"mailbox body must be at most {MAILBOX_BODY_SIZE} bytes")
        state = self._mailbox_state(mailbox)
        async with state.lock:
            if state.ended is not None:
                raise RelayRejectedError(ErrorCode.MAILBOX, "mailbox is closed")
            response = await self._request(
                mailbox.token,
                MbPut(state.next_index, bytes(body)),
                key=None,
                repeatable=True,
                limit=self._limit(timeout),
            )
            self._expect_ok(response)
            state.next_index += 1

    async def mailbox_receive(
        self, mailbox: Mailbox, *, timeout: float | None = None
    ) -> bytes | MailboxEnded:
        """The other side's next message, in order, each once; or how the mailbox ended.

        Once the mailbox has ended, every later call returns the same
        :class:`MailboxEnded` at once.

        Args:
            mailbox: an open mailbox of ours.
            timeout: seconds to wait; None waits as long as it takes.

        Raises:
            RelayTimeoutError: nothing arrived within ``timeout``.
            RelayUnavailableError: the client is closed, or the mailbox was deleted.
        """
        state = self._mailbox_state(mailbox)
        try:
            async with asyncio.timeout(timeout):
                item = await state.inbox.get()
        except TimeoutError as exc:
            raise RelayTimeoutError("nothing arrived in the mailbox in time") from exc
        if item is None:
            state.inbox.put_nowait(None)
            raise RelayUnavailableError("mailbox closed on this side")
        if isinstance(item, MailboxEnded):
            state.inbox.put_nowait(item)  # for every later call
        return item

    async def mailbox_delete(self, mailbox: Mailbox, *, timeout: float | None = None) -> None:
        """Give up our side of the mailbox (``MB_DEL``); it closes for the other side too.

        A mailbox the relay no longer knows (expired, or an earlier delete whose answer
        was lost) counts as deleted. Our side is forgotten locally whatever happens.

        Args:
            mailbox: a mailbox of ours.
            timeout: overall time limit, the client's default when None.

        Raises:
            RelayUnavailableError: the relay was unreachable until ``timeout`` (the
                mailbox expires by itself).
            RelayTimeoutError: connected, but no answer within ``timeout``.
        """
        try:
            response = await self._request(
                mailbox.token, MbDel(), key=None, repeatable=True, limit=self._limit(timeout)
            )
            if response != Err(ErrorCode.MAILBOX):
                self._expect_ok(response)
        finally:
            state = self._mailboxes.pop(mailbox.token, None)
            if state is not None:
                state.inbox.put_nowait(None)

    def _mailbox_state(self, mailbox: Mailbox) -> _MailboxState:
        self._check_open()
        state = self._mailboxes.get(mailbox.token)
        if state is None:
            raise RelayUnavailableError("mailbox closed on this side")
        return state

    def _wake_mailboxes(self) -> None:
        for state in self._mailboxes.values():
            state.inbox.put_nowait(None)
        self._mailboxes.clear()

    async def _refetch(self, state: _MailboxState, pending: _Pending) -> None:
        """Re-attach a mailbox after a reconnect; the relay pushes its backlog again."""
        attempt = 0
        try:
            response = await self._complete(pending)
            while isinstance(response, Err) and response.code in _TRANSIENT:
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                response = await self._exchange(state.mailbox.token, MbGet(), key=None, repeatable=True)
        except RelayError:
            return
        if isinstance(response, Err) and self._mailboxes.get(state.mailbox.token) is state:
            # The relay no longer knows our side: its TTL ran out while we were away.
            state.end(MailboxEndReason.EXPIRED)

    # -- commands --------------------------------------------------------------------------

    def _limit(self, timeout: float | None) -> float:
        return self._timeout if timeout is None else timeout

    async def _request(
        self,
        entity: bytes,
        command: ClientCommand,
        *,
        key: SigningKey | _AckMac | None,
        repeatable: bool,
        limit: float | None,
    ) -> ServerResponse:
        """Send ``command`` until it gets a final answer (anything but RATE/INTERNAL)."""
        self._start()
        attempt = 0
        try:
            async with asyncio.timeout(limit):
                while True:
                    response = await self._exchange(entity, command, key=key, repeatable=repeatable)
                    if not (isinstance(response, Err) and response.code in _TRANSIENT):
                        return response
                    await asyncio.sleep(self._delay(attempt))
                    attempt += 1
        except TimeoutError as exc:
            if self._conn is None and self._last_error is not None:
                raise self._unreachable() from self._last_error
            raise RelayTimeoutError("relay did not answer in time") from exc

    async def _exchange(
        self, entity: bytes, command: ClientCommand, *, key: SigningKey | _AckMac | None, repeatable: bool
    ) -> ServerResponse:
        return await self._complete(self._register(entity, command, key=key, repeatable=repeatable))

    def _register(
        self, entity: bytes, command: ClientCommand, *, key: SigningKey | _AckMac | None, repeatable: bool
    ) -> _Pending:
        self._check_open()
        pending = _Pending(
            corr_id=self._rng.random_bytes(CORR_ID_SIZE),
            entity=entity,
            command=command,
            key=key,
            repeatable=repeatable,
            future=asyncio.get_running_loop().create_future(),
        )
        self._pending[pending.corr_id] = pending
        return pending

    async def _complete(self, pending: _Pending) -> ServerResponse:
        try:
            if self._conn is not None:
                await self._transmit(self._conn, pending)
            # With no connection the supervisor sends it as soon as there is one.
            return await pending.future
        finally:
            self._pending.pop(pending.corr_id, None)

    async def _transmit(self, conn: _Connection, pending: _Pending) -> None:
        if conn is not self._conn or pending.generation is not None or pending.future.done():
            return
        pending.generation = conn.generation
        key = pending.key
        if isinstance(key, _AckMac):
            # An ACK's MAC is keyed per session: derived for the connection it goes out on.
            ack_key = derive_ack_key(key.queue_key, conn.session_id)
            frame = encode_client_frame(
                pending.corr_id, pending.entity, pending.command, session_id=conn.session_id, ack_key=ack_key
            )
        else:
            frame = encode_client_frame(
                pending.corr_id, pending.entity, pending.command, session_id=conn.session_id, signing_key=key
            )
        try:
            await conn.transport.send(frame)
        except RelayError as exc:
            # The frame may still have left (websockets writes, then fails while
            # draining), so this counts as sent. The reader fails on the closed
            # transport and the supervisor handles the command with the others in flight.
            self._last_error = exc
            await self._close_quietly(conn.transport)

    def _expect_ok(self, response: ServerResponse) -> None:
        if not isinstance(response, Ok):
            raise self._unexpected(response)

    @staticmethod
    def _unexpected(response: ServerResponse) -> RelayError:
        if isinstance(response, Err):
            return RelayRejectedError(
                response.code, f"relay refused the command: {response.code.name.lower()}"
            )
        return RelayUnavailableError("relay sent an unexpected answer")

    # -- the connection --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RelayUnavailableError("relay client closed")
        if self._fatal is not None:
            raise RelayUnavailableError("relay client failed") from self._fatal

    def _start(self) -> None:
        self._check_open()
        if self._supervisor is None:
            self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def _connect_websocket(self) -> Transport:
        return await WebSocketTransport.connect(self._url, ssl=self._ssl, open_timeout=self._connect_timeout)

    async def _supervise(self) -> None:
        attempt = 0
        try:
            while True:
                conn = await self._open()
                if conn is None and not self._connected_once:
                    # Never connected yet: nobody waits out the call's time limit for a
                    # relay that refused, did not resolve or did not verify (§14.13).
                    self._fail_pending(self._unreachable, cause=self._last_error)
                if conn is not None:
                    try:
                        await self._resume(conn)
                        await self._read(conn)
                    except RelayError as exc:
                        self._last_error = exc
                    finally:
                        await self._lose(conn)
                    if conn.productive:
                        attempt = 0
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
        except Exception as exc:
            # A bug, or a transport breaking its contract. Callers must not hang on it.
            self._fatal = exc
            self._fail_pending(lambda: RelayUnavailableError("relay client failed"), cause=exc)
            self._events.put_nowait(None)
            self._wake_mailboxes()

    async def _open(self) -> _Connection | None:
        """Connect and read ``HELLO``; None (and ``_last_error`` set) on failure."""
        self._generation += 1
        transport: Transport | None = None
        try:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    transport = await self._factory()
                    frame = await transport.recv()
            except TimeoutError as exc:
                raise RelayUnavailableError(url=self._address, cause="timed out") from exc
            try:
                hello = decode_server_frame(frame).response
            except RemoteProtocolError as exc:
                raise RelayUnavailableError(
                    url=self._address, cause="not a relay: malformed greeting"
                ) from exc
            if not isinstance(hello, Hello):
                raise RelayUnavailableError(url=self._address, cause="not a relay: no hello")
        except RelayError as exc:
            self._last_error = exc
            self._tell_link(False)
            if transport is not None:
                await self._close_quietly(transport)
            return None
        assert transport is not None
        self._connected_once = True
        return _Connection(transport, hello.session_id, self._generation)

    async def _resume(self, conn: _Connection) -> None:
        self._conn = conn
        self._tell_link(True)
        renewing = {
            p.entity for p in self._pending.values() if isinstance(p.command, Sub) and not p.future.done()
        }
        for creds in list(self._subs.values()):
            if creds.recipient_id not in renewing:
                pending = self._register(creds.recipient_id, Sub(), key=creds.recipient_key, repeatable=True)
                self._spawn(self._resubscribe(creds, pending))
        refetching = {
            p.entity for p in self._pending.values() if isinstance(p.command, MbGet) and not p.future.done()
        }
        for state in list(self._mailboxes.values()):
            if state.ended is None and state.mailbox.token not in refetching:
                pending = self._register(state.mailbox.token, MbGet(), key=None, repeatable=True)
                self._spawn(self._refetch(state, pending))
        # Subscriptions first, so that a repeated ACK meets a live subscription.
        waiting = sorted(self._pending.values(), key=lambda p: not isinstance(p.command, Sub))
        for pending in waiting:
            await self._transmit(conn, pending)

    async def _read(self, conn: _Connection) -> None:
        while True:
            frame = await conn.transport.recv()
            try:
                transmission = decode_server_frame(frame)
            except RemoteProtocolError as exc:
                raise RelayUnavailableError("relay sent a malformed frame") from exc
            self._dispatch(conn, transmission)
            conn.productive = True

    def _dispatch(self, conn: _Connection, transmission: ServerTransmission) -> None:
        response = transmission.response
        if transmission.corr_id == _PUSHED:
            match response:
                case Msg(msg_id, sealed):
                    self._deliver(transmission.entity, msg_id, sealed)
                case End():
                    if self._subs.pop(transmission.entity, None) is not None:
                        self._events.put_nowait(SubscriptionEnded(transmission.entity))
                case MbMsg(index, body):
                    state = self._mailboxes.get(transmission.entity)
                    # Unknown: a mailbox we deleted. Seen: pushed again after an MB_GET.
                    if state is not None and index not in state.seen:
                        state.seen.add(index)
                        state.inbox.put_nowait(body)
                case MbEnd(reason):
                    state = self._mailboxes.get(transmission.entity)
                    if state is not None:
                        state.end(reason)
                case _:
                    raise RelayUnavailableError("relay pushed an unexpected frame")
            return
        if isinstance(response, Hello):
            raise RelayUnavailableError("relay sent a second hello")
        if isinstance(response, Msg):
            # The next message, answering an ACK (§14.8): a delivery first, whether or not
            # the ACK's caller still waits.
            self._deliver(transmission.entity, response.msg_id, response.sealed)
        pending = self._pending.get(transmission.corr_id)
        # An unknown corr_id is the late answer of a command whose caller gave up.
        if pending is not None and pending.generation == conn.generation and not pending.future.done():
            if isinstance(response, MbOpen) and isinstance(pending.command, MbAlloc | MbJoin):
                # Registered now, not when the caller wakes: the relay pushes the other
                # side's backlog right behind this answer.
                mailbox = Mailbox(response.nameplate, response.token)
                self._mailboxes.setdefault(response.token, _MailboxState(mailbox))
            pending.future.set_result(response)

    def _deliver(self, recipient_id: bytes, msg_id: bytes, sealed: bytes) -> None:
        creds = self._subs.get(recipient_id)
        if creds is None:
            return  # not subscribed any more; the relay delivers it again on the next SUB
        try:
            delivery = open_delivery(creds.queue_key, msg_id, sealed)
        except DecryptionError:
            self._events.put_nowait(UnreadableMessage(recipient_id, msg_id))
            return
        self._events.put_nowait(
            ReceivedMessage(
                recipient_id,
                msg_id,
                delivery.received_at,
                delivery.quota_marker,
                delivery.body,
                delivery.sender_refused,
            )
        )

    async def _lose(self, conn: _Connection) -> None:
        if self._conn is conn:
            self._conn = None
            if not self._closed:
                self._tell_link(False)
        for pending in list(self._pending.values()):
            if pending.generation != conn.generation or pending.future.done():
                continue
            ended = isinstance(pending.command, Sub) and pending.entity not in self._subs
            if pending.repeatable and not ended:
                pending.generation = None  # goes out again on the next connection
            else:
                error = RelayUnavailableError("relay connection lost before the answer")
                error.__cause__ = self._last_error
                pending.future.set_exception(error)
        await self._close_quietly(conn.transport)

    async def _resubscribe(self, creds: QueueCredentials, pending: _Pending) -> None:
        rid = creds.recipient_id
        attempt = 0
        try:
            response = await self._complete(pending)
            while isinstance(response, Err) and response.code in _TRANSIENT:
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                response = await self._exchange(rid, Sub(), key=creds.recipient_key, repeatable=True)
        except RelayError:
            return  # the client closed or failed, or the subscription ended meanwhile
        if self._subs.get(rid) is not creds:
            return
        if isinstance(response, Err):
            del self._subs[rid]
            self._events.put_nowait(SubscriptionEnded(rid, response.code))

    # -- helpers ---------------------------------------------------------------------------

    def _unreachable(self) -> RelayUnavailableError:
        """The error for calls that found no connection: this relay's URL and the last cause."""
        last = self._last_error
        if isinstance(last, RelayUnavailableError) and last.cause is not None:
            cause = last.cause
        else:
            cause = "no connection" if last is None else str(last)
        return RelayUnavailableError(url=self._address, cause=cause)

    def _tell_link(self, up: bool) -> None:
        if self._on_link is not None:
            self._on_link(up)

    def _delay(self, attempt: int) -> float:
        initial, largest = self._backoff
        ceiling = min(largest, initial * (1 << min(attempt, _MAX_DOUBLINGS)))
        fraction = int.from_bytes(self._rng.random_bytes(4), "big") / 2**32
        return ceiling / 2 + ceiling / 2 * fraction

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fail_pending(self, make: Callable[[], RelayError], cause: BaseException | None = None) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                error = make()
                error.__cause__ = cause
                pending.future.set_exception(error)

    @staticmethod
    async def _close_quietly(transport: Transport) -> None:
        with contextlib.suppress(RelayError):
            await transport.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self._conn is not None else "disconnected"
        return f"RelayClient({state}, subscriptions={len(self._subs)})"


async def check_relay(
    url: str,
    *,
    ssl: ssl_module.SSLContext | None = None,
    timeout: float = 10.0,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Connect to the relay at ``url`` and make one ``PING`` round trip, then close.

    Args:
        url: the relay's address (checked for syntax and pin only: the insecure rule is
            the caller's, :func:`~burnerkit.relay.url.check_relay_url`).
        ssl: TLS settings for an unpinned ``wss://``.
        timeout: the whole check's time limit.
        connect_timeout: the connect's limit.

    Raises:
        ValueError: an unusable url.
        RelayUnavailableError: the relay could not be reached; its ``cause`` says why.
        RelayTimeoutError: it connected but did not answer in time.
    """
    async with RelayClient(url, ssl=ssl, timeout=timeout, connect_timeout=connect_timeout) as client:
        await client.ping()
