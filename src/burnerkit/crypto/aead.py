"""The one AEAD: AES-256-GCM with a full 16-byte tag and a 12-byte nonce (docs/protocol.md §3.6).

Every failure to open ends in one :class:`DecryptionError` with no reason attached.
We draw every nonce at random (96 bits) instead of deriving it from the key, so that
a state restored from an old backup that re-derives a message key still never
encrypts twice under one key and nonce.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.utils import Buffer

from burnerkit.errors import DecryptionError

__all__ = ["KEY_SIZE", "Buffer", "NONCE_SIZE", "TAG_SIZE", "AeadKey", "open_", "seal"]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16


def _check(key: bytes, nonce: Buffer | None) -> None:
    if len(key) != KEY_SIZE:
        raise ValueError("AEAD key must be 32 bytes")
    if nonce is not None and len(nonce) != NONCE_SIZE:
        raise ValueError("AEAD nonce must be 12 bytes")


class AeadKey:
    """An AES-256-GCM key, kept so repeated use does not rebuild the cipher context."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        _check(key, None)
        self._aead = AESGCM(key)

    def seal(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
        """Encrypt and authenticate; returns ciphertext ‖ tag."""
        if len(nonce) != NONCE_SIZE:
            raise ValueError("AEAD nonce must be 12 bytes")
        return self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, nonce: Buffer, ciphertext: Buffer, associated_data: Buffer) -> bytes:
        """Authenticate and decrypt.

        Raises:
            DecryptionError: on any failure, for any reason.
        """
        if len(nonce) != NONCE_SIZE:
            raise ValueError("AEAD nonce must be 12 bytes")
        try:
            return self._aead.decrypt(nonce, ciphertext, associated_data)
        except (InvalidTag, ValueError) as exc:
            raise DecryptionError from exc

    def try_open(self, nonce: Buffer, ciphertext: Buffer, associated_data: Buffer) -> bytes | None:
        """Like :meth:`open`, but ``None`` on failure: for trial decryption of headers.

        The nonce must be 12 bytes; the caller slices it from a fixed layout.
        """
        try:
            return self._aead.decrypt(nonce, ciphertext, associated_data)
        except InvalidTag:
            return None

    def __repr__(self) -> str:
        return "AeadKey(<secret>)"


def seal(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """One-shot :meth:`AeadKey.seal`."""
    _check(key, nonce)
    return AESGCM(key).encrypt(nonce, plaintext, associated_data)


def open_(key: bytes, nonce: Buffer, ciphertext: Buffer, associated_data: Buffer) -> bytes:
    """One-shot :meth:`AeadKey.open`.

    Raises:
        DecryptionError: on any failure, for any reason.
    """
    _check(key, nonce)
    aesgcm = AESGCM(key)
    try:
        return aesgcm.decrypt(nonce, ciphertext, associated_data)
    except (InvalidTag, ValueError) as exc:
        raise DecryptionError from exc
