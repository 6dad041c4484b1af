"""Server responses: their values, their byte layouts, and the parser of server frames.

docs/protocol.md §14.5 and §14.6. A server transmission is the head (:mod:`.frames`)
and one response; answers copy the command's corr_id, pushes carry 24 zero bytes.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Final, assert_never

from burnerkit.errors import RemoteProtocolError
from burnerkit.wire import CodecError, Reader, Writer

from .commands import KEY_SIZE, MAILBOX_TOKEN_SIZE
from .frames import MSG_ID_SIZE, SESSION_ID_SIZE, decode_frame, exact, frame_parts, head, in_range, read_head

__all__ = [
    "End",
    "Err",
    "ErrorCode",
    "Hello",
    "Ids",
    "MailboxEndReason",
    "MbEnd",
    "MbMsg",
    "MbOpen",
    "Msg",
    "Ok",
    "Pong",
    "ResponseTag",
    "ServerResponse",
    "ServerTransmission",
    "decode_server_frame",
    "encode_server_frame",
    "server_frame_parts",
]


@enum.unique
class ErrorCode(enum.IntEnum):
    """Errors the relay answers with (docs/protocol.md §14.6)."""

    #: Missing queue or wrong key: deliberately one code, computed the same way.
    AUTH = 1
    #: ``ACK`` names no message delivered on this subscription.
    NO_MSG = 2
    #: The queue holds :data:`~.commands.QUEUE_QUOTA` messages.
    QUOTA = 3
    #: The body is larger than :data:`~.commands.MAX_BODY_SIZE`.
    LARGE = 4
    #: The frame does not parse as a command.
    CMD = 5
    #: Too many commands on this connection; the command had no effect. Retry later.
    RATE = 6
    #: The relay failed; the command had no effect and may be retried.
    INTERNAL = 7
    #: No open mailbox has this nameplate or token, or the nameplate already has two sides.
    MAILBOX = 8


@enum.unique
class MailboxEndReason(enum.IntEnum):
    """Why a mailbox closed (``MB_END``, docs/protocol.md §14.12)."""

    #: the other side deleted it (done, gave up, or the code did not match)
    DELETED = 1
    #: a third party tried to join the nameplate: the code is burnt
    CROWDED = 2
    #: it outlived :data:`~.commands.MAILBOX_TTL`
    EXPIRED = 3


class ResponseTag(enum.IntEnum):
    """The first byte of a response (§14.5's table)."""

    HELLO = 0x80
    IDS = 0x81
    OK = 0x82
    ERR = 0x83
    MSG = 0x84
    END = 0x85
    PONG = 0x86
    MB_OPEN = 0x87
    MB_MSG = 0x88
    MB_END = 0x89


_TAG_OK: Final = bytes([ResponseTag.OK])
_TAG_ERR: Final = bytes([ResponseTag.ERR])
_TAG_MSG: Final = bytes([ResponseTag.MSG])


@dataclass(frozen=True, slots=True)
class Hello:
    """First frame of every connection: the session value commands are signed over."""

    session_id: bytes


@dataclass(frozen=True, slots=True)
class Ids:
    """Answer to ``NEW``: the server's per-queue X25519 key and the sealed queue ids."""

    server_dh: bytes
    sealed: bytes  #: nonce (12) ‖ AEAD(recipient id ‖ sender id)


@dataclass(frozen=True, slots=True)
class Ok:
    """The command took effect (for ``SEND``: the message is durably stored)."""


@dataclass(frozen=True, slots=True)
class Err:
    """The command had no effect."""

    code: ErrorCode


@dataclass(frozen=True, slots=True)
class Msg:
    """A message delivered to a subscriber, sealed under the queue layer."""

    msg_id: bytes
    sealed: bytes = field(repr=False)  #: nonce (12) ‖ AEAD(delivery plaintext)


@dataclass(frozen=True, slots=True)
class End:
    """Another connection subscribed to this queue; this subscription is over."""


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to ``PING``."""


@dataclass(frozen=True, slots=True)
class MbOpen:
    """Answer to ``MB_ALLOC`` and ``MB_JOIN``: the nameplate and our side's token."""

    nameplate: int
    token: bytes = field(repr=False)  #: secret: whoever holds it speaks for our side


@dataclass(frozen=True, slots=True)
class MbMsg:
    """Pushed: message number ``index`` of the other side of the entity token's mailbox."""

    index: int
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MbEnd:
    """Pushed: the entity token's mailbox closed; nothing more will arrive in it."""

    reason: MailboxEndReason


ServerResponse = Hello | Ids | Ok | Err | Msg | End | Pong | MbOpen | MbMsg | MbEnd


@dataclass(frozen=True, slots=True)
class ServerTransmission:
    """One parsed server frame."""

    corr_id: bytes  #: the command's corr_id, or zeros for pushed MSG/END
    entity: bytes
    response: ServerResponse


def encode_server_frame(corr_id: bytes, entity: bytes, response: ServerResponse) -> bytes:
    """One server frame.

    Raises:
        ValueError: if a field has the wrong size or the content does not fit a frame.
    """
    return b"".join(server_frame_parts(corr_id, entity, response))


def server_frame_parts(corr_id: bytes, entity: bytes, response: ServerResponse) -> list[bytes | memoryview]:
    """The bytes of :func:`encode_server_frame`, in pieces that concatenate to it.

    A caller that writes the pieces with other output may skip one copy of the frame.

    Raises:
        ValueError: if a field has the wrong size or the content does not fit a frame.
    """
    start = head(corr_id, entity)
    # MSG, OK and ERR without a Writer: holds up relay_server_cpu_us_per_msg.
    if isinstance(response, Msg):
        sealed = response.sealed
        fields: list[bytes | memoryview] = [
            start,
            _TAG_MSG,
            exact(response.msg_id, MSG_ID_SIZE),
            len(sealed).to_bytes(2, "big"),
            sealed,
        ]
        return frame_parts(fields, len(start) + 1 + MSG_ID_SIZE + 2 + len(sealed))
    if isinstance(response, Ok):
        return frame_parts([start, _TAG_OK], len(start) + 1)
    if isinstance(response, Err):
        return frame_parts([start, _TAG_ERR, response.code.to_bytes(1, "big")], len(start) + 2)
    w = Writer().raw(start)
    match response:
        case Hello(session_id):
            w.u8(ResponseTag.HELLO).raw(exact(session_id, SESSION_ID_SIZE))
        case Ids(server_dh, sealed):
            w.u8(ResponseTag.IDS).raw(exact(server_dh, KEY_SIZE)).var16(sealed)
        case End():
            w.u8(ResponseTag.END)
        case Pong():
            w.u8(ResponseTag.PONG)
        case MbOpen(nameplate, token):
            w.u8(ResponseTag.MB_OPEN).u16(in_range(nameplate, 0xFFFF)).raw(exact(token, MAILBOX_TOKEN_SIZE))
        case MbMsg(index, body):
            w.u8(ResponseTag.MB_MSG).u8(in_range(index, 0xFF)).var16(body)
        case MbEnd(reason):
            w.u8(ResponseTag.MB_END).u8(reason)
        case _:
            assert_never(response)
    content = w.getvalue()
    return frame_parts([content], len(content))


def decode_server_frame(frame: bytes) -> ServerTransmission:
    """Parse a server frame.

    Raises:
        RemoteProtocolError: if it does not parse.
    """
    content = decode_frame(frame)
    try:
        r = Reader(content)
        corr_id, entity = read_head(r)
        response = _parse_response(r)
        r.end()
    except (CodecError, ValueError) as exc:
        raise RemoteProtocolError("malformed response") from exc
    return ServerTransmission(corr_id, entity, response)


def _parse_response(r: Reader) -> ServerResponse:
    tag = r.u8()
    match tag:
        case ResponseTag.HELLO:
            return Hello(r.take(SESSION_ID_SIZE))
        case ResponseTag.IDS:
            return Ids(r.take(KEY_SIZE), r.var16())
        case ResponseTag.OK:
            return Ok()
        case ResponseTag.ERR:
            return Err(ErrorCode(r.u8()))
        case ResponseTag.MSG:
            return Msg(r.take(MSG_ID_SIZE), r.var16())
        case ResponseTag.END:
            return End()
        case ResponseTag.PONG:
            return Pong()
        case ResponseTag.MB_OPEN:
            return MbOpen(r.u16(), r.take(MAILBOX_TOKEN_SIZE))
        case ResponseTag.MB_MSG:
            return MbMsg(r.u8(), r.var16())
        case ResponseTag.MB_END:
            return MbEnd(MailboxEndReason(r.u8()))
    raise CodecError("unknown response")
