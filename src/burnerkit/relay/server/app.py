"""The relay server: the sans-IO relay protocol over WebSocket, on asyncio.

docs/protocol.md §14.8 (server rules) and §14.9 (what the relay sees and logs).

Theory of operation
-------------------
Each WebSocket connection (a :class:`~.link.Link`, websockets' sans-I/O protocol on an
asyncio protocol) gets a random session value (sent in ``HELLO``) that every signed
command must cover, so a command recorded on one connection is refused on another. The
link hands us each frame as it arrives, synchronously: we charge the connection's token
bucket, decode the frame (a frame that does not decode gets ``ERR CMD`` and the
connection lives on) and run the command. What needs no store runs there and then
(PING; an ACK by the subscription's holder, whose next message, from memory, goes out
at once). A command that waits for the store runs at once until its first wait, and
from there on is resumed by each future it waits on (:class:`_Resumed`, a task without
the task's cost); commands of one connection therefore run concurrently, up to
:data:`_MAX_INFLIGHT` at a time (beyond, the link reads no more of that connection),
so that a client that pipelines SENDs gets
its messages into one group commit of the store instead of one fsync each. Two SENDs of
one connection still reach the store in the order they arrived: each SEND waits for
the previous one to have *called* ``put_message`` before it calls it (the "gate"), but
not for it to finish. Answers are written to the connection's transport at once; a
peer that does not read them stops being read (the link's write-buffer pause).

We hold two kinds of state in memory, both small:

- per connection (:class:`_Connection`): the session value, the token bucket, the
  count of commands in flight, and the recipient ids it subscribes to;
- per subscribed queue (:class:`_Subscription`, at most one per queue): the connection
  that holds it, the queue as read at SUB (its recipient key and queue key), and the id
  of the one message delivered and not yet acknowledged ("outstanding").

Delivery rule: a subscription has at most one outstanding message. :meth:`_pump`
pushes the oldest stored message when there is none outstanding: from the
subscription's inbox (the bodies the SENDs that stored them had in hand), synchronously,
when it knows the queue's content, else read from the store in a task (on the store's
thread, in order with its writes). An ``ACK`` naming exactly the outstanding id deletes it
and pumps again (from the inbox even before the delete commits). Any other ``ACK`` gets
``ERR NO_MSG`` and deletes nothing. A SUB by another connection moves the
subscription and pushes ``END`` to the old holder, whose ``ACK``s then get ``NO_MSG``;
the unacknowledged message stays stored and goes to the new holder. Delivery is
at-least-once: a message whose ACK was lost is delivered again on the next SUB.

Authentication of recipient commands always costs one signature check: a missing
queue is checked against a fixed dummy key (``verify_signature``), so a missing queue
and a wrong key answer the same ``ERR AUTH`` after the same work. SEND to a queue that
is missing or locked to a sender key is checked the same way, and so is SEND to a
sender-secured queue not yet locked (against the key the SEND carries, or the dummy
key): the first that verifies locks the queue through the store's conditional
``lock_sender_key`` before its message is put. A SEND a sender-secured queue refuses
leaves its recipient a notice (``put_notice``, in a task, after the answer). An ``ACK`` on the
connection that holds the queue's subscription is checked against the recipient key
read at ``SUB`` (the key never changes, and ``DEL`` ends the subscription), which saves
one read of the store per delivered message. An ``ACK`` may carry an HMAC instead of a
signature (docs/protocol.md §14.4): its key, derived from the queue key and the session,
is computed once at ``SUB`` and kept in the subscription, already keyed (``AckMac``);
without a subscription on this connection it is derived from the stored queue key, or
from a dummy one, at equal cost.
A SEND to a subscribed queue finds the queue in memory (``_by_sender``), not in the store.

Nothing here can decrypt: the server holds each queue's key for the server-to-recipient
layer only, and an import-linter contract keeps the session, ratchet and handshake
modules out of ``burnerkit.relay.server``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
import os
import ssl
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Final, assert_never

from burnerkit.crypto.aead import AeadKey
from burnerkit.crypto.keys import VerifyKey, X25519PrivateKey
from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import InvalidKeyError, RelayStartError, RemoteProtocolError, StoreError
from burnerkit.relay.protocol import (
    ACK_MAC_SIZE,
    CORR_ID_SIZE,
    FRAME_SIZE,
    MAX_BODY_SIZE,
    MSG_ID_SIZE,
    QUEUE_ID_SIZE,
    SESSION_ID_SIZE,
    Ack,
    AckMac,
    ClientTransmission,
    Del,
    Delivery,
    End,
    Err,
    ErrorCode,
    Hello,
    Ids,
    Key,
    MbAlloc,
    MbDel,
    MbGet,
    MbJoin,
    MbPut,
    Msg,
    New,
    Ok,
    Ping,
    Pong,
    QueueIds,
    Send,
    ServerResponse,
    Sub,
    decode_client_frame,
    derive_ack_key,
    derive_queue_key,
    encode_server_frame,
    seal_delivery,
    seal_ids,
    server_frame_parts,
    verify_ack_mac_of_queue,
    verify_signature,
)

from .config import RelayConfig
from .link import Link, LinkClosed, Outbox, Pause
from .logs import LOGGER_NAME, log_event
from .mailbox import MailboxCommand, MailboxHub
from .metrics import Metrics, start_metrics_server
from .store.base import MessageStore, PutResult, QueueRecord, StoredMessage

__all__ = ["RelayServer"]

_log = logging.getLogger(LOGGER_NAME)

_ZERO_CORR: Final = bytes(CORR_ID_SIZE)
_NO_ENTITY: Final = b""
#: Every OK is the same value (it has no fields): one made, not one per answer.
_OK: Final = Ok()
#: Commands of one connection that may run at once (the group commit of SQLite takes up to 64).
_MAX_INFLIGHT: Final = 16
#: Bytes of unsent output per connection beyond which we stop reading its commands.
_WRITE_LIMIT: Final = 4 * FRAME_SIZE
#: Seconds for the HTTP upgrade, for a closing handshake, and for a graceful stop
#: before connections are cut.
_OPEN_TIMEOUT: Final = 10.0
_CLOSE_TIMEOUT: Final = 5.0
_STOP_GRACE: Final = 10.0
#: Close code of a relay that stops (RFC 6455 §7.4.1, "going away").
_GOING_AWAY: Final = 1001
#: ``outstanding`` while an ACK's delete runs: matches no msg id, and is not None.
_ACKING: Final = b""
#: Messages a subscription keeps in memory for delivery (beyond them it reads the store),
#: and bodies all subscriptions together keep (beyond it every new one reads the store).
_INBOX_MESSAGES: Final = 16
_INBOX_TOTAL: Final = 4096

_SYSTEM_RANDOM: Final = SystemRandom()

_COMMAND_NAMES: Final[dict[type, str]] = {
    New: "new",
    Sub: "sub",
    Key: "key",
    Send: "send",
    Ack: "ack",
    Del: "del",
    Ping: "ping",
    MbAlloc: "mb_alloc",
    MbJoin: "mb_join",
    MbPut: "mb_put",
    MbGet: "mb_get",
    MbDel: "mb_del",
}
_WITHOUT_ENTITY: Final = (New, Ping, MbAlloc, MbJoin)
#: Seconds between two sweeps of expired pairing mailboxes, at most (a tenth of the TTL if shorter).
_MAILBOX_SWEEP: Final = 5.0


class _Gate:
    """A SEND's gate: open once the SEND has called ``put_message`` (see the module docstring).

    It makes a future only for a later SEND that must wait: most gates open before the
    next SEND arrives, and a future per SEND would cost more than the gate's work.
    """

    __slots__ = ("_waiter", "is_open")

    def __init__(self) -> None:
        self.is_open = False
        self._waiter: asyncio.Future[None] | None = None

    def open(self) -> None:
        if not self.is_open:
            self.is_open = True
            if self._waiter is not None:
                self._waiter.set_result(None)

    async def opened(self) -> None:
        if not self.is_open:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


class _Connection:
    """What we keep per connection; kept small on purpose (thousands sit idle)."""

    __slots__ = (
        "gate",
        "gone",
        "inflight",
        "link",
        "session_id",
        "stamp",
        "subscriptions",
        "tokens",
    )

    def __init__(self, link: Link, session_id: bytes, tokens: float, stamp: float) -> None:
        self.link = link
        self.session_id = session_id
        #: token bucket: tokens left and when it was last refilled (loop time)
        self.tokens = tokens
        self.stamp = stamp
        #: recipient ids this connection holds the subscription of (None until the first SUB)
        self.subscriptions: set[bytes] | None = None
        #: commands running in tasks of their own
        self.inflight = 0
        #: the gate of the latest SEND of this connection, until that SEND ends
        self.gate: _Gate | None = None
        #: the TCP connection is gone; its state goes once no command runs any more
        self.gone = False

    def take_token(self, now: float, rate: float, burst: int) -> bool:
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def hold(self, recipient_id: bytes) -> None:
        if self.subscriptions is None:
            self.subscriptions = set()
        self.subscriptions.add(recipient_id)

    def release(self, recipient_id: bytes) -> None:
        if self.subscriptions is not None:
            self.subscriptions.discard(recipient_id)
            if not self.subscriptions:
                self.subscriptions = None


class _Slot:
    """One of a connection's :data:`_MAX_INFLIGHT` places for a running command."""

    __slots__ = ("conn", "held", "on_free")

    def __init__(self, conn: _Connection, on_free: Callable[[_Connection], None]) -> None:
        self.conn = conn
        self.on_free = on_free
        self.held = True

    def free(self, _task: object = None) -> None:
        """Give the place back (once; later calls do nothing)."""
        if self.held:
            self.held = False
            self.on_free(self.conn)


