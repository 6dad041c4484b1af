"""The relay protocol, sans-IO: frames, commands, responses and the queue layer.

docs/protocol.md §14. After SimpleX SMP: a recipient creates a queue with its own
Ed25519 key and receives two independent random 24-byte ids, one to receive on and
one to hand to senders; senders carry no identity. Every frame, both directions,
errors included, is exactly :data:`FRAME_SIZE` bytes.

Theory of operation
-------------------
A connection starts with the server's ``HELLO`` carrying a fresh random session
value. Every recipient command is signed over ``label ‖ session ‖ transmission``,
so a command recorded on one connection is refused on another. ``NEW`` also sends
an X25519 key; the server answers with its own per-queue X25519 key and the two
ids sealed under the shared secret, so even an observer who breaks TLS sees no
link between them, and the same secret keys the server-to-recipient layer: each
delivered message is re-sealed under it with a fresh nonce, so the bytes a sender
uploads and the bytes the recipient downloads cannot be matched.

A queue may be created sender-secured (``NEW``'s flags): then the first ``SEND``
signed by the key it carries locks the queue to that key, and a refused ``SEND``
leaves the recipient a delivery flagged ``sender_refused`` (§14.8).

Pairing mailboxes (§14.12) ride on the same frames: a short-lived, in-memory box
named by a small number (the nameplate) where two sides of a short-code pairing leave
each other a handful of small messages. A side is authenticated by a random 24-byte
token, which travels as the entity of its commands.

This module holds no state and does no I/O; the server and client drive it.
"""

from __future__ import annotations

import enum
import hmac
import struct
from dataclasses import dataclass, field
from typing import Final, assert_never

from burnerkit.crypto import aead
from burnerkit.crypto.kdf import (
    LABEL_RELAY_ACK_MAC,
    LABEL_RELAY_AUTH,
    LABEL_RELAY_IDS,
    LABEL_RELAY_QUEUE,
    KeyedMac,
    hkdf,
    hmac_sha256,
)
from burnerkit.crypto.keys import SigningKey, VerifyKey, X25519PrivateKey, X25519PublicKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import (
    DecryptionError,
    InvalidKeyError,
    RemoteProtocolError,
    SignatureError,
)
from burnerkit.wire import PROTOCOL_VERSION, CodecError, Reader, Writer

__all__ = [
    "ACK_MAC_SIZE",
    "CORR_ID_SIZE",
    "DELIVERY_PLAINTEXT_SIZE",
    "FRAME_SIZE",
    "MAILBOX_BODY_SIZE",
    "MAILBOX_MESSAGES",
    "MAILBOX_TOKEN_SIZE",
    "MAILBOX_TTL",
    "MAX_BODY_SIZE",
    "MESSAGE_TTL",
    "MSG_ID_SIZE",
    "QUEUE_ID_SIZE",
    "QUEUE_QUOTA",
    "SEND_ID_SIZE",
    "SESSION_ID_SIZE",
    "Ack",
    "AckMac",
    "ClientCommand",
    "ClientTransmission",
    "Delivery",
    "Del",
    "End",
    "Err",
    "ErrorCode",
    "Hello",
    "Ids",
    "Key",
    "MailboxEndReason",
    "MbAlloc",
    "MbDel",
    "MbEnd",
    "MbGet",
    "MbJoin",
    "MbMsg",
    "MbOpen",
    "MbPut",
    "Msg",
    "New",
    "Ok",
    "Ping",
    "Pong",
    "QueueIds",
    "ServerResponse",
    "ServerTransmission",
    "Send",
    "Sub",
    "decode_client_frame",
    "decode_frame",
    "decode_server_frame",
    "derive_ack_key",
    "derive_queue_key",
    "encode_client_frame",
    "encode_frame",
    "encode_server_frame",
    "open_delivery",
    "open_ids",
    "seal_delivery",
    "seal_ids",
    "server_frame_parts",
    "verify_ack_mac",
    "verify_ack_mac_of_queue",
    "verify_signature",
]

