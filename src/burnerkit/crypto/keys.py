"""Typed key classes: X25519, Ed25519 and ML-KEM-768 (docs/protocol.md §2.1, §3.5).

Every class is built through a named constructor that validates (``generate``,
``from_bytes``); after construction an object is always a valid key. Private
material never appears in a ``repr``. Randomness comes in as a :class:`Random`
so that test vectors can reproduce keys; the one exception is ML-KEM
encapsulation, whose randomness pyca draws internally (see docs/protocol.md §3.7).
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519, mlkem, x25519

from burnerkit.errors import InvalidKeyError, SignatureError

from .rng import Random

__all__ = [
    "ED25519_KEY_SIZE",
    "ED25519_SIGNATURE_SIZE",
    "KEM_CIPHERTEXT_SIZE",
    "KEM_PUBLIC_KEY_SIZE",
    "KEM_SEED_SIZE",
    "KEM_SHARED_SECRET_SIZE",
    "X25519_KEY_SIZE",
    "KemPrivateKey",
    "KemPublicKey",
    "SigningKey",
    "VerifyKey",
    "X25519PrivateKey",
    "X25519PublicKey",
]

X25519_KEY_SIZE = 32
ED25519_KEY_SIZE = 32
ED25519_SIGNATURE_SIZE = 64
KEM_SEED_SIZE = 64
KEM_PUBLIC_KEY_SIZE = 1184
KEM_CIPHERTEXT_SIZE = 1088
KEM_SHARED_SECRET_SIZE = 32

_ZERO32 = bytes(32)
_P25519 = 2**255 - 19
_Y_MASK = 2**255 - 1
# y-coordinates of the edwards25519 points of small order (orders 1, 2, 4 and 8),
# as in libsodium's ge25519_has_small_order blocklist.
_ORDER8_Y = 2707385501144840649318225287225658788936804267575313519463743609750303402022
_SMALL_ORDER_Y = frozenset({0, 1, _P25519 - 1, _ORDER8_Y, _P25519 - _ORDER8_Y})


def _check_len(name: str, data: bytes, size: int) -> None:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes")
    if len(data) != size:
        raise ValueError(f"{name} must be {size} bytes")


class X25519PublicKey:
    """An X25519 public key (32 bytes)."""

    __slots__ = ("_key", "raw")

    def __init__(self, key: x25519.X25519PublicKey, raw: bytes) -> None:
        self._key = key
        self.raw = raw

    @classmethod
    def from_bytes(cls, data: bytes) -> X25519PublicKey:
        """Parse a public key.

        Raises:
            ValueError: unless ``data`` is 32 bytes.
        """
        _check_len("X25519 public key", data, X25519_KEY_SIZE)
        raw = bytes(data)
        return cls(x25519.X25519PublicKey.from_public_bytes(raw), raw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, X25519PublicKey) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"X25519PublicKey({self.raw[:4].hex()}...)"


class X25519PrivateKey:
    """An X25519 private key with its public half cached."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: x25519.X25519PrivateKey) -> None:
        self._key = key
        pub = key.public_key()
        self.public_key = X25519PublicKey(pub, pub.public_bytes_raw())

    @classmethod
    def generate(cls, rng: Random) -> X25519PrivateKey:
        """Make a new key from 32 bytes of ``rng``."""
        return cls(x25519.X25519PrivateKey.from_private_bytes(rng.random_bytes(X25519_KEY_SIZE)))

    @classmethod
    def from_bytes(cls, data: bytes) -> X25519PrivateKey:
        """Load a private key from its 32 raw bytes.

        Raises:
            ValueError: unless ``data`` is 32 bytes.
        """
        _check_len("X25519 private key", data, X25519_KEY_SIZE)
        return cls(x25519.X25519PrivateKey.from_private_bytes(bytes(data)))

    def private_bytes(self) -> bytes:
        """The 32 raw private bytes, for serialisation only."""
        return self._key.private_bytes_raw()

    def exchange(self, peer: X25519PublicKey) -> bytes:
        """Diffie-Hellman with ``peer``.

        Raises:
            InvalidKeyError: if ``peer`` is a small-order point (all-zero output).
        """
        try:
            shared = self._key.exchange(peer._key)
        except ValueError as exc:  # OpenSSL refuses the all-zero result itself
            raise InvalidKeyError("invalid X25519 public key") from exc
        if hmac.compare_digest(shared, _ZERO32):
            raise InvalidKeyError("invalid X25519 public key")
        return shared

    def __repr__(self) -> str:
        return f"X25519PrivateKey(public={self.public_key.raw[:4].hex()}...)"


