"""Authenticating client commands: Ed25519 signatures, ACK MACs, and their checks.

docs/protocol.md §14.4. Every authenticated command covers ``"burner/v1/relay/auth" ‖
session_id ‖ signed``, so a command recorded on one connection is refused on another.
An ACK may carry an HMAC under a key derived from the queue key and the session instead
of a signature. The checks cost the same for a missing queue as for a wrong key (a fixed
dummy key stands in), so the relay's one ``AUTH`` answer tells nothing apart.
"""

from __future__ import annotations

import hmac
from typing import Final

from burnerkit.crypto.kdf import LABEL_RELAY_ACK_MAC, LABEL_RELAY_AUTH, KeyedMac, hkdf, hmac_sha256
from burnerkit.crypto.keys import SigningKey, VerifyKey
from burnerkit.errors import InvalidKeyError, SignatureError

from .commands import Ack, ClientCommand, ClientTransmission, signed_part
from .frames import exact, frame_parts

__all__ = [
    "AckMac",
    "derive_ack_key",
    "encode_client_frame",
    "verify_ack_mac",
    "verify_ack_mac_of_queue",
    "verify_signature",
]

_DUMMY_KEY_RAW: Final = SigningKey.from_bytes(bytes(range(32))).verify_key.raw
#: What a MAC'd ACK to a missing queue is checked against (a fixed value: the check fails
#: anyway, since the answer is AUTH whatever the MAC; it only makes both paths cost the same).
_DUMMY_QUEUE_KEY: Final = bytes(range(32, 64))


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

    A ``Send`` body over :data:`~.commands.MAX_BODY_SIZE` is encoded if it fits the frame
    (the server answers ``LARGE``); callers check the limit before sending.

    Raises:
        ValueError: if a field has the wrong size, the content does not fit a frame, both
            keys are given, or ``ack_key`` is given for another command than ``Ack``.
    """
    signed = signed_part(corr_id, entity, command)
    if ack_key is not None:
        if signing_key is not None or not isinstance(command, Ack):
            raise ValueError("a MAC authenticates an ACK only, and replaces its signature")
        auth = hmac_sha256(exact(ack_key, 32), _auth_message(session_id, signed))
    elif signing_key is not None:
        auth = signing_key.sign(_auth_message(session_id, signed))
    else:
        auth = b""
    length = 1 + len(auth) + len(signed)
    return b"".join(frame_parts([len(auth).to_bytes(1, "big"), auth, signed], length))


def _auth_message(session_id: bytes, signed: bytes) -> bytes:
    return LABEL_RELAY_AUTH + session_id + signed


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


def verify_ack_mac(ack_key: bytes | None, transmission: ClientTransmission, session_id: bytes) -> bool:
    """Whether ``transmission`` is an ACK carrying the right MAC under ``ack_key``.

    With ``ack_key`` None (no such queue, or no key to check with) the MAC is still
    computed, under a fixed dummy key, so both failures cost the same; the answer is False.
    """
    key = _DUMMY_QUEUE_KEY if ack_key is None else ack_key
    return AckMac(key, session_id).verify(transmission) and ack_key is not None


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


class AckMac:
    """The check of ACK MACs under one ack key and session (``verify_ack_mac``'s).

    The relay keeps one per subscription, derived once at ``SUB`` (§14.4).
    """

    __slots__ = ("_mac",)

    def __init__(self, ack_key: bytes, session_id: bytes) -> None:
        # Keyed once, with the label and session absorbed: holds up relay_vs_ws_echo (the
        # profile of the headline run: keying an HMAC per ACK, 4% of the server's time).
        self._mac = KeyedMac(ack_key, LABEL_RELAY_AUTH + session_id)

    def verify(self, transmission: ClientTransmission) -> bool:
        """Whether ``transmission`` is an ACK carrying the right MAC."""
        good = hmac.compare_digest(self._mac.mac(transmission.signed), transmission.signature)
        return good and isinstance(transmission.command, Ack)

    def __repr__(self) -> str:
        return "AckMac(<key>)"
