"""What the relay keeps per connection, and how it writes a frame to one.

docs/protocol.md §14.8 (Rate, Pipelining). Kept small on purpose: thousands of these
sit idle on a relay. The server (``server.py``) charges the token bucket and counts the
commands in flight; the command handlers (``commands.py``) answer through :meth:`Connection.send`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

from burnerkit.relay.protocol import CORR_ID_SIZE, FRAME_SIZE, Err, ServerResponse, server_frame_parts

from .link import Link, LinkClosed
from .metrics import Metrics

__all__ = ["NO_ENTITY", "ZERO_CORR", "Connection", "Gate", "Slot"]

#: The corr_id of pushed frames and of answers to frames that did not parse (§14.8 Corr ids).
ZERO_CORR: Final = bytes(CORR_ID_SIZE)
NO_ENTITY: Final = b""


class Gate:
    """Open once a SEND has called ``put_message``: the next SEND of its connection waits for it.

    So one connection's SENDs reach the store in arrival order without waiting for each
    other's commit. It makes a future only for a later SEND that must wait.
    """

    __slots__ = ("_waiter", "is_open")

    def __init__(self) -> None:
        self.is_open = False
        self._waiter: asyncio.Future[None] | None = None

    def open(self) -> None:
        """Let the next SEND go on (once; later calls do nothing)."""
        if not self.is_open:
            self.is_open = True
            if self._waiter is not None and not self._waiter.done():
                self._waiter.set_result(None)

    async def opened(self) -> None:
        """Return once :meth:`open` was called."""
        if not self.is_open:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter


class Connection:
    """One connection's state: session value, token bucket, commands in flight, subscriptions."""

    __slots__ = (
        "gate",
        "gone",
        "inflight",
        "link",
        "metrics",
        "session_id",
        "stamp",
        "subscriptions",
        "tokens",
    )

    def __init__(self, link: Link, session_id: bytes, metrics: Metrics, tokens: float, stamp: float) -> None:
        self.link = link
        self.session_id = session_id
        self.metrics = metrics
        #: token bucket: tokens left and when it was last refilled (loop time)
        self.tokens = tokens
        self.stamp = stamp
        #: recipient ids this connection holds the subscription of (None until the first SUB)
        self.subscriptions: set[bytes] | None = None
        #: commands started and not yet done (or, for a SEND, not yet accepted by the store)
        self.inflight = 0
        #: the gate of the latest SEND of this connection, until that SEND ends
        self.gate: Gate | None = None
        #: the TCP connection is gone; its state goes once no command runs any more
        self.gone = False

    def take_token(self, now: float, rate: float, burst: int) -> bool:
        """Charge one command to the bucket; False if it is empty (§14.8 Rate)."""
        self.tokens = min(float(burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def hold(self, recipient_id: bytes) -> None:
        """This connection now holds the queue's subscription."""
        if self.subscriptions is None:
            self.subscriptions = set()
        self.subscriptions.add(recipient_id)

    def release(self, recipient_id: bytes) -> None:
        """This connection no longer holds the queue's subscription."""
        if self.subscriptions is not None:
            self.subscriptions.discard(recipient_id)
            if not self.subscriptions:
                self.subscriptions = None

    def send(self, corr_id: bytes, entity: bytes, response: ServerResponse) -> None:
        """Write one frame.

        Raises:
            LinkClosed: if the connection is gone.
        """
        if isinstance(response, Err):
            self.metrics.errors[response.code] += 1
        self.link.send_parts(server_frame_parts(corr_id, entity, response), FRAME_SIZE)

    def send_quietly(self, corr_id: bytes, entity: bytes, response: ServerResponse) -> None:
        """:meth:`send`, for a frame a closed connection no longer needs (a push, a late answer)."""
        with contextlib.suppress(LinkClosed):
            self.send(corr_id, entity, response)


class Slot:
    """One of a connection's places for a command in flight; given back once (later calls do nothing)."""

    __slots__ = ("conn", "held", "on_free")

    def __init__(self, conn: Connection, on_free: Callable[[Connection], None]) -> None:
        self.conn = conn
        self.on_free = on_free
        self.held = True

    def free(self, _task: object = None) -> None:
        """Give the place back."""
        if self.held:
            self.held = False
            self.on_free(self.conn)