class _Pumped(enum.Enum):
    """What :meth:`RelayServer._pump` did."""

    SENT = enum.auto()  #: a MSG went out
    NOTHING = enum.auto()  #: nothing to deliver now (none waits, one is outstanding, or a read runs)
    READ = enum.auto()  #: the store must be read to know (see _pump_read)


class _Subscription:
    """One subscribed queue: who holds it, what is outstanding on it, what waits in memory.

    The inbox: while ``complete`` is True, ``inbox`` holds (in order) every message stored
    on the queue after the outstanding one, so delivery needs no read of the store; the
    SEND that stored a message puts its body there. At SUB we know nothing (``complete``
    False): the pump reads the store until a read finds the queue empty. A full inbox, a
    sweep, or a failed delete makes it forget (``complete`` False) and read again.
    """

    __slots__ = (
        "ack_mac",
        "again",
        "complete",
        "conn",
        "inbox",
        "outstanding",
        "pumping",
        "queue",
        "recipient_id",
        "sealer",
    )

    def __init__(self, conn: _Connection, queue: QueueRecord) -> None:
        self.conn = conn
        self.recipient_id = queue.recipient_id
        #: the queue as read at SUB: its recipient key checks the holder's ACKs, its
        #: queue key seals deliveries (neither ever changes; DEL ends the subscription)
        self.queue = queue
        #: checks the MACs of this connection's ACKs on this queue (§14.4), keyed once
        self.ack_mac = AckMac(derive_ack_key(queue.queue_key, conn.session_id), conn.session_id)
        #: the queue key, set up once for sealing this subscription's deliveries
        self.sealer = AeadKey(queue.queue_key)
        #: msg id delivered and not yet acknowledged; _ACKING while its delete runs
        self.outstanding: bytes | None = None
        #: a _pump is running; ``again``: something was stored while it ran
        self.pumping = False
        self.again = False
        self.complete = False
        self.inbox: deque[StoredMessage] | None = None


