"""SPAKE2, symmetric variant: the password-authenticated key exchange of short-code pairing.

docs/protocol.md §16. This module is the only importer of the ``spake2`` package (Brian
Warner's pure-Python SPAKE2 over Ed25519, the one magic-wormhole uses); an
import-linter contract holds every other module to that.

We use ``SPAKE2_Symmetric`` as magic-wormhole does: both sides run the same code, the
password is the whole short code and ``idSymmetric`` names the protocol and the
nameplate (wormhole binds its appid there). A message is 33 bytes, ``b"S"`` followed
by a compressed Ed25519 point; the key is 32 bytes.

Two things we add around the package:

- **Nothing is consumed by a bad message.** ``spake2`` objects may call ``finish`` only
  once, so a forged message would burn the state. We keep the state serialized after
  ``start`` and run each ``finish`` on a fresh copy: a message that fails leaves
  :class:`PakeState` exactly as it was.
- **No weak points, in any spelling.** Before ``spake2`` sees a message we refuse every
  encoding of the identity and of the other small-order (torsion) points of Ed25519,
  canonical or not (y ≥ p, or the sign bit set where x = 0), and every non-canonical
  encoding at all: ``spake2`` recognises only the canonical identity, and accepted
  ``y = 1`` with the sign bit, ``y = p + 1`` and both, a message that contributes
  nothing to the key. Honest peers only ever send canonical prime-order points.
- **One typed error.** Every way a message can be unusable (length, side byte, not a
  point, a weak or non-canonical point, wrong subgroup, our own message reflected)
  ends in :class:`~burnerkit.errors.InvalidKeyError` with no detail.
"""

from __future__ import annotations

import hmac
from typing import Final

from spake2 import SPAKE2_Symmetric

from burnerkit.errors import InvalidKeyError

from .rng import Random

__all__ = ["PAKE_KEY_SIZE", "PAKE_MESSAGE_SIZE", "PakeState", "start"]

#: ``b"S"`` (the symmetric side marker) ‖ a 32-byte Ed25519 point.
PAKE_MESSAGE_SIZE: Final = 33
#: The shared key both sides derive when their passwords match.
PAKE_KEY_SIZE: Final = 32
_SIDE_SYMMETRIC: Final = b"S"
#: The field prime of Ed25519.
_P: Final = 2**255 - 19
_Y_MASK: Final = (1 << 255) - 1
#: y of a point of order 8 (RFC 8032 point encoding, little-endian); its negation p - y is
#: the y of the other two.
_Y_ORDER_8: Final = int.from_bytes(
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"), "little"
)
#: The y coordinates of the eight points of order dividing 8: the identity (y = 1), the
#: point of order 2 (y = -1), the two of order 4 (y = 0) and the four of order 8.
_SMALL_ORDER_Y: Final = frozenset({1, _P - 1, 0, _Y_ORDER_8, _P - _Y_ORDER_8})


class PakeState:
    """One side of a SPAKE2 exchange after ``start``: our message, and what finishes it.

    Secret: it holds the password and our scalar. Its repr says nothing.
    """

    __slots__ = ("_serialized", "message")

    def __init__(self, serialized: bytes, message: bytes) -> None:
        self._serialized = serialized
        #: what we send to the other side (:data:`PAKE_MESSAGE_SIZE` bytes)
        self.message = message

    def finish(self, their_message: bytes) -> bytes:
        """The shared key, from the other side's message; this state is left unchanged.

        The key is the same on both sides only if both used the same password and
        identity; a mismatch is not detected here (key confirmation does that).

        Raises:
            InvalidKeyError: ``their_message`` is not a usable SPAKE2 message, or it is
                our own message sent back.
        """
        if (
            len(their_message) != PAKE_MESSAGE_SIZE
            or their_message[:1] != _SIDE_SYMMETRIC
            or _weak_or_noncanonical(their_message[1:])
            or hmac.compare_digest(their_message, self.message)
        ):
            raise InvalidKeyError("invalid PAKE message")
        fresh = SPAKE2_Symmetric.from_serialized(self._serialized)
        try:
            key = fresh.finish(bytes(their_message))
        except Exception as exc:
            # spake2 raises ValueError, its own NotOnCurve, ReflectionThwarted or an
            # assertion for a bad message; the caller learns only that it was bad.
            raise InvalidKeyError("invalid PAKE message") from exc
        if not isinstance(key, bytes) or len(key) != PAKE_KEY_SIZE:  # pragma: no cover - spake2 contract
            raise InvalidKeyError("invalid PAKE message")
        return key

    def __repr__(self) -> str:
        return "PakeState(<secret>)"


def _weak_or_noncanonical(point: bytes) -> bool:
    """Whether ``point`` encodes a small-order point, or anything with y ≥ p.

    The y coordinate of a point fixes x up to sign, so testing y (reduced mod p) catches
    every spelling of the eight small-order points, including the sign bit set on x = 0;
    y ≥ p is never what an honest encoder writes.
    """
    y = int.from_bytes(point, "little") & _Y_MASK
    return y >= _P or y in _SMALL_ORDER_Y


def start(password: bytes, identity: bytes, rng: Random) -> PakeState:
    """Begin a symmetric SPAKE2 exchange.

    Args:
        password: the shared low-entropy secret (the normalised short code).
        identity: binds the exchange to its context (protocol label and nameplate).
        rng: the source of our secret scalar (64 bytes are drawn).

    Returns:
        The state; send its ``message`` to the other side.

    Raises:
        ValueError: if the password is empty.
    """
    if not password:
        raise ValueError("PAKE password must not be empty")
    pake = SPAKE2_Symmetric(bytes(password), idSymmetric=bytes(identity), entropy_f=rng.random_bytes)
    message = pake.start()
    return PakeState(pake.serialize(), bytes(message))
