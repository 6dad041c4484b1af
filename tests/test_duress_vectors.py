"""The frozen duress vectors (tests/vectors/duress_v1.json, docs/protocol.md §17.11).

Each record is rebuilt from its fields byte for byte, decoded back to its fields, and
re-encoded with ``struct`` alone, so the layout in the spec, not only our encoder, is
what is checked.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.app.content import DuressKey, decode_content
from burnerkit.app.duress import Decoy, Guard, HeldKey, Kit, KitEntry, take_alert
from burnerkit.errors import VaultCorruptedError
from tests import vectorio
from tests.vectors.generate_duress import build

VECTORS = vectorio.load("duress_v1")


def test_vectors_are_what_the_generator_writes() -> None:
    assert build() == VECTORS


@pytest.mark.parametrize("vector", VECTORS["decoy"], ids=lambda v: str(v["slot"]))
def test_decoy_record_vector(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["bytes"])
    directory, slot = vector["directory"], vector["slot"]
    alerted = tuple((bytes.fromhex(cid), bytes.fromhex(sid)) for cid, sid in vector["alerted"])
    assert Decoy(directory, slot, alerted).to_bytes() == data
    assert Decoy.from_bytes(data) == Decoy(directory, slot, alerted)
    by_hand = struct.pack(">B26sBB", 1, directory.encode("ascii"), slot, len(alerted))
    assert by_hand + b"".join(cid + sid for cid, sid in alerted) == data


@pytest.mark.parametrize("vector", VECTORS["guard"])
def test_guard_record_vector(vector: dict[str, str]) -> None:
    data = bytes.fromhex(vector["bytes"])
    assert Guard(vector["directory"]).to_bytes() == data
    assert Guard.from_bytes(data) == Guard(vector["directory"])
    assert struct.pack(">B26s", 1, vector["directory"].encode("ascii")) == data


@pytest.mark.parametrize("name", sorted(VECTORS["refused"]))
def test_refused_duress_record_vector(name: str) -> None:
    record = Guard if name.startswith("guard") else Decoy
    with pytest.raises(VaultCorruptedError, match="does not parse"):
        record.from_bytes(bytes.fromhex(VECTORS["refused"][name]))


def test_kit_record_vector() -> None:
    vector = VECTORS["kit"]
    entries = tuple(
        KitEntry(
            e["relay_url"],
            bytes.fromhex(e["sender_id"]),
            bytes.fromhex(e["sender_key"]),
            bytes.fromhex(e["key"]),
        )
        for e in vector["entries"]
    )
    data = bytes.fromhex(vector["bytes"])
    assert Kit(entries).to_bytes() == data
    assert Kit.from_bytes(data) == Kit(entries)
    by_hand = struct.pack(">BB", 1, len(entries))
    for e in entries:
        url = e.relay_url.encode()
        by_hand += struct.pack(">H", len(url)) + url + e.sender_id + e.sender_key + e.key
    assert by_hand == data


def test_duress_key_content_vector() -> None:
    vector = VECTORS["duress_key_content"]
    key, data = bytes.fromhex(vector["key"]), bytes.fromhex(vector["bytes"])
    assert DuressKey(key).encode() == data
    assert decode_content(data) == DuressKey(key)
    assert b"\x08" + key == data


@pytest.mark.parametrize("vector", VECTORS["held_key"], ids=lambda v: str(v["spent"]))
def test_held_key_record_vector(vector: dict[str, object]) -> None:
    key, data = bytes.fromhex(str(vector["key"])), bytes.fromhex(str(vector["bytes"]))
    spent = bool(vector["spent"])
    assert HeldKey(key, spent).to_bytes() == data
    assert HeldKey.from_bytes(data) == HeldKey(key, spent)
    assert struct.pack(">B32sB", 1, key, spent) == data


def test_alert_body_vector_opens_with_pyca_alone() -> None:
    """The body is rebuilt from its nonce: AES-256-GCM of zeros under the key, AD = the label."""
    vector = VECTORS["alert_body"]
    key, nonce = bytes.fromhex(vector["key"]), bytes.fromhex(vector["nonce"])
    body = nonce + AESGCM(key).encrypt(nonce, bytes(vector["size"] - 28), b"burner/v1/duress/alert")
    assert len(body) == vector["size"] == 15_872
    assert hashlib.sha256(body).hexdigest() == vector["sha256"]
    assert body[-16:].hex() == vector["tag"]

    class Tx:
        def __init__(self) -> None:
            self.records = {("duress-key", b"c"): HeldKey(key).to_bytes()}

        def get(self, kind: str, k: bytes) -> bytes | None:
            return self.records.get((kind, k))

        def put(self, kind: str, k: bytes, value: bytes) -> None:
            self.records[kind, k] = value

    tx = Tx()
    assert take_alert(tx, b"c", body) is True  # type: ignore[arg-type]
    assert take_alert(tx, b"c", body) is False  # type: ignore[arg-type]
    assert take_alert(tx, b"c", body[:-1] + bytes([body[-1] ^ 1])) is None  # type: ignore[arg-type]
