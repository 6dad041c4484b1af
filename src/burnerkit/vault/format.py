"""The vault's bytes: header, key slots, record keys, sealed records and padding (docs/protocol.md §15).

Pure: no files, no SQLite, no clock; randomness comes in as an ``rng``. :mod:`.vault` does the
I/O around it.

Theory of operation
-------------------
The header (``vault.key``, version 2) holds a key-encryption key's parameters and two *key
slots*; Argon2id derives the KEK from the passphrase and the header's salt. A slot holds a
32-byte *vault key* wrapped under the KEK, or 60 random bytes. The vault key is not for life:
:mod:`.vault` draws a new one (a new *epoch*) at the first write after each unlock and after
each transaction that deleted records, writes it into the slot the current key does not use,
re-seals every live record under it and only then overwrites the old slot, so a copy of the
files taken earlier, plus the passphrase, opens nothing written later (§15.11). Two slots make
the rotation crash-safe: at every instant the key the database's records are sealed under is in
one of them, named by the database's *key id* (``HKDF(vault_key, "burner/v1/vault/key-id")``).

From the vault key HKDF derives the *record key* (AES-256-GCM) that seals every record and the
*index key* (HMAC) that names rows. A record's kind and key live only inside its sealed bytes:
the database holds no kind tag, so the records of one kind cannot be told from another's.

Version 1 (a 94-byte header with one wrapped key, rows with a clear kind tag) is still read:
:func:`open_header_v1` and :meth:`RecordKeys.open_row_v1`; :mod:`.vault` upgrades such a vault
at its first write.

Every check on the header happens before or inside the AEAD opens, and every failure ends in
the same :class:`VaultLockedError`: a wrong passphrase, a flipped bit anywhere and a file of
garbage are indistinguishable by type and message.
"""

from __future__ import annotations

import hmac
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from burnerkit.crypto.aead import NONCE_SIZE, TAG_SIZE, AeadKey
from burnerkit.crypto.kdf import (
    LABEL_BORDER_STATE,
    LABEL_BURN_JOURNAL,
    LABEL_VAULT_INDEX,
    LABEL_VAULT_KEY_ID,
    LABEL_VAULT_KEY_WRAP,
    LABEL_VAULT_RECORD,
    hkdf,
    hmac_sha256,
)
from burnerkit.crypto.passphrase import SALT_SIZE, KdfParams, derive_key
from burnerkit.crypto.rng import Random
from burnerkit.errors import DecryptionError, VaultCorruptedError, VaultLockedError

__all__ = [
    "CHUNK_SIZE",
    "DATABASE_STEP",
    "HEADER_PREFIX_SIZE",
    "HEADER_SIZE",
    "HEADER_V1_SIZE",
    "KDF_ARGON2ID",
    "KEY_ID_SIZE",
    "KIND_TAG_SIZE",
    "MAGIC",
    "MAX_KEY_SIZE",
    "MAX_KIND_LENGTH",
    "MAX_VALUE_SIZE",
    "MIN_PADDED_SIZE",
    "ROW_ID_SIZE",
    "SEALED_CHUNK_SIZE",
    "SLOTS",
    "SLOT_SIZE",
    "VAULT_KEY_SIZE",
    "VERSION",
    "VERSION_1",
    "BorderKeys",
    "HeaderKeys",
    "RecordKeys",
    "SealedRecord",
    "check_kind",
    "chunk_count",
    "check_record",
    "database_bucket",
    "header_version",
    "key_id",
    "open_border_state",
    "parse_prefix",
    "open_burn_journal",
    "open_header",
    "open_header_v1",
    "padded_size",
    "seal_header",
    "seal_prefix",
    "seal_slot",
    "slot_offset",
]

MAGIC: Final = b"BURNVLT"
VERSION: Final = 0x02
#: The first header format: one key, wrapped once, for the vault's life.
VERSION_1: Final = 0x01
#: Argon2id, version 0x13 (RFC 9106); the only KDF so far.
KDF_ARGON2ID: Final = 0x01
VAULT_KEY_SIZE: Final = 32
KEY_ID_SIZE: Final = 16
SLOTS: Final = 2

