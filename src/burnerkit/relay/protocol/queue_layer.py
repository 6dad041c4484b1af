"""The queue layer between relay and recipient: the queue key, sealed ids and deliveries.

docs/protocol.md §14.7. At ``NEW`` the relay answers with its own per-queue X25519 key
and the two queue ids sealed under the shared secret, so an observer who breaks TLS sees
no link between them; the same secret re-seals every delivery with a fresh nonce, so
the bytes a sender uploads and the bytes its recipient downloads cannot be matched.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Final

from burnerkit.crypto import aead
from burnerkit.crypto.kdf import LABEL_RELAY_IDS, LABEL_RELAY_QUEUE, hkdf
from burnerkit.crypto.keys import X25519PrivateKey, X25519PublicKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import DecryptionError, InvalidKeyError, RemoteProtocolError

from .commands import MAX_BODY_SIZE
from .frames import QUEUE_ID_SIZE, ZEROS

__all__ = [
    "DELIVERY_PLAINTEXT_SIZE",
    "Delivery",
    "QueueIds",
    "derive_queue_key",
    "open_delivery",
    "open_ids",
    "seal_delivery",
    "seal_ids",
]

#: Plaintext of the server-to-recipient layer: ts (8) ‖ flags (1) ‖ u16 length ‖ body, zero padded.
DELIVERY_PLAINTEXT_SIZE: Final = 8 + 1 + 2 + MAX_BODY_SIZE

#: A delivery's flags byte (§14.7): bit 0 the quota marker, bit 1 a refused-sender notice.
_FLAG_QUOTA: Final = 0x01
_FLAG_SENDER_REFUSED: Final = 0x02
_DELIVERY_FLAGS: Final = _FLAG_QUOTA | _FLAG_SENDER_REFUSED
_DELIVERY_HEAD: Final = struct.Struct(">QBH")


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

    Raises:
        ValueError: a body over :data:`~.commands.MAX_BODY_SIZE`.
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
            ZEROS[: DELIVERY_PLAINTEXT_SIZE - _DELIVERY_HEAD.size - len(body)],
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
    if flags & ~_DELIVERY_FLAGS or length > MAX_BODY_SIZE or not plain.endswith(ZEROS[: len(plain) - end]):
        raise DecryptionError
    return Delivery(
        received_at,
        bool(flags & _FLAG_QUOTA),
        plain[_DELIVERY_HEAD.size : end],
        bool(flags & _FLAG_SENDER_REFUSED),
    )
