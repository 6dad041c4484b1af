"""Sealing to a public key: one message to an X25519 key, sender anonymous (docs/protocol.md §17.9.5).

It is HPKE's base mode in shape (RFC 9180 §5.1: a DHKEM over X25519, a key schedule in
HKDF-SHA256, one AEAD), built from the primitives we already use, not a new primitive and
not RFC 9180 on the wire:

- the sender draws an ephemeral X25519 key ``e`` and computes ``dh = X25519(e, R)`` with
  the recipient's key ``R`` (an all-zero result, a small-order ``R``, is refused);
- ``key ‖ nonce = HKDF-SHA256(ikm=dh, salt=E ‖ R, info=label, 44)``, where ``E`` is ``e``'s
  public key: like HPKE's ``kem_context = enc ‖ pkR``, both public keys are bound into the
  key, so a sealed message is opened under the key it was sealed to or not at all;
- ``sealed = E[32] ‖ AES-256-GCM(key, nonce, plaintext, AD = label ‖ aad)``.

Each ephemeral key seals one message, so the derived nonce is used once. The label names
the purpose (a burn order, a debrief report): a message sealed for one purpose does not
open as another, even under the same key. Every failure to open is one
:class:`~burnerkit.errors.DecryptionError`.
"""

from __future__ import annotations

from typing import Final

from burnerkit.errors import DecryptionError, InvalidKeyError

from . import aead
from .kdf import hkdf
from .keys import X25519_KEY_SIZE, X25519PrivateKey, X25519PublicKey
from .rng import Random

__all__ = ["SEAL_OVERHEAD", "open_sealed", "seal_to"]

#: What sealing adds to a plaintext: the ephemeral public key and the AEAD tag.
SEAL_OVERHEAD: Final = X25519_KEY_SIZE + aead.TAG_SIZE
_OKM_SIZE: Final = aead.KEY_SIZE + aead.NONCE_SIZE


def _schedule(dh: bytes, enc: bytes, recipient: bytes, label: bytes) -> tuple[bytes, bytes]:
    okm = hkdf(dh, salt=enc + recipient, info=label, length=_OKM_SIZE)
    return okm[: aead.KEY_SIZE], okm[aead.KEY_SIZE :]


def seal_to(
    recipient: X25519PublicKey, plaintext: bytes, *, label: bytes, rng: Random, aad: bytes = b""
) -> bytes:
    """Seal ``plaintext`` so that only ``recipient``'s private key opens it.

    Args:
        recipient: the recipient's X25519 public key.
        plaintext: any bytes; the caller pads it if its length must not show.
        label: the purpose, from :data:`burnerkit.crypto.kdf.LABELS`.
        rng: draws the ephemeral key.
        aad: bytes bound to the message but not carried in it.

    Returns:
        ``E[32] ‖ ciphertext ‖ tag[16]``: :data:`SEAL_OVERHEAD` bytes more than ``plaintext``.

    Raises:
        InvalidKeyError: ``recipient`` is a small-order point.
    """
    ephemeral = X25519PrivateKey.generate(rng)
    dh = ephemeral.exchange(recipient)
    enc = ephemeral.public_key.raw
    key, nonce = _schedule(dh, enc, recipient.raw, label)
    return enc + aead.seal(key, nonce, plaintext, label + aad)


def open_sealed(private: X25519PrivateKey, sealed: bytes, *, label: bytes, aad: bytes = b"") -> bytes:
    """Open what :func:`seal_to` sealed to ``private``'s public key under ``label`` and ``aad``.

    Raises:
        DecryptionError: for any reason (too short, a bad ephemeral key, another
            recipient, another label, tampered bytes): no reason is given.
    """
    if len(sealed) < SEAL_OVERHEAD:
        raise DecryptionError
    enc = bytes(sealed[:X25519_KEY_SIZE])
    try:
        dh = private.exchange(X25519PublicKey.from_bytes(enc))
    except InvalidKeyError:
        raise DecryptionError from None
    key, nonce = _schedule(dh, enc, private.public_key.raw, label)
    return aead.open_(key, nonce, sealed[X25519_KEY_SIZE:], label + aad)