class RelayServer:
    """The relay: queues, signed commands and fixed-size frames over WebSocket.

    Args:
        store: where queues and messages live; the server closes it on :meth:`stop`.
        config: addresses, limits and intervals.
        rng: source of session values, ids, queue keys and nonces.
        clock: seconds since the epoch, for ``received_at`` and expiry.
    """

    def __init__(
        self,
        store: MessageStore,
        config: RelayConfig,
        *,
        rng: Random = _SYSTEM_RANDOM,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._config = config
        self._rng = rng
        self._clock = clock
        #: aggregate counters, exported on the metrics endpoint
        self.metrics = Metrics()
        self._connections: set[_Connection] = set()
        self._subscriptions: dict[bytes, _Subscription] = {}
        #: the same subscriptions by sender id: a SEND to a subscribed queue reads no store
        self._by_sender: dict[bytes, _Subscription] = {}
        #: messages held in all inboxes together (at most _INBOX_TOTAL)
        self._inboxed = 0
        #: recipient ids whose refused-sender notice is being put (one at a time per queue)
        self._noticing: set[bytes] = set()
        self._tasks: set[asyncio.Task[object]] = set()
        #: commands that wait, resumed without a task (see _start), and what stop() awaits
        self._resumed = 0
        self._drained: asyncio.Future[None] | None = None
        self._ws_server: asyncio.Server | None = None
        self._metrics_server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        #: pairing mailboxes (§14.12): in memory only, swept by their own task
        self._mailboxes = MailboxHub(
            rng=rng,
            metrics=self.metrics,
            ttl=config.mailbox_ttl,
            capacity=config.max_mailboxes,
            per_connection=config.mailboxes_per_connection,
        )
        self._mailbox_sweeper: asyncio.Task[None] | None = None
        self._closing = False
        self._stopped = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def bound_port(self) -> int:
        """The TCP port the WebSocket listener is bound to (useful with ``port=0``).

        Raises:
            RuntimeError: if the server is not started.
        """
        if self._ws_server is None:
            raise RuntimeError("the relay is not started")
        port: int = self._ws_server.sockets[0].getsockname()[1]
        return port

    @property
    def metrics_port(self) -> int | None:
        """The TCP port of the metrics endpoint, if it runs."""
        if self._metrics_server is None:
            return None
        port: int = self._metrics_server.sockets[0].getsockname()[1]
        return port

    @property
    def connections_active(self) -> int:
        """Open connections."""
        return len(self._connections)

    @property
    def subscriptions_active(self) -> int:
        """Subscribed queues."""
        return len(self._subscriptions)

    async def start(self) -> None:
        """Listen for connections (and metrics scrapes), and start the sweeper.

        Raises:
            RelayStartError: the address is in use or not ours, or the TLS files do not load.
            RuntimeError: if called twice.
        """
        if self._ws_server is not None or self._closing:
            raise RuntimeError("the relay was already started")
        config = self._config
        tls = _tls_context(config)
        loop = asyncio.get_running_loop()

        outbox = Outbox(loop)

        def link() -> Link:
            return Link(
                self,
                max_size=FRAME_SIZE,
                write_limit=_WRITE_LIMIT,
                open_timeout=_OPEN_TIMEOUT,
                close_timeout=_CLOSE_TIMEOUT,
                outbox=outbox,
            )

        try:
            self._ws_server = await loop.create_server(link, config.host, config.port, ssl=tls)
        except OSError as exc:
            raise RelayStartError(f"cannot listen on {config.host}:{config.port}: {_reason(exc)}") from exc
        if config.metrics_port is not None:
            try:
                self._metrics_server = await start_metrics_server(
                    self._render_metrics, config.metrics_host, config.metrics_port
                )
            except OSError as exc:
                self._ws_server.close()
                await self._ws_server.wait_closed()
                where = f"{config.metrics_host}:{config.metrics_port}"
                raise RelayStartError(f"cannot listen for metrics on {where}: {_reason(exc)}") from exc
        self._sweeper = asyncio.create_task(self._sweep_forever())
        self._mailbox_sweeper = asyncio.create_task(self._sweep_mailboxes_forever())
        log_event(
            _log,
            "relay_started",
            tls=config.tls,
            metrics=config.metrics_port is not None,
            quota=config.quota,
            ttl=config.ttl,
        )

    async def wait_closed(self) -> None:
        """Return once :meth:`stop` has finished."""
        await self._stopped.wait()

    async def stop(self) -> None:
        """Stop gracefully, then close the store.

        Stops accepting connections, stops reading commands, lets the commands already
        read finish and answer, closes every connection (1001, going away), stops the
        sweeper and the metrics endpoint, and closes the store. Connections that do not
        finish within a grace period are cut. Calling it again waits for the first call.
        """
        if self._closing:
            await self._stopped.wait()
            return
        self._closing = True
        log_event(_log, "relay_stopping", connections=len(self._connections))
        try:
            if self._ws_server is not None:
                self._ws_server.close()
                for conn in list(self._connections):
                    conn.link.pause(Pause.STOPPING)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_STOP_GRACE):
                        await self._drain()
                links = [conn.link for conn in self._connections]
                for link in links:
                    link.close(_GOING_AWAY, "relay stopping")
                    # The client's answering close frame comes in on input we paused above:
                    # unread, no handshake could complete, and every link would wait out its
                    # close timeout and be cut. Reading again runs nothing (link_received drops
                    # every frame while closing, and a closing link drops its backlog); only a
                    # peer that does not read (Pause.WRITING) stays paused, and is cut.
                    link.resume(Pause.STOPPING | Pause.INFLIGHT)
                if links:
                    _, late = await asyncio.wait([link.closed for link in links], timeout=_CLOSE_TIMEOUT)
                    if late:
                        for link in links:
                            link.abort()
                        await asyncio.wait([link.closed for link in links])
                await self._ws_server.wait_closed()
            for sweeper in (self._sweeper, self._mailbox_sweeper):
                if sweeper is not None:
                    sweeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sweeper
            await self._drain()
            if self._metrics_server is not None:
                self._metrics_server.close()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await self._metrics_server.wait_closed()
            try:
                await self._store.close()
            except StoreError as exc:
                log_event(_log, "store_close_failed", level=logging.ERROR, error=type(exc).__name__)
        finally:
            self._stopped.set()
            log_event(_log, "relay_stopped")

    def _render_metrics(self) -> str:
        return self.metrics.render(
            connections_active=len(self._connections),
            subscriptions_active=len(self._subscriptions),
            mailboxes_open=self._mailboxes.open_count,
        )

    async def _sweep_forever(self) -> None:
        while True:
            try:
                expired = await self._store.expire(int(self._clock()) - self._config.ttl)
            except StoreError as exc:
                log_event(_log, "sweep_failed", level=logging.ERROR, error=type(exc).__name__)
            else:
                if expired:
                    # An inbox may hold a message just swept: forget them all, read again.
                    for sub in self._subscriptions.values():
                        self._forget(sub)
                self.metrics.messages_expired_total += expired
                log_event(_log, "sweep", expired=expired)
            await asyncio.sleep(self._config.sweep_interval)

    async def _sweep_mailboxes_forever(self) -> None:
        interval = min(_MAILBOX_SWEEP, self._config.mailbox_ttl / 10)
        while True:
            await asyncio.sleep(interval)
            for push in self._mailboxes.expire(self._clock()):
                self._push_to(push.conn, push.token, push.response)

    # -- connections (the LinkHandler protocol of .link) ----------------------------------

    def link_admit(self) -> bool:
        """Refuse the handshake (503) when full or closing."""
        return not self._closing and len(self._connections) < self._config.max_connections

    def link_opened(self, link: Link) -> None:
        """A connection: its session value, then HELLO."""
        conn = _Connection(
            link,
            self._rng.random_bytes(SESSION_ID_SIZE),
            float(self._config.rate_burst),
            asyncio.get_running_loop().time(),
        )
        link.context = conn
        self._connections.add(conn)
        self.metrics.connections_total += 1
        with contextlib.suppress(LinkClosed):
            link.send(encode_server_frame(_ZERO_CORR, _NO_ENTITY, Hello(conn.session_id)))

    def link_received(self, link: Link, data: bytes | str) -> None:
        """One frame of ``link``: run it, unless the relay is stopping."""
        conn = link.context
        assert isinstance(conn, _Connection)
        if self._closing:
            return  # read after stop() began: never executed, the client retries
        self._receive(conn, data)

    def link_closed(self, link: Link) -> None:
        """``link`` is gone; its state goes once its commands are done."""
        conn = link.context
        assert isinstance(conn, _Connection)
        conn.gone = True
        if not conn.inflight:
            self._release(conn)

    def _release(self, conn: _Connection) -> None:
        """The connection is gone and none of its commands runs: forget it."""
        self._connections.discard(conn)
        self._drop_subscriptions(conn)
        self._mailboxes.detach(conn)

    def _drop_subscriptions(self, conn: _Connection) -> None:
        for recipient_id in conn.subscriptions or ():
            sub = self._subscriptions.get(recipient_id)
            if sub is not None and sub.conn is conn:
                self._unregister(sub)
        conn.subscriptions = None

    def _receive(self, conn: _Connection, data: bytes | str) -> None:
        """Charge the bucket, decode, and run the command (or answer RATE or CMD)."""
        loop = asyncio.get_running_loop()
        allowed = conn.take_token(loop.time(), self._config.rate_limit, self._config.rate_burst)
        tx: ClientTransmission | None = None
        if isinstance(data, bytes):
            # Not contextlib.suppress: this runs for every frame, and a bare try costs nothing.
            try:  # noqa: SIM105
                tx = decode_client_frame(data)
            except RemoteProtocolError:
                pass
        try:
            if not allowed:
                if tx is None:
                    self._send_frame(conn, _ZERO_CORR, _NO_ENTITY, Err(ErrorCode.RATE))
                else:
                    self._answer(conn, tx, Err(ErrorCode.RATE))
                return
            if tx is None:
                self._send_frame(conn, _ZERO_CORR, _NO_ENTITY, Err(ErrorCode.CMD))
                return
            command = tx.command
            self.metrics.commands[_COMMAND_NAMES[type(command)]] += 1
            if isinstance(command, _WITHOUT_ENTITY) == (len(tx.entity) == QUEUE_ID_SIZE):
                self._answer(conn, tx, Err(ErrorCode.CMD))
                return
            if isinstance(command, Ping):
                self._answer(conn, tx, Pong())
                return
            if isinstance(command, Ack) and self._ack_held(conn, tx, command):
                return
        except LinkClosed:
            return
        prev: _Gate | None = None
        gate: _Gate | None = None
        if isinstance(command, Send):
            prev, gate = conn.gate, _Gate()
            conn.gate = gate
        slot = self._slot(conn)
        self._start(conn, self._run(conn, tx, self._command(conn, tx, prev, gate, slot), gate), slot)

    def _slot(self, conn: _Connection) -> _Slot:
        """Take one of ``conn``'s places for a running command; at _MAX_INFLIGHT, read no more."""
        conn.inflight += 1
        if conn.inflight >= _MAX_INFLIGHT:
            conn.link.pause(Pause.INFLIGHT)
        return _Slot(conn, self._slot_freed)

    def _slot_freed(self, conn: _Connection) -> None:
        conn.inflight -= 1
        if conn.gone:
            if not conn.inflight:
                self._release(conn)
        elif conn.inflight < _MAX_INFLIGHT:
            conn.link.resume(Pause.INFLIGHT)

    def _start(self, conn: _Connection, coro: Coroutine[Any, Any, None], slot: _Slot | None = None) -> None:
        """Run one of ``conn``'s commands, in ``slot`` or a new one (freed at its end).

        It runs here until it first waits (as Python 3.12's eager tasks do): most ACKs
        and many reads finish without waiting (a hot or in-memory queue). From there on,
        the futures it waits on resume it (:class:`_Resumed`), not a task: a task would
        cost more than the command.
        """
        slot = self._slot(conn) if slot is None else slot
        try:
            waiting = coro.send(None)
        except StopIteration:
            slot.free()
            return
        except BaseException:
            slot.free()
            raise
        self._resumed += 1
        _Resumed(coro, functools.partial(self._resumed_finished, slot)).wait(waiting)

    def _resumed_finished(self, slot: _Slot) -> None:
        slot.free()
        self._resumed -= 1
        if not self._resumed and self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    async def _drain(self) -> None:
        """Wait until none of our commands and tasks runs."""
        while self._tasks or self._resumed:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                self._drained = asyncio.get_running_loop().create_future()
                await self._drained

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> asyncio.Task[object]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- commands -------------------------------------------------------------------------

    async def _run(
        self,
        conn: _Connection,
        tx: ClientTransmission,
        work: Coroutine[Any, Any, None],
        gate: _Gate | None = None,
    ) -> None:
        """Run ``work`` for ``tx``; a store failure answers INTERNAL, a closed connection ends it.

        ``gate``: the SEND's gate (see the module docstring), opened whatever happens.
        """
        try:
            await work
        except LinkClosed:
            pass
        except Exception as exc:
            self._failed(conn, tx, exc)
        finally:
            if gate is not None:
                gate.open()
                if conn.gate is gate:
                    conn.gate = None

    def _failed(self, conn: _Connection, tx: ClientTransmission, exc: Exception) -> None:
        """``tx`` failed: answer INTERNAL.

        On a store failure, or on a bug of ours: logged by its kind, never by what it held.
        """
        event = "store_error" if isinstance(exc, StoreError) else "internal_error"
        log_event(_log, event, level=logging.ERROR, error=type(exc).__name__)
        self._answer_quietly(conn, tx, Err(ErrorCode.INTERNAL))

    def _command(
        self,
        conn: _Connection,
        tx: ClientTransmission,
        prev: _Gate | None,
        gate: _Gate | None,
        slot: _Slot,
    ) -> Coroutine[Any, Any, None]:
        """The part of a command that may wait for the store (PING and held ACKs never get here).

        Not itself a coroutine: one frame fewer to create and to pass through at every resume.
        """
        match tx.command:
            case Send() as command:
                assert gate is not None
                return self._send(conn, tx, command, prev, gate, slot)
            case Ack() as command:
                return self._ack(conn, tx, command)
            case New() as command:
                return self._new(conn, tx, command)
            case Sub():
                return self._sub(conn, tx)
            case Key() as command:
                return self._key(conn, tx, command)
            case Del():
                return self._del(conn, tx)
            case Ping() | MbAlloc() | MbJoin() | MbPut() | MbGet() | MbDel() as command:
                return self._at_once(conn, tx, command)
            case _:  # pragma: no cover
                assert_never(tx.command)

    async def _at_once(
        self, conn: _Connection, tx: ClientTransmission, command: Ping | MailboxCommand
    ) -> None:
        """A command that needs no store (a PING is answered by the reader)."""
        if isinstance(command, Ping):  # pragma: no cover
            self._answer(conn, tx, Pong())
        else:
            self._mailbox(conn, tx, command)

    async def _new(self, conn: _Connection, tx: ClientTransmission, command: New) -> None:
        # Proof of possession: NEW is signed by the key it registers.
        if not verify_signature(command.recipient_key, tx, conn.session_id):
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        server_key = X25519PrivateKey.generate(self._rng)
        try:
            queue_key = derive_queue_key(server_key, command.recipient_dh)
        except RemoteProtocolError:
            self._answer(conn, tx, Err(ErrorCode.CMD))
            return
        ids = QueueIds(self._rng.random_bytes(QUEUE_ID_SIZE), self._rng.random_bytes(QUEUE_ID_SIZE))
        await self._store.create_queue(
            QueueRecord(
                ids.recipient_id,
                ids.sender_id,
                command.recipient_key,
                queue_key,
                sender_secured=command.sender_secured,
            )
        )
        self.metrics.queues_created_total += 1
        self._answer(conn, tx, Ids(server_key.public_key.raw, seal_ids(queue_key, ids, self._rng)))

    async def _authorized(self, conn: _Connection, tx: ClientTransmission) -> QueueRecord | None:
        """The queue named by a recipient command, if it exists and the signature is its key's.

        The signature is checked in every case (against a dummy key when the queue is
        missing), so that both failures cost the same.
        """
        queue = await self._store.queue_by_recipient(tx.entity)
        ok = verify_signature(None if queue is None else queue.recipient_key, tx, conn.session_id)
        return queue if ok else None

    async def _sub(self, conn: _Connection, tx: ClientTransmission) -> None:
        queue = await self._authorized(conn, tx)
        if queue is None:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        recipient_id = queue.recipient_id
        # A new subscription object even on a re-SUB of the same connection: the
        # outstanding message (whose ACK may have been lost) is delivered again.
        sub = _Subscription(conn, queue)
        old = self._subscriptions.get(recipient_id)
        if old is not None:
            self._unregister(old)
        self._subscriptions[recipient_id] = sub
        self._by_sender[queue.sender_id] = sub
        conn.hold(recipient_id)
        if old is not None and old.conn is not conn:
            old.conn.release(recipient_id)
            self._push(old.conn, recipient_id, End())
        self._answer(conn, tx, _OK)
        await self._pump_async(sub)

    async def _key(self, conn: _Connection, tx: ClientTransmission, command: Key) -> None:
        queue = await self._authorized(conn, tx)
        if queue is None:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        try:
            # A small-order key would accept forged signatures; refuse it here.
            VerifyKey.from_bytes(command.sender_key)
        except (ValueError, InvalidKeyError):
            self._answer(conn, tx, Err(ErrorCode.CMD))
            return
        if queue.sender_key is not None and queue.sender_key != command.sender_key:
            # A queue is locked once (SimpleX's KEY); repeating the same key is a retry.
            self._answer(conn, tx, Err(ErrorCode.CMD))
            return
        # Conditional, like a sender-secured queue's first SEND: whichever of the two
        # the store runs first locks the queue, and the other is refused.
        if not await self._store.lock_sender_key(queue.recipient_id, command.sender_key):
            still = await self._store.queue_by_recipient(queue.recipient_id)
            self._answer(conn, tx, Err(ErrorCode.AUTH if still is None else ErrorCode.CMD))
            return
        self._locked(queue.recipient_id, command.sender_key)
        self._answer(conn, tx, _OK)

    def _locked(self, recipient_id: bytes, sender_key: bytes) -> None:
        """The store locked the queue to ``sender_key``: so does its subscription's copy.

        SENDs to a subscribed queue check the key held here, not the store's. A copy
        read before the lock (a SUB racing it) may still say unlocked: a SEND then asks
        the store to lock, which answers for the key already set.
        """
        sub = self._subscriptions.get(recipient_id)
        if sub is not None and sub.queue.sender_key is None:
            sub.queue = dataclasses.replace(sub.queue, sender_key=sender_key)

    async def _del(self, conn: _Connection, tx: ClientTransmission) -> None:
        queue = await self._authorized(conn, tx)
        if queue is None or not await self._store.delete_queue(queue.recipient_id):
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        sub = self._subscriptions.get(queue.recipient_id)
        if sub is not None:
            self._unregister(sub)
            sub.conn.release(queue.recipient_id)
            if sub.conn is not conn:
                self._push(sub.conn, queue.recipient_id, End())
        self._answer(conn, tx, _OK)

    def _ack_held(self, conn: _Connection, tx: ClientTransmission, command: Ack) -> bool:
        """Run an ACK here and now if this connection holds the queue's subscription.

        Returns False when it does not: :meth:`_ack` then runs it in a task (it reads
        the store). The queue is the one read at SUB (a DEL would have ended the
        subscription), so the check needs no read of the store, and costs what it costs
        on the other path.
        """
        sub = self._subscriptions.get(tx.entity)
        if sub is None or sub.conn is not conn:
            return False
        if len(tx.signature) == ACK_MAC_SIZE:
            verified = sub.ack_mac.verify(tx)
        else:
            verified = verify_signature(sub.queue.recipient_key, tx, conn.session_id)
        if not verified:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
        elif sub.outstanding != command.msg_id:
            self._answer(conn, tx, Err(ErrorCode.NO_MSG))
        else:
            self._acknowledge(conn, tx, sub, command.msg_id)
        return True

    async def _ack(self, conn: _Connection, tx: ClientTransmission, command: Ack) -> None:
        """An ACK on a connection that did not hold the subscription when it arrived.

        :meth:`_receive` tried :meth:`_ack_held` first, and this starts right after it.
        """
        if len(tx.signature) == ACK_MAC_SIZE:
            # No key cached for this connection: derive it (from a dummy if the queue is missing).
            queue = await self._store.queue_by_recipient(tx.entity)
            ok = verify_ack_mac_of_queue(None if queue is None else queue.queue_key, tx, conn.session_id)
            queue = queue if ok else None
        else:
            queue = await self._authorized(conn, tx)
        if queue is None:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        sub = self._subscriptions.get(queue.recipient_id)
        if sub is None or sub.conn is not conn or sub.outstanding != command.msg_id:
            self._answer(conn, tx, Err(ErrorCode.NO_MSG))
            return
        self._acknowledge(conn, tx, sub, command.msg_id)

    def _acknowledge(
        self, conn: _Connection, tx: ClientTransmission, sub: _Subscription, msg_id: bytes
    ) -> None:
        """``msg_id``, outstanding on ``sub``, is acknowledged: delete it, deliver the next one."""
        if sub.inbox:
            # The recipient has this message: the next one, in memory, answers the ACK at
            # once, before the delete commits (delivery is at-least-once). The delete is
            # done here (most often: the store needs no wait), or its command starts here,
            # before any later read of the store can be queued (the next read waits for the
            # next ACK), so this message is never read back. Only without a next message
            # does the ACK get its own OK.
            sub.outstanding = None
            answered = self._pump(sub, tx.corr_id) is _Pumped.SENT
            if not self._delete_now(conn, tx, sub, msg_id, answered):
                self._start(conn, self._run(conn, tx, self._delete_answered(conn, tx, sub, msg_id, answered)))
            return
        # While the delete runs, a second ACK of the same id gets NO_MSG and nothing
        # is pumped: the message is still on the queue and must not go out again.
        sub.outstanding = _ACKING
        self._start(conn, self._run(conn, tx, self._delete_then_pump(conn, tx, sub, msg_id)))

    def _delete_now(
        self, conn: _Connection, tx: ClientTransmission, sub: _Subscription, msg_id: bytes, answered: bool
    ) -> bool:
        """:meth:`_delete_answered` here and now, if the store needs no wait; whether it did.

        Raises:
            LinkClosed: if the connection is gone.
        """
        try:
            deleted = self._store.delete_message_now(sub.recipient_id, msg_id)
        except Exception as exc:
            self._delete_failed(conn, tx, sub, exc, answered)
            return True
        if deleted is None:
            return False
        self._deleted(conn, tx, deleted, answered)
        return True

    async def _delete_answered(
        self, conn: _Connection, tx: ClientTransmission, sub: _Subscription, msg_id: bytes, answered: bool
    ) -> None:
        try:
            deleted = await self._store.delete_message(sub.recipient_id, msg_id)
        except Exception as exc:
            self._delete_failed(conn, tx, sub, exc, answered)
            return
        self._deleted(conn, tx, deleted, answered)

    def _deleted(self, conn: _Connection, tx: ClientTransmission, deleted: bool, answered: bool) -> None:
        """An ACK's delete is done: the ACK gets its OK unless the next message answered it."""
        if deleted:
            self.metrics.messages_acked_total += 1
        if not answered:
            self._answer(conn, tx, _OK)

    def _delete_failed(
        self, conn: _Connection, tx: ClientTransmission, sub: _Subscription, exc: Exception, answered: bool
    ) -> None:
        """An ACK's delete failed: the message stays stored, ahead of the inbox (read the store again)."""
        self._forget(sub)
        if not answered:
            self._failed(conn, tx, exc)
            return
        # The ACK has its answer already; the message will simply come again.
        error = type(exc).__name__ if isinstance(exc, StoreError) else "delete failed"
        log_event(_log, "store_error", level=logging.ERROR, error=error)

    async def _delete_then_pump(
        self, conn: _Connection, tx: ClientTransmission, sub: _Subscription, msg_id: bytes
    ) -> None:
        try:
            deleted = await self._store.delete_message(sub.recipient_id, msg_id)
        except BaseException:
            if sub.outstanding == _ACKING:
                sub.outstanding = msg_id
            raise
        # Not deleted means the message is already gone (expired, or the queue was
        # deleted): either way the recipient has it; the answer is the next message, or OK.
        if deleted:
            self.metrics.messages_acked_total += 1
        if sub.outstanding == _ACKING:
            sub.outstanding = None
        if self._subscriptions.get(sub.recipient_id) is sub and await self._pump_async(sub, tx.corr_id):
            return
        self._answer(conn, tx, _OK)

    async def _send(
        self,
        conn: _Connection,
        tx: ClientTransmission,
        command: Send,
        prev: _Gate | None,
        gate: _Gate,
        slot: _Slot,
    ) -> None:
        if len(command.body) > MAX_BODY_SIZE:
            self._answer(conn, tx, Err(ErrorCode.LARGE))
            return
        held = self._by_sender.get(tx.entity)
        if held is not None and self._subscriptions.get(held.recipient_id) is held:
            queue: QueueRecord | None = held.queue
        else:
            queue = await self._store.queue_by_sender(tx.entity)
        if queue is None or queue.sender_key is not None:
            key = None if queue is None else queue.sender_key
        elif queue.sender_secured:
            # Not locked yet: the first SEND signed by the key it carries locks it (§14.8).
            # Unsigned, or carrying no key: checked against the dummy key, as a missing queue.
            key = command.sender_key
        else:
            key = None  # an open queue: anyone who knows the sender id may send
        if (queue is None or key is not None or queue.sender_secured) and not verify_signature(
            key, tx, conn.session_id
        ):
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            if queue is not None and queue.sender_secured:
                self._sender_refused(queue.recipient_id)
            return
        assert queue is not None  # verify_signature(None, ...) is always False
        if queue.sender_key is None and key is not None:
            # Locked before the message is stored, so the lock is durable no later than the
            # message: a crash between the two leaves the queue locked to this key, and
            # the sender's retry (same key, same send id) is stored then.
            if not await self._store.lock_sender_key(queue.recipient_id, key):
                self._answer(conn, tx, Err(ErrorCode.AUTH))  # another key locked it first
                self._sender_refused(queue.recipient_id)
                return
            self._locked(queue.recipient_id, key)
        message = StoredMessage(self._rng.random_bytes(MSG_ID_SIZE), int(self._clock()), False, command.body)
        if prev is not None and not prev.is_open:
            await prev.opened()
        # The put's first step runs before any later SEND of this connection wakes up,
        # so the store sees this connection's SENDs in the order they arrived.
        gate.open()
        accepted = False

        def deliver(result: PutResult) -> None:
            """The message is on the queue (stored, or held by the store): hand it to delivery."""
            nonlocal accepted, message
            accepted = True
            # What is left is the wait for the OK (under write-behind, for the recipient's
            # ACK): the store holds the message, so it no longer takes a place among the
            # connection's commands, and a sender may pipeline past _MAX_INFLIGHT.
            slot.free()
            sub = self._subscriptions.get(queue.recipient_id)
            if sub is not None:
                if result is PutResult.STORED_MARKED:
                    message = dataclasses.replace(message, quota_marker=True)
                self._offer(sub, message)
                if sub.outstanding is None:
                    self._pump_soon(sub)

        # With the recipient online and its queue known in memory, the store may hold the
        # body back and tell us as soon as it has accepted it: delivery starts before the
        # commit, and a message acknowledged before its write is never written (§14.8
        # Write-behind). The OK below still waits until the message is safe.
        live = self._subscriptions.get(queue.recipient_id)
        early = deliver if live is not None and live.complete else None
        result = await self._store.put_message(
            tx.entity, command.send_id, message, quota=self._config.quota, on_accepted=early
        )
        match result:
            case PutResult.STORED | PutResult.STORED_MARKED:
                self.metrics.messages_stored_total += 1
                if not accepted:
                    deliver(result)
                self._answer(conn, tx, _OK)
            case PutResult.DUPLICATE:
                self._answer(conn, tx, _OK)
            case PutResult.QUOTA:
                self._answer(conn, tx, Err(ErrorCode.QUOTA))
            case PutResult.NO_QUEUE:
                self._answer(conn, tx, Err(ErrorCode.AUTH))
            case _:  # pragma: no cover
                assert_never(result)

    def _sender_refused(self, recipient_id: bytes) -> None:
        """A SEND to this sender-secured queue was refused: leave its recipient a notice.

        After the refusal is answered (the refused sender's answer is AUTH, when and as a
        missing queue's), in a task of its own; the store keeps at most one waiting per
        queue, and none if the queue is full. Nothing is logged: it would be per queue.
        """
        if recipient_id in self._noticing:
            return  # one is on its way to the store already
        self._noticing.add(recipient_id)
        self._spawn(self._put_notice(recipient_id))

    async def _put_notice(self, recipient_id: bytes) -> None:
        notice = StoredMessage(self._rng.random_bytes(MSG_ID_SIZE), int(self._clock()), False, b"", True)
        try:
            result = await self._store.put_notice(recipient_id, notice, quota=self._config.quota)
        except StoreError as exc:
            log_event(_log, "store_error", level=logging.ERROR, error=type(exc).__name__)
            return
        finally:
            self._noticing.discard(recipient_id)
        if result is PutResult.STORED or result is PutResult.STORED_MARKED:
            self.metrics.messages_stored_total += 1
            sub = self._subscriptions.get(recipient_id)
            if sub is not None:
                # Read from the store, in order with the queue's other messages, rather
                # than guess where the notice sits among the ones in memory.
                self._forget(sub)
                self._pump_soon(sub)

    def _mailbox(self, conn: _Connection, tx: ClientTransmission, command: MailboxCommand) -> None:
        """A pairing mailbox command (§14.12): the hub decides, we send.

        Frames for other connections go out before the answer, so that what the asker
        does next (it waits for the answer) reaches them after; frames for the asker's
        own side (its backlog on JOIN and GET) go after the answer that names its token.
        """
        response, pushes = self._mailboxes.handle(conn, tx.entity, command, self._clock())
        for push in pushes:
            if not push.after_answer and isinstance(push.conn, _Connection):
                self._send_quietly(push.conn, _ZERO_CORR, push.token, push.response)
        self._answer(conn, tx, response)
        for push in pushes:
            if push.after_answer and isinstance(push.conn, _Connection):
                self._send_frame(push.conn, _ZERO_CORR, push.token, push.response)

    def _push_to(self, conn: object, entity: bytes, response: ServerResponse) -> None:
        if isinstance(conn, _Connection):
            self._push(conn, entity, response)

    # -- delivery -------------------------------------------------------------------------

    def _pump(self, sub: _Subscription, answer_to: bytes = _ZERO_CORR) -> _Pumped:
        """Push the oldest message of ``sub`` from its inbox unless one is outstanding.

        ``answer_to``: the corr_id of an ACK this delivery answers (§14.8 ACK), zeros
        for a pushed MSG. ``READ`` when only the store knows what comes next: the caller
        then awaits :meth:`_pump_read` (or has :meth:`_pump_soon` start it).
        """
        if sub.pumping:
            sub.again = True  # a read runs; it looks again before it finds the queue empty
            return _Pumped.NOTHING
        if self._subscriptions.get(sub.recipient_id) is not sub or sub.outstanding is not None:
            return _Pumped.NOTHING
        message = self._take(sub)
        if message is None:
            return _Pumped.NOTHING if sub.complete else _Pumped.READ
        try:
            self._deliver(sub, message, answer_to)
        except LinkClosed:
            return _Pumped.NOTHING
        return _Pumped.SENT

    def _pump_soon(self, sub: _Subscription) -> None:
        """:meth:`_pump` for a pushed MSG, reading the store in a task if it must."""
        if self._pump(sub) is _Pumped.READ:
            self._spawn(self._pump_read(sub))

    async def _pump_async(self, sub: _Subscription, answer_to: bytes = _ZERO_CORR) -> bool:
        """:meth:`_pump`, reading the store if it must; whether a MSG went out."""
        pumped = self._pump(sub, answer_to)
        if pumped is _Pumped.READ:
            return await self._pump_read(sub, answer_to)
        return pumped is _Pumped.SENT

    async def _pump_read(self, sub: _Subscription, answer_to: bytes = _ZERO_CORR) -> bool:
        """Deliver the oldest message of ``sub``, reading the store until it knows there is none.

        Returns whether a MSG went out (so an ACK it answers needs no OK). Never raises:
        a store failure is logged and the message stays stored (the next SEND, ACK or SUB
        pumps again); a closed connection simply ends it.
        """
        if sub.pumping:
            sub.again = True
            return False
        sub.pumping = True
        try:
            while self._subscriptions.get(sub.recipient_id) is sub and sub.outstanding is None:
                sub.again = False
                message = self._take(sub)
                if message is None:
                    if sub.complete:
                        return False
                    message = await self._store.first_message(sub.recipient_id)
                    if self._subscriptions.get(sub.recipient_id) is not sub or sub.outstanding is not None:
                        return False
                    if message is None:
                        if sub.again:
                            continue
                        # Every SEND stored after this read resolves after it, and puts its
                        # message in the inbox from now on.
                        sub.complete = True
                        return False
                self._deliver(sub, message, answer_to)
                return True
            return False
        except LinkClosed:
            return False
        except StoreError as exc:
            log_event(_log, "store_error", level=logging.ERROR, error=type(exc).__name__)
            return False
        finally:
            sub.pumping = False

    def _deliver(self, sub: _Subscription, message: StoredMessage, answer_to: bytes) -> None:
        """Send ``message`` as ``sub``'s outstanding one.

        Raises:
            LinkClosed: if the connection is gone (the message stays outstanding and stored).
        """
        sub.outstanding = message.msg_id
        sealed = seal_delivery(
            sub.sealer,
            message.msg_id,
            Delivery(message.received_at, message.quota_marker, message.body, message.sender_refused),
            self._rng,
        )
        self.metrics.messages_delivered_total += 1
        self._send_frame(sub.conn, answer_to, sub.recipient_id, Msg(message.msg_id, sealed))

    # -- inboxes --------------------------------------------------------------------------

    def _unregister(self, sub: _Subscription) -> None:
        """``sub`` is over (moved, deleted, or its connection closed)."""
        if self._subscriptions.get(sub.recipient_id) is sub:
            del self._subscriptions[sub.recipient_id]
        if self._by_sender.get(sub.queue.sender_id) is sub:
            del self._by_sender[sub.queue.sender_id]
        self._forget(sub)

    def _offer(self, sub: _Subscription, message: StoredMessage) -> None:
        """``message`` was just stored on ``sub``'s queue: keep it for delivery, or stop knowing."""
        if not sub.complete:
            return
        if self._inboxed >= _INBOX_TOTAL or (sub.inbox is not None and len(sub.inbox) >= _INBOX_MESSAGES):
            self._forget(sub)
            return
        if sub.inbox is None:
            sub.inbox = deque()
        sub.inbox.append(message)
        self._inboxed += 1

    def _take(self, sub: _Subscription) -> StoredMessage | None:
        inbox = sub.inbox
        if not inbox:
            return None
        self._inboxed -= 1
        message = inbox.popleft()
        if not inbox:
            sub.inbox = None  # an idle subscription holds no deque
        return message

    def _forget(self, sub: _Subscription) -> None:
        """Drop what ``sub`` knows of its queue: the pump reads the store until it is empty again."""
        if sub.inbox is not None:
            self._inboxed -= len(sub.inbox)
            sub.inbox = None
        sub.complete = False

    def _push(self, conn: _Connection, entity: bytes, response: ServerResponse) -> None:
        """Send a pushed frame (END); a closed connection needs none."""
        self._send_quietly(conn, _ZERO_CORR, entity, response)

    # -- output ---------------------------------------------------------------------------

    def _answer(self, conn: _Connection, tx: ClientTransmission, response: ServerResponse) -> None:
        """Answer ``tx`` with its own corr_id and entity.

        Raises:
            LinkClosed: if the connection is gone.
        """
        self._send_frame(conn, tx.corr_id, tx.entity, response)

    def _answer_quietly(self, conn: _Connection, tx: ClientTransmission, response: ServerResponse) -> None:
        with contextlib.suppress(LinkClosed):
            self._answer(conn, tx, response)

    def _send_quietly(
        self, conn: _Connection, corr_id: bytes, entity: bytes, response: ServerResponse
    ) -> None:
        with contextlib.suppress(LinkClosed):
            self._send_frame(conn, corr_id, entity, response)

    def _send_frame(self, conn: _Connection, corr_id: bytes, entity: bytes, response: ServerResponse) -> None:
        if isinstance(response, Err):
            self.metrics.errors[response.code] += 1
        conn.link.send_parts(server_frame_parts(corr_id, entity, response), FRAME_SIZE)


