"""What :class:`~burnerkit.relay.client.RelayClient` hands its caller: credentials and events.

docs/protocol.md §14.9 (``QueueCredentials``) and §14.12 (mailboxes). Values only: they
outlive the client that made them (credentials go into the vault) and need no connection.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Final

from burnerkit.crypto.keys import SigningKey

from .protocol import QUEUE_ID_SIZE, ErrorCode, MailboxEndReason

__all__ = [
    "Mailbox",
    "MailboxEnded",
    "QueueCredentials",
    "ReceivedMessage",
    "RelayEvent",
    "SubscriptionEnded",
    "UnreadableMessage",
    "check_size",
]

KEY_SIZE: Final = 32
_CREDENTIALS_VERSION: Final = 1
_CREDENTIALS_SIZE: Final = 1 + 2 * QUEUE_ID_SIZE + 2 * KEY_SIZE


def check_size(name: str, data: bytes, size: int) -> None:
    """A field of the caller's, checked to be ``size`` bytes.

    Raises:
        ValueError: another length.
    """
    if len(data) != size:
        raise ValueError(f"{name} must be {size} bytes")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class QueueCredentials:
    """What the recipient of one queue must keep: both ids and both secrets.

    Give ``sender_id`` (and only that) to the peer who sends to this queue. The
    signing key proves ownership of the queue; ``queue_key`` opens what the relay
    delivers. Store it with :meth:`to_bytes` inside the vault: it is secret, and it
    links the two ids of the queue, which the relay is never told.
    """

    recipient_id: bytes
    sender_id: bytes
    recipient_key: SigningKey
    queue_key: bytes

    def __post_init__(self) -> None:
        check_size("recipient_id", self.recipient_id, QUEUE_ID_SIZE)
        check_size("sender_id", self.sender_id, QUEUE_ID_SIZE)
        check_size("queue_key", self.queue_key, KEY_SIZE)

    def to_bytes(self) -> bytes:
        """``version ‖ recipient id ‖ sender id ‖ signing key seed ‖ queue key`` (113 bytes)."""
        return (
            bytes([_CREDENTIALS_VERSION])
            + self.recipient_id
            + self.sender_id
            + self.recipient_key.private_bytes()
            + self.queue_key
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> QueueCredentials:
        """Load credentials written by :meth:`to_bytes`.

        Raises:
            ValueError: if ``data`` has the wrong length or an unknown version.
        """
        if len(data) != _CREDENTIALS_SIZE or data[0] != _CREDENTIALS_VERSION:
            raise ValueError("not queue credentials of a known version")
        ids_end = 1 + 2 * QUEUE_ID_SIZE
        return cls(
            recipient_id=bytes(data[1 : 1 + QUEUE_ID_SIZE]),
            sender_id=bytes(data[1 + QUEUE_ID_SIZE : ids_end]),
            recipient_key=SigningKey.from_bytes(data[ids_end : ids_end + KEY_SIZE]),
            queue_key=bytes(data[ids_end + KEY_SIZE :]),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QueueCredentials):
            return NotImplemented
        return hmac.compare_digest(self.to_bytes(), other.to_bytes())

    def __hash__(self) -> int:
        return hash(self.recipient_id)

    def __repr__(self) -> str:
        # Not even the ids: they are what the relay must never see linked, and a repr
        # ends up in logs.
        return "QueueCredentials(<secret>)"


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A message the relay delivered, with its queue layer removed.

    ``ack`` it once it is stored; until then the relay delivers nothing else on that
    queue, and it delivers this one again after a reconnect.
    """

    recipient_id: bytes = field(repr=False)
    msg_id: bytes
    received_at: int  #: relay clock when it stored the message, whole seconds
    quota_marker: bool  #: the queue filled up here; senders were refused after it
    body: bytes = field(repr=False)
    #: not a message but the relay's notice (``body`` is empty): it refused a SEND to this
    #: sender-secured queue, unsigned or signed by another key than the one it is locked to
    #: (someone else holds the sender id: an intercepted invitation). ``ack`` it as any.
    sender_refused: bool = False


@dataclass(frozen=True, slots=True)
class SubscriptionEnded:
    """The client no longer receives from this queue and will not resubscribe.

    ``code`` is None when the relay ended it with ``END`` (another connection
    subscribed: the same credentials are in use elsewhere, the basis of clone alerts),
    or the relay's error code when it refused to renew the subscription after a
    reconnect (``AUTH``: the queue is gone).
    """

    recipient_id: bytes = field(repr=False)
    code: ErrorCode | None = None


@dataclass(frozen=True, slots=True)
class UnreadableMessage:
    """The relay delivered a message whose queue layer did not open.

    Only the relay (or someone on the connection, if TLS is broken) can cause this:
    the queue layer is between relay and recipient. The message blocks its queue until
    it is acknowledged; ``ack`` it to move on, and count it as an anomaly.
    """

    recipient_id: bytes = field(repr=False)
    msg_id: bytes


#: What :meth:`RelayClient.deliveries` yields.
RelayEvent = ReceivedMessage | SubscriptionEnded | UnreadableMessage


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Mailbox:
    """One side of a pairing mailbox: its nameplate, and the token that speaks for the side."""

    nameplate: int
    token: bytes

    def __repr__(self) -> str:
        return f"Mailbox(nameplate={self.nameplate})"


@dataclass(frozen=True, slots=True)
class MailboxEnded:
    """The mailbox closed (``MB_END``): nothing more will arrive in it."""

    reason: MailboxEndReason
