"""Frozen border-mode vectors (tests/vectors/border_v1.json): escrow, state, request, code, release (§17.12).

Each value is opened or derived from the spec with hashlib, hmac, argon2 and pyca alone, so
the spec and the code cannot drift apart together. A change fails here until it is made on
purpose and the vectors regenerated with ``.venv/bin/python -m tests.vectors.generate_border``.
"""

from __future__ import annotations

import base64
import hashlib
import struct

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.app.border import BorderState, ReturnRequest, open_release
from burnerkit.vault.format import open_border_state
from tests import vectorio
from tests.test_issuer_vectors import open_by_spec
from tests.vectors.generate_border import build

V = vectorio.load("border_v1")


def h(name: str) -> bytes:
    return bytes.fromhex(V[name])


def test_every_vector_rebuilds_byte_for_byte() -> None:
    assert build() == V


def test_escrow_opens_by_the_spec_with_the_issuers_key() -> None:
    escrow = h("escrow")
    assert len(escrow) == 97
    plain = open_by_spec(h("issuer_x25519_private"), escrow, b"burner/v1/seal/border-escrow")
    assert plain == b"\x01" + h("escrow_id") + h("vault_key")


def test_border_state_layout_and_sealing_by_the_spec() -> None:
    sealed = h("sealed_state_crossed")
    header = h("vault_header")
    assert len(sealed) == 34 + 12 + 256 + 16
    assert sealed[:34] == header[:34]  # the vault header's own prefix: its KEK
    _, version, kdf, m, t, p, salt = struct.unpack(">7sBBIIB16s", sealed[:34])
    assert (version, kdf) == (2, 1)
    kek = hash_secret_raw(
        V["passphrase"].encode(), salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=Type.ID
    )
    body = AESGCM(kek).decrypt(sealed[34:46], sealed[46:], b"burner/v1/border/state" + sealed[:34])
    assert body == h("state_crossed")
    # version ‖ holder ‖ escrow_id ‖ name_len ‖ name ‖ escrow_len ‖ escrow ‖ has_key ‖ key ‖ zeros
    version, holder, escrow_id, name_len, name, escrow_len, escrow, has_key, key = struct.unpack(
        ">BB16sB32sH128sB32s", body[:214]
    )
    assert (version, holder, escrow_id, has_key, key) == (1, 1, h("escrow_id"), 0, bytes(32))
    assert name[:name_len] == b"alice"
    assert escrow[:escrow_len] == h("escrow")
    assert body[214:] == bytes(42)
    returning = h("state_returning")
    assert returning[181] == 1
    assert returning[182:214] == h("one_time_private")
    # The same KEK wraps the vault key in the header's slot 0 (AD: label ‖ prefix ‖ slot).
    slot = header[34:94]
    ad = b"burner/v1/vault/key-wrap" + header[:34] + b"\x00"
    assert AESGCM(kek).decrypt(slot[:12], slot[12:], ad) == h("vault_key")
    opened = open_border_state(sealed, V["passphrase"])
    assert BorderState.from_bytes(opened.body).to_bytes() == body


def test_return_request_and_code_by_the_spec() -> None:
    raw = h("request")
    one_time = (
        x25519.X25519PrivateKey.from_private_bytes(h("one_time_private")).public_key().public_bytes_raw()
    )
    assert raw == b"\x01" + h("escrow_id") + one_time + h("escrow")
    digest = hashlib.sha256(b"burner/v1/border/code" + h("escrow_id") + one_time).digest()
    digits = f"{int.from_bytes(digest[:8], 'big') % 10**12:012d}"
    assert V["code"] == f"{digits[:4]} {digits[4:8]} {digits[8:]}"
    parsed = ReturnRequest.from_text(V["request_text"])
    assert parsed.to_bytes() == raw
    assert parsed.code == V["code"]


def test_release_opens_by_the_spec_with_the_one_time_key_only() -> None:
    text = V["release_text"]
    assert text.startswith("burner:br1.")
    body = text[len("burner:br1.") :]
    sealed = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    assert len(sealed) == 97
    one_time = (
        x25519.X25519PrivateKey.from_private_bytes(h("one_time_private")).public_key().public_bytes_raw()
    )
    aad = h("escrow_id") + one_time
    plain = open_by_spec(h("one_time_private"), sealed, b"burner/v1/seal/border-release", aad)
    assert plain == b"\x01" + h("escrow_id") + h("vault_key")
    assert open_release(BorderState.from_bytes(h("state_returning")), text) == h("vault_key")
