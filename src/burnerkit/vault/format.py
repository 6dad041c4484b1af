"""The vault's bytes: header, record keys, sealed records and padding (docs/protocol.md §15).

Pure: no files, no SQLite, no clock; randomness comes in as an ``rng``. :mod:`.vault` does the
I/O around it.

Theory of operation
-------------------
A random 32-byte *vault key* is drawn once, at creation, and never changes. The header
(``vault.key``) holds it wrapped under a key-encryption key that Argon2id derives from the
passphrase; changing the passphrase rewrites only the header. From the vault key HKDF derives
two keys: the *record key* (AES-256-GCM) that seals every record and the *index key* (HMAC)
that names rows, so the database holds no plaintext kind or key, only keyed hashes of them.

Every check on the header happens before or inside one AEAD open, and every failure ends in
the same :class:`VaultLockedError`: a wrong passphrase, a flipped bit anywhere and a file of
garbage are indistinguishable by type and message.
"""

from __future__ import annotations

import hmac
import re
import struct
from dataclasses import dataclass
from typing import Final

from burnerkit.crypto.aead import NONCE_SIZE, TAG_SIZE, AeadKey
from burnerkit.crypto.kdf import (
    LABEL_VAULT_INDEX,
    LABEL_VAULT_KEY_WRAP,
    LABEL_VAULT_RECORD,
    hkdf,
    hmac_sha256,
)
from burnerkit.crypto.passphrase import SALT_SIZE, KdfParams, derive_key
from burnerkit.crypto.rng import Random
from burnerkit.errors import DecryptionError, VaultCorruptedError, VaultLockedError

__all__ = [
    "HEADER_PREFIX_SIZE",
    "HEADER_SIZE",
    "KDF_ARGON2ID",
    "KIND_TAG_SIZE",
    "MAGIC",
    "MAX_KEY_SIZE",
    "MAX_KIND_LENGTH",
    "MAX_VALUE_SIZE",
    "MIN_PADDED_SIZE",
    "ROW_ID_SIZE",
    "VAULT_KEY_SIZE",
    "VERSION",
    "RecordKeys",
    "SealedRecord",
    "check_kind",
    "open_header",
    "padded_size",
    "seal_header",
]

MAGIC: Final = b"BURNVLT"
VERSION: Final = 0x01
#: Argon2id, version 0x13 (RFC 9106); the only KDF so far.
KDF_ARGON2ID: Final = 0x01
VAULT_KEY_SIZE: Final = 32

# magic(7) ‖ version(1) ‖ kdf(1) ‖ memory_kib(u32) ‖ iterations(u32) ‖ parallelism(u8) ‖ salt(16) ‖ nonce(12)
_PREFIX: Final = struct.Struct(f">{len(MAGIC)}sBBIIB{SALT_SIZE}s{NONCE_SIZE}s")
HEADER_PREFIX_SIZE: Final = _PREFIX.size  # 46
HEADER_SIZE: Final = HEADER_PREFIX_SIZE + VAULT_KEY_SIZE + TAG_SIZE  # 94

ROW_ID_SIZE: Final = 32
KIND_TAG_SIZE: Final = 16
MAX_KIND_LENGTH: Final = 32
MAX_KEY_SIZE: Final = 255
#: 8 MiB: an attachment or a long history fits; a runaway caller does not fill the disk.
MAX_VALUE_SIZE: Final = 8 << 20
#: The smallest record bucket: every small record (a setting, a contact) looks the same.
MIN_PADDED_SIZE: Final = 256

_KIND_RE: Final = re.compile(r"[a-z0-9_-]{1,32}", re.ASCII)
_ROW_PREFIX: Final = b"\x01"
_KIND_PREFIX: Final = b"\x02"


def _header_ad(prefix: bytes) -> bytes:
    return LABEL_VAULT_KEY_WRAP + prefix