#: Every frame on the wire, both directions, is exactly this long (SimpleX's block).
FRAME_SIZE: Final = 16_384
QUEUE_ID_SIZE: Final = 24
MSG_ID_SIZE: Final = 24
CORR_ID_SIZE: Final = 24
SESSION_ID_SIZE: Final = 32
SEND_ID_SIZE: Final = 16
#: An ACK may be authenticated by HMAC-SHA256 under the subscription's ack key (§14.4).
ACK_MAC_SIZE: Final = 32
#: Largest body a sender may upload: one end-to-end envelope (protocol.envelope.ENVELOPE_SIZE,
#: restated so the server imports nothing of the end-to-end core; a test keeps them equal).
MAX_BODY_SIZE: Final = 15_872
#: Messages a queue holds before senders get ``QUOTA`` (SimpleX 128).
QUEUE_QUOTA: Final = 128
#: Seconds a message waits for its recipient before it is swept (7 days; SimpleX 21).
MESSAGE_TTL: Final = 7 * 24 * 3600
#: Plaintext of the server-to-recipient layer: ts (8) ‖ flags (1) ‖ u16 length ‖ body, zero padded.
DELIVERY_PLAINTEXT_SIZE: Final = 8 + 1 + 2 + MAX_BODY_SIZE
#: A mailbox side's token: random, and the entity of its commands (so the size of a queue id).
MAILBOX_TOKEN_SIZE: Final = QUEUE_ID_SIZE
#: Largest mailbox message (a pairing payload is 4,129 bytes).
MAILBOX_BODY_SIZE: Final = 8_192
#: Messages one side may leave in a mailbox (pairing needs 3).
MAILBOX_MESSAGES: Final = 8
#: Seconds a mailbox lives, however busy (10 minutes); configurable.
MAILBOX_TTL: Final = 600

_SIG_SIZE: Final = 64
#: NEW's flags byte (§14.4): bit 0, the queue is sender-secured; every other bit must be 0.
_NEW_SENDER_SECURED: Final = 0x01
#: A delivery's flags byte (§14.7): bit 0 the quota marker, bit 1 a refused-sender notice.
_FLAG_QUOTA: Final = 0x01
_FLAG_SENDER_REFUSED: Final = 0x02
_DELIVERY_FLAGS: Final = _FLAG_QUOTA | _FLAG_SENDER_REFUSED
_KEY_SIZE: Final = 32
_DUMMY_KEY_RAW: Final = SigningKey.from_bytes(bytes(range(32))).verify_key.raw
#: What a MAC'd ACK to a missing queue is checked against (a fixed value: the check fails
#: anyway, since the answer is AUTH whatever the MAC; it only makes both paths cost the same).
_DUMMY_QUEUE_KEY: Final = bytes(range(32, 64))
_DELIVERY_HEAD: Final = struct.Struct(">QBH")
# Padding checks compare against this view: endswith() is a memcmp, count(0) a byte loop.
_ZEROS: Final = memoryview(bytes(FRAME_SIZE))


@enum.unique
class ErrorCode(enum.IntEnum):
    """Errors the relay answers with (docs/protocol.md §14.6)."""

    #: Missing queue or wrong key: deliberately one code, computed the same way.
    AUTH = 1
    #: ``ACK`` names no message delivered on this subscription.
    NO_MSG = 2
    #: The queue holds :data:`QUEUE_QUOTA` messages.
    QUOTA = 3
    #: The body is larger than :data:`MAX_BODY_SIZE`.
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
    #: it outlived :data:`MAILBOX_TTL`
    EXPIRED = 3


class _Tag(enum.IntEnum):
    NEW = 0x01
    SUB = 0x02
    KEY = 0x03
    SEND = 0x04
    ACK = 0x05
    DEL = 0x06
    PING = 0x07
    MB_ALLOC = 0x08
    MB_JOIN = 0x09
    MB_PUT = 0x0A
    MB_GET = 0x0B
    MB_DEL = 0x0C
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


#: One-byte pieces of the hot encoders (docs/protocol.md §14.4, §14.5).
_VERSION: Final = bytes([PROTOCOL_VERSION])
_ENTITY_LENGTHS: Final = {0: b"\x00", QUEUE_ID_SIZE: bytes([QUEUE_ID_SIZE])}
_TAG_SEND: Final = bytes([_Tag.SEND])
_TAG_ACK: Final = bytes([_Tag.ACK])
_TAG_OK: Final = bytes([_Tag.OK])
_TAG_ERR: Final = bytes([_Tag.ERR])
_TAG_MSG: Final = bytes([_Tag.MSG])
_SEND: Final = int(_Tag.SEND)
_ACK: Final = int(_Tag.ACK)
#: From the version byte of a transmission to the tag of a command to a queue.
_HEAD_TO_TAG: Final = 1 + CORR_ID_SIZE + 1 + QUEUE_ID_SIZE


# -- commands (client to server) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class New:
    """Create a queue owned by ``recipient_key``; ``recipient_dh`` keys the queue layer.

    ``sender_secured``: the first SEND signed by a key locks the queue to that key, and
    unsigned SENDs are refused (docs/protocol.md §14.8, sender-secured queues).
    """

    recipient_key: bytes  #: Ed25519 public key, 32 bytes
    recipient_dh: bytes  #: X25519 public key, 32 bytes
    sender_secured: bool = False


