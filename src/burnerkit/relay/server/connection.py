"""What the relay keeps per connection, and how it writes a frame to one.

docs/protocol.md §14.8 (Rate, Pipelining). Kept small on purpose: thousands of these
sit idle on a relay. The server (``server.py``) charges the token bucket and counts the
commands in flight; the command handlers (``commands.py``) answer through :meth:`Connection.send`.
"""

from __future__ import annotations

import asyncio
from typing import Final

from burnerkit.relay.protocol import (
    CORR_ID_SIZE,
    ClientTransmission,
    Err,
    ErrorCode,
    PushResponse,
    ServerConnection,
    ServerResponse,
)

from .link import Link, LinkClosed, Pause
from .metrics import Metrics

__all__ = ["ZERO_CORR", "Connection", "Gate"]

#: The corr_id of pushed frames and of answers to frames that did not parse (§14.5a rules 2 and 4).
ZERO_CORR: Final = bytes(CORR_ID_SIZE)


class Gate:
    """Open once a SEND has called ``put_message``: the next SEND of its connection waits for it.

    So one connection's SENDs reach the store in arrival order without waiting for each
    other's commit.
    """

    __slots__ = ("_opened",)

    def __init__(self) -> None:
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def is_open(self) -> bool:
        """Whether :meth:`open` was called."""
        return self._opened.done()

    def open(self) -> None:
        """Let the next SEND go on (once; later calls do nothing)."""
        if not self._opened.done():
            self._opened.set_result(None)

    async def opened(self) -> None:
        """Return once :meth:`open` was called."""
        await self._opened


class Connection:
    """One connection: its protocol state (:class:`ServerConnection`), token bucket, tasks, subscriptions.

    The protocol state is the sans-IO one the client shares (``relay/protocol/connection.py``):
    it decodes commands, counts those in flight, and encodes answers and pushes. Here we add
    the I/O: a link paused while 16 commands are in flight, and resumed once one is answered.
    """

    __slots__ = (
        "gate",
        "gone",
        "link",
        "metrics",
        "paused",
        "protocol",
        "stamp",
        "subscriptions",
        "tasks",
        "tokens",
    )

    def __init__(self, link: Link, session_id: bytes, metrics: Metrics, tokens: float, stamp: float) -> None:
        self.link = link
        self.protocol = ServerConnection(session_id)
        self.metrics = metrics
        #: token bucket: tokens left and when it was last refilled (loop time)
        self.tokens = tokens
        self.stamp = stamp
        #: recipient ids this connection holds the subscription of (None until the first SUB)
        self.subscriptions: set[bytes] | None = None
        #: command tasks of this connection still running
        self.tasks = 0
        #: the gate of the latest SEND of this connection, until that SEND ends
        self.gate: Gate | None = None
        #: reading is paused for commands in flight (Pause.INFLIGHT)
        self.paused = False
        #: the TCP connection is gone; its state goes once no command runs any more
        self.gone = False

    @property
    def session_id(self) -> bytes:
        """The session value sent in HELLO (§14.4: what every signed command covers)."""
        return self.protocol.session_id

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

    # -- frames -----------------------------------------------------------------------------

    def greet(self) -> None:
        """Send HELLO.

        Raises:
            LinkClosed: if the connection is gone.
        """
        self.link.send(self.protocol.greet())

    def receive(self, frame: bytes) -> ClientTransmission:
        """Decode one command; it is in flight until answered. At 16 in flight, read no more.

        Raises:
            RemoteProtocolError: the frame does not parse (nothing changed: :meth:`refuse` it).
        """
        tx = self.protocol.receive(frame)
        if not self.protocol.reading:
            self.paused = True
            self.link.pause(Pause.INFLIGHT)
        return tx

    def refuse(self, code: ErrorCode) -> None:
        """Answer a frame that did not parse (or was not decoded): ``ERR code``, corr id zeros.

        Raises:
            LinkClosed: if the connection is gone.
        """
        self.metrics.errors[code] += 1
        self.link.send(self.protocol.refusal(code))

    def answer(self, corr_id: bytes, entity: bytes, response: ServerResponse) -> None:
        """Answer the command ``corr_id`` (each command gets exactly one answer).

        Raises:
            LinkClosed: if the connection is gone.
        """
        if isinstance(response, Err):
            self.metrics.errors[response.code] += 1
        frame = self.protocol.answer(corr_id, entity, response)
        if self.paused and self.protocol.reading:
            self.paused = False
            # Not here and now: reading runs the commands read meanwhile, and they must not
            # run inside whatever sent this answer (a delivery in the middle of its actions).
            asyncio.get_running_loop().call_soon(self.link.resume, Pause.INFLIGHT)
        self.link.send(frame)

    def answer_quietly(self, corr_id: bytes, entity: bytes, response: ServerResponse) -> None:
        """:meth:`answer`, to a connection that may be gone (a late answer)."""
        # Not contextlib.suppress, three Python calls: this runs once or twice per message.
        try:  # noqa: SIM105
            self.answer(corr_id, entity, response)
        except LinkClosed:
            pass

    def push(self, entity: bytes, response: PushResponse) -> None:
        """Send a frame unasked (MSG, END, MB_MSG, MB_END); a connection gone needs none."""
        try:  # noqa: SIM105 (as in answer_quietly)
            self.link.send(self.protocol.push(entity, response))
        except LinkClosed:
            pass
