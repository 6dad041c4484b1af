"""Generate the frozen vault vectors ``vault_v1.json`` (docs/protocol.md §15).

Run from the repository root after a deliberate change to the vault header, the record
layout, the row naming or the padding (and bump the header's version byte with it)::

    .venv/bin/python -m tests.vectors.generate_vault

Everything is deterministic: the vault key, salt and every nonce come from one
``DeterministicRandom`` stream, drawn in the order ``Vault.create`` and later ``put`` calls
draw them (vault key, salt, header nonce, then one nonce per record), and Argon2id runs with
``FAST_TEST_KDF``. ``tests/test_vault_vectors.py`` rebuilds them byte for byte, checks that
``Vault.create`` writes the same files, and re-derives every value with argon2-cffi, pyca's
AESGCM and ``hmac`` alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.crypto.kdf import LABEL_VAULT_INDEX, LABEL_VAULT_RECORD, hkdf
from burnerkit.crypto.passphrase import FAST_TEST_KDF, derive_key
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault.format import VAULT_KEY_SIZE, RecordKeys, padded_size, seal_header

__all__ = ["PASSPHRASE", "RECORDS", "SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit vault vectors v1"
#: Typed decomposed ("e" + U+0301); the key must come from its NFC form.
PASSPHRASE = "correct horse battery staple cafe\u0301"
RECORDS: list[tuple[str, bytes, bytes]] = [
    ("contact", b"alice", b"alice's identity and session state"),
    ("setting", b"", b""),
    ("message", bytes(range(40)), bytes(range(256)) + b"0123456789" * 3),
]


def build() -> dict[str, Any]:
    """Every vault vector, from the seed alone."""
    rng = DeterministicRandom(SEED)
    vault_key = rng.random_bytes(VAULT_KEY_SIZE)
    header = seal_header(vault_key, PASSPHRASE, FAST_TEST_KDF, rng)
    keys = RecordKeys(vault_key)
    records = []
    for kind, key, value in RECORDS:
        record = keys.seal(kind, key, value, rng)
        body_size = 1 + len(kind) + 1 + len(key) + 4 + len(value)
        records.append(
            {
                "kind": kind,
                "key": key.hex(),
                "value": value.hex(),
                "padded_size": padded_size(body_size),
                "row_id": record.row_id.hex(),
                "kind_tag": record.kind_tag.hex(),
                "sealed": record.sealed.hex(),
            }
        )
    return {
        "source": "burnerkit, tests/vectors/generate_vault.py (docs/protocol.md §15)",
        "seed": SEED.hex(),
        "passphrase": PASSPHRASE,
        "kdf": {
            "memory_kib": FAST_TEST_KDF.memory_kib,
            "iterations": FAST_TEST_KDF.iterations,
            "parallelism": FAST_TEST_KDF.parallelism,
        },
        "vault_key": vault_key.hex(),
        "kek": derive_key(PASSPHRASE, header[18:34], FAST_TEST_KDF).hex(),
        "header": header.hex(),
        "record_key": hkdf(vault_key, salt=b"", info=LABEL_VAULT_RECORD, length=32).hex(),
        "index_key": hkdf(vault_key, salt=b"", info=LABEL_VAULT_INDEX, length=32).hex(),
        "records": records,
    }


def main() -> None:
    """Write ``vault_v1.json``."""
    path = HERE / "vault_v1.json"
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