@dataclass(frozen=True, slots=True)
class Sub:
    """Subscribe to the queue named by the entity id (a recipient id)."""


@dataclass(frozen=True, slots=True)
class Key:
    """Lock the queue to one sender key; unsigned ``SEND`` is refused from then on."""

    sender_key: bytes  #: Ed25519 public key, 32 bytes


@dataclass(frozen=True, slots=True)
class Send:
    """Leave ``body`` on the queue named by the entity id (a sender id).

    ``sender_key``: the Ed25519 key the SEND is signed by, carried so that the first
    SEND to a sender-secured queue can lock it to that key (docs/protocol.md §14.4).
    """

    send_id: bytes  #: 16 random bytes; a retry with the same id is stored once
    body: bytes = field(repr=False)
    sender_key: bytes | None = None  #: Ed25519 public key, 32 bytes, or None


@dataclass(frozen=True, slots=True)
class Ack:
    """The message ``msg_id`` was stored by the recipient: delete it, deliver the next."""

    msg_id: bytes


@dataclass(frozen=True, slots=True)
class Del:
    """Delete the queue and every message on it."""


@dataclass(frozen=True, slots=True)
class Ping:
    """Keep the connection alive."""


@dataclass(frozen=True, slots=True)
class MbAlloc:
    """Open a pairing mailbox under a fresh nameplate; we become its side A."""


@dataclass(frozen=True, slots=True)
class MbJoin:
    """Join the mailbox of ``nameplate`` as its side B (a third join destroys it)."""

    nameplate: int  #: 0..65,535 on the wire; the relay allocates 1 and up


@dataclass(frozen=True, slots=True)
class MbPut:
    """Leave our message number ``index`` (0, 1, ...) in the mailbox of the entity token."""

    index: int  #: a retry repeats the index and the body; it is stored once
    body: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MbGet:
    """Attach this connection to our side of the mailbox and get every message of the other side."""


@dataclass(frozen=True, slots=True)
class MbDel:
    """Give up our side of the mailbox; it closes for both, and its nameplate is free."""


ClientCommand = New | Sub | Key | Send | Ack | Del | Ping | MbAlloc | MbJoin | MbPut | MbGet | MbDel


# -- responses (server to client) --------------------------------------------------------


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
class ClientTransmission:
    """One parsed client frame."""

    corr_id: bytes
    entity: bytes  #: queue id, or empty for NEW and PING
    command: ClientCommand
    signature: bytes  #: the auth: a 64-byte signature, a 32-byte MAC (ACK only), or empty
    signed: bytes = field(repr=False)  #: what the auth covers, minus label and session


@dataclass(frozen=True, slots=True)
class ServerTransmission:
    """One parsed server frame."""

    corr_id: bytes  #: the command's corr_id, or zeros for pushed MSG/END
    entity: bytes
    response: ServerResponse


