"""The relay server: listen, accept, run each command, stop; the sans-IO relay protocol over WebSocket.

docs/protocol.md §14 (the relay protocol), §14.8 (server rules). Read in this order:
this module (lifecycle and connections), ``commands.py`` (what each command does),
``delivery.py`` (the subscription and delivery machine) and ``subscriptions.py`` (its I/O).

Theory of operation
-------------------
Each WebSocket connection (a :class:`~.link.Link`) gets a random session value, sent in
``HELLO``, that every signed command must cover, so a command recorded on one connection
is refused on another. The link hands us each frame as it arrives, synchronously: we
charge the connection's token bucket, decode the frame with the connection's sans-IO
protocol state (``ServerConnection``, shared with the client; a frame that does not decode
gets ``ERR CMD`` and the connection lives on) and hand it to the commands. What needs no
store runs there and then, and so does a SEND the store decides at once (a queue held by
write-behind: answered from its put's future); the rest runs as an asyncio task. A
connection may have 16 commands in flight, read and not yet answered (beyond, its link reads no more), so a
client that pipelines SENDs gets them into one group commit of the store; they still
reach the store in arrival order (``connection.Gate``). Answers are written to the link at
once; a peer that does not read them stops being read (the link's write-buffer pause).

:meth:`RelayServer.stop` drains: no new connection, no command read; the commands in
flight get a grace period to answer, then are cancelled; then every connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

from burnerkit.crypto.rng import Random, SystemRandom
from burnerkit.errors import RelayStartError, RemoteProtocolError, StoreError
from burnerkit.relay.protocol import (
    FRAME_SIZE,
    QUEUE_ID_SIZE,
    SESSION_ID_SIZE,
    Ack,
    Del,
    Err,
    ErrorCode,
    Key,
    MbAlloc,
    MbDel,
    MbGet,
    MbJoin,
    MbPut,
    New,
    Ping,
    Send,
    Sub,
)

from .commands import Commands
from .config import RelayConfig
from .connection import Connection
from .link import Link, LinkClosed, Outbox, Pause
from .logs import LOGGER_NAME, log_event
from .mailbox import MailboxHub
from .metrics import Metrics, start_metrics_server
from .store.base import MessageStore
from .subscriptions import Subscriptions
from .tls import reason, tls_context

__all__ = ["RelayServer"]

_log = logging.getLogger(LOGGER_NAME)

#: Bytes of unsent output per connection beyond which we stop reading its commands.
_WRITE_LIMIT: Final = 4 * FRAME_SIZE
#: Seconds for the HTTP upgrade, for a closing handshake, and for a graceful stop
#: before commands are cancelled and connections cut.
_OPEN_TIMEOUT: Final = 10.0
_CLOSE_TIMEOUT: Final = 5.0
_STOP_GRACE: Final = 10.0
#: Close code of a relay that stops (RFC 6455 §7.4.1, "going away").
_GOING_AWAY: Final = 1001
#: Seconds between two sweeps of expired pairing mailboxes, at most (a tenth of the TTL if shorter).
_MAILBOX_SWEEP: Final = 5.0

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
        self._connections: set[Connection] = set()
        #: every task of ours (commands, reads, deletes, notices): what stop() drains
        self._tasks: set[asyncio.Task[None]] = set()
        self._ws_server: asyncio.Server | None = None
        self._metrics_server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._mailbox_sweeper: asyncio.Task[None] | None = None
        #: pairing mailboxes (§14.12): in memory only, swept by their own task
        self._mailboxes = MailboxHub(
            rng=rng,
            metrics=self.metrics,
            ttl=config.mailbox_ttl,
            capacity=config.max_mailboxes,
            per_connection=config.mailboxes_per_connection,
        )
        self._subscriptions = Subscriptions(store, self.metrics, rng, self._spawn)
        self._commands = Commands(
            store=store,
            config=config,
            rng=rng,
            clock=clock,
            metrics=self.metrics,
            mailboxes=self._mailboxes,
            subscriptions=self._subscriptions,
            spawn=self._spawn,
        )
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
        """Listen for connections (and metrics scrapes), and start the sweepers.

        Raises:
            RelayStartError: the address is in use or not ours, or the TLS files do not load.
            RuntimeError: if called twice.
        """
        if self._ws_server is not None or self._closing:
            raise RuntimeError("the relay was already started")
        config = self._config
        tls = tls_context(config)
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
                tls=tls,
            )

        try:
            # TLS is the link's own (link.py), not asyncio's: see Link._tls_received.
            self._ws_server = await loop.create_server(link, config.host, config.port)
        except OSError as exc:
            raise RelayStartError(f"cannot listen on {config.host}:{config.port}: {reason(exc)}") from exc
        if config.metrics_port is not None:
            try:
                self._metrics_server = await start_metrics_server(
                    self._render_metrics, config.metrics_host, config.metrics_port
                )
            except OSError as exc:
                self._ws_server.close()
                await self._ws_server.wait_closed()
                where = f"{config.metrics_host}:{config.metrics_port}"
                raise RelayStartError(f"cannot listen for metrics on {where}: {reason(exc)}") from exc
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
        read finish and answer (those still running after a grace period are cancelled),
        closes every connection (1001, going away), stops the sweepers and the metrics
        endpoint, and closes the store. Connections that do not finish their close
        handshake in time are cut. Calling it again waits for the first call.
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
                await self._drain(_STOP_GRACE)
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
            await self._drain(_CLOSE_TIMEOUT)
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

    async def _drain(self, grace: float) -> None:
        """Wait until none of our tasks runs; cancel those still running after ``grace`` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                while self._tasks:
                    await asyncio.wait(list(self._tasks))
        while self._tasks:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run ``coro`` as a task of ours (stop() waits for it)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

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
                    for held in self._subscriptions:
                        held.machine.swept()
                self.metrics.messages_expired_total += expired
                log_event(_log, "sweep", expired=expired)
            await asyncio.sleep(self._config.sweep_interval)

    async def _sweep_mailboxes_forever(self) -> None:
        interval = min(_MAILBOX_SWEEP, self._config.mailbox_ttl / 10)
        while True:
            await asyncio.sleep(interval)
            for push in self._mailboxes.expire(self._clock()):
                if isinstance(push.conn, Connection):
                    push.conn.push(push.token, push.response)

    # -- connections (the LinkHandler protocol of .link) ----------------------------------

    def link_admit(self) -> bool:
        """Refuse the handshake (503) when full or closing."""
        return not self._closing and len(self._connections) < self._config.max_connections

    def link_opened(self, link: Link) -> None:
        """A connection: its session value, then HELLO."""
        conn = Connection(
            link,
            self._rng.random_bytes(SESSION_ID_SIZE),
            self.metrics,
            float(self._config.rate_burst),
            asyncio.get_running_loop().time(),
        )
        link.context = conn
        self._connections.add(conn)
        self.metrics.connections_total += 1
        with contextlib.suppress(LinkClosed):
            conn.greet()

    def link_received(self, link: Link, data: bytes | str) -> None:
        """One frame of ``link``: run it, unless the relay is stopping."""
        conn = link.context
        assert isinstance(conn, Connection)
        if self._closing:
            return  # read after stop() began: never executed, the client retries
        self._receive(conn, data)

    def link_closed(self, link: Link) -> None:
        """``link`` is gone; its state goes once its commands are done."""
        conn = link.context
        assert isinstance(conn, Connection)
        conn.gone = True
        if not conn.tasks:
            self._release(conn)

    def _release(self, conn: Connection) -> None:
        """The connection is gone and none of its commands runs: forget it."""
        self._connections.discard(conn)
        for recipient_id in conn.subscriptions or ():
            held = self._subscriptions.get(recipient_id)
            if held is not None and held.conn is conn:
                self._subscriptions.end(held)
        conn.subscriptions = None
        self._mailboxes.detach(conn)

    def _receive(self, conn: Connection, data: bytes | str) -> None:
        """Charge the bucket, decode, and run the command (or answer RATE or CMD)."""
        loop = asyncio.get_running_loop()
        allowed = conn.take_token(loop.time(), self._config.rate_limit, self._config.rate_burst)
        try:
            if not isinstance(data, bytes):
                conn.refuse(ErrorCode.RATE if not allowed else ErrorCode.CMD)
                return
            try:
                tx = conn.receive(data)
            except RemoteProtocolError:
                conn.refuse(ErrorCode.RATE if not allowed else ErrorCode.CMD)
                return
            if not allowed:
                conn.answer(tx.corr_id, tx.entity, Err(ErrorCode.RATE))
                return
            self.metrics.commands[_COMMAND_NAMES[type(tx.command)]] += 1
            if isinstance(tx.command, _WITHOUT_ENTITY) == (len(tx.entity) == QUEUE_ID_SIZE):
                conn.answer(tx.corr_id, tx.entity, Err(ErrorCode.CMD))
                return
            work = self._commands.start(conn, tx)
        except LinkClosed:
            return
        if work is not None:
            conn.tasks += 1
            task = asyncio.get_running_loop().create_task(work)
            self._tasks.add(task)
            task.add_done_callback(functools.partial(self._command_done, conn))

    def _command_done(self, conn: Connection, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        conn.tasks -= 1
        if conn.gone and not conn.tasks:
            self._release(conn)
