"""Frozen vault vectors: version 2 (tests/vectors/vault_v2.json) and version 1 (vault_v1.json).

Version 2 is checked two ways: our code reproduces every byte (also through ``Vault.create``,
``put`` and the key rotation of a reopened vault, so the order in which the vault draws
randomness is frozen too), and an independent re-derivation with argon2-cffi, pyca's AESGCM and
``hmac`` alone opens them from the layout in docs/protocol.md §15. Version 1 is frozen: the
version 1 reader must still open its header and records (docs/protocol.md §15.12).
"""

from __future__ import annotations

import hmac
import sqlite3
import struct
import unicodedata
from pathlib import Path
from typing import Any

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault import Vault
from burnerkit.vault.format import RecordKeys, open_header_v1
from tests import vectorio
from tests.vectors.generate_vault import AFTER_ROTATION, build

V = vectorio.load("vault_v2")
V1 = vectorio.load("vault_v1")


def h(value: str) -> bytes:
    return bytes.fromhex(value)


def hkdf_sha256(ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.digest(bytes(32), ikm, "sha256")  # empty salt is a block of zeros (RFC 5869)
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes([counter]), "sha256")
        out += block
        counter += 1
    return out[:length]


def rows(directory: Path) -> set[tuple[bytes, bytes]]:
    conn = sqlite3.connect(directory / "vault.sqlite")
    try:
        return set(conn.execute("SELECT row_id, sealed FROM records"))
    finally:
        conn.close()


def all_rows(records: list[dict[str, Any]]) -> set[tuple[bytes, bytes]]:
    return {(h(row["row_id"]), h(row["sealed"])) for r in records for row in r["rows"]}


def test_every_vault_vector_regenerates_byte_for_byte():
    assert build() == V


def test_vault_create_put_and_rotation_write_exactly_the_vectors(tmp_path: Path) -> None:
    directory = tmp_path / "v"
    with Vault.create(
        directory, V["passphrase"], rng=DeterministicRandom(h(V["seed"])), kdf=FAST_TEST_KDF
    ) as vault:
        for record in V["records"]:
            with vault.transaction() as tx:
                tx.put(record["kind"], h(record["key"]), h(record["value"]))
    assert (directory / "vault.key").read_bytes() == h(V["header"])
    assert rows(directory) == all_rows(V["records"])

    rotation = V["rotation"]
    rng = DeterministicRandom(h(rotation["seed"]))
    with Vault.open(directory, V["passphrase"], rng=rng) as vault, vault.transaction() as tx:
        tx.put(*AFTER_ROTATION)
    assert (directory / "vault.key").read_bytes() == h(rotation["header"])
    assert rows(directory) == all_rows(rotation["records"])


def open_slot(kek: bytes, header: bytes, index: int) -> bytes:
    slot = header[34 + 60 * index : 94 + 60 * index]
    ad = b"burner/v1/vault/key-wrap" + header[:34] + bytes([index])
    return AESGCM(kek).decrypt(slot[:12], slot[12:], ad)


def test_header_opens_with_argon2_and_aesgcm_alone():
    header = h(V["header"])
    assert len(header) == 154
    magic, version, kdf, memory, iterations, lanes = struct.unpack(">7sBBIIB", header[:18])
    assert (magic, version, kdf) == (b"BURNVLT", 2, 1)
    assert (memory, iterations, lanes) == tuple(V["kdf"].values())
    secret = unicodedata.normalize("NFC", V["passphrase"]).encode()
    kek = hash_secret_raw(secret, header[18:34], iterations, memory, lanes, 32, Type.ID)
    assert kek == h(V["kek"])
    assert open_slot(kek, header, 0) == h(V["vault_key"])
    # After the rotation and its tidy step: the new key in slot 1, slot 0 overwritten.
    rotation = V["rotation"]
    before_tidy = h(rotation["header_before_tidy"])
    assert open_slot(kek, before_tidy, 0) == h(V["vault_key"])
    assert open_slot(kek, before_tidy, 1) == h(rotation["vault_key"])
    after = h(rotation["header"])
    assert after[:34] == header[:34]
    assert after[94:] == before_tidy[94:]
    assert open_slot(kek, after, 1) == h(rotation["vault_key"])
    assert after[34:94] not in (header[34:94], before_tidy[34:94])


def check_records(keys: dict[str, Any], records: list[dict[str, Any]]) -> None:
    vault_key = h(keys["vault_key"])
    record_key = hkdf_sha256(vault_key, b"burner/v1/vault/record", 32)
    index_key = hkdf_sha256(vault_key, b"burner/v1/vault/index", 32)
    assert (record_key, index_key) == (h(keys["record_key"]), h(keys["index_key"]))
    assert hkdf_sha256(vault_key, b"burner/v1/vault/key-id", 16) == h(keys["key_id"])
    for r in records:
        kind, key, value = r["kind"].encode(), h(r["key"]), h(r["value"])
        head = hmac.digest(index_key, b"\x01" + kind + b"\x00" + key, "sha256")
        ids = [head] + [
            hmac.digest(index_key, b"\x03" + head + struct.pack(">I", n), "sha256")
            for n in range(1, r["chunks"])
        ]
        assert [h(row["row_id"]) for row in r["rows"]] == ids
        chunks = []
        for row_id, row in zip(ids, r["rows"], strict=True):
            sealed = h(row["sealed"])
            assert len(sealed) == 12 + 512 + 16
            chunks.append(
                AESGCM(record_key).decrypt(sealed[:12], sealed[12:], b"burner/v1/vault/record" + row_id)
            )
        assert all(chunk[0] == 0 for chunk in chunks[1:])  # further chunks start with 0x00
        body = bytes([len(kind)]) + kind + bytes([len(key)]) + key + struct.pack(">I", len(value)) + value
        joined = chunks[0] + b"".join(chunk[1:] for chunk in chunks[1:])
        assert joined == body + bytes(len(joined) - len(body))


def test_records_open_with_hmac_and_aesgcm_alone():
    check_records(V, V["records"])
    check_records(V["rotation"], V["rotation"]["records"])
    assert len(V["rotation"]["records"]) == len(V["records"]) + 1


def test_vectors_cover_one_and_several_chunks():
    assert [r["chunks"] for r in V["records"]] == [1, 1, 1, 3]


def test_version_1_vectors_still_open():
    keys = open_header_v1(h(V1["header"]), V1["passphrase"])
    assert keys.keys[0] == h(V1["vault_key"])
    record_keys = RecordKeys(h(V1["vault_key"]))
    for r in V1["records"]:
        kind, key, value = record_keys.open_row_v1(h(r["row_id"]), h(r["kind_tag"]), h(r["sealed"]))
        assert (kind, key, value) == (r["kind"], h(r["key"]), h(r["value"]))