# magic(7) ‖ version(1) ‖ kdf(1) ‖ memory_kib(u32) ‖ iterations(u32) ‖ parallelism(u8) ‖ salt(16)
_PREFIX: Final = struct.Struct(f">{len(MAGIC)}sBBIIB{SALT_SIZE}s")
HEADER_PREFIX_SIZE: Final = _PREFIX.size  # 34
#: nonce(12) ‖ AES-256-GCM(KEK, nonce, vault_key) (32 + 16)
SLOT_SIZE: Final = NONCE_SIZE + VAULT_KEY_SIZE + TAG_SIZE  # 60
HEADER_SIZE: Final = HEADER_PREFIX_SIZE + SLOTS * SLOT_SIZE  # 154
#: Version 1: the prefix, then one nonce and one wrapped key.
HEADER_V1_SIZE: Final = HEADER_PREFIX_SIZE + SLOT_SIZE  # 94

ROW_ID_SIZE: Final = 32
KIND_TAG_SIZE: Final = 16
MAX_KIND_LENGTH: Final = 32
MAX_KEY_SIZE: Final = 255
#: 8 MiB: an attachment or a long history fits; a runaway caller does not fill the disk.
MAX_VALUE_SIZE: Final = 8 << 20
#: Version 1's smallest record bucket (Padmé above it); read for migration only.
MIN_PADDED_SIZE: Final = 256
#: Every row holds exactly this many bytes of a record: a record is one or more such chunks.
CHUNK_SIZE: Final = 512
#: A row's sealed bytes: nonce ‖ chunk ‖ tag.
SEALED_CHUNK_SIZE: Final = NONCE_SIZE + CHUNK_SIZE + TAG_SIZE  # 540
#: ``vault.sqlite`` grows in steps of at least 256 KiB (:func:`database_bucket`).
DATABASE_STEP: Final = 256 << 10

_KIND_RE: Final = re.compile(r"[a-z0-9_-]{1,32}", re.ASCII)
_ROW_PREFIX: Final = b"\x01"
_KIND_PREFIX: Final = b"\x02"
_CHUNK_PREFIX: Final = b"\x03"
# The first byte of every chunk but the head: a head starts with its kind's length (1-32).
_CONTINUATION: Final = 0x00


def header_version(header: bytes) -> int | None:
    """The version byte of a header of a known length and magic, else ``None`` (no secret involved)."""
    if len(header) not in (HEADER_SIZE, HEADER_V1_SIZE) or not hmac.compare_digest(header[:7], MAGIC):
        return None
    version = header[7]
    expected = {HEADER_SIZE: VERSION, HEADER_V1_SIZE: VERSION_1}[len(header)]
    return version if version == expected else None


def slot_offset(index: int) -> int:
    """Where key slot ``index`` (0 or 1) starts in ``vault.key``."""
    if index not in range(SLOTS):
        raise ValueError("a header has two key slots, 0 and 1")
    return HEADER_PREFIX_SIZE + index * SLOT_SIZE


def _slot_ad(prefix: bytes, index: int) -> bytes:
    return LABEL_VAULT_KEY_WRAP + prefix + bytes([index])


def key_id(vault_key: bytes) -> bytes:
    """``HKDF(vault_key, "burner/v1/vault/key-id")[:16]``: names a key in the database, not the key."""
    return hkdf(vault_key, salt=b"", info=LABEL_VAULT_KEY_ID, length=KEY_ID_SIZE)


def seal_prefix(params: KdfParams, rng: Random) -> bytes:
    """The 34 bytes before the slots, with a fresh 16-byte salt from ``rng``."""
    salt = rng.random_bytes(SALT_SIZE)
    return _PREFIX.pack(
        MAGIC, VERSION, KDF_ARGON2ID, params.memory_kib, params.iterations, params.parallelism, salt
    )


