"""The burn vectors (docs/protocol.md §17.7): rebuilt byte for byte, checked with pyca and argon2 alone."""

from __future__ import annotations

import hashlib
import struct
import unicodedata

import pytest
from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.app.addresses import QueueAddress
from burnerkit.app.burning import BurnJournal
from burnerkit.app.content import BurnNotice, Hello, Text, decode_content
from burnerkit.vault.format import open_burn_journal
from tests.vectorio import load
from tests.vectors.generate_burn import ENVELOPE, build

V = load("burn_v1")


def h(text: str) -> bytes:
    return bytes.fromhex(text)


def test_every_burn_vector_regenerates_byte_for_byte() -> None:
    assert build() == V


@pytest.mark.parametrize("name", ["notice", "notice_erase"])
def test_burn_notice_layout_and_signature_by_hand(name: str) -> None:
    v = V[name]
    content = h(v["content"])
    assert content[:10] == struct.pack(">BBQ", 0x05, int(v["erase"]), v["burned_at"])
    assert h(v["signed"]) == b"burner/v1/sig/burn-notice" + h(V["transcript_hash"]) + content[:10]
    assert content[10:] == h(v["signature"])
    Ed25519PublicKey.from_public_bytes(h(V["public_signing_key"])).verify(content[10:], h(v["signed"]))
    notice = decode_content(content)
    assert notice == BurnNotice(v["burned_at"], v["erase"], h(v["signature"]))
    assert notice.encode() == content


def test_expiry_on_a_hello_and_a_text_by_hand() -> None:
    v = V["hello_with_expiry"]
    assert h(v["content"]) == b"\x01" + h(v["address"]) + struct.pack(">Q", v["expires_at"])
    hello = decode_content(h(v["content"]))
    assert hello == Hello(QueueAddress.from_bytes(h(v["address"])), v["expires_at"])
    t = V["text_with_expiry"]
    flags = 0x01 | 0x02  # burn on read, expiry follows
    assert (
        h(t["content"]) == struct.pack(">BBIQ", 0x02, flags, t["timer"], t["expires_at"]) + t["text"].encode()
    )
    assert decode_content(h(t["content"])) == Text(t["text"], t["timer"], t["burn_on_read"], t["expires_at"])


def test_journal_layout_by_hand() -> None:
    j = V["journal"]
    n, q = j["notice"], j["queue"]

    def var16(data: bytes) -> bytes:
        return struct.pack(">H", len(data)) + data

    expected = (
        struct.pack(">BB", 1, 1) + var16(j["name"].encode()) + struct.pack(">H", 1)
        + var16(h(n["party"])) + h(n["send_id"]) + var16(h(n["peer"])) + var16(h(n["sender_key"]))
        + struct.pack(">I", len(ENVELOPE)) + ENVELOPE
        + struct.pack(">H", 1) + var16(h(q["party"])) + var16(q["relay_url"].encode()) + var16(h(q["creds"]))
    )  # fmt: skip
    assert expected == h(j["body"])
    assert hashlib.sha256(ENVELOPE).hexdigest() == n["envelope_sha256"]
    padded = struct.pack(">I", len(expected)) + expected + bytes(j["padded_size"] - 4 - len(expected))
    assert j["padded_size"] == 65536
    assert hashlib.sha256(padded).hexdigest() == j["padded_sha256"]
    journal = BurnJournal.from_padded(padded)
    assert (journal.name, journal.erase, len(journal.notices), len(journal.queues)) == (
        "traveller",
        True,
        1,
        1,
    )
    assert journal.padded() == padded


def test_sealed_journal_opens_with_argon2_and_aesgcm_alone() -> None:
    j = V["journal"]
    header = h(j["header"])
    prefix = header[:34]
    _, _, _, memory, iterations, lanes = struct.unpack(">7sBBIIB", prefix[:18])
    secret = unicodedata.normalize("NFC", j["passphrase"]).encode()
    kek = hash_secret_raw(secret, prefix[18:34], iterations, memory, lanes, 32, Type.ID)
    sealed_head = h(j["sealed_head"])
    assert sealed_head[:34] == prefix
    # Rebuild the sealed journal from its parts and check it against the stored digest.
    padded = BurnJournal.from_padded(_padded(j)).padded()
    nonce = sealed_head[34:46]
    sealed = prefix + nonce + AESGCM(kek).encrypt(nonce, padded, b"burner/v1/burn/journal" + prefix)
    assert len(sealed) == j["sealed_size"] == 34 + 12 + 65536 + 16
    assert hashlib.sha256(sealed).hexdigest() == j["sealed_sha256"]
    assert open_burn_journal(sealed, j["passphrase"]) == padded


def _padded(j: dict[str, object]) -> bytes:
    body = h(str(j["body"]))
    size = int(str(j["padded_size"]))
    return struct.pack(">I", len(body)) + body + bytes(size - 4 - len(body))
