"""The 16,384-byte frame, its padding, and the head every transmission starts with.

docs/protocol.md §14.3. Every frame on the wire, both directions, errors included, is
exactly :data:`FRAME_SIZE` bytes, so a frame's size tells an observer nothing. The head
``version ‖ corr_id ‖ u8(entity_len) ‖ entity`` opens both client and server
transmissions (§14.4, §14.5); the sizes of the ids it carries live here with it.
"""

from __future__ import annotations

from typing import Final

from burnerkit.errors import RemoteProtocolError
from burnerkit.wire import PROTOCOL_VERSION, CodecError, Reader

__all__ = [
    "CORR_ID_SIZE",
    "FRAME_SIZE",
    "MSG_ID_SIZE",
    "QUEUE_ID_SIZE",
    "SESSION_ID_SIZE",
    "decode_frame",
    "encode_frame",
    "exact",
    "frame_length",
    "frame_parts",
    "head",
    "in_range",
    "read_head",
]

#: Every frame on the wire, both directions, is exactly this long (SimpleX's block).
FRAME_SIZE: Final = 16_384
QUEUE_ID_SIZE: Final = 24
MSG_ID_SIZE: Final = 24
CORR_ID_SIZE: Final = 24
SESSION_ID_SIZE: Final = 32

# Padding checks compare against this view: endswith() is a memcmp, count(0) a byte loop.
ZEROS: Final = memoryview(bytes(FRAME_SIZE))
VERSION: Final = bytes([PROTOCOL_VERSION])
_ENTITY_LENGTHS: Final = {0: b"\x00", QUEUE_ID_SIZE: bytes([QUEUE_ID_SIZE])}
#: Content length of a frame: what is left after its u16 length.
_MAX_CONTENT: Final = FRAME_SIZE - 2


def encode_frame(content: bytes) -> bytes:
    """``u16 length ‖ content ‖ zeros`` to exactly :data:`FRAME_SIZE` bytes.

    Raises:
        ValueError: if ``content`` does not fit.
    """
    return b"".join(frame_parts([content], len(content)))


def frame_parts(parts: list[bytes | memoryview], length: int) -> list[bytes | memoryview]:
    """:func:`encode_frame` of the concatenation of ``parts`` (``length`` bytes in all), unjoined.

    The length, ``parts`` and a view of the padding: the caller joins them once, with
    whatever else it writes (frames are 16 KiB and the relay builds several per message).

    Raises:
        ValueError: if the content does not fit.
    """
    if length > _MAX_CONTENT:
        raise ValueError(f"frame content must be at most {_MAX_CONTENT} bytes")
    parts.insert(0, length.to_bytes(2, "big"))
    parts.append(ZEROS[: _MAX_CONTENT - length])
    return parts


def decode_frame(frame: bytes) -> bytes:
    """The content of one frame.

    Raises:
        RemoteProtocolError: wrong size, impossible length, or non-zero padding.
    """
    return frame[2 : 2 + frame_length(frame)]


def frame_length(frame: bytes) -> int:
    """The content length of a frame whose size and padding are right.

    Raises:
        RemoteProtocolError: wrong size, impossible length, or non-zero padding.
    """
    if len(frame) != FRAME_SIZE:
        raise RemoteProtocolError(f"frame must be {FRAME_SIZE} bytes")
    length = int.from_bytes(frame[:2], "big")
    if length > _MAX_CONTENT or not frame.endswith(ZEROS[: _MAX_CONTENT - length]):
        raise RemoteProtocolError("malformed frame")
    return length


def head(corr_id: bytes, entity: bytes) -> bytes:
    """``version ‖ corr_id ‖ u8(entity_len) ‖ entity``, the start of every transmission.

    Raises:
        ValueError: a corr_id of another size, or an entity neither empty nor a queue id.
    """
    if len(entity) not in _ENTITY_LENGTHS:
        raise ValueError("entity must be empty or a 24-byte queue id")
    return b"".join((VERSION, exact(corr_id, CORR_ID_SIZE), _ENTITY_LENGTHS[len(entity)], entity))


def read_head(r: Reader) -> tuple[bytes, bytes]:
    """The ``corr_id`` and ``entity`` of :func:`head`, read back.

    Raises:
        CodecError: another version, or an entity length other than 0 or 24.
    """
    if r.u8() != PROTOCOL_VERSION:
        raise CodecError("unsupported version")
    corr_id = r.take(CORR_ID_SIZE)
    entity_len = r.u8()
    if entity_len not in _ENTITY_LENGTHS:
        raise CodecError("bad entity length")
    return corr_id, r.take(entity_len)


def exact(data: bytes, size: int) -> bytes:
    """``data`` as bytes, checked to be ``size`` long (an encoder's field).

    Raises:
        ValueError: another length.
    """
    if len(data) != size:
        raise ValueError(f"field must be {size} bytes")
    return bytes(data)


def in_range(value: int, largest: int) -> int:
    """``value``, checked to be in ``0..largest`` (an encoder's integer field).

    Raises:
        ValueError: out of range.
    """
    if not 0 <= value <= largest:
        raise ValueError(f"field must be between 0 and {largest}")
    return value
