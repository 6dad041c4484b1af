"""Envelopes, padded bodies and the receive log: docs/protocol.md §7.

Every envelope the core emits is exactly :data:`ENVELOPE_SIZE` bytes, whatever it
carries, so neither the relay nor the network learns a message's length or kind
from its size. Inside the body, each message carries a per-direction sequence
number and the hash of the message before it (as SimpleX does), so the receiver can
tell a gap, a late arrival and a fork of the conversation apart.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import Final

from burnerkit.crypto.kdf import LABEL_CHAIN_START, LABEL_MSG_HASH, LabelledHash, sha256
from burnerkit.errors import DecryptionError
from burnerkit.wire import PROTOCOL_VERSION, CodecError, Reader, Writer

from .events import Event, ForkDetected, ForkReason, GapDetected, MessageReordered
from .ratchet import RATCHET_OVERHEAD

__all__ = [
    "ACCEPT_FIELDS_SIZE",
    "BODY_HEADER_SIZE",
    "ENVELOPE_SIZE",
    "MAX_CONTENT_SIZE",
    "Body",
    "Direction",
    "EnvelopeType",
    "ReceiveLog",
    "body_size",
    "chain_start",
    "envelope_prefix",
    "envelope_type",
    "message_hash",
]

#: Every envelope is this many bytes. A relay frame is 16,384 bytes (SimpleX's block);
#: we leave 512 of them to the relay's own framing, signatures and transport layer.
ENVELOPE_SIZE: Final = 15_872
#: invitation_id (16) ‖ signing key (32) ‖ identity DH (32) ‖ ephemeral (32) ‖ KEM ct (1088) ‖ sig (64)
ACCEPT_FIELDS_SIZE: Final = 16 + 32 + 32 + 32 + 1088 + 64
#: seq (8) ‖ prev_hash (32) ‖ sent_at (8) ‖ length (2)
BODY_HEADER_SIZE: Final = 8 + 32 + 8 + 2
#: The largest content any envelope type can carry (the accept envelope is the tightest).
MAX_CONTENT_SIZE: Final = ENVELOPE_SIZE - 2 - ACCEPT_FIELDS_SIZE - RATCHET_OVERHEAD - BODY_HEADER_SIZE
#: How many recent messages' hashes the receive log keeps to check the chain.
RECENT_WINDOW: Final = 128
#: How many missing sequence numbers the receive log remembers.
MISSING_WINDOW: Final = 1000

_STATE_VERSION: Final = 1
_HASH_KEPT: Final = 16  # truncated hashes in the log; the wire always carries all 32 bytes
_BODY_HEAD: Final = struct.Struct(">Q32sQH")
_MSG_HASH: Final = LabelledHash(LABEL_MSG_HASH)
_ZEROS: Final = memoryview(bytes(ENVELOPE_SIZE))


@enum.unique
class EnvelopeType(enum.IntEnum):
    """The second byte of every v1 object."""

    #: A signed invitation (not an envelope: variable length, travels out of band).
    INVITATION = 0x10
    #: The acceptor's messages until it hears back: handshake fields + a ratchet message.
    ACCEPT = 0x11
    #: Every other message: a ratchet message.
    MESSAGE = 0x12


@enum.unique
class Direction(enum.IntEnum):
    """Which way a message travels; separates the two hash chains."""

    ACCEPTOR_TO_INVITER = 1
    INVITER_TO_ACCEPTOR = 2


def body_size(prefix_len: int) -> int:
    """Padded body plaintext size for an envelope whose prefix is ``prefix_len`` bytes."""
    return ENVELOPE_SIZE - prefix_len - RATCHET_OVERHEAD


def chain_start(transcript_hash: bytes, direction: Direction) -> bytes:
    """The ``prev_hash`` of message 1 in ``direction``: ties the chain to this session."""
    return sha256(LABEL_CHAIN_START, transcript_hash, bytes([direction]))


def message_hash(unpadded_body: bytes) -> bytes:
    """Hash of one message: over seq, prev_hash, sent_at, length and content."""
    return _MSG_HASH.digest(unpadded_body)


@dataclass(frozen=True, slots=True)
class Body:
    """A decoded message body."""

    seq: int
    prev_hash: bytes
    sent_at: int
    content: bytes
    hash: bytes

    @staticmethod
    def encode(seq: int, prev_hash: bytes, sent_at: int, content: bytes, size: int) -> tuple[bytes, bytes]:
        """Return ``(padded_body, message_hash)``.

        Raises:
            ValueError: if ``content`` does not fit in ``size``.
        """
        if len(content) > size - BODY_HEADER_SIZE:
            raise ValueError(f"content must be at most {size - BODY_HEADER_SIZE} bytes")
        if len(prev_hash) != 32:
            raise ValueError("prev_hash must be 32 bytes")
        if not 0 < seq < 2**64 or not 0 <= sent_at < 2**64:
            raise ValueError("seq must be in 1..2**64-1 and sent_at in 0..2**64-1")
        unpadded = _BODY_HEAD.pack(seq, prev_hash, sent_at, len(content)) + content
        return unpadded.ljust(size, b"\0"), message_hash(unpadded)

    @staticmethod
    def decode(data: bytes) -> Body:
        """Parse a padded body. Only ever sees authenticated bytes.

        Raises:
            DecryptionError: if the layout is wrong (treated like any other failure).
        """
        # Hot path: plain slicing instead of a Reader; the bytes are authentic already.
        if not BODY_HEADER_SIZE <= len(data) <= ENVELOPE_SIZE:
            raise DecryptionError
        seq, prev_hash, sent_at, length = _BODY_HEAD.unpack_from(data)
        end = BODY_HEADER_SIZE + length
        if seq == 0 or end > len(data) or not data.endswith(_ZEROS[: len(data) - end]):
            raise DecryptionError
        unpadded = data[:end]
        content = data[BODY_HEADER_SIZE:end]
        return Body(seq, prev_hash, sent_at, content, message_hash(unpadded))


class ReceiveLog:
    """What the receiver knows of one direction's sequence and hash chain.

    Bounded: it keeps the hashes of the last :data:`RECENT_WINDOW` messages and the
    last :data:`MISSING_WINDOW` missing numbers. Older history is not needed to
    notice a fork, because a cloned sender forks at its *next* message.
    """

    __slots__ = ("_chain_start", "highest", "missing", "recent")

    def __init__(self, chain_start_hash: bytes) -> None:
        self._chain_start = chain_start_hash[:_HASH_KEPT]
        self.highest = 0
        self.missing: dict[int, None] = {}
        # seq -> (hash of that message, the prev_hash it claimed), truncated
        self.recent: dict[int, tuple[bytes, bytes]] = {}

    def record(self, body: Body) -> list[Event]:
        """Note an authentic message and return what it says about the others."""
        events: list[Event] = []
        seq, own, prev = body.seq, body.hash[:_HASH_KEPT], body.prev_hash[:_HASH_KEPT]
        if seq in self.recent:
            # The ratchet already refused exact replays, so a second authentic message
            # with this number came from a second sender, even if its bytes match.
            events.append(ForkDetected(seq, ForkReason.SEQUENCE_REUSED))
            return events
        before = self._chain_start if seq == 1 else self.recent.get(seq - 1, (None, None))[0]
        if before is not None and before != prev:
            events.append(ForkDetected(seq, ForkReason.PREVIOUS_HASH_MISMATCH))
        after = self.recent.get(seq + 1)
        if after is not None and after[1] != own:
            events.append(ForkDetected(seq, ForkReason.NEXT_HASH_MISMATCH))
        if seq > self.highest + 1:
            events.insert(0, GapDetected(self.highest + 1, seq - 1))
            for missing in range(max(self.highest + 1, seq - MISSING_WINDOW), seq):
                self.missing[missing] = None
            while len(self.missing) > MISSING_WINDOW:
                del self.missing[next(iter(self.missing))]
        elif seq < self.highest:
            self.missing.pop(seq, None)
            events.insert(0, MessageReordered(seq))
        self.highest = max(self.highest, seq)
        self.recent[seq] = (own, prev)
        if len(self.recent) > RECENT_WINDOW:
            del self.recent[next(iter(self.recent))]
        return events

    def write(self, w: Writer) -> None:
        """Append the log to a state layout (docs/protocol.md §8.3)."""
        w.u8(_STATE_VERSION).raw(self._chain_start).u64(self.highest)
        w.u32(len(self.missing))
        for seq in self.missing:
            w.u64(seq)
        w.u32(len(self.recent))
        for seq, (own, prev) in self.recent.items():
            w.u64(seq).raw(own).raw(prev)

    @classmethod
    def read(cls, r: Reader) -> ReceiveLog:
        """Read a log written by :meth:`write`."""
        if r.u8() != _STATE_VERSION:
            raise CodecError("unsupported receive log version")
        log = cls(r.take(_HASH_KEPT))
        log.highest = r.u64()
        for _ in range(r.u32()):
            log.missing[r.u64()] = None
        for _ in range(r.u32()):
            seq = r.u64()
            log.recent[seq] = (r.take(_HASH_KEPT), r.take(_HASH_KEPT))
        if len(log.missing) > MISSING_WINDOW or len(log.recent) > RECENT_WINDOW:
            raise CodecError("receive log over its bounds")
        return log


def envelope_prefix(kind: EnvelopeType, accept_fields: bytes = b"") -> bytes:
    """``version ‖ type ‖ (accept fields)``: the part of an envelope before the ratchet message."""
    return bytes([PROTOCOL_VERSION, kind]) + accept_fields


def envelope_type(envelope: bytes) -> EnvelopeType | None:
    """What an envelope says it is (its first two bytes), unauthenticated; None if unknown.

    For routing only (an acceptance versus a message, §17.6): whatever it says is
    checked again by the machine that opens it.
    """
    if len(envelope) != ENVELOPE_SIZE or envelope[0] != PROTOCOL_VERSION:
        return None
    try:
        return EnvelopeType(envelope[1])
    except ValueError:
        return None