def seal_header(vault_key: bytes, passphrase: str, params: KdfParams, rng: Random) -> bytes:
    """Wrap ``vault_key`` under the passphrase: the 94 bytes of ``vault.key`` (§15.2).

    Draws the salt (16 bytes) and then the nonce (12 bytes) from ``rng``.

    Raises:
        ValueError: if ``vault_key`` is not 32 bytes.
    """
    if len(vault_key) != VAULT_KEY_SIZE:
        raise ValueError(f"vault key must be {VAULT_KEY_SIZE} bytes")
    salt = rng.random_bytes(SALT_SIZE)
    nonce = rng.random_bytes(NONCE_SIZE)
    prefix = _PREFIX.pack(
        MAGIC, VERSION, KDF_ARGON2ID, params.memory_kib, params.iterations, params.parallelism, salt, nonce
    )
    kek = AeadKey(derive_key(passphrase, salt, params))
    return prefix + kek.seal(nonce, bytes(vault_key), _header_ad(prefix))


def open_header(header: bytes, passphrase: str) -> bytes:
    """Unwrap the vault key from the bytes of ``vault.key``.

    The KDF parameters are range-checked before Argon2 runs, so a tampered header cannot make
    us allocate gigabytes or loop for hours.

    Raises:
        VaultLockedError: for a wrong passphrase and for every kind of damaged header alike.
    """
    if len(header) != HEADER_SIZE:
        raise VaultLockedError
    magic, version, kdf_id, memory_kib, iterations, parallelism, salt, nonce = _PREFIX.unpack_from(header)
    if not hmac.compare_digest(magic, MAGIC) or version != VERSION or kdf_id != KDF_ARGON2ID:
        raise VaultLockedError
    try:
        params = KdfParams(memory_kib, iterations, parallelism)
    except ValueError:
        raise VaultLockedError from None
    prefix = header[:HEADER_PREFIX_SIZE]
    try:
        kek = AeadKey(derive_key(passphrase, salt, params))
        return kek.open(nonce, header[HEADER_PREFIX_SIZE:], _header_ad(prefix))
    except (DecryptionError, ValueError):
        raise VaultLockedError from None


def check_kind(kind: str) -> bytes:
    """Validate a record kind and return it as ASCII bytes.

    Raises:
        TypeError: if ``kind`` is not a ``str``.
        ValueError: unless it is 1 to 32 characters of ``[a-z0-9_-]``.
    """
    if not isinstance(kind, str):
        raise TypeError("kind must be a str")
    if _KIND_RE.fullmatch(kind) is None:
        raise ValueError("kind must be 1 to 32 characters of [a-z0-9_-]")
    return kind.encode("ascii")


def _check_bytes(name: str, data: object, limit: int) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes")
    data = bytes(data)
    if len(data) > limit:
        raise ValueError(f"{name} must be at most {limit} bytes")
    return data


def padded_size(n: int) -> int:
    """The bucket a plaintext of ``n`` bytes is padded to: Padmé, at least 256 bytes.

    Padmé (Nikitin et al., "Reducing Metadata Leakage from Encrypted Files and Communication
    with PURBs", PETS 2019) rounds a length ``L`` so that only its top
    ``⌊log₂ ⌊log₂ L⌋⌋ + 1`` bits are kept: at most 12 % overhead, and a length leaks
    ``O(log log L)`` bits instead of ``O(log L)``.
    """
    if n <= MIN_PADDED_SIZE:
        return MIN_PADDED_SIZE
    exponent = n.bit_length() - 1
    kept = exponent.bit_length()
    mask = (1 << (exponent - kept)) - 1
    return (n + mask) & ~mask


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """One row of the ``records`` table: what the database sees of a record."""

    row_id: bytes
    kind_tag: bytes
    sealed: bytes

    def __repr__(self) -> str:
        return f"SealedRecord(<{len(self.sealed)} bytes>)"


