"""Frozen issuer vectors (tests/vectors/issuer_v1.json): issuer keys, order addresses, burn orders, sealing.

The sealing construction (§17.9.5), the order signature (§17.9.2) and the key file
(§17.9.1) are re-derived from the spec with hashlib, hmac, argon2 and pyca alone, so the
spec and the code cannot drift apart together. A change fails here until it is made on
purpose and the vectors regenerated with ``.venv/bin/python -m tests.vectors.generate_issuer``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

from argon2.low_level import Type, hash_secret_raw
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from burnerkit.app.issuer import (
    BurnOrder,
    IssuerKeyPair,
    IssuerPublicKey,
    IssuerRecord,
    OrderAddress,
    Verdict,
    judge,
    open_order,
    open_report,
)
from burnerkit.crypto.keys import X25519PrivateKey
from burnerkit.relay.protocol import MAX_BODY_SIZE
from tests import vectorio
from tests.vectors.generate_issuer import build, sealed_order_body

V = vectorio.load("issuer_v1")


def h(name: str) -> bytes:
    return bytes.fromhex(V[name])


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 with hmac alone."""
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def open_by_spec(private: bytes, sealed: bytes, label: bytes, aad: bytes = b"") -> bytes:
    """§17.9.5: E = sealed[:32]; key ‖ nonce = HKDF(X25519(r, E), E ‖ R, label, 44); AES-256-GCM."""
    key = x25519.X25519PrivateKey.from_private_bytes(private)
    enc = sealed[:32]
    dh = key.exchange(x25519.X25519PublicKey.from_public_bytes(enc))
    okm = hkdf_sha256(dh, enc + key.public_key().public_bytes_raw(), label, 44)
    return AESGCM(okm[:32]).decrypt(okm[32:], sealed[32:], label + aad)


def test_every_vector_rebuilds_byte_for_byte() -> None:
    assert build() == V


def test_issuer_public_key_layout() -> None:
    public = h("issuer_public")
    seed, x_private = h("issuer_ed25519_seed"), h("issuer_x25519_private")
    ed = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()
    xp = x25519.X25519PrivateKey.from_private_bytes(x_private).public_key().public_bytes_raw()
    assert public == b"\x01" + ed + xp
    parsed = IssuerPublicKey.from_text(V["issuer_public_text"])
    assert parsed.to_bytes() == public
    assert V["issuer_public_text"].startswith("burner:ik1.")


def test_key_file_opens_by_the_spec_and_by_the_code() -> None:
    data = h("key_file")
    magic, version, m, t, p, salt = struct.unpack(">8sBIIB16s", data[:34])
    assert (magic, version, len(data)) == (b"BKISSUER", 1, 126)
    key = hash_secret_raw(
        V["passphrase"].encode(), salt, time_cost=t, memory_cost=m, parallelism=p, hash_len=32, type=Type.ID
    )
    secret = AESGCM(key).decrypt(data[34:46], data[46:], b"burner/v1/issuer/key-file" + data[:34])
    assert secret == h("issuer_ed25519_seed") + h("issuer_x25519_private")
    pair = IssuerKeyPair.open_file(data, V["passphrase"])
    assert pair.public.to_bytes() == h("issuer_public")


def test_order_address_layout() -> None:
    raw = h("order_address")
    address = OrderAddress.from_text(V["order_address_text"])
    assert address.to_bytes() == raw
    url = address.relay_url.encode()
    assert raw[:2] == bytes([1, len(url)])
    assert raw[2 : 2 + len(url)] == url
    rest = raw[2 + len(url) :]
    assert len(rest) == 24 + 32 + 16 + 32
    assert rest[:24] == address.sender_id
    assert rest[56:72] == address.order_id
    order_public = x25519.X25519PrivateKey.from_private_bytes(h("order_key_private")).public_key()
    assert rest[72:] == order_public.public_bytes_raw()


def test_burn_order_layout_and_signature_by_the_spec() -> None:
    raw = h("burn_order")
    assert len(raw) == 113
    version, order_id, nonce, issued_at, not_after = struct.unpack(">B16s16sQQ", raw[:49])
    assert (version, issued_at, not_after) == (1, V["now"], V["now"] + 86400)
    issuer = ed25519.Ed25519PrivateKey.from_private_bytes(h("issuer_ed25519_seed")).public_key()
    issuer.verify(raw[49:], b"burner/v1/sig/burn-order" + raw[:49])  # raises if not
    order = BurnOrder.from_bytes(raw)
    assert (order.order_id, order.nonce) == (order_id, nonce)
    assert order.to_bytes() == raw


def test_sealed_order_opens_by_the_spec() -> None:
    body = sealed_order_body()
    assert len(body) == V["sealed_order_size"] == MAX_BODY_SIZE
    assert hashlib.sha256(body).hexdigest() == V["sealed_order_sha256"]
    padded = open_by_spec(h("order_key_private"), body, b"burner/v1/seal/burn-order")
    size = int.from_bytes(padded[:2], "big")
    assert padded[2 : 2 + size] == h("burn_order")
    assert padded[2 + size :] == bytes(len(padded) - 2 - size)
    assert open_order(X25519PrivateKey.from_bytes(h("order_key_private")), body).to_bytes() == h("burn_order")


def test_sealed_message_opens_by_the_spec() -> None:
    plain = open_by_spec(h("issuer_x25519_private"), h("sealed"), b"burner/v1/seal/report")
    assert plain == h("sealed_plaintext")


def test_report_opens_by_the_spec_and_by_the_code() -> None:
    data = h("report")
    assert data[0] == 1
    padded = open_by_spec(h("issuer_x25519_private"), data[1:], b"burner/v1/seal/report", aad=data[:1])
    assert len(padded) % 1024 == 0
    size = int.from_bytes(padded[:4], "big")
    document = json.loads(padded[4 : 4 + size])
    assert document["burner"] == "alice"
    assert [e["kind"] for e in document["events"]] == ["forged-order"]
    pair = IssuerKeyPair.open_file(h("key_file"), V["passphrase"])
    assert open_report(pair, data) == document


def test_issuer_record_round_trips_and_remembers_the_order() -> None:
    record = IssuerRecord.from_bytes(h("issuer_record"))
    assert record.to_bytes() == h("issuer_record")
    assert record.address().to_bytes() == h("order_address")
    remembered = IssuerRecord.from_bytes(h("issuer_record_remembered"))
    assert remembered.to_bytes() == h("issuer_record_remembered")
    assert [(s.nonce, s.msg_id) for s in remembered.seen] == [
        (BurnOrder.from_bytes(h("burn_order")).nonce, b"\x07" * 24)
    ]
    # The rule, on the frozen values: accepted by the fresh record, a replay for the other.
    body = sealed_order_body()
    assert judge(record, body, now=V["now"], msg_id=b"\x01" * 24)[0] is Verdict.ACCEPTED
    assert judge(remembered, body, now=V["now"], msg_id=b"\x01" * 24)[0] is Verdict.REPLAYED
