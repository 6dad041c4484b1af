"""Frozen vault vectors (tests/vectors/vault_v1.json): header and records, byte for byte.

Checked two ways: our code reproduces every byte (also through ``Vault.create`` and
``put``, so the order in which the vault draws randomness is frozen too), and an independent
re-derivation with argon2-cffi, pyca's AESGCM and ``hmac`` alone opens them from the layout in
docs/protocol.md §15.
"""

from __future__ import annotations

import hmac
import sqlite3
import struct
import unicodedata
from pathlib import Path

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault import Vault
from tests import vectorio
from tests.vectors.generate_vault import build

V = vectorio.load("vault_v1")


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


def test_every_vault_vector_regenerates_byte_for_byte():
    assert build() == V


def test_vault_create_and_put_write_exactly_the_vectors(tmp_path: Path) -> None:
    directory = tmp_path / "v"
    rng = DeterministicRandom(h(V["seed"]))
    with Vault.create(directory, V["passphrase"], rng=rng, kdf=FAST_TEST_KDF) as vault:
        for record in V["records"]:
            with vault.transaction() as tx:
                tx.put(record["kind"], h(record["key"]), h(record["value"]))
    assert (directory / "vault.key").read_bytes() == h(V["header"])
    conn = sqlite3.connect(directory / "vault.sqlite")
    try:
        rows = set(conn.execute("SELECT row_id, kind_tag, sealed FROM records"))
    finally:
        conn.close()
    assert rows == {(h(r["row_id"]), h(r["kind_tag"]), h(r["sealed"])) for r in V["records"]}


def test_header_opens_with_argon2_and_aesgcm_alone():
    header = h(V["header"])
    assert len(header) == 94
    magic, version, kdf, memory, iterations, lanes = struct.unpack(">7sBBIIB", header[:18])
    assert (magic, version, kdf) == (b"BURNVLT", 1, 1)
    assert (memory, iterations, lanes) == tuple(V["kdf"].values())
    salt, nonce = header[18:34], header[34:46]
    secret = unicodedata.normalize("NFC", V["passphrase"]).encode()
    kek = hash_secret_raw(secret, salt, iterations, memory, lanes, 32, Type.ID)
    assert kek == h(V["kek"])
    ad = b"burner/v1/vault/key-wrap" + header[:46]
    assert AESGCM(kek).decrypt(nonce, header[46:], ad) == h(V["vault_key"])


def test_records_open_with_hmac_and_aesgcm_alone():
    vault_key = h(V["vault_key"])
    record_key = hkdf_sha256(vault_key, b"burner/v1/vault/record", 32)
    index_key = hkdf_sha256(vault_key, b"burner/v1/vault/index", 32)
    assert (record_key, index_key) == (h(V["record_key"]), h(V["index_key"]))
    for r in V["records"]:
        kind, key, value = r["kind"].encode(), h(r["key"]), h(r["value"])
        row_id = hmac.digest(index_key, b"\x01" + kind + b"\x00" + key, "sha256")
        kind_tag = hmac.digest(index_key, b"\x02" + kind, "sha256")[:16]
        assert (row_id, kind_tag) == (h(r["row_id"]), h(r["kind_tag"]))
        sealed = h(r["sealed"])
        plaintext = AESGCM(record_key).decrypt(
            sealed[:12], sealed[12:], b"burner/v1/vault/record" + row_id + kind_tag
        )
        body = bytes([len(kind)]) + kind + bytes([len(key)]) + key + struct.pack(">I", len(value)) + value
        assert len(plaintext) == r["padded_size"] >= 256
        assert plaintext == body + bytes(r["padded_size"] - len(body))


def test_vectors_cover_the_padding_buckets():
    assert [r["padded_size"] for r in V["records"]] == [256, 256, 352]