class RecordKeys:
    """The two keys HKDF derives from the vault key, and everything done with them (§15.4)."""

    __slots__ = ("_index_key", "_record_key")

    def __init__(self, vault_key: bytes) -> None:
        if len(vault_key) != VAULT_KEY_SIZE:
            raise ValueError(f"vault key must be {VAULT_KEY_SIZE} bytes")
        self._record_key = AeadKey(hkdf(vault_key, salt=b"", info=LABEL_VAULT_RECORD, length=32))
        self._index_key = hkdf(vault_key, salt=b"", info=LABEL_VAULT_INDEX, length=32)

    def row_id(self, kind: str, key: bytes) -> bytes:
        """``HMAC(index_key, 0x01 ‖ kind ‖ 0x00 ‖ key)``: the row's primary key (32 bytes).

        A kind never contains 0x00, so the split between kind and key is unambiguous.

        Raises:
            TypeError, ValueError: for a bad kind or key (see :meth:`seal`).
        """
        kind_bytes = check_kind(kind)
        key = _check_bytes("key", key, MAX_KEY_SIZE)
        return hmac_sha256(self._index_key, _ROW_PREFIX + kind_bytes + b"\x00" + key)

    def kind_tag(self, kind: str) -> bytes:
        """``HMAC(index_key, 0x02 ‖ kind)[:16]``: lets the database list one kind, blindly."""
        return hmac_sha256(self._index_key, _KIND_PREFIX + check_kind(kind))[:KIND_TAG_SIZE]

    def seal(self, kind: str, key: bytes, value: bytes, rng: Random) -> SealedRecord:
        """Seal one record; draws its 12-byte nonce from ``rng``.

        Raises:
            TypeError: if ``kind`` is not a ``str`` or ``key``/``value`` are not bytes.
            ValueError: for a kind outside ``[a-z0-9_-]{1,32}``, a key over 255 bytes or a
                value over :data:`MAX_VALUE_SIZE`.
        """
        kind_bytes = check_kind(kind)
        key = _check_bytes("key", key, MAX_KEY_SIZE)
        value = _check_bytes("value", value, MAX_VALUE_SIZE)
        row_id = self.row_id(kind, key)
        kind_tag = self.kind_tag(kind)
        body = (
            bytes([len(kind_bytes)])
            + kind_bytes
            + bytes([len(key)])
            + key
            + len(value).to_bytes(4, "big")
            + value
        )
        plaintext = body + bytes(padded_size(len(body)) - len(body))
        nonce = rng.random_bytes(NONCE_SIZE)
        sealed = nonce + self._record_key.seal(nonce, plaintext, _record_ad(row_id, kind_tag))
        return SealedRecord(row_id, kind_tag, sealed)

    def open(self, kind: str, row_id: bytes, sealed: bytes) -> tuple[bytes, bytes]:
        """Open a record found under ``row_id`` while looking for ``kind``: ``(key, value)``.

        The AEAD binds the record to its row id and kind tag, so a record copied to another
        row, or relabelled as another kind, fails here; the plaintext's own kind and key must
        hash back to ``row_id`` as well.

        Raises:
            VaultCorruptedError: if the record does not authenticate or does not belong there.
        """
        kind_bytes = check_kind(kind)
        kind_tag = self.kind_tag(kind)
        if len(sealed) < NONCE_SIZE + MIN_PADDED_SIZE + TAG_SIZE:
            raise _corrupted()
        nonce = sealed[:NONCE_SIZE]
        plaintext = self._record_key.try_open(nonce, sealed[NONCE_SIZE:], _record_ad(row_id, kind_tag))
        if plaintext is None:
            raise _corrupted()
        try:
            key, value = _parse_plaintext(plaintext, kind_bytes)
        except (IndexError, ValueError):
            raise _corrupted() from None
        if not hmac.compare_digest(self.row_id(kind, key), row_id):
            raise _corrupted()
        return key, value

    def __repr__(self) -> str:
        return "RecordKeys(<secret>)"


def _record_ad(row_id: bytes, kind_tag: bytes) -> bytes:
    return LABEL_VAULT_RECORD + row_id + kind_tag


def _corrupted() -> VaultCorruptedError:
    return VaultCorruptedError("a vault record failed authentication")


def _parse_plaintext(plaintext: bytes, kind: bytes) -> tuple[bytes, bytes]:
    """Split an authenticated plaintext; ``ValueError`` (or ``IndexError``) if it is not ours."""
    kind_len = plaintext[0]
    if plaintext[1 : 1 + kind_len] != kind:
        raise ValueError("kind")
    at = 1 + kind_len
    key_len = plaintext[at]
    key = plaintext[at + 1 : at + 1 + key_len]
    at += 1 + key_len
    value_len = int.from_bytes(plaintext[at : at + 4], "big")
    at += 4
    value = plaintext[at : at + value_len]
    end = at + value_len
    if len(key) != key_len or len(value) != value_len or len(plaintext) != padded_size(end):
        raise ValueError("length")
    if plaintext[end:].count(0) != len(plaintext) - end:
        raise ValueError("padding")
    return key, value
