"""Frozen vectors of a contact as border holder (tests/vectors/border_contact_v1.json, §17.12).

Content 0x09, the holder's ``escrow`` record, the contact's border state (no escrow), its
return request (no escrow) and code, and the release: each is re-encoded or opened from the
spec with struct, hashlib, argon2 and pyca alone, so the spec and the code cannot drift apart
together. Regenerate on purpose with ``.venv/bin/python -m tests.vectors.generate_border_contact``.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.app.border import BorderState, ReturnRequest, open_release
from burnerkit.app.content import Escrow, decode_content
from burnerkit.app.escrow import HeldEscrow
from tests import vectorio
from tests.test_issuer_vectors import open_by_spec
from tests.vectors.generate_border_contact import build

V = vectorio.load("border_contact_v1")


def h(name: str) -> bytes:
    return bytes.fromhex(V[name])


def one_time_public() -> bytes:
    return x25519.X25519PrivateKey.from_private_bytes(h("one_time_private")).public_key().public_bytes_raw()


def test_every_vector_rebuilds_byte_for_byte() -> None:
    assert build() == V


def test_escrow_content_layout() -> None:
    # 0x09 ‖ escrow_id (16) ‖ vault_key (32)
    assert h("escrow_content") == b"\x09" + h("escrow_id") + h("vault_key")
    assert decode_content(h("escrow_content")) == Escrow(h("escrow_id"), h("vault_key"))


def test_held_escrow_record_layout() -> None:
    # u8 version ‖ escrow_id (16) ‖ contact_id (16) ‖ u64 seq ‖ u64 received_at ‖ vault_key (32)
    record = h("held_escrow_record")
    expected = struct.pack(
        ">B16s16sQQ32s", 1, h("escrow_id"), h("contact_id"), V["seq"], V["received_at"], h("vault_key")
    )
    assert record == expected
    parsed = HeldEscrow.from_bytes(record)
    assert (parsed.escrow_id, parsed.contact_id, parsed.vault_key) == (
        h("escrow_id"),
        h("contact_id"),
        h("vault_key"),
    )


def test_contact_border_state_holds_no_escrow_by_the_spec() -> None:
    sealed, header = h("sealed_state_crossed"), h("vault_header")
    assert sealed[:34] == header[:34]
    _, _, _, m, t, p, salt = struct.unpack(">7sBBIIB16s", sealed[:34])
    kek = hash_secret_raw(
        V["passphrase"].encode(), salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=Type.ID
    )
    body = AESGCM(kek).decrypt(sealed[34:46], sealed[46:], b"burner/v1/border/state" + sealed[:34])
    assert body == h("state_crossed")
    version, holder, escrow_id, name_len, name, escrow_len, escrow, has_key, key = struct.unpack(
        ">BB16sB32sH128sB32s", body[:214]
    )
    assert (version, holder, escrow_id, escrow_len, has_key) == (1, 2, h("escrow_id"), 0, 0)
    assert name[:name_len] == b"alice"
    assert (escrow, key, body[214:]) == (bytes(128), bytes(32), bytes(42))
    # Nothing in the state is the vault key.
    assert h("vault_key") not in body
    returning = h("state_returning")
    assert (returning[181], returning[182:214]) == (1, h("one_time_private"))


def test_contact_request_and_code_by_the_spec() -> None:
    raw = h("request")
    assert raw == b"\x01" + h("escrow_id") + one_time_public()
    assert len(raw) == 49
    digest = hashlib.sha256(b"burner/v1/border/code" + h("escrow_id") + one_time_public()).digest()
    digits = f"{int.from_bytes(digest[:8], 'big') % 10**12:012d}"
    assert V["code"] == f"{digits[:4]} {digits[4:8]} {digits[8:]}"
    parsed = ReturnRequest.from_text(V["request_text"])
    assert (parsed.to_bytes(), parsed.code, parsed.escrow) == (raw, V["code"], b"")


def test_contact_release_opens_by_the_spec_with_the_one_time_key() -> None:
    text = V["release_text"]
    body = text[len("burner:br1.") :]
    sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert text.startswith("burner:br1.")
    assert len(sealed) == 97
    aad = h("escrow_id") + one_time_public()
    plain = open_by_spec(h("one_time_private"), sealed, b"burner/v1/seal/border-release", aad)
    assert plain == b"\x01" + h("escrow_id") + h("vault_key")
    assert open_release(BorderState.from_bytes(h("state_returning")), text) == h("vault_key")
