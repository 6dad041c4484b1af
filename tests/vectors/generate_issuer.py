"""Generate the frozen issuer vectors ``issuer_v1.json`` (docs/protocol.md §17.9).

Run from the repository root after a deliberate change to an issuer-key, order-address,
burn-order, sealing, key-file or report format, or to one of their labels::

    .venv/bin/python -m tests.vectors.generate_issuer

Everything comes from one ``DeterministicRandom`` stream, drawn in the order below, and
fixed times; Ed25519 signatures are deterministic. ``tests/test_issuer_vectors.py``
rebuilds every value byte for byte, decodes the stored bytes, and opens the sealed values
and checks the signature with hashlib, hmac and pyca alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from burnerkit.app.issuer import (
    BurnOrder,
    IssuerKeyPair,
    IssuerRecord,
    seal_order,
    seal_report,
)
from burnerkit.app.views import EventView
from burnerkit.crypto.kdf import LABEL_SEAL_REPORT
from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.crypto.seal import seal_to
from burnerkit.relay.client import QueueCredentials

__all__ = ["NOW", "PASSPHRASE", "SEED", "build", "main", "sealed_order_body"]

HERE = Path(__file__).parent
SEED = b"burnerkit issuer vectors v1"
NOW = 1_800_000_000
RELAY = "wss://relay.example.org"
PASSPHRASE = "the office passphrase"
SEALED_PLAINTEXT = b"a sealed message to the issuer"
EVENTS = [
    EventView(
        "", NOW - 60, "forged-order", "a burn order that did not verify (forged or damaged) was ignored"
    )
]
#: The report's document: the frozen vector was written with this form, which a debrief's JSON
#: (§17.10) extends; the sealing is what the vector freezes, not the document's fields.
REPORT = {"burner": "alice", "written_at": NOW, "events": [event.to_json() for event in EVENTS]}


def sealed_order_body() -> bytes:
    """The sealed order of :func:`build`, whole (the file keeps its hash and first bytes)."""
    return _values()[0]


def build() -> dict[str, Any]:
    """Every vector, from one stream."""
    return _values()[1]


def _values() -> tuple[bytes, dict[str, Any]]:
    rng = DeterministicRandom(SEED)
    pair = IssuerKeyPair.generate(rng)
    key_file = pair.seal_file(PASSPHRASE, FAST_TEST_KDF, rng)
    creds = QueueCredentials(
        rng.random_bytes(24), rng.random_bytes(24), SigningKey.generate(rng), rng.random_bytes(32)
    )
    record = IssuerRecord(
        issuer=pair.public,
        relay_url=RELAY,
        queue=creds,
        sender_key=SigningKey.generate(rng),
        order_id=rng.random_bytes(16),
        order_key=X25519PrivateKey.generate(rng),
    )
    address = record.address()
    order = BurnOrder.issue(pair, record.order_id, now=NOW, rng=rng, lifetime=86400)
    body = seal_order(order, address.order_key, rng)
    remembered = record.remember(order, b"\x07" * 24, NOW)
    sealed = seal_to(pair.dh_key.public_key, SEALED_PLAINTEXT, label=LABEL_SEAL_REPORT, rng=rng)
    report = seal_report(pair.public, REPORT, rng)
    return body, {
        "source": "tests/vectors/generate_issuer.py, DeterministicRandom(SEED), FAST_TEST_KDF",
        "seed": SEED.decode(),
        "now": NOW,
        "passphrase": PASSPHRASE,
        "issuer_ed25519_seed": pair.signing_key.private_bytes().hex(),
        "issuer_x25519_private": pair.dh_key.private_bytes().hex(),
        "issuer_public": pair.public.to_bytes().hex(),
        "issuer_public_text": pair.public.to_text(),
        "key_file": key_file.hex(),
        "order_address": address.to_bytes().hex(),
        "order_address_text": address.to_text(),
        "order_key_private": record.order_key.private_bytes().hex(),
        "burn_order": order.to_bytes().hex(),
        "sealed_order_sha256": hashlib.sha256(body).hexdigest(),
        "sealed_order_head": body[:64].hex(),
        "sealed_order_size": len(body),
        "issuer_record": record.to_bytes().hex(),
        "issuer_record_remembered": remembered.to_bytes().hex(),
        "sealed_plaintext": SEALED_PLAINTEXT.hex(),
        "sealed": sealed.hex(),
        "report": report.hex(),
    }


def main() -> None:
    """Write ``issuer_v1.json``."""
    (HERE / "issuer_v1.json").write_text(json.dumps(build(), indent=1) + "\n")


if __name__ == "__main__":
    main()
