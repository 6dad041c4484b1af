"""Generate the frozen border-mode vectors ``border_v1.json`` (docs/protocol.md §17.12).

Run from the repository root after a deliberate change to the escrow, the border state,
the return request, the code or the release, or to one of their labels::

    .venv/bin/python -m tests.vectors.generate_border

Everything comes from one ``DeterministicRandom`` stream, drawn in the order below.
``tests/test_border_vectors.py`` rebuilds every value byte for byte and opens the sealed
values and derives the code with hashlib, hmac, argon2 and pyca alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.app.border import HOLDER_ISSUER, BorderState, ReturnRequest, release, seal_escrow
from burnerkit.app.issuer import IssuerKeyPair
from burnerkit.crypto.keys import X25519PrivateKey
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault.format import seal_header

__all__ = ["PASSPHRASE", "SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit border vectors v1"
PASSPHRASE = "the passphrase of alice"


def build() -> dict[str, Any]:
    """Every vector, from one stream."""
    rng = DeterministicRandom(SEED)
    pair = IssuerKeyPair.generate(rng)
    vault_key = rng.random_bytes(32)
    header, keys = seal_header(vault_key, PASSPHRASE, FAST_TEST_KDF, rng)
    escrow_id = rng.random_bytes(16)
    escrow = seal_escrow(pair.public.seal_key, escrow_id, vault_key, rng)
    crossed = BorderState(HOLDER_ISSUER, escrow_id, "alice", escrow)
    sealed_crossed = keys.seal_border_state(crossed.to_bytes(), rng)
    one_time = X25519PrivateKey.generate(rng)
    returning = BorderState(HOLDER_ISSUER, escrow_id, "alice", escrow, one_time)
    request = ReturnRequest(escrow_id, one_time.public_key, escrow)
    released = release(pair, request, request.code, rng)
    return {
        "source": "tests/vectors/generate_border.py, DeterministicRandom(SEED), FAST_TEST_KDF",
        "seed": SEED.decode(),
        "passphrase": PASSPHRASE,
        "issuer_x25519_private": pair.dh_key.private_bytes().hex(),
        "vault_key": vault_key.hex(),
        "vault_header": header.hex(),
        "escrow_id": escrow_id.hex(),
        "escrow": escrow.hex(),
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
    """Write ``border_v1.json``."""
    (HERE / "border_v1.json").write_text(json.dumps(build(), indent=1) + "\n")


if __name__ == "__main__":
    main()
