"""One relay connection's protocol state, for either end: bytes in, events out, bytes out.

docs/protocol.md §14.5a. After h11's ``Connection`` and wsproto's ``WSConnection``: the
rules both ends of a connection keep (the HELLO first, corr ids, commands in flight,
what may be pushed) live in one object that does no I/O, so the client, the server and
their tests drive the same machine; :class:`ClientConnection` and
:class:`ServerConnection` are the two ends over one core.

Theory of operation
-------------------
A connection is in one of three states (:class:`ConnectionState`):

======================  ==========================================  ==================
state                   what happens there                          next
======================  ==========================================  ==================
``AWAITING_HELLO``      the server has not sent HELLO (server), or  ``OPEN`` on HELLO
                        the client has not received it (client);
                        nothing else is sent or received
``OPEN``                commands go out and are answered            ``ERROR`` (client)
``ERROR``               the relay broke the protocol (client only)  none: every call
                                                                    raises
======================  ==========================================  ==================

Rules, once:

1. The first frame is the server's HELLO, corr id zeros, no entity; its session value is
   what every command of the connection is authenticated over. A second HELLO is a
   protocol error.
2. A command's corr id is 24 random bytes, never 24 zeros (:data:`PUSHED`); the answer
   copies it. A command is in flight from the moment it is sent until its answer arrives.
3. At most :data:`MAX_IN_FLIGHT` (16) commands are in flight: a client sends no more, a
   server reads no more (§14.8 Pipelining).
4. Only MSG, END, MB_MSG and MB_END are pushed, with corr id zeros. The server answers a
   frame that does not parse with ``ERR`` under corr id zeros, and it does not count.
5. At the client, anything else is the relay breaking the protocol: a frame that does
   not parse, an answer to no command in flight, another response pushed, a second
   HELLO. That is a :class:`~burnerkit.errors.RemoteProtocolError` and the connection is
   in ``ERROR``; the client drops it and starts another. At the server, a frame that does
   not parse is a ``RemoteProtocolError`` that changes nothing: it gets ``ERR CMD`` and
   the connection goes on (bad input never closes a connection, §14.8).

A call that raises changes nothing, except rule 5's move to ``ERROR``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final

from burnerkit.crypto.keys import SigningKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import LocalProtocolError, RemoteProtocolError

from .auth import derive_ack_key, encode_client_frame
from .commands import Ack, ClientCommand, ClientTransmission, decode_client_frame
from .frames import CORR_ID_SIZE, SESSION_ID_SIZE
from .responses import (
    End,
    Err,
    ErrorCode,
    Hello,
    MbEnd,
    MbMsg,
    Msg,
    ServerResponse,
    decode_server_frame,
    encode_server_frame,
)

__all__ = [
    "MAX_IN_FLIGHT",
    "PUSHED",
    "Answered",
    "ClientConnection",
    "ConnectionState",
    "Greeted",
    "PushResponse",
    "Pushed",
    "RelayConnection",
    "Sent",
    "ServerConnection",
    "new_corr_id",
]

#: Commands one connection may have in flight (§14.8 Pipelining).
MAX_IN_FLIGHT: Final = 16
#: The corr id of pushed frames, and of the answer to a frame that did not parse.
PUSHED: Final = bytes(CORR_ID_SIZE)

#: What a server may send unasked (rule 4).
PushResponse = Msg | End | MbMsg | MbEnd
_PUSH_TYPES: Final = (Msg, End, MbMsg, MbEnd)


@enum.unique
class ConnectionState(enum.Enum):
    """Where a connection stands (the table in this module's docstring)."""

    #: no HELLO yet: the server has not sent it, or the client has not received it
    AWAITING_HELLO = enum.auto()
    #: commands go out and are answered
    OPEN = enum.auto()
    #: the relay broke the protocol (client only); the connection is of no further use
    ERROR = enum.auto()


@dataclass(frozen=True, slots=True)
class Greeted:
    """The relay's HELLO arrived: commands may go out, authenticated over ``session_id``."""

    session_id: bytes


@dataclass(frozen=True, slots=True)
class Answered:
    """The answer to a command of ours; ``command`` is the one it answers."""

    corr_id: bytes
    entity: bytes
    response: ServerResponse
    command: ClientCommand = field(repr=False)


@dataclass(frozen=True, slots=True)
class Pushed:
    """A frame the relay sent unasked: a delivery, an END, or a mailbox's news."""

    entity: bytes
    response: PushResponse


@dataclass(frozen=True, slots=True)
class Sent:
    """A command on its way: its corr id, and the frame to write."""

    corr_id: bytes
    frame: bytes = field(repr=False)


def new_corr_id(rng: Random) -> bytes:
    """A fresh corr id: 24 random bytes, never :data:`PUSHED` (rule 2)."""
    while True:
        corr_id = rng.random_bytes(CORR_ID_SIZE)
        if corr_id != PUSHED:
            return corr_id


class RelayConnection:
    """The core both ends share: the state, the session value, the commands in flight."""

    __slots__ = ("_in_flight", "_session_id", "_state")

    def __init__(self) -> None:
        self._state = ConnectionState.AWAITING_HELLO
        self._session_id: bytes | None = None
        self._in_flight = 0

    @property
    def state(self) -> ConnectionState:
        """Where the connection stands."""
        return self._state

    @property
    def session_id(self) -> bytes:
        """The HELLO's session value.

        Raises:
            LocalProtocolError: before the HELLO.
        """
        if self._session_id is None:
            raise LocalProtocolError("no HELLO yet on this connection")
        return self._session_id

    @property
    def in_flight(self) -> int:
        """Commands sent (client) or read (server) and not answered yet."""
        return self._in_flight

    def _require_open(self) -> None:
        if self._state is not ConnectionState.OPEN:
            raise LocalProtocolError(f"relay connection is {self._state.name}, not OPEN")


class ClientConnection(RelayConnection):
    """The client's end: it sends commands and reads HELLO, answers and pushes.

    Corr ids come from ``rng`` (or from the caller, who may send a command again on a
    later connection under the corr id it had).
    """

    __slots__ = ("_commands", "_rng")

    def __init__(self, rng: Random) -> None:
        super().__init__()
        self._rng = rng
        self._commands: dict[bytes, ClientCommand] = {}

    @property
    def can_send(self) -> bool:
        """Whether a command may go out now (open, and fewer than 16 in flight)."""
        return self._state is ConnectionState.OPEN and self._in_flight < MAX_IN_FLIGHT

    def send(
        self,
        entity: bytes,
        command: ClientCommand,
        *,
        signing_key: SigningKey | None = None,
        queue_key: bytes | None = None,
        corr_id: bytes | None = None,
    ) -> Sent:
        """Authenticate ``command`` over this session and put it in flight.

        Args:
            entity: the queue id or token the command names, or b"".
            command: the command.
            signing_key: signs it (Ed25519).
            queue_key: for an ``Ack`` only: MAC it under the ack key this session derives
                from the queue key (§14.4), instead of signing.
            corr_id: its corr id; a fresh random one when None.

        Returns:
            The corr id and the frame to write.

        Raises:
            LocalProtocolError: not OPEN, :data:`MAX_IN_FLIGHT` commands in flight, or
                ``corr_id`` already in flight.
            ValueError: a corr id of zeros, or what :func:`~.auth.encode_client_frame` refuses.
        """
        self._require_open()
        if self._in_flight >= MAX_IN_FLIGHT:
            raise LocalProtocolError(f"{MAX_IN_FLIGHT} commands in flight already")
        if corr_id is None:
            corr_id = new_corr_id(self._rng)
        elif corr_id == PUSHED:
            raise ValueError("a corr id of 24 zeros marks pushed frames")
        elif corr_id in self._commands:
            raise LocalProtocolError("that corr id is in flight already")
        session_id = self.session_id
        ack_key = None
        if queue_key is not None:
            if not isinstance(command, Ack):
                raise ValueError("a MAC authenticates an ACK only")
            ack_key = derive_ack_key(queue_key, session_id)
        frame = encode_client_frame(
            corr_id, entity, command, session_id=session_id, signing_key=signing_key, ack_key=ack_key
        )
        self._commands[corr_id] = command
        self._in_flight += 1
        return Sent(corr_id, frame)

    def receive(self, frame: bytes) -> Greeted | Answered | Pushed:
        """Read one frame from the relay.

        Raises:
            RemoteProtocolError: the relay broke the protocol (rule 5); the connection is
                now in ``ERROR``. Its message says how, in a few fixed words.
            LocalProtocolError: the connection was in ``ERROR`` already.
        """
        if self._state is ConnectionState.ERROR:
            raise LocalProtocolError("relay connection failed earlier")
        try:
            return self._receive(frame)
        except RemoteProtocolError:
            self._state = ConnectionState.ERROR
            raise

    def _receive(self, frame: bytes) -> Greeted | Answered | Pushed:
        greeting = self._state is ConnectionState.AWAITING_HELLO
        try:
            transmission = decode_server_frame(frame)
        except RemoteProtocolError as exc:
            raise RemoteProtocolError("malformed greeting" if greeting else "malformed frame") from exc
        corr_id, entity, response = transmission.corr_id, transmission.entity, transmission.response
        if greeting:
            if not isinstance(response, Hello) or corr_id != PUSHED or entity:
                raise RemoteProtocolError("no hello")
            self._session_id = response.session_id
            self._state = ConnectionState.OPEN
            return Greeted(response.session_id)
        if isinstance(response, Hello):
            raise RemoteProtocolError("a second hello")
        if corr_id == PUSHED:
            if not isinstance(response, _PUSH_TYPES):
                raise RemoteProtocolError("an answer pushed")
            return Pushed(entity, response)
        command = self._commands.pop(corr_id, None)
        if command is None:
            raise RemoteProtocolError("an answer to no command in flight")
        self._in_flight -= 1
        return Answered(corr_id, entity, response, command)


class ServerConnection(RelayConnection):
    """The relay's end: it greets, reads commands, answers them and pushes.

    It counts commands in flight rather than keep their corr ids: the relay answers
    each command it read exactly once, and a client that reuses a corr id only confuses
    itself.
    """

    __slots__ = ()

    def __init__(self, session_id: bytes) -> None:
        super().__init__()
        if len(session_id) != SESSION_ID_SIZE:
            raise ValueError(f"session_id must be {SESSION_ID_SIZE} bytes")
        self._session_id = bytes(session_id)

    @property
    def reading(self) -> bool:
        """Whether to read more of this connection (fewer than 16 commands in flight)."""
        return self._in_flight < MAX_IN_FLIGHT

    def greet(self) -> bytes:
        """The HELLO frame, which opens the connection (rule 1).

        Raises:
            LocalProtocolError: sent already.
        """
        if self._state is not ConnectionState.AWAITING_HELLO:
            raise LocalProtocolError("HELLO was sent already")
        self._state = ConnectionState.OPEN
        return encode_server_frame(PUSHED, b"", Hello(self.session_id))

    def receive(self, frame: bytes) -> ClientTransmission:
        """Read one command; it is in flight until :meth:`answer`.

        The signature is not checked here: that needs the queue's key (:mod:`.auth`).

        Raises:
            RemoteProtocolError: the frame does not parse; nothing changed. Send
                :meth:`refusal` of ``ErrorCode.CMD``.
            LocalProtocolError: before :meth:`greet`.
        """
        if self._state is not ConnectionState.OPEN:
            self._require_open()  # raises
        transmission = decode_client_frame(frame)
        self._in_flight += 1
        return transmission

    def answer(self, corr_id: bytes, entity: bytes, response: ServerResponse) -> bytes:
        """The frame answering a command read here; it is no longer in flight.

        Raises:
            LocalProtocolError: no command is in flight, or ``response`` is HELLO.
            ValueError: what :func:`~.responses.encode_server_frame` refuses.
        """
        if self._in_flight <= 0 or self._state is not ConnectionState.OPEN:
            raise LocalProtocolError("no command in flight to answer")
        if type(response) is Hello:
            raise LocalProtocolError("HELLO answers no command")
        frame = encode_server_frame(corr_id, entity, response)
        self._in_flight -= 1
        return frame

    def push(self, entity: bytes, response: PushResponse) -> bytes:
        """A frame sent unasked: MSG, END, MB_MSG or MB_END, corr id zeros (rule 4).

        Raises:
            LocalProtocolError: before :meth:`greet`, or another response.
            ValueError: what :func:`~.responses.encode_server_frame` refuses.
        """
        self._require_open()
        if not isinstance(response, _PUSH_TYPES):
            raise LocalProtocolError(f"{type(response).__name__} is not pushed")
        return encode_server_frame(PUSHED, entity, response)

    def refusal(self, code: ErrorCode = ErrorCode.CMD) -> bytes:
        """The answer to a frame that did not parse: ``ERR code``, corr id zeros (rule 4).

        Raises:
            LocalProtocolError: before :meth:`greet`.
        """
        self._require_open()
        return encode_server_frame(PUSHED, b"", Err(code))