class VerifyKey:
    """An Ed25519 public key."""

    __slots__ = ("_key", "raw")

    def __init__(self, key: ed25519.Ed25519PublicKey, raw: bytes) -> None:
        self._key = key
        self.raw = raw

    @classmethod
    def from_bytes(cls, data: bytes) -> VerifyKey:
        """Parse an Ed25519 public key.

        Raises:
            ValueError: unless ``data`` is 32 bytes.
            InvalidKeyError: if the key has small order or a non-canonical encoding.
        """
        _check_len("Ed25519 public key", data, ED25519_KEY_SIZE)
        raw = bytes(data)
        # pyca accepts any 32 bytes here. A small-order key verifies forged signatures
        # (the identity point accepts one signature for every message) and a
        # non-canonical y gives one key two encodings, so we refuse both. An off-curve
        # y we leave to OpenSSL: it fails to decode at verify time, so no signature
        # ever verifies under it, and checking it here costs a 255-bit modexp.
        y = int.from_bytes(raw, "little") & _Y_MASK
        if y >= _P25519 or y in _SMALL_ORDER_Y:
            raise InvalidKeyError("invalid Ed25519 public key")
        try:
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise InvalidKeyError("invalid Ed25519 public key") from exc
        return cls(key, raw)

    def verify(self, signature: bytes, message: bytes) -> None:
        """Check ``signature`` over ``message``.

        Raises:
            SignatureError: if it does not verify.
        """
        if len(signature) != ED25519_SIGNATURE_SIZE:
            raise SignatureError("signature did not verify")
        try:
            self._key.verify(bytes(signature), message)
        except InvalidSignature as exc:
            raise SignatureError("signature did not verify") from exc

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VerifyKey) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"VerifyKey({self.raw[:4].hex()}...)"


class SigningKey:
    """An Ed25519 private key with its public half cached."""

    __slots__ = ("_key", "verify_key")

    def __init__(self, key: ed25519.Ed25519PrivateKey) -> None:
        self._key = key
        pub = key.public_key()
        self.verify_key = VerifyKey(pub, pub.public_bytes_raw())

    @classmethod
    def generate(cls, rng: Random) -> SigningKey:
        """Make a new key from 32 bytes of ``rng``."""
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(rng.random_bytes(ED25519_KEY_SIZE)))

    @classmethod
    def from_bytes(cls, data: bytes) -> SigningKey:
        """Load a key from its 32-byte seed.

        Raises:
            ValueError: unless ``data`` is 32 bytes.
        """
        _check_len("Ed25519 private key", data, ED25519_KEY_SIZE)
        return cls(ed25519.Ed25519PrivateKey.from_private_bytes(bytes(data)))

    def private_bytes(self) -> bytes:
        """The 32-byte seed, for serialisation only."""
        return self._key.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (deterministic, RFC 8032)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKey(public={self.verify_key.raw[:4].hex()}...)"


class KemPublicKey:
    """An ML-KEM-768 encapsulation key (1,184 bytes)."""

    __slots__ = ("_key", "raw")

    def __init__(self, key: mlkem.MLKEM768PublicKey, raw: bytes) -> None:
        self._key = key
        self.raw = raw

    @classmethod
    def from_bytes(cls, data: bytes) -> KemPublicKey:
        """Parse an encapsulation key, with FIPS 203's modulus check.

        Raises:
            ValueError: unless ``data`` is 1,184 bytes.
            InvalidKeyError: if the key fails the modulus check.
        """
        _check_len("ML-KEM-768 public key", data, KEM_PUBLIC_KEY_SIZE)
        raw = bytes(data)
        try:
            key = mlkem.MLKEM768PublicKey.from_public_bytes(raw)
        except ValueError as exc:
            raise InvalidKeyError("invalid ML-KEM-768 public key") from exc
        return cls(key, raw)

    def encapsulate(self) -> tuple[bytes, bytes]:
        """Return ``(shared_secret, ciphertext)``; randomness is drawn by pyca."""
        shared, ciphertext = self._key.encapsulate()
        return shared, ciphertext

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KemPublicKey) and self.raw == other.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        return f"KemPublicKey({self.raw[:4].hex()}...)"


class KemPrivateKey:
    """An ML-KEM-768 decapsulation key, stored as its 64-byte seed (d ‖ z)."""

    __slots__ = ("_key", "public_key")

    def __init__(self, key: mlkem.MLKEM768PrivateKey) -> None:
        self._key = key
        pub = key.public_key()
        self.public_key = KemPublicKey(pub, pub.public_bytes_raw())

    @classmethod
    def generate(cls, rng: Random) -> KemPrivateKey:
        """Make a new key pair from 64 bytes of ``rng`` (FIPS 203 ML-KEM.KeyGen_internal)."""
        return cls(mlkem.MLKEM768PrivateKey.from_seed_bytes(rng.random_bytes(KEM_SEED_SIZE)))

    @classmethod
    def from_seed(cls, seed: bytes) -> KemPrivateKey:
        """Load a key pair from its 64-byte seed.

        Raises:
            ValueError: unless ``seed`` is 64 bytes.
        """
        _check_len("ML-KEM-768 seed", seed, KEM_SEED_SIZE)
        return cls(mlkem.MLKEM768PrivateKey.from_seed_bytes(bytes(seed)))

    def seed(self) -> bytes:
        """The 64-byte seed, for serialisation only."""
        return self._key.private_bytes_raw()

    def decapsulate(self, ciphertext: bytes) -> bytes:
        """Recover the shared secret; a wrong ciphertext yields a pseudo-random one (implicit rejection).

        Raises:
            ValueError: unless ``ciphertext`` is 1,088 bytes.
        """
        _check_len("ML-KEM-768 ciphertext", ciphertext, KEM_CIPHERTEXT_SIZE)
        return self._key.decapsulate(bytes(ciphertext))

    def __repr__(self) -> str:
        return f"KemPrivateKey(public={self.public_key.raw[:4].hex()}...)"