class HeaderKeys:
    """What an opened header gives: its prefix, the KEK, and each slot's vault key or ``None``.

    The KEK is kept for the open vault's life, so a key rotation wraps the new key without
    running Argon2 again.
    """

    __slots__ = ("_kek", "keys", "prefix")

    def __init__(self, prefix: bytes, kek: AeadKey, keys: tuple[bytes | None, ...]) -> None:
        self.prefix = prefix
        self._kek = kek
        self.keys = keys

    def seal_slot(self, index: int, vault_key: bytes, rng: Random) -> bytes:
        """Wrap ``vault_key`` for slot ``index`` under this header's KEK (60 bytes)."""
        return seal_slot(self._kek, self.prefix, index, vault_key, rng)

    def with_key(self, index: int, vault_key: bytes) -> HeaderKeys:
        """The same header with ``vault_key`` in slot ``index``."""
        keys = list(self.keys)
        keys[index] = bytes(vault_key)
        return HeaderKeys(self.prefix, self._kek, tuple(keys))

    def only(self, index: int) -> HeaderKeys:
        """The same header with every slot but ``index`` empty (the others were overwritten)."""
        return HeaderKeys(
            self.prefix, self._kek, tuple(k if i == index else None for i, k in enumerate(self.keys))
        )

    def reopen(self, header: bytes) -> HeaderKeys:
        """Open the slots of a re-read ``header`` with the KEK we hold.

        Raises:
            VaultLockedError: the header is not a version 2 header with our prefix (its
                passphrase was changed by another process), or no slot opens.
        """
        if header_version(header) != VERSION or not hmac.compare_digest(
            header[:HEADER_PREFIX_SIZE], self.prefix
        ):
            raise VaultLockedError
        keys = _open_slots(self._kek, header)
        if not any(keys):
            raise VaultLockedError
        return HeaderKeys(self.prefix, self._kek, keys)

    def seal_burn_journal(self, body: bytes, rng: Random) -> bytes:
        """``prefix ‖ nonce ‖ AES-256-GCM(KEK, nonce, body, AD = "burner/v1/burn/journal" ‖ prefix)``.

        A burn's journal (docs/protocol.md §17.7) outlives the vault key, so it is sealed under
        the KEK, which the passphrase re-derives from the prefix it carries; its own label as
        associated data keeps it apart from a key slot.
        """
        return _seal_under_kek(self._kek, self.prefix, body, LABEL_BURN_JOURNAL, rng)

    def seal_border_state(self, body: bytes, rng: Random) -> bytes:
        """``prefix ‖ nonce ‖ AES-256-GCM(KEK, nonce, body, AD = "burner/v1/border/state" ‖ prefix)``.

        A border state (docs/protocol.md §17.12) outlives the key slots, as a burn journal does,
        and is sealed alike under its own label.
        """
        return _seal_under_kek(self._kek, self.prefix, body, LABEL_BORDER_STATE, rng)

    def __repr__(self) -> str:
        return "HeaderKeys(<secret>)"


def open_burn_journal(sealed: bytes, passphrase: str) -> bytes:
    """Open what :meth:`HeaderKeys.seal_burn_journal` sealed, with the passphrase (one Argon2 run).

    Raises:
        VaultLockedError: a wrong passphrase, or anything damaged; one error for all.
    """
    return _open_under_kek(sealed, passphrase, LABEL_BURN_JOURNAL)[2]


class BorderKeys:
    """What the passphrase opens of a border state (docs/protocol.md §17.12): its body and the KEK.

    The KEK wraps a released vault key back into a slot of the header it came from, and
    re-seals the state when the one-time key is added; nothing else.
    """

    __slots__ = ("_kek", "body", "prefix")

    def __init__(self, prefix: bytes, kek: AeadKey, body: bytes) -> None:
        self.prefix = prefix
        self._kek = kek
        self.body = body

    def reseal(self, body: bytes, rng: Random) -> bytes:
        """The state with a new ``body``, sealed as :meth:`HeaderKeys.seal_border_state` does."""
        return _seal_under_kek(self._kek, self.prefix, body, LABEL_BORDER_STATE, rng)

    def seal_slot(self, index: int, vault_key: bytes, rng: Random) -> bytes:
        """Wrap ``vault_key`` for slot ``index`` of the header whose prefix this state carries."""
        return seal_slot(self._kek, self.prefix, index, vault_key, rng)

    def holds_key(self, header: bytes) -> bool:
        """Whether a slot of ``header`` (its ``vault.key``) still opens: a crossing cut short."""
        if header_version(header) != VERSION or not hmac.compare_digest(
            header[:HEADER_PREFIX_SIZE], self.prefix
        ):
            return False
        return any(_open_slots(self._kek, header))

    def __repr__(self) -> str:
        return "BorderKeys(<secret>)"