@dataclass(frozen=True, slots=True)
class QueueIds:
    """The two ids of a new queue; only the recipient ever learns both."""

    recipient_id: bytes
    sender_id: bytes


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message after the queue layer is removed."""

    received_at: int  #: server clock, whole seconds
    quota_marker: bool  #: the queue filled up at this point; senders were refused after it
    body: bytes = field(repr=False)
    #: a notice, not a message (body empty): the relay refused a SEND to this
    #: sender-secured queue, unsigned or signed by another key than its sender's
    sender_refused: bool = False


# -- frames -------------------------------------------------------------------------------


def encode_frame(content: bytes) -> bytes:
    """``u16 length ‖ content ‖ zeros`` to exactly :data:`FRAME_SIZE` bytes.

    Raises:
        ValueError: if ``content`` does not fit.
    """
    return _frame_of((content,), len(content))


def _frame_of(parts: tuple[bytes, ...] | list[bytes], length: int) -> bytes:
    """:func:`encode_frame` of the concatenation of ``parts`` (``length`` bytes in all).

    One join, one allocation: frames are 16 KiB and the relay builds several per message.
    """
    if length > FRAME_SIZE - 2:
        raise ValueError(f"frame content must be at most {FRAME_SIZE - 2} bytes")
    return b"".join((length.to_bytes(2, "big"), *parts, _ZEROS[: FRAME_SIZE - 2 - length]))


def _frame_parts(parts: list[bytes | memoryview], length: int) -> list[bytes | memoryview]:
    """:func:`_frame_of` unjoined: the length, ``parts`` and a view of the padding."""
    if length > FRAME_SIZE - 2:
        raise ValueError(f"frame content must be at most {FRAME_SIZE - 2} bytes")
    parts.insert(0, length.to_bytes(2, "big"))
    parts.append(_ZEROS[: FRAME_SIZE - 2 - length])
    return parts


def decode_frame(frame: bytes) -> bytes:
    """The content of one frame.

    Raises:
        RemoteProtocolError: wrong size, impossible length, or non-zero padding.
    """
    return frame[2 : 2 + _frame_length(frame)]


def _frame_length(frame: bytes) -> int:
    """The content length of a frame whose size and padding are right.

    Raises:
        RemoteProtocolError: wrong size, impossible length, or non-zero padding.
    """
    if len(frame) != FRAME_SIZE:
        raise RemoteProtocolError(f"frame must be {FRAME_SIZE} bytes")
    length = int.from_bytes(frame[:2], "big")
    if length > FRAME_SIZE - 2 or not frame.endswith(_ZEROS[: FRAME_SIZE - 2 - length]):
        raise RemoteProtocolError("malformed frame")
    return length


def _entity(w: Writer, entity: bytes) -> None:
    if len(entity) not in (0, QUEUE_ID_SIZE):
        raise ValueError("entity must be empty or a 24-byte queue id")
    w.u8(len(entity)).raw(entity)


def _command_bytes(command: ClientCommand) -> bytes:
    # The two commands of every relayed message first, without a Writer (same bytes).
    if type(command) is Ack:
        return b"".join((_TAG_ACK, _exact(command.msg_id, MSG_ID_SIZE)))
    if type(command) is Send:
        body = command.body
        key = b"" if command.sender_key is None else _exact(command.sender_key, _KEY_SIZE)
        return b"".join(
            (_TAG_SEND, _exact(command.send_id, SEND_ID_SIZE), len(body).to_bytes(2, "big"), body, key)
        )
    w = Writer()
    match command:
        case New(recipient_key, recipient_dh, sender_secured):
            w.u8(_Tag.NEW).raw(_exact(recipient_key, 32)).raw(_exact(recipient_dh, 32))
            w.u8(_NEW_SENDER_SECURED if sender_secured else 0)
        case Sub():
            w.u8(_Tag.SUB)
        case Key(sender_key):
            w.u8(_Tag.KEY).raw(_exact(sender_key, 32))
        case Send(send_id, body, sender_key):
            w.u8(_Tag.SEND).raw(_exact(send_id, SEND_ID_SIZE)).var16(body)
            if sender_key is not None:
                w.raw(_exact(sender_key, _KEY_SIZE))
        case Ack(msg_id):
            w.u8(_Tag.ACK).raw(_exact(msg_id, MSG_ID_SIZE))
        case Del():
            w.u8(_Tag.DEL)
        case Ping():
            w.u8(_Tag.PING)
        case MbAlloc():
            w.u8(_Tag.MB_ALLOC)
        case MbJoin(nameplate):
            w.u8(_Tag.MB_JOIN).u16(_in_range(nameplate, 0xFFFF))
        case MbPut(index, body):
            w.u8(_Tag.MB_PUT).u8(_in_range(index, 0xFF)).var16(body)
        case MbGet():
            w.u8(_Tag.MB_GET)
        case MbDel():
            w.u8(_Tag.MB_DEL)
        case _:
            assert_never(command)
    return w.getvalue()


def _exact(data: bytes, size: int) -> bytes:
    if len(data) != size:
        raise ValueError(f"field must be {size} bytes")
    return bytes(data)


def _in_range(value: int, largest: int) -> int:
    if not 0 <= value <= largest:
        raise ValueError(f"field must be between 0 and {largest}")
    return value


def _signed_part(corr_id: bytes, entity: bytes, command: ClientCommand) -> bytes:
    return b"".join((_head(corr_id, entity), _command_bytes(command)))


def _head(corr_id: bytes, entity: bytes) -> bytes:
    """``version ‖ corr_id ‖ u8(entity_len) ‖ entity``, the start of every transmission."""
    if len(entity) not in (0, QUEUE_ID_SIZE):
        raise ValueError("entity must be empty or a 24-byte queue id")
    return b"".join((_VERSION, _exact(corr_id, CORR_ID_SIZE), _ENTITY_LENGTHS[len(entity)], entity))


def _auth_message(session_id: bytes, signed: bytes) -> bytes:
    return LABEL_RELAY_AUTH + session_id + signed


def encode_client_frame(
    corr_id: bytes,
    entity: bytes,
    command: ClientCommand,
    *,
    session_id: bytes,
    signing_key: SigningKey | None = None,
    ack_key: bytes | None = None,
) -> bytes:
    """One client frame, authenticated over the session value.

    With ``signing_key`` the frame is signed (Ed25519); with ``ack_key`` (an ``Ack``
    only, the key from :func:`derive_ack_key` for this queue and session) it carries a
    MAC instead; with neither it is unauthenticated.

    A ``Send`` body over :data:`MAX_BODY_SIZE` is encoded if it fits the frame (the
    server answers ``LARGE``); callers check the limit before sending.

    Raises:
        ValueError: if a field has the wrong size, the content does not fit a frame, both
            keys are given, or ``ack_key`` is given for another command than ``Ack``.
    """
    signed = _signed_part(corr_id, entity, command)
    if ack_key is not None:
        if signing_key is not None or not isinstance(command, Ack):
            raise ValueError("a MAC authenticates an ACK only, and replaces its signature")
        auth = _ack_mac(_exact(ack_key, 32), session_id, signed)
    elif signing_key is not None:
        auth = signing_key.sign(_auth_message(session_id, signed))
    else:
        auth = b""
    return _frame_of((len(auth).to_bytes(1, "big"), auth, signed), 1 + len(auth) + len(signed))


def decode_client_frame(frame: bytes) -> ClientTransmission:
    """Parse a client frame (the signature is checked by the server, not here).

    Raises:
        RemoteProtocolError: if it does not parse.
    """
    content_end = 2 + _frame_length(frame)
    fast = _decode_send_or_ack(frame, 2, content_end)
    return _decode_client_content(frame[2:content_end]) if fast is None else fast


def _decode_client_content(content: bytes) -> ClientTransmission:
    """The general parser of a client frame's content: every command, every refusal.

    Raises:
        RemoteProtocolError: if it does not parse.
    """
    try:
        r = Reader(content)
        sig_len = r.u8()
        if sig_len not in (0, ACK_MAC_SIZE, _SIG_SIZE):
            raise CodecError("bad signature length")
        signature = r.take(sig_len)
        signed = r.rest()
        r = Reader(signed)
        corr_id, entity = _read_head(r)
        command = _parse_command(r)
        r.end()
        if sig_len == ACK_MAC_SIZE and not isinstance(command, Ack):
            raise CodecError("only an ACK carries a MAC")
    except CodecError as exc:
        raise RemoteProtocolError("malformed command") from exc
    return ClientTransmission(corr_id, entity, command, signature, signed)


def _decode_send_or_ack(data: bytes, first: int = 0, end: int | None = None) -> ClientTransmission | None:
    """A well-formed SEND or ACK to a queue, parsed by offsets (the relay's hot path).

    The content is ``data[first:end]`` (a frame and its content's bounds: no copy of the
    content is made). None for anything else, which the general parser then accepts or
    refuses. It accepts exactly what the general parser accepts for these two commands,
    builds the same value, and refuses nothing itself: what it does not recognise goes on.
    """
    end = len(data) if end is None else end
    if end <= first:
        return None
    sig_len = data[first]
    if sig_len not in (0, ACK_MAC_SIZE, _SIG_SIZE):
        return None
    start = first + 1 + sig_len
    at = start + _HEAD_TO_TAG  # the tag of a command to a queue
    if end <= at or data[start] != PROTOCOL_VERSION or data[at - 1 - QUEUE_ID_SIZE] != QUEUE_ID_SIZE:
        return None
    tag = data[at]
    if tag == _ACK:
        if end != at + 1 + MSG_ID_SIZE:
            return None
        command: ClientCommand = Ack(data[at + 1 : end])
    elif tag == _SEND and sig_len != ACK_MAC_SIZE:
        body_at = at + 1 + SEND_ID_SIZE + 2
        if end < body_at:
            return None
        body_end = body_at + int.from_bytes(data[body_at - 2 : body_at], "big")
        if end == body_end:
            command = Send(data[at + 1 : body_at - 2], data[body_at:end])
        elif end == body_end + _KEY_SIZE:
            command = Send(data[at + 1 : body_at - 2], data[body_at:body_end], data[body_end:end])
        else:
            return None
    else:
        return None
    return ClientTransmission(
        data[start + 1 : start + 1 + CORR_ID_SIZE],
        data[at - QUEUE_ID_SIZE : at],
        command,
        data[first + 1 : start],
        data[start:end],
    )


def _read_head(r: Reader) -> tuple[bytes, bytes]:
    """``version ‖ corr_id ‖ entity``, the start of every transmission, both directions."""
    if r.u8() != PROTOCOL_VERSION:
        raise CodecError("unsupported version")
    corr_id = r.take(CORR_ID_SIZE)
    entity_len = r.u8()
    if entity_len not in (0, QUEUE_ID_SIZE):
        raise CodecError("bad entity length")
    return corr_id, r.take(entity_len)


def _parse_command(r: Reader) -> ClientCommand:
    tag = r.u8()
    match tag:
        case _Tag.NEW:
            recipient_key, recipient_dh = r.take(32), r.take(32)
            # A 64-byte NEW (clients before the flags byte) is a queue without flags.
            flags = r.rest()
            if len(flags) > 1 or (flags and flags[0] & ~_NEW_SENDER_SECURED):
                raise CodecError("bad NEW flags")
            return New(recipient_key, recipient_dh, bool(flags and flags[0] & _NEW_SENDER_SECURED))
        case _Tag.SUB:
            return Sub()
        case _Tag.KEY:
            return Key(r.take(32))
        case _Tag.SEND:
            # A body over MAX_BODY_SIZE still parses (the frame bounds it), so that the
            # server can answer LARGE instead of CMD.
            send_id, body = r.take(SEND_ID_SIZE), r.var16()
            # The sender key is optional: present (32 bytes) or absent, nothing else.
            key = r.rest()
            if len(key) not in (0, _KEY_SIZE):
                raise CodecError("bad SEND sender key")
            return Send(send_id, body, key or None)
        case _Tag.ACK:
            return Ack(r.take(MSG_ID_SIZE))
        case _Tag.DEL:
            return Del()
        case _Tag.PING:
            return Ping()
        case _Tag.MB_ALLOC:
            return MbAlloc()
        case _Tag.MB_JOIN:
            return MbJoin(r.u16())
        case _Tag.MB_PUT:
            # Like SEND: an oversize body parses, so that the answer can be LARGE.
            return MbPut(r.u8(), r.var16())
        case _Tag.MB_GET:
            return MbGet()
        case _Tag.MB_DEL:
            return MbDel()
    raise CodecError("unknown command")


def verify_signature(key: bytes | None, transmission: ClientTransmission, session_id: bytes) -> bool:
    """Whether ``transmission`` is signed by ``key`` over this session.

    With ``key`` None (no such queue) we verify against a fixed dummy key anyway, so a
    missing queue and a wrong key cost the same and answer the same.
    """
    # The dummy goes through the same parse as a real key, so both paths cost the same.
    try:
        verify_key = VerifyKey.from_bytes(_DUMMY_KEY_RAW if key is None else key)
    except (ValueError, InvalidKeyError):
        verify_key, key = VerifyKey.from_bytes(_DUMMY_KEY_RAW), None
    try:
        verify_key.verify(transmission.signature, _auth_message(session_id, transmission.signed))
    except SignatureError:
        return False
    return key is not None


def derive_ack_key(queue_key: bytes, session_id: bytes) -> bytes:
    """The key of the MACs of ACKs on one queue during one session (docs/protocol.md §14.4).

    Both ends of the queue layer know ``queue_key``; binding the session value makes a
    MAC'd ACK of one connection worthless on another.
    """
    return hkdf(queue_key, salt=b"", info=LABEL_RELAY_ACK_MAC + session_id, length=32)


def _ack_mac(ack_key: bytes, session_id: bytes, signed: bytes) -> bytes:
    return hmac_sha256(ack_key, _auth_message(session_id, signed))


def verify_ack_mac(ack_key: bytes | None, transmission: ClientTransmission, session_id: bytes) -> bool:
    """Whether ``transmission`` is an ACK carrying the right MAC under ``ack_key``.

    With ``ack_key`` None (no such queue, or no key to check with) the MAC is still
    computed, under a fixed dummy key, so both failures cost the same; the answer is False.
    """
    key = _DUMMY_QUEUE_KEY if ack_key is None else ack_key
    return AckMac(key, session_id).verify(transmission) and ack_key is not None


class AckMac:
    """The check of ACK MACs under one ack key and session, keyed once (``verify_ack_mac``'s).

    The relay keeps one per subscription: an ACK's check then costs one copy of a keyed
    HMAC state instead of keying an HMAC.
    """

    __slots__ = ("_mac",)

    def __init__(self, ack_key: bytes, session_id: bytes) -> None:
        self._mac = KeyedMac(ack_key, LABEL_RELAY_AUTH + session_id)

    def verify(self, transmission: ClientTransmission) -> bool:
        """Whether ``transmission`` is an ACK carrying the right MAC."""
        good = hmac.compare_digest(self._mac.mac(transmission.signed), transmission.signature)
        return good and isinstance(transmission.command, Ack)

    def __repr__(self) -> str:
        return "AckMac(<key>)"


def verify_ack_mac_of_queue(
    queue_key: bytes | None, transmission: ClientTransmission, session_id: bytes
) -> bool:
    """:func:`verify_ack_mac` with the ack key derived here from ``queue_key`` (None: missing queue).

    For an ACK the server has no cached key for (the connection holds no subscription to
    the queue): a missing queue derives from a dummy queue key, so it costs what a wrong
    MAC costs and answers the same.
    """
    ack_key = derive_ack_key(_DUMMY_QUEUE_KEY if queue_key is None else queue_key, session_id)
    return verify_ack_mac(ack_key, transmission, session_id) and queue_key is not None


def encode_server_frame(corr_id: bytes, entity: bytes, response: ServerResponse) -> bytes:
    """One server frame."""
    kind = type(response)
    if kind is Ok or kind is Msg or kind is Err:  # the relay's hot path: one join (same bytes)
        return b"".join(server_frame_parts(corr_id, entity, response))
    return _encode_other(corr_id, entity, response)


def server_frame_parts(corr_id: bytes, entity: bytes, response: ServerResponse) -> list[bytes | memoryview]:
    """The bytes of :func:`encode_server_frame`, in pieces that concatenate to it.

    For a sender that joins them with other output anyway (the relay's links join all
    frames of one loop turn into one write): one copy of a 16 KiB frame fewer.
    """
    if type(response) is Ok:
        head = _head(corr_id, entity)
        return _frame_parts([head, _TAG_OK], len(head) + 1)
    if type(response) is Msg:
        head = _head(corr_id, entity)
        sealed = response.sealed
        fields: list[bytes | memoryview] = [
            head,
            _TAG_MSG,
            _exact(response.msg_id, MSG_ID_SIZE),
            len(sealed).to_bytes(2, "big"),
            sealed,
        ]
        return _frame_parts(fields, len(head) + 1 + MSG_ID_SIZE + 2 + len(sealed))
    if isinstance(response, Err):
        head = _head(corr_id, entity)
        return _frame_parts([head, _TAG_ERR, response.code.to_bytes(1, "big")], len(head) + 2)
    return [_encode_other(corr_id, entity, response)]


def _encode_other(corr_id: bytes, entity: bytes, response: ServerResponse) -> bytes:
    """:func:`encode_server_frame` of the responses off the hot path, through a Writer."""
    w = Writer().u8(PROTOCOL_VERSION).raw(_exact(corr_id, CORR_ID_SIZE))
    _entity(w, entity)
    match response:
        case Hello(session_id):
            w.u8(_Tag.HELLO).raw(_exact(session_id, SESSION_ID_SIZE))
        case Ids(server_dh, sealed):
            w.u8(_Tag.IDS).raw(_exact(server_dh, 32)).var16(sealed)
        case Ok():
            w.u8(_Tag.OK)
        case Err(code):
            w.u8(_Tag.ERR).u8(code)
        case Msg(msg_id, sealed):
            w.u8(_Tag.MSG).raw(_exact(msg_id, MSG_ID_SIZE)).var16(sealed)
        case End():
            w.u8(_Tag.END)
        case Pong():
            w.u8(_Tag.PONG)
        case MbOpen(nameplate, token):
            w.u8(_Tag.MB_OPEN).u16(_in_range(nameplate, 0xFFFF)).raw(_exact(token, MAILBOX_TOKEN_SIZE))
        case MbMsg(index, body):
            w.u8(_Tag.MB_MSG).u8(_in_range(index, 0xFF)).var16(body)
        case MbEnd(reason):
            w.u8(_Tag.MB_END).u8(reason)
        case _:
            assert_never(response)
    return encode_frame(w.getvalue())


def decode_server_frame(frame: bytes) -> ServerTransmission:
    """Parse a server frame.

    Raises:
        RemoteProtocolError: if it does not parse.
    """
    content = decode_frame(frame)
    try:
        r = Reader(content)
        corr_id, entity = _read_head(r)
        response = _parse_response(r)
        r.end()
    except (CodecError, ValueError) as exc:
        raise RemoteProtocolError("malformed response") from exc
    return ServerTransmission(corr_id, entity, response)


def _parse_response(r: Reader) -> ServerResponse:
    tag = r.u8()
    match tag:
        case _Tag.HELLO:
            return Hello(r.take(SESSION_ID_SIZE))
        case _Tag.IDS:
            return Ids(r.take(32), r.var16())
        case _Tag.OK:
            return Ok()
        case _Tag.ERR:
            return Err(ErrorCode(r.u8()))
        case _Tag.MSG:
            return Msg(r.take(MSG_ID_SIZE), r.var16())
        case _Tag.END:
            return End()
        case _Tag.PONG:
            return Pong()
        case _Tag.MB_OPEN:
            return MbOpen(r.u16(), r.take(MAILBOX_TOKEN_SIZE))
        case _Tag.MB_MSG:
            return MbMsg(r.u8(), r.var16())
        case _Tag.MB_END:
            return MbEnd(MailboxEndReason(r.u8()))
    raise CodecError("unknown response")


# -- the queue layer ----------------------------------------------------------------------


def derive_queue_key(ours: X25519PrivateKey, theirs: bytes) -> bytes:
    """The 32-byte secret both ends of a queue share (server ↔ recipient).

    Raises:
        RemoteProtocolError: if ``theirs`` is not a valid X25519 key.
    """
    try:
        shared = ours.exchange(X25519PublicKey.from_bytes(theirs))
    except (ValueError, InvalidKeyError) as exc:
        raise RemoteProtocolError("invalid queue key") from exc
    # Both public keys go into info, in a fixed order, so the key names its two ends.
    first, second = sorted((ours.public_key.raw, bytes(theirs)))
    return hkdf(shared, salt=b"", info=LABEL_RELAY_QUEUE + first + second, length=32)


def _ids_key(queue_key: bytes) -> bytes:
    return hkdf(queue_key, salt=b"", info=LABEL_RELAY_IDS, length=32)


def seal_ids(queue_key: bytes, ids: QueueIds, rng: Random) -> bytes:
    """Seal the two ids for the recipient (the ``IDS`` answer)."""
    nonce = rng.random_bytes(aead.NONCE_SIZE)
    return nonce + aead.seal(_ids_key(queue_key), nonce, ids.recipient_id + ids.sender_id, LABEL_RELAY_IDS)


def open_ids(queue_key: bytes, sealed: bytes) -> QueueIds:
    """Open an ``IDS`` answer.

    Raises:
        DecryptionError: if it does not authenticate.
    """
    if len(sealed) != aead.NONCE_SIZE + 2 * QUEUE_ID_SIZE + aead.TAG_SIZE:
        raise DecryptionError
    plain = aead.open_(
        _ids_key(queue_key), sealed[: aead.NONCE_SIZE], sealed[aead.NONCE_SIZE :], LABEL_RELAY_IDS
    )
    return QueueIds(plain[:QUEUE_ID_SIZE], plain[QUEUE_ID_SIZE:])


def seal_delivery(queue_key: bytes | aead.AeadKey, msg_id: bytes, delivery: Delivery, rng: Random) -> bytes:
    """Re-seal a stored message for its recipient: fixed length, fresh nonce, msg id bound.

    ``queue_key``: the queue key, or an :class:`~burnerkit.crypto.aead.AeadKey` of it (the
    relay keeps one per subscription rather than set up the cipher for every delivery).
    """
    if len(delivery.body) > MAX_BODY_SIZE:
        raise ValueError(f"body must be at most {MAX_BODY_SIZE} bytes")
    flags = (_FLAG_QUOTA if delivery.quota_marker else 0) | (
        _FLAG_SENDER_REFUSED if delivery.sender_refused else 0
    )
    body = delivery.body
    plain = b"".join(
        (
            _DELIVERY_HEAD.pack(delivery.received_at, flags, len(body)),
            body,
            _ZEROS[: DELIVERY_PLAINTEXT_SIZE - _DELIVERY_HEAD.size - len(body)],
        )
    )
    nonce = rng.random_bytes(aead.NONCE_SIZE)
    associated = LABEL_RELAY_QUEUE + msg_id
    if isinstance(queue_key, aead.AeadKey):
        return nonce + queue_key.seal(nonce, plain, associated)
    return nonce + aead.seal(queue_key, nonce, plain, associated)


def open_delivery(queue_key: bytes, msg_id: bytes, sealed: bytes) -> Delivery:
    """Remove the queue layer from a delivered message.

    Raises:
        DecryptionError: if it does not authenticate or its layout is wrong.
    """
    if len(sealed) != aead.NONCE_SIZE + DELIVERY_PLAINTEXT_SIZE + aead.TAG_SIZE:
        raise DecryptionError
    plain = aead.open_(
        queue_key, sealed[: aead.NONCE_SIZE], sealed[aead.NONCE_SIZE :], LABEL_RELAY_QUEUE + msg_id
    )
    received_at, flags, length = _DELIVERY_HEAD.unpack_from(plain)
    end = _DELIVERY_HEAD.size + length
    if flags & ~_DELIVERY_FLAGS or length > MAX_BODY_SIZE or not plain.endswith(_ZEROS[: len(plain) - end]):
        raise DecryptionError
    return Delivery(
        received_at,
        bool(flags & _FLAG_QUOTA),
        plain[_DELIVERY_HEAD.size : end],
        bool(flags & _FLAG_SENDER_REFUSED),
    )
