"""``burnerkit.vault.format``: header and record bytes, without any file (docs/protocol.md §15)."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from burnerkit.crypto.passphrase import FAST_TEST_KDF, KdfParams
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import VaultCorruptedError, VaultLockedError
from burnerkit.vault.format import (
    HEADER_PREFIX_SIZE,
    HEADER_SIZE,
    MAX_VALUE_SIZE,
    MIN_PADDED_SIZE,
    SEALED_CHUNK_SIZE,
    SLOT_SIZE,
    RecordKeys,
    SealedRecord,
    check_kind,
    chunk_count,
    database_bucket,
    key_id,
    open_header,
    open_header_v1,
    padded_size,
    seal_header,
)

VAULT_KEY = bytes(range(32))
OTHER_KEY = bytes(range(32, 64))
LOCKED = "wrong passphrase, or the vault header is damaged"
SLOT_0 = range(HEADER_PREFIX_SIZE, HEADER_PREFIX_SIZE + SLOT_SIZE)
SLOT_1 = range(HEADER_PREFIX_SIZE + SLOT_SIZE, HEADER_SIZE)


def header(passphrase: str = "pw", params: KdfParams = FAST_TEST_KDF, other: bytes | None = None) -> bytes:
    return seal_header(VAULT_KEY, passphrase, params, DeterministicRandom(b"header"), other=other)[0]


def keys() -> RecordKeys:
    return RecordKeys(VAULT_KEY)


def rng() -> DeterministicRandom:
    return DeterministicRandom(b"records")


# -- header ----------------------------------------------------------------------------------------


def test_header_layout_and_roundtrip():
    h = header()
    assert len(h) == HEADER_SIZE == 154
    assert h[:7] == b"BURNVLT"
    assert h[7:9] == b"\x02\x01"
    assert struct.unpack(">IIB", h[9:18]) == (8, 1, 1)
    assert open_header(h, "pw").keys == (VAULT_KEY, None)
    both = header(other=OTHER_KEY)
    assert open_header(both, "pw").keys == (VAULT_KEY, OTHER_KEY)


def test_a_slot_is_bound_to_its_position():
    h = header(other=OTHER_KEY)
    swapped = h[:HEADER_PREFIX_SIZE] + h[SLOT_1.start :] + h[SLOT_0.start : SLOT_1.start]
    assert locked_message(swapped) == LOCKED


def locked_message(data: bytes, passphrase: str = "pw") -> str:
    with pytest.raises(VaultLockedError) as info:
        open_header(data, passphrase)
    assert type(info.value) is VaultLockedError
    return str(info.value)


def test_wrong_passphrase_is_locked():
    assert locked_message(header(), "pW") == LOCKED


@pytest.mark.parametrize("position", [*range(HEADER_PREFIX_SIZE), *SLOT_0])
def test_tampered_header_byte_is_indistinguishable_from_a_wrong_passphrase(position):
    h = bytearray(header())
    h[position] ^= 0x01
    assert locked_message(bytes(h)) == locked_message(header(), "wrong")


def test_the_empty_slot_is_random_bytes_that_open_nothing():
    h = bytearray(header())
    assert bytes(h[SLOT_1.start :]) != bytes(SLOT_SIZE)
    h[SLOT_1.start] ^= 0x01
    assert open_header(bytes(h), "pw").keys == (VAULT_KEY, None)


@pytest.mark.parametrize(
    "data",
    [b"", b"BURNVLT", header()[:-1], header() + b"\0", bytes(HEADER_SIZE), b"\xff" * HEADER_SIZE],
    ids=["empty", "magic-only", "truncated", "extended", "zeros", "ones"],
)
def test_truncated_or_garbage_header_is_locked(data):
    assert locked_message(data) == LOCKED


def forge_params(memory: int, iterations: int, parallelism: int) -> bytes:
    h = bytearray(header())
    h[9:18] = struct.pack(">IIB", memory, iterations, parallelism)
    return bytes(h)


@pytest.mark.parametrize(
    ("memory", "iterations", "parallelism"),
    [(0xFFFFFFFF, 1, 1), (8, 0xFFFFFFFF, 1), (0xFFFFFFFF, 0xFFFFFFFF, 255), (2 << 20, 1, 1), (8, 0, 0)],
)
def test_oversized_kdf_params_in_a_tampered_header_fail_fast(memory, iterations, parallelism):
    started = time.perf_counter()
    assert locked_message(forge_params(memory, iterations, parallelism)) == LOCKED
    assert time.perf_counter() - started < 0.1


def test_weakened_kdf_params_do_not_unlock():
    # The parameters are inside the AEAD's associated data, and they change the KEK.
    assert locked_message(forge_params(16, 1, 1)) == LOCKED


def test_header_is_bound_to_its_label():
    from burnerkit.crypto.aead import AeadKey
    from burnerkit.crypto.passphrase import derive_key

    h = header()
    kek = AeadKey(derive_key("pw", h[18:34], FAST_TEST_KDF))
    slot = h[SLOT_0.start : SLOT_1.start]
    assert kek.try_open(slot[:12], slot[12:], h[:HEADER_PREFIX_SIZE] + b"\x00") is None
    assert kek.try_open(slot[:12], slot[12:], b"burner/v1/vault/key-wrap" + h[:34] + b"\x00") == VAULT_KEY


def test_version_1_header_opens_for_migration_only():
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parents[2] / "migration_data" / "vault_v1.json").read_text())
    v1 = bytes.fromhex(data["files"]["vault.key"])
    assert (len(v1), v1[7]) == (94, 1)
    opened = open_header_v1(v1, data["passphrase"])
    assert opened.keys[0] is not None
    assert opened.keys[1] is None
    # The version 2 prefix keeps the salt and parameters: the same KEK opens what the upgrade writes.
    assert opened.prefix == v1[:7] + b"\x02" + v1[8:34]
    assert locked_message(v1, data["passphrase"]) == LOCKED  # not a version 2 header
    with pytest.raises(VaultLockedError):
        open_header_v1(v1, "wrong")
    with pytest.raises(VaultLockedError):
        open_header_v1(header(), "pw")


def test_key_id_names_a_key_without_revealing_it():
    assert len(key_id(VAULT_KEY)) == 16
    assert key_id(VAULT_KEY) != key_id(OTHER_KEY)
    assert keys().key_id == key_id(VAULT_KEY)
    assert VAULT_KEY[:16] != key_id(VAULT_KEY)


# -- records ---------------------------------------------------------------------------------------


def no_chunks(chunk_id: bytes) -> bytes | None:
    return None


def opened(
    k: RecordKeys, rows: list[SealedRecord], fetch: dict[bytes, bytes] | None = None
) -> tuple[str, bytes, bytes]:
    table = {r.row_id: r.sealed for r in rows} if fetch is None else fetch
    return k.open_record(rows[0].row_id, rows[0].sealed, table.get)


def test_record_roundtrip_and_row_naming():
    k = keys()
    (row,) = k.seal("contact", b"alice", b"value", rng())
    assert row.row_id == k.row_id("contact", b"alice")
    assert len(row.row_id) == 32
    assert len(row.sealed) == SEALED_CHUNK_SIZE == 12 + 512 + 16
    assert opened(k, [row]) == ("contact", b"alice", b"value")
    assert k.head_kind(row.row_id, row.sealed) == "contact"
    assert b"alice" not in row.sealed
    assert b"contact" not in row.sealed
    assert "alice" not in repr(row)


def test_every_row_has_one_size_whatever_the_kind():
    k = keys()
    contact = k.seal("contact", b"alice", bytes(4900), rng())  # a session's state
    message = k.seal("message", b"m", b"see you at six", rng())
    assert len(contact) == chunk_count(1 + 7 + 1 + 5 + 4 + 4900) == 10
    assert len(message) == 1
    assert {len(r.sealed) for r in contact + message} == {SEALED_CHUNK_SIZE}
    # The further chunks' ids are keyed hashes of the head's: unlinkable without the key.
    assert [r.row_id for r in contact[1:]] == [k.chunk_id(contact[0].row_id, n) for n in range(1, 10)]
    assert len({r.row_id for r in contact}) == 10
    assert opened(k, contact) == ("contact", b"alice", bytes(4900))
    assert [k.head_kind(r.row_id, r.sealed) for r in contact] == ["contact"] + [""] * 9


def test_chunk_boundaries():
    assert [chunk_count(n) for n in (1, 512, 513, 1023, 1024, 1534, 1535)] == [1, 1, 2, 2, 3, 3, 4]
    k = keys()
    for size in (0, 493, 494, 495, 1004, 1005, 1006, 5000):
        rows = k.seal("message", b"k", bytes(range(256)) * (size // 256) + bytes(size % 256), rng())
        assert len(rows) == chunk_count(1 + 7 + 1 + 1 + 4 + size)
        assert opened(k, rows)[2] == bytes(range(256)) * (size // 256) + bytes(size % 256)


def test_row_ids_separate_kind_and_key():
    k = keys()
    assert k.row_id("ab", b"c") != k.row_id("a", b"bc")
    assert k.row_id("a", b"") != k.row_id("b", b"")
    assert RecordKeys(bytes(32)).row_id("a", b"x") != k.row_id("a", b"x")


def test_tampered_sealed_record_is_detected():
    k = keys()
    (row,) = k.seal("contact", b"alice", b"value", rng())
    for position in (0, 11, 12, 100, len(row.sealed) - 1):
        sealed = bytearray(row.sealed)
        sealed[position] ^= 0x80
        with pytest.raises(VaultCorruptedError, match=r"^a vault record failed authentication$"):
            k.open_record(row.row_id, bytes(sealed), no_chunks)
    with pytest.raises(VaultCorruptedError):
        k.open_record(row.row_id, row.sealed[:100], no_chunks)


def test_record_moved_to_another_row_is_detected():
    k = keys()
    (alice,) = k.seal("contact", b"alice", b"a", rng())
    (bob,) = k.seal("contact", b"bob", b"b", rng())
    with pytest.raises(VaultCorruptedError):
        k.open_record(bob.row_id, alice.sealed, no_chunks)


def test_missing_or_swapped_chunk_is_detected():
    k = keys()
    long = k.seal("message", b"long", bytes(2000), rng())
    other = k.seal("message", b"other", bytes(2000), rng())
    table = {r.row_id: r.sealed for r in long}
    del table[long[2].row_id]
    with pytest.raises(VaultCorruptedError):
        opened(k, long, table)
    table[long[2].row_id] = other[2].sealed  # another record's chunk in its place
    with pytest.raises(VaultCorruptedError):
        opened(k, long, table)
    with pytest.raises(VaultCorruptedError):  # a further chunk is not a head
        k.open_record(long[1].row_id, long[1].sealed, no_chunks)


def test_record_from_another_vault_is_detected():
    (row,) = RecordKeys(bytes(32)).seal("contact", b"alice", b"a", rng())
    with pytest.raises(VaultCorruptedError):
        keys().open_record(keys().row_id("contact", b"alice"), row.sealed, no_chunks)


def test_database_grows_in_coarse_steps():
    assert [database_bucket(n) for n in (0, 1, 256 << 10)] == [256 << 10] * 3
    assert database_bucket((256 << 10) + 1) == 512 << 10
    assert database_bucket(4 << 20) == 4 << 20
    assert database_bucket((4 << 20) + 1) == (4 << 20) + (512 << 10)
    for n in (1, 5 << 20, 100 << 20, 3 << 30):
        assert n <= database_bucket(n) <= max(256 << 10, n * 1.125)


@pytest.mark.parametrize("kind", ["", "A", "a" * 33, "con tact", "contact\0", "é", "a/b"])
def test_bad_kinds_are_refused(kind):
    with pytest.raises(ValueError, match="kind"):
        check_kind(kind)


def test_bad_keys_and_values_are_refused():
    k = keys()
    with pytest.raises(ValueError, match="key"):
        k.seal("a", bytes(256), b"", rng())  # the longest key, 255 bytes, fits a head
    with pytest.raises(ValueError, match="value"):
        k.seal("a", b"", bytes(MAX_VALUE_SIZE + 1), rng())
    with pytest.raises(TypeError):
        k.seal("a", "key", b"", rng())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        check_kind(b"a")  # type: ignore[arg-type]


# -- padding ---------------------------------------------------------------------------------------


def test_padding_buckets():
    assert [padded_size(n) for n in (0, 1, 256)] == [256, 256, 256]
    assert padded_size(257) == 272
    assert padded_size(1000) == 1024
    assert padded_size(5000) == 5120
    assert padded_size(1 << 20) == 1 << 20
    assert padded_size((1 << 20) + 1) == (1 << 20) + (1 << 15)


@given(st.integers(min_value=0, max_value=MAX_VALUE_SIZE + 300))
def test_padding_is_monotone_and_costs_at_most_12_percent(n):
    p = padded_size(n)
    assert p >= n
    assert p >= padded_size(max(0, n - 1))
    assert p == MIN_PADDED_SIZE or p <= n * 1.12
    assert padded_size(p) == p


@given(
    kind=st.from_regex(r"[a-z0-9_-]{1,32}", fullmatch=True),
    key=st.binary(max_size=255),
    value=st.binary(max_size=3000),
)
def test_any_record_roundtrips_in_rows_of_one_size(kind, key, value):
    k = keys()
    rows = k.seal(kind, key, value, rng())
    assert len(rows) == chunk_count(1 + len(kind) + 1 + len(key) + 4 + len(value))
    assert {len(r.sealed) for r in rows} == {SEALED_CHUNK_SIZE}
    assert opened(k, rows) == (kind, key, value)