def open_border_state(sealed: bytes, passphrase: str) -> BorderKeys:
    """Open what :meth:`HeaderKeys.seal_border_state` sealed, with the passphrase (one Argon2 run).

    Raises:
        VaultLockedError: a wrong passphrase, or anything damaged; one error for all.
    """
    prefix, kek, body = _open_under_kek(sealed, passphrase, LABEL_BORDER_STATE)
    return BorderKeys(prefix, kek, body)


def _seal_under_kek(kek: AeadKey, prefix: bytes, body: bytes, label: bytes, rng: Random) -> bytes:
    nonce = rng.random_bytes(NONCE_SIZE)
    return prefix + nonce + kek.seal(nonce, bytes(body), label + prefix)


def _open_under_kek(sealed: bytes, passphrase: str, label: bytes) -> tuple[bytes, AeadKey, bytes]:
    prefix = sealed[:HEADER_PREFIX_SIZE]
    if (
        len(sealed) < HEADER_PREFIX_SIZE + NONCE_SIZE + TAG_SIZE
        or header_version(prefix + bytes(SLOTS * SLOT_SIZE)) != VERSION
    ):
        raise VaultLockedError
    params, salt = _parse_prefix(prefix)
    try:
        kek = AeadKey(derive_key(passphrase, salt, params))
        nonce = sealed[HEADER_PREFIX_SIZE : HEADER_PREFIX_SIZE + NONCE_SIZE]
        return prefix, kek, kek.open(nonce, sealed[HEADER_PREFIX_SIZE + NONCE_SIZE :], label + prefix)
    except (DecryptionError, ValueError):
        raise VaultLockedError from None


def seal_slot(kek: AeadKey, prefix: bytes, index: int, vault_key: bytes, rng: Random) -> bytes:
    """``nonce ‖ AES-256-GCM(KEK, nonce, vault_key, AD = label ‖ prefix ‖ u8(index))``: one key slot.

    Raises:
        ValueError: if ``vault_key`` is not 32 bytes or ``index`` not 0 or 1.
    """
    if len(vault_key) != VAULT_KEY_SIZE:
        raise ValueError(f"vault key must be {VAULT_KEY_SIZE} bytes")
    slot_offset(index)
    nonce = rng.random_bytes(NONCE_SIZE)
    return nonce + kek.seal(nonce, bytes(vault_key), _slot_ad(prefix, index))


def seal_header(
    vault_key: bytes,
    passphrase: str,
    params: KdfParams,
    rng: Random,
    *,
    slot: int = 0,
    other: bytes | None = None,
) -> tuple[bytes, HeaderKeys]:
    """A whole ``vault.key`` (154 bytes, §15.2) holding ``vault_key`` in ``slot``.

    Draws the salt (16 bytes), then the slot's nonce (12 bytes), then 60 random bytes for the
    other slot, unless ``other`` (a second key, for a migration) is wrapped there instead.

    Raises:
        ValueError: if a key is not 32 bytes.
    """
    prefix = seal_prefix(params, rng)
    kek = AeadKey(derive_key(passphrase, prefix[18:34], params))
    mine = seal_slot(kek, prefix, slot, vault_key, rng)
    theirs = rng.random_bytes(SLOT_SIZE) if other is None else seal_slot(kek, prefix, 1 - slot, other, rng)
    slots = (mine, theirs) if slot == 0 else (theirs, mine)
    keys: list[bytes | None] = [None, None]
    keys[slot] = bytes(vault_key)
    if other is not None:
        keys[1 - slot] = bytes(other)
    return prefix + slots[0] + slots[1], HeaderKeys(prefix, kek, tuple(keys))


def parse_prefix(header: bytes) -> tuple[KdfParams, bytes]:
    """The KDF parameters and salt of a version 2 header (or its prefix alone).

    Raises:
        VaultLockedError: not Argon2id, or parameters out of range.
    """
    return _parse_prefix(header)


def _parse_prefix(header: bytes) -> tuple[KdfParams, bytes]:
    _, _, kdf_id, memory_kib, iterations, parallelism, salt = _PREFIX.unpack_from(header)
    if kdf_id != KDF_ARGON2ID:
        raise VaultLockedError
    try:
        return KdfParams(memory_kib, iterations, parallelism), salt
    except ValueError:
        raise VaultLockedError from None