class _Resumed:
    """A command's coroutine, started by hand, resumed by each future it then waits on.

    What a task does, without the task: a command that waits at all mostly waits once (a
    SEND for its OK), and creating, registering and first stepping a task cost more than
    the rest of that wait (py-spy: about a tenth of a relayed message's event-loop time).
    An asyncio coroutine waits by yielding the future it awaits, flagged as awaited (or
    None, to give up one turn of the loop); once that future is done, it is sent None
    and reads the result itself, failure and cancellation included.
    """

    __slots__ = ("_coro", "_finished")

    def __init__(self, coro: Coroutine[Any, Any, None], finished: Callable[[], None]) -> None:
        self._coro = coro
        self._finished = finished

    def wait(self, waiting: object) -> None:
        """The coroutine yielded ``waiting``: go on once that is done."""
        if waiting is None:
            asyncio.get_running_loop().call_soon(self._step)
            return
        assert isinstance(waiting, asyncio.Future)
        # What a task does with the future: the coroutine's await checks the flag is off.
        waiting._asyncio_future_blocking = False
        waiting.add_done_callback(self._step)

    def _step(self, _future: object = None) -> None:
        try:
            waiting = self._coro.send(None)
        except (StopIteration, asyncio.CancelledError):
            # A cancelled wait ends the command as it would end a cancelled task: quietly.
            self._finished()
        except BaseException:
            self._finished()
            raise
        else:
            self.wait(waiting)


def _tls_context(config: RelayConfig) -> ssl.SSLContext | None:
    """A TLS 1.3 server context from the configured PEM files, or None for plain ``ws://``.

    Raises:
        RelayStartError: if the files do not load.
    """
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    # No session tickets: a resumed session would let the relay link a reconnection to
    # the connection before it, and our clients open fresh connections anyway.
    context.num_tickets = 0
    try:
        context.load_cert_chain(config.tls_cert, config.tls_key)
    except (OSError, ValueError) as exc:
        raise RelayStartError(f"cannot load the TLS certificate or key: {_reason(exc)}") from exc
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason.lower().replace("_", " ") if exc.reason else ""
        return reason or "not a PEM certificate chain and matching key"
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno).lower()
    return str(exc) or type(exc).__name__
