"""Generate the frozen vectors of a contact as border holder ``border_contact_v1.json`` (§17.12).

Run from the repository root after a deliberate change to content 0x09 (the escrow a
traveller sends its contact), the holder's ``escrow`` record, the contact's border state or
return request, or the release::

    .venv/bin/python -m tests.vectors.generate_border_contact

Everything comes from one ``DeterministicRandom`` stream, drawn in the order below, and
fixed numbers. ``tests/test_border_contact_vectors.py`` rebuilds every value byte for byte
and re-encodes and opens them with struct, hashlib, argon2 and pyca alone. A file of its own
rather than more entries in ``border_v1.json``, so that no earlier vector moved.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.app.border import HOLDER_CONTACT, BorderState, ReturnRequest, seal_release
from burnerkit.app.content import Escrow
from burnerkit.app.escrow import HeldEscrow
from burnerkit.crypto.keys import X25519PrivateKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault.format import seal_header

__all__ = ["PASSPHRASE", "RECEIVED_AT", "SEED", "SEQ", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit border contact vectors v1"
PASSPHRASE = "the passphrase of alice"
#: The escrow's message number in the session, and when the contact received it (seconds).
SEQ = 7
RECEIVED_AT = 1_900_000_000


def build() -> dict[str, Any]:
    """Every vector, from one stream."""
    rng = DeterministicRandom(SEED)
    vault_key = rng.random_bytes(32)
    header, keys = seal_header(vault_key, PASSPHRASE, FAST_TEST_KDF, rng)
    escrow_id = rng.random_bytes(16)
    contact_id = rng.random_bytes(16)
    content = Escrow(escrow_id, vault_key).encode()
    held = HeldEscrow(escrow_id, contact_id, SEQ, RECEIVED_AT, vault_key)
    crossed = BorderState(HOLDER_CONTACT, escrow_id, "alice", b"")
    sealed_crossed = keys.seal_border_state(crossed.to_bytes(), rng)
    one_time = X25519PrivateKey.generate(rng)
    returning = BorderState(HOLDER_CONTACT, escrow_id, "alice", b"", one_time)
    request = ReturnRequest(escrow_id, one_time.public_key, b"")
    released = seal_release(request, vault_key, rng)
    return {
        "source": "tests/vectors/generate_border_contact.py, DeterministicRandom(SEED), FAST_TEST_KDF",
        "seed": SEED.decode(),
        "passphrase": PASSPHRASE,
        "vault_key": vault_key.hex(),
        "vault_header": header.hex(),
        "escrow_id": escrow_id.hex(),
        "contact_id": contact_id.hex(),
        "seq": SEQ,
        "received_at": RECEIVED_AT,
        "escrow_content": content.hex(),
        "held_escrow_record": held.to_bytes().hex(),
        "state_crossed": crossed.to_bytes().hex(),
        "sealed_state_crossed": sealed_crossed.hex(),
        "one_time_private": one_time.private_bytes().hex(),
        "state_returning": returning.to_bytes().hex(),
        "request": request.to_bytes().hex(),
        "request_text": request.to_text(),
        "code": request.code,
        "release_text": released,
    }


def main() -> None:
    """Write ``border_contact_v1.json``."""
    (HERE / "border_contact_v1.json").write_text(json.dumps(build(), indent=1) + "\n")


if __name__ == "__main__":
    main()