def _open_slots(kek: AeadKey, header: bytes) -> tuple[bytes | None, ...]:
    prefix = header[:HEADER_PREFIX_SIZE]
    keys = []
    for index in range(SLOTS):
        at = slot_offset(index)
        slot = header[at : at + SLOT_SIZE]
        key = kek.try_open(slot[:NONCE_SIZE], slot[NONCE_SIZE:], _slot_ad(prefix, index))
        keys.append(key if key is not None and len(key) == VAULT_KEY_SIZE else None)
    return tuple(keys)


def open_header(header: bytes, passphrase: str) -> HeaderKeys:
    """Derive the KEK from a version 2 ``vault.key`` and open both of its slots.

    The KDF parameters are range-checked before Argon2 runs, so a tampered header cannot make
    us allocate gigabytes or loop for hours.

    Raises:
        VaultLockedError: for a wrong passphrase (no slot opens) and for every kind of damaged
            header alike.
    """
    if header_version(header) != VERSION:
        raise VaultLockedError
    params, salt = _parse_prefix(header)
    try:
        kek = AeadKey(derive_key(passphrase, salt, params))
    except ValueError:
        raise VaultLockedError from None
    keys = _open_slots(kek, header)
    if not any(keys):
        raise VaultLockedError
    return HeaderKeys(header[:HEADER_PREFIX_SIZE], kek, keys)


def open_header_v1(header: bytes, passphrase: str) -> HeaderKeys:
    """Open a version 1 ``vault.key`` (94 bytes, one wrapped key; read for migration only).

    The result's prefix is the version 2 prefix with the same KDF parameters and salt, so the
    KEK we keep also opens the version 2 header that the upgrade writes; its key is in slot 0.

    Raises:
        VaultLockedError: for a wrong passphrase and for every kind of damaged header alike.
    """
    if header_version(header) != VERSION_1:
        raise VaultLockedError
    params, salt = _parse_prefix(header)
    nonce = header[HEADER_PREFIX_SIZE : HEADER_PREFIX_SIZE + NONCE_SIZE]
    # Version 1 authenticated the prefix with the nonce: its first 46 bytes.
    ad = LABEL_VAULT_KEY_WRAP + header[: HEADER_PREFIX_SIZE + NONCE_SIZE]
    try:
        kek = AeadKey(derive_key(passphrase, salt, params))
        vault_key = kek.open(nonce, header[HEADER_PREFIX_SIZE + NONCE_SIZE :], ad)
    except (DecryptionError, ValueError):
        raise VaultLockedError from None
    prefix = header[:7] + bytes([VERSION]) + header[8:HEADER_PREFIX_SIZE]
    return HeaderKeys(prefix, kek, (vault_key, None))


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


def check_record(kind: str, key: bytes, value: bytes) -> None:
    """Raise what :meth:`RecordKeys.seal` would raise for this record, and nothing else.

    Raises:
        TypeError, ValueError: as :meth:`RecordKeys.seal`.
    """
    check_kind(kind)
    _check_bytes("key", key, MAX_KEY_SIZE)
    _check_bytes("value", value, MAX_VALUE_SIZE)


def _check_bytes(name: str, data: object, limit: int) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"{name} must be bytes")
    data = bytes(data)
    if len(data) > limit:
        raise ValueError(f"{name} must be at most {limit} bytes")
    return data


