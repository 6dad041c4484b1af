"""Per-contact identities and the safety code: docs/protocol.md §4.

A burner holds a fresh identity for every contact, so two contacts cannot prove
they talk to the same burner. An identity is an Ed25519 signing key (it signs the
handshake) and an X25519 key (it enters the handshake's DH), nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from burnerkit.crypto.kdf import LABEL_SAFETY_CODE, hkdf, sha256
from burnerkit.crypto.keys import SigningKey, VerifyKey, X25519PrivateKey, X25519PublicKey
from burnerkit.crypto.rng import Random

__all__ = ["SAFETY_CODE_GROUPS", "Identity", "PublicIdentity", "safety_code", "safety_code_bytes"]

#: Twelve groups of five digits, as Signal's safety numbers (about 199 bits).
SAFETY_CODE_GROUPS: Final = 12
_SAFETY_VERSION: Final = b"\x01"


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half of a per-contact identity."""

    signing: VerifyKey
    dh: X25519PublicKey

    def to_bytes(self) -> bytes:
        """``signing (32) ‖ dh (32)``."""
        return self.signing.raw + self.dh.raw

    @classmethod
    def from_bytes(cls, data: bytes) -> PublicIdentity:
        """Parse 64 bytes.

        Raises:
            ValueError: unless ``data`` is 64 bytes.
            InvalidKeyError: if the signing key has small order or a non-canonical encoding.
        """
        if len(data) != 64:
            raise ValueError("public identity must be 64 bytes")
        return cls(VerifyKey.from_bytes(data[:32]), X25519PublicKey.from_bytes(data[32:]))


class Identity:
    """A per-contact identity key pair (Ed25519 + X25519)."""

    __slots__ = ("dh", "public", "signing")

    def __init__(self, signing: SigningKey, dh: X25519PrivateKey) -> None:
        self.signing = signing
        self.dh = dh
        self.public = PublicIdentity(signing.verify_key, dh.public_key)

    @classmethod
    def generate(cls, rng: Random) -> Identity:
        """A fresh identity."""
        return cls(SigningKey.generate(rng), X25519PrivateKey.generate(rng))

    def to_bytes(self) -> bytes:
        """``signing seed (32) ‖ dh private (32)``; secret."""
        return self.signing.private_bytes() + self.dh.private_bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Identity:
        """Load 64 bytes written by :meth:`to_bytes`.

        Raises:
            ValueError: unless ``data`` is 64 bytes.
        """
        if len(data) != 64:
            raise ValueError("identity must be 64 bytes")
        return cls(SigningKey.from_bytes(data[:32]), X25519PrivateKey.from_bytes(data[32:]))

    def __repr__(self) -> str:
        return f"Identity(public={self.public.signing.raw[:4].hex()}...)"


def safety_code_bytes(a: PublicIdentity, b: PublicIdentity) -> bytes:
    """The QR-friendly form: version byte ‖ SHA-256 over both identities in sorted order.

    Both sides compute the same bytes whatever their role.
    """
    first, second = sorted((a.to_bytes(), b.to_bytes()))
    return _SAFETY_VERSION + sha256(LABEL_SAFETY_CODE, first, second)


def safety_code(a: PublicIdentity, b: PublicIdentity) -> str:
    """The numeric form: twelve groups of five digits, read aloud or compared on screen."""
    # Signal's method: one 5-byte chunk per group, reduced mod 100,000.
    stream = hkdf(safety_code_bytes(a, b), salt=b"", info=LABEL_SAFETY_CODE, length=5 * SAFETY_CODE_GROUPS)
    return " ".join(
        f"{int.from_bytes(stream[i : i + 5], 'big') % 100000:05d}" for i in range(0, len(stream), 5)
    )
