"""Events a :class:`~burnerkit.protocol.session.Session` reports to the app.

Events are facts (past tense or nouns); the app decides what to show. A rejected
message raises instead (``DuplicateMessageError``, ``ForkDetectedError``, ...);
events describe messages that were accepted and what their sequence numbers and
hash chain say about the ones around them (docs/protocol.md §7.8).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

__all__ = ["Event", "ForkDetected", "ForkReason", "GapDetected", "MessageReceived", "MessageReordered"]


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A message decrypted and accepted. ``seq`` is its true place in the conversation."""

    seq: int
    sent_at: int  #: sender's clock, milliseconds since the Unix epoch (not trusted)
    content: bytes = field(repr=False)  # plaintext stays out of logs


@dataclass(frozen=True, slots=True)
class GapDetected:
    """Messages ``first``..``last`` (inclusive) have not arrived yet: dropped or delayed."""

    first: int
    last: int


@dataclass(frozen=True, slots=True)
class MessageReordered:
    """Message ``seq`` arrived after a later one: it fills part of an earlier gap."""

    seq: int


@enum.unique
class ForkReason(enum.Enum):
    """Why the hash chain of the conversation is broken."""

    #: The message's previous-hash does not match the message we hold before it.
    PREVIOUS_HASH_MISMATCH = "previous-hash-mismatch"
    #: The message we hold after this one names a different previous hash.
    NEXT_HASH_MISMATCH = "next-hash-mismatch"
    #: A second, different message arrived with a sequence number already used.
    SEQUENCE_REUSED = "sequence-reused"


@dataclass(frozen=True, slots=True)
class ForkDetected:
    """The conversation's hash chain forked at ``seq``: two senders hold one state (a clone)."""

    seq: int
    reason: ForkReason


Event = MessageReceived | GapDetected | MessageReordered | ForkDetected