def database_bucket(size: int) -> int:
    """The size ``vault.sqlite`` is grown to when it holds ``size`` bytes (§15.6).

    Multiples of 256 KiB up to 4 MiB, then multiples of an eighth of the power of two below
    the size (at most 12.5 % more): the file's size moves in coarse steps, not with each record.
    """
    step = DATABASE_STEP
    if size > 16 * DATABASE_STEP:
        step = 1 << (size.bit_length() - 4)
    return max(DATABASE_STEP, -(-size // step) * step)


def chunk_count(body_size: int) -> int:
    """How many rows a record body of ``body_size`` bytes takes: 512 in the head, 511 in each other."""
    if body_size <= CHUNK_SIZE:
        return 1
    return 1 + -(-(body_size - CHUNK_SIZE) // (CHUNK_SIZE - 1))


def padded_size(n: int) -> int:
    """Version 1's record bucket for a plaintext of ``n`` bytes: Padmé, at least 256 bytes.

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
    sealed: bytes

    def __repr__(self) -> str:
        return f"SealedRecord(<{len(self.sealed)} bytes>)"


class RecordKeys:
    """The two keys HKDF derives from one vault key, and everything done with them (§15.4)."""

    __slots__ = ("_index_key", "_record_key", "key_id")

    def __init__(self, vault_key: bytes) -> None:
        if len(vault_key) != VAULT_KEY_SIZE:
            raise ValueError(f"vault key must be {VAULT_KEY_SIZE} bytes")
        self._record_key = AeadKey(hkdf(vault_key, salt=b"", info=LABEL_VAULT_RECORD, length=32))
        self._index_key = hkdf(vault_key, salt=b"", info=LABEL_VAULT_INDEX, length=32)
        #: The key's name in the database (:func:`key_id`).
        self.key_id = key_id(vault_key)

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
        """``HMAC(index_key, 0x02 ‖ kind)[:16]``: the clear kind tag of version 1 rows (read only)."""
        return hmac_sha256(self._index_key, _KIND_PREFIX + check_kind(kind))[:KIND_TAG_SIZE]

    def chunk_id(self, row_id: bytes, index: int) -> bytes:
        """The row id of chunk ``index`` of the record whose head is ``row_id`` (§15.4).

        ``row_id`` itself for the head (index 0), ``HMAC(index_key, 0x03 ‖ row_id ‖ u32(index))``
        for the others: unlinkable to the head without the key.
        """
        if index == 0:
            return row_id
        return hmac_sha256(self._index_key, _CHUNK_PREFIX + row_id + index.to_bytes(4, "big"))

    def seal(self, kind: str, key: bytes, value: bytes, rng: Random) -> list[SealedRecord]:
        """Seal one record as rows of :data:`CHUNK_SIZE` bytes each; one nonce per row from ``rng``.

        The head (chunk 0) holds the body's first 512 bytes; each further chunk a 0x00 byte and
        the next 511; the last is padded with zeros.

        Raises:
            TypeError: if ``kind`` is not a ``str`` or ``key``/``value`` are not bytes.
            ValueError: for a kind outside ``[a-z0-9_-]{1,32}``, a key over 255 bytes or a
                value over :data:`MAX_VALUE_SIZE`.
        """
        kind_bytes = check_kind(kind)
        key = _check_bytes("key", key, MAX_KEY_SIZE)
        value = _check_bytes("value", value, MAX_VALUE_SIZE)
        row_id = self.row_id(kind, key)
        body = (
            bytes([len(kind_bytes)])
            + kind_bytes
            + bytes([len(key)])
            + key
            + len(value).to_bytes(4, "big")
            + value
        )
        pieces = [body[:CHUNK_SIZE]]
        for at in range(CHUNK_SIZE, len(body), CHUNK_SIZE - 1):
            pieces.append(b"\x00" + body[at : at + CHUNK_SIZE - 1])
        pieces[-1] += bytes(CHUNK_SIZE - len(pieces[-1]))
        rows = []
        for index, piece in enumerate(pieces):
            chunk_id = self.chunk_id(row_id, index)
            nonce = rng.random_bytes(NONCE_SIZE)
            rows.append(
                SealedRecord(chunk_id, nonce + self._record_key.seal(nonce, piece, _record_ad(chunk_id)))
            )
        return rows

    def open_chunk(self, chunk_id: bytes, sealed: bytes) -> bytes:
        """The authenticated 512 bytes of the row ``chunk_id``.

        Raises:
            VaultCorruptedError: if the row does not authenticate under its id.
        """
        if len(sealed) != SEALED_CHUNK_SIZE:
            raise _corrupted()
        plaintext = self._record_key.try_open(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], _record_ad(chunk_id))
        if plaintext is None:
            raise _corrupted()
        return plaintext

    def head_kind(self, chunk_id: bytes, sealed: bytes) -> str:
        """The kind of a record's head row, or ``""`` for a continuation row (for the kind index).

        Raises:
            VaultCorruptedError: if the row does not authenticate, or a head is not its own.
        """
        plaintext = self.open_chunk(chunk_id, sealed)
        if plaintext[0] == _CONTINUATION:
            return ""
        return self._head(chunk_id, plaintext)[0]

    def chunks_of(self, row_id: bytes, sealed: bytes) -> int:
        """How many rows the record whose head row ``row_id`` holds ``sealed`` takes.

        Raises:
            VaultCorruptedError: if the head does not authenticate or is not its own.
        """
        return self._head(row_id, self.open_chunk(row_id, sealed))[2]

    def open_record(
        self, row_id: bytes, sealed: bytes, fetch: Callable[[bytes], bytes | None]
    ) -> tuple[str, bytes, bytes]:
        """Open the record whose head row is ``row_id``: ``(kind, key, value)``.

        ``fetch(chunk_id)`` returns the sealed bytes of a further chunk's row, or ``None``. The
        AEAD binds each row to its id, so a row copied elsewhere fails; the head's own kind and
        key must hash back to ``row_id``, every further chunk must be there and be one, and the
        padding after the value must be zeros.

        Raises:
            VaultCorruptedError: if any of that fails.
        """
        head = self.open_chunk(row_id, sealed)
        kind, key, chunks = self._head(row_id, head)
        pieces = [head]
        for index in range(1, chunks):
            chunk_id = self.chunk_id(row_id, index)
            more = fetch(chunk_id)
            if more is None:
                raise _corrupted()
            piece = self.open_chunk(chunk_id, more)
            if piece[0] != _CONTINUATION:
                raise _corrupted()
            pieces.append(piece[1:])
        body = b"".join(pieces)
        start = 1 + len(kind) + 1 + len(key) + 4
        end = start + int.from_bytes(body[start - 4 : start], "big")
        if body[end:].count(0) != len(body) - end:
            raise _corrupted()
        return kind, key, body[start:end]

    def _head(self, row_id: bytes, plaintext: bytes) -> tuple[str, bytes, int]:
        """``(kind, key, number of chunks)`` from a head chunk that belongs to ``row_id``."""
        try:
            kind = plaintext[1 : 1 + plaintext[0]].decode("ascii")
            check_kind(kind)
            at = 1 + len(kind)
            key_len = plaintext[at]
            key = plaintext[at + 1 : at + 1 + key_len]
            at += 1 + key_len
            value_len = int.from_bytes(plaintext[at : at + 4], "big")
            if len(key) != key_len or at + 4 > CHUNK_SIZE or value_len > MAX_VALUE_SIZE:
                raise ValueError("length")
        except (IndexError, ValueError):
            raise _corrupted() from None
        if not hmac.compare_digest(self.row_id(kind, key), row_id):
            raise _corrupted()
        return kind, key, chunk_count(at + 4 + value_len)

    def open_row_v1(self, row_id: bytes, kind_tag: bytes, sealed: bytes) -> tuple[str, bytes, bytes]:
        """Open a version 1 row (one Padmé-padded record, AD ``label ‖ row_id ‖ kind_tag``).

        Raises:
            VaultCorruptedError: if it does not authenticate, its kind and key do not hash back to
                ``row_id``, or the kind tag is not the kind's.
        """
        if len(sealed) < NONCE_SIZE + MIN_PADDED_SIZE + TAG_SIZE:
            raise _corrupted()
        ad = _record_ad(row_id) + kind_tag
        plaintext = self._record_key.try_open(sealed[:NONCE_SIZE], sealed[NONCE_SIZE:], ad)
        if plaintext is None:
            raise _corrupted()
        try:
            kind, key, value = _parse_plaintext(plaintext)
        except (IndexError, ValueError):
            raise _corrupted() from None
        if not hmac.compare_digest(self.row_id(kind, key), row_id):
            raise _corrupted()
        if not hmac.compare_digest(self.kind_tag(kind), kind_tag):
            raise _corrupted()
        return kind, key, value

    def __repr__(self) -> str:
        return "RecordKeys(<secret>)"


def _record_ad(row_id: bytes) -> bytes:
    return LABEL_VAULT_RECORD + row_id


def _corrupted() -> VaultCorruptedError:
    return VaultCorruptedError("a vault record failed authentication")


def _parse_plaintext(plaintext: bytes) -> tuple[str, bytes, bytes]:
    """Split an authenticated plaintext; ``ValueError`` (or ``IndexError``) if it is not ours."""
    kind_len = plaintext[0]
    kind = plaintext[1 : 1 + kind_len].decode("ascii")
    check_kind(kind)
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
    return kind, key, value
