"""The relay client's engine: one asyncio loop around the client end of the connection.

docs/protocol.md §14. :class:`ClientLoop` is what :class:`~burnerkit.relay.client.RelayClient`
runs on: the connection's rules (HELLO, corr ids, 16 commands in flight, what may be
pushed) are the sans-IO :class:`~burnerkit.relay.protocol.ClientConnection`'s (§14.5a);
this module moves its bytes over a :class:`~burnerkit.relay.transport.Transport`, keeps
the commands waiting for answers, and reconnects. ``RelayClient`` adds the public calls.

Theory of operation
-------------------
One background task, the supervisor, owns the connection: it connects, reads the relay's
``HELLO``, resumes, then reads frames until the connection breaks, backs off, and starts
again, until the client is closed. Callers never touch the transport.

A command is a ``_Pending`` record (corr id, command, key, future). It is encoded when it
goes out, over the session of the connection it goes out on, so a command sent again
after a reconnect is authenticated again; one that finds 16 commands in flight waits for
an answer to free a place. When a connection breaks:

- a command that is safe to repeat (``SEND``, whose ``send_id`` makes it idempotent;
  ``SUB``; ``ACK``; ``PING``; ``MB_PUT``, ``MB_GET``, ``MB_DEL``) stays pending and goes
  out again on the next connection, under the same corr id;
- any other (``NEW``, ``KEY``, ``DEL``, ``MB_ALLOC``, ``MB_JOIN``) that was already sent
  fails with :class:`~burnerkit.errors.RelayUnavailableError`: it may have taken effect,
  and repeating it is not harmless. One not sent yet waits for the next connection;
- every subscription is renewed (``SUB`` over the new session) before any other pending
  command goes out, and every open mailbox is re-attached (``MB_GET``; the relay pushes
  its backlog again, deduplicated by index).

Retry rules
-----------
- Reconnect delay after the n-th failure in a row: ``d = min(max, initial·2ⁿ)``, then a
  uniform pick in ``[d/2, d]`` (so burners do not reconnect in step). The count restarts
  once a connection has carried a frame after its ``HELLO``.
- With ``reconnect_jitter`` J, each reconnect waits a further uniform pick in ``[0, J]``,
  and with ``open_after`` the first connect waits that long: the connections one device
  keeps to a relay (one per contact, docs/protocol.md §14.13a) then neither open nor come
  back together after a shared loss, which would link them by timing.
- ``ERR RATE`` and ``ERR INTERNAL`` mean the command had no effect: it is sent again after
  the same backoff (:meth:`ClientLoop._until_final`, the one retry loop). Any other
  ``ERR`` is final: :class:`~burnerkit.errors.RelayRejectedError` with the relay's code.
- Each public call has one overall time limit (``timeout``) covering connecting, every
  retry and every reconnect; each connect (TCP, TLS, WebSocket, ``HELLO``) has its own,
  shorter one (``connect_timeout``). Until a first connection, a failed connect fails every
  waiting call at once with the URL and the cause (§14.13): a refusal, a name that does not
  resolve or a certificate that does not verify will not change within a call's limit.

Delivery is at least once: callers deduplicate by ``msg_id`` (or the end-to-end sequence
number). Each mailbox has its own inbox, apart from :meth:`RelayClient.deliveries`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import (
    DecryptionError,
    RelayError,
    RelayRejectedError,
    RelayTimeoutError,
    RelayUnavailableError,
    RemoteProtocolError,
)

from .events import (
    Mailbox,
    MailboxEnded,
    QueueCredentials,
    ReceivedMessage,
    RelayEvent,
    SubscriptionEnded,
    UnreadableMessage,
)
from .protocol import (
    Ack,
    Answered,
    ClientCommand,
    ClientConnection,
    End,
    Err,
    ErrorCode,
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
    Ok,
    Ping,
    Pushed,
    Send,
    ServerResponse,
    Sub,
    new_corr_id,
    open_delivery,
)
from .transport import CONNECT_TIMEOUT, Transport, WebSocketTransport, parse_url

__all__ = [
    "ClientLoop",
    "MacKey",
    "MailboxState",
    "TransportFactory",
]

#: Makes a fresh connection to the relay; raises only ``RelayError``.
TransportFactory = Callable[[], Awaitable[Transport]]

_T = TypeVar("_T")
#: Answers that mean "the command had no effect, try again later".
_TRANSIENT: Final = frozenset({ErrorCode.RATE, ErrorCode.INTERNAL})
#: Backoff stops growing long before this; it only keeps 2**n a small number.
_MAX_DOUBLINGS: Final = 30
#: Commands that may go out again on a new connection (module docstring).
_REPEATABLE: Final = (Send, Sub, Ack, Ping, MbPut, MbGet, MbDel)


class MailboxState:
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
        """The mailbox closed: the inbox gets one :class:`MailboxEnded`, then nothing more."""
        if self.ended is None:
            self.ended = reason
            self.inbox.put_nowait(MailboxEnded(reason))


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class MacKey:
    """Authenticate an ACK by MAC under the queue key, not by signature (§14.4)."""

    queue_key: bytes


@dataclass(eq=False, slots=True)
class _Pending:
    """One command waiting for its answer."""

    corr_id: bytes
    entity: bytes
    command: ClientCommand
    key: SigningKey | MacKey | None
    future: asyncio.Future[ServerResponse]
    generation: int | None = None  #: the connection it went out on, None if not (yet)


@dataclass(eq=False, slots=True)
class _Link:
    """One connection: the transport, its protocol state, and which one it is."""

    transport: Transport
    protocol: ClientConnection
    generation: int
    productive: bool = False  #: carried a frame after HELLO


class ClientLoop:
    """The connection, the commands in flight and the subscriptions of one relay client."""

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
        open_after: float = 0.0,
        reconnect_jitter: float = 0.0,
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
            transport_factory: makes connections instead of the WebSocket default.
            on_link: told True when a connection is up, False when one is lost or
                could not be made (not when the client closes): a face's status line.
            open_after: seconds to wait before the first connect (the caller's jitter);
                commands made meanwhile wait for it, within their own time limits.
            reconnect_jitter: largest extra delay, drawn from ``rng``, before each reconnect.

        Raises:
            ValueError: for an unusable url, timeout, backoff or a negative delay.
        """
        if timeout <= 0 or connect_timeout <= 0:
            raise ValueError("timeout and connect_timeout must be positive")
        initial, largest = backoff
        if not 0 < initial <= largest:
            raise ValueError("backoff must be (initial, largest) with 0 < initial <= largest")
        if open_after < 0 or reconnect_jitter < 0:
            raise ValueError("open_after and reconnect_jitter must not be negative")
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
        self._mailboxes: dict[bytes, MailboxState] = {}
        self._events: asyncio.Queue[RelayEvent | None] = asyncio.Queue()
        self._conn: _Link | None = None
        self._generation = 0
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._fatal: BaseException | None = None
        self._last_error: RelayError | None = None
        self._on_link = on_link
        self._open_after = open_after
        self._reconnect_jitter = reconnect_jitter

    def _mailbox_state(self, mailbox: Mailbox) -> MailboxState:
        self._check_open()
        state = self._mailboxes.get(mailbox.token)
        if state is None:
            raise RelayUnavailableError("mailbox closed on this side")
        return state

    def _wake_mailboxes(self) -> None:
        for state in self._mailboxes.values():
            state.inbox.put_nowait(None)
        self._mailboxes.clear()

    # -- commands --------------------------------------------------------------------------

    async def _request(
        self, entity: bytes, command: ClientCommand, key: SigningKey | MacKey | None, timeout: float | None
    ) -> ServerResponse:
        """Send ``command`` until it has a final answer, within the call's time limit."""
        self._start()
        try:
            async with asyncio.timeout(self._timeout if timeout is None else timeout):
                return await self._until_final(self._register(entity, command, key))
        except TimeoutError as exc:
            if self._conn is None and self._last_error is not None:
                raise self._unreachable() from self._last_error
            raise RelayTimeoutError("relay did not answer in time") from exc

    async def _until_final(self, pending: _Pending) -> ServerResponse:
        """The one retry loop: ``pending``'s answer, sent again while it is RATE or INTERNAL."""
        attempt = 0
        while True:
            response = await self._complete(pending)
            if not (isinstance(response, Err) and response.code in _TRANSIENT):
                return response
            await asyncio.sleep(self._delay(attempt))
            attempt += 1
            pending = self._register(pending.entity, pending.command, pending.key)

    def _register(self, entity: bytes, command: ClientCommand, key: SigningKey | MacKey | None) -> _Pending:
        self._check_open()
        future = asyncio.get_running_loop().create_future()
        pending = _Pending(new_corr_id(self._rng), entity, command, key, future)
        self._pending[pending.corr_id] = pending
        return pending

    async def _complete(self, pending: _Pending) -> ServerResponse:
        try:
            if self._conn is not None:
                await self._transmit(self._conn, pending)
            # Otherwise it goes out with the next connection, or when a place frees.
            return await pending.future
        finally:
            self._pending.pop(pending.corr_id, None)

    async def _transmit(self, link: _Link, pending: _Pending) -> None:
        if link is not self._conn or pending.generation is not None or pending.future.done():
            return
        if not link.protocol.can_send:
            return  # 16 in flight: an answer sends it (_flush)
        key = pending.key
        sent = link.protocol.send(
            pending.entity,
            pending.command,
            signing_key=key if isinstance(key, SigningKey) else None,
            queue_key=key.queue_key if isinstance(key, MacKey) else None,
            corr_id=pending.corr_id,
        )
        pending.generation = link.generation
        try:
            await link.transport.send(sent.frame)
        except RelayError as exc:
            # The frame may still have left (websockets writes, then fails while
            # draining), so this counts as sent. The reader fails on the closed
            # transport and the supervisor handles the command with the others in flight.
            self._last_error = exc
            await self._close_quietly(link.transport)

    async def _flush(self, link: _Link) -> None:
        """Send what waits, subscriptions first (a repeated ACK then meets a live one)."""
        waiting = [p for p in self._pending.values() if p.generation is None and not p.future.done()]
        waiting.sort(key=lambda p: not isinstance(p.command, Sub))
        for pending in waiting:
            if not link.protocol.can_send:
                return
            await self._transmit(link, pending)

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
            if self._open_after > 0:
                await asyncio.sleep(self._open_after)
            while True:
                link = await self._open()
                if link is None and not self._connected_once:
                    # Never connected yet: nobody waits out the call's time limit for a
                    # relay that refused, did not resolve or did not verify (§14.13).
                    self._fail_pending(self._unreachable, cause=self._last_error)
                if link is not None:
                    try:
                        await self._resume(link)
                        await self._read(link)
                    except RelayError as exc:
                        self._last_error = exc
                    finally:
                        await self._lose(link)
                    if link.productive:
                        attempt = 0
                jitter = self._reconnect_jitter * self._fraction() if self._reconnect_jitter else 0.0
                await asyncio.sleep(self._delay(attempt) + jitter)
                attempt += 1
        except Exception as exc:
            # A bug, or a transport breaking its contract. Callers must not hang on it.
            self._fatal = exc
            self._fail_pending(lambda: RelayUnavailableError("relay client failed"), cause=exc)
            self._events.put_nowait(None)
            self._wake_mailboxes()

    async def _open(self) -> _Link | None:
        """Connect and read ``HELLO``; None (and ``_last_error`` set) on failure."""
        self._generation += 1
        transport: Transport | None = None
        conn = ClientConnection(self._rng)
        try:
            try:
                async with asyncio.timeout(self._connect_timeout):
                    transport = await self._factory()
                    frame = await transport.recv()
            except TimeoutError as exc:
                raise RelayUnavailableError(url=self._address, cause="timed out") from exc
            try:
                conn.receive(frame)
            except RemoteProtocolError as exc:
                raise RelayUnavailableError(url=self._address, cause=f"not a relay: {exc}") from exc
        except RelayError as exc:
            self._last_error = exc
            self._tell_link(False)
            if transport is not None:
                await self._close_quietly(transport)
            return None
        assert transport is not None
        self._connected_once = True
        return _Link(transport, conn, self._generation)

    async def _resume(self, link: _Link) -> None:
        """Make ``link`` current, renew subscriptions and mailboxes, send what waits."""
        self._conn = link
        self._tell_link(True)
        live = {(p.entity, type(p.command)) for p in self._pending.values() if not p.future.done()}
        for creds in list(self._subs.values()):
            if (creds.recipient_id, Sub) not in live:
                self._spawn(
                    self._resubscribe(creds, self._register(creds.recipient_id, Sub(), creds.recipient_key))
                )
        for state in list(self._mailboxes.values()):
            if state.ended is None and (state.mailbox.token, MbGet) not in live:
                self._spawn(self._refetch(state, self._register(state.mailbox.token, MbGet(), None)))
        await self._flush(link)

    async def _read(self, link: _Link) -> None:
        while True:
            frame = await link.transport.recv()
            try:
                event = link.protocol.receive(frame)
            except RemoteProtocolError as exc:
                raise RelayUnavailableError(f"relay broke the protocol: {exc}") from exc
            link.productive = True
            if isinstance(event, Answered):
                self._answered(event)
                await self._flush(link)  # a place in flight is free
            elif isinstance(event, Pushed):
                self._pushed(event.entity, event.response)

    def _pushed(self, entity: bytes, response: Msg | End | MbMsg | MbEnd) -> None:
        match response:
            case Msg(msg_id, sealed):
                self._deliver(entity, msg_id, sealed)
            case End():
                if self._subs.pop(entity, None) is not None:
                    self._events.put_nowait(SubscriptionEnded(entity))
            case MbMsg(index, body):
                state = self._mailboxes.get(entity)
                # Unknown: a mailbox we deleted. Seen: pushed again after an MB_GET.
                if state is not None and index not in state.seen:
                    state.seen.add(index)
                    state.inbox.put_nowait(body)
            case MbEnd(reason):
                state = self._mailboxes.get(entity)
                if state is not None:
                    state.end(reason)

    def _answered(self, event: Answered) -> None:
        response = event.response
        if isinstance(response, Msg):
            # The next message, answering an ACK (§14.8): a delivery first, whether or not
            # the ACK's caller still waits.
            self._deliver(event.entity, response.msg_id, response.sealed)
        pending = self._pending.get(event.corr_id)
        # None: the late answer of a command whose caller gave up.
        if pending is not None and not pending.future.done():
            if isinstance(response, MbOpen) and isinstance(pending.command, MbAlloc | MbJoin):
                # Registered now, not when the caller wakes: the relay pushes the other
                # side's backlog right behind this answer.
                mailbox = Mailbox(response.nameplate, response.token)
                self._mailboxes.setdefault(response.token, MailboxState(mailbox))
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

    async def _lose(self, link: _Link) -> None:
        if self._conn is link:
            self._conn = None
            if not self._closed:
                self._tell_link(False)
        for pending in list(self._pending.values()):
            if pending.generation != link.generation or pending.future.done():
                continue
            ended = isinstance(pending.command, Sub) and pending.entity not in self._subs
            if isinstance(pending.command, _REPEATABLE) and not ended:
                pending.generation = None  # goes out again on the next connection
            else:
                error = RelayUnavailableError("relay connection lost before the answer")
                error.__cause__ = self._last_error
                pending.future.set_exception(error)
        await self._close_quietly(link.transport)

    async def _resubscribe(self, creds: QueueCredentials, pending: _Pending) -> None:
        try:
            response = await self._until_final(pending)
        except RelayError:
            return  # the client closed or failed, or the subscription ended meanwhile
        if isinstance(response, Err) and self._subs.get(creds.recipient_id) is creds:
            del self._subs[creds.recipient_id]
            self._events.put_nowait(SubscriptionEnded(creds.recipient_id, response.code))

    async def _refetch(self, state: MailboxState, pending: _Pending) -> None:
        """Re-attach a mailbox after a reconnect; the relay pushes its backlog again."""
        try:
            response = await self._until_final(pending)
        except RelayError:
            return
        if isinstance(response, Err) and self._mailboxes.get(state.mailbox.token) is state:
            # The relay no longer knows our side: its TTL ran out while we were away.
            state.end(MailboxEndReason.EXPIRED)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    async def _next(queue: asyncio.Queue[_T], timeout: float | None, late: str) -> _T:
        try:
            async with asyncio.timeout(timeout):
                return await queue.get()
        except TimeoutError as exc:
            raise RelayTimeoutError(late) from exc

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
        return ceiling / 2 + ceiling / 2 * self._fraction()

    def _fraction(self) -> float:
        """A uniform pick in ``[0, 1)`` from the client's rng."""
        return int.from_bytes(self._rng.random_bytes(4), "big") / 2**32

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
