"""Generate the frozen vault vectors ``vault_v2.json`` (docs/protocol.md §15).

Run from the repository root after a deliberate change to the vault header, the key slots,
the record layout, the row naming, the padding or the order of a key rotation (and bump the
header's version byte with it)::

    .venv/bin/python -m tests.vectors.generate_vault

Everything is deterministic. Creation: one ``DeterministicRandom(SEED)`` stream, drawn in the
order ``Vault.create`` and later ``put`` calls draw it (vault key, salt, slot 0's nonce, 60
bytes for the empty slot 1, then one nonce per row of each record, a record being one or more
512-byte chunks). Rotation: the vault reopened with
``DeterministicRandom(ROTATION_SEED)`` and one ``put``, drawn in the order ``Vault._rotate``
draws (the new key, slot 1's nonce, the nonces of each re-sealed record in the order of the old
head row ids, then the new record's) and then ``Vault._tidy`` (60 bytes over slot 0). Argon2id runs
with ``FAST_TEST_KDF``. ``tests/test_vault_vectors.py`` rebuilds them byte for byte, checks that
``Vault`` writes the same files, and re-derives every value with argon2-cffi, pyca's AESGCM and
``hmac`` alone.

``vault_v1.json`` (the version 1 format, written by this script's earlier version) is frozen:
the version 1 reader still opens it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.crypto.aead import AeadKey
from burnerkit.crypto.kdf import LABEL_VAULT_INDEX, LABEL_VAULT_RECORD, hkdf
from burnerkit.crypto.passphrase import FAST_TEST_KDF, derive_key
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault.format import SLOT_SIZE, VAULT_KEY_SIZE, RecordKeys, chunk_count, seal_header, seal_slot

__all__ = ["AFTER_ROTATION", "PASSPHRASE", "RECORDS", "ROTATION_SEED", "SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit vault vectors v2"
ROTATION_SEED = b"burnerkit vault vectors v2 rotation"
#: Typed decomposed ("e" + U+0301); the key must come from its NFC form.
PASSPHRASE = "correct horse battery staple cafe\u0301"
RECORDS: list[tuple[str, bytes, bytes]] = [
    ("contact", b"alice", b"alice's identity and session state"),
    ("setting", b"", b""),
    ("message", bytes(range(40)), bytes(range(256)) + b"0123456789" * 3),
    ("message", b"long", b"a long message, three chunks " * 40),
]
#: The record put after the vault is reopened: the first write of an unlock rotates the key.
AFTER_ROTATION: tuple[str, bytes, bytes] = ("message", b"after", b"written under the second key")


def _keys(vault_key: bytes) -> dict[str, str]:
    return {
        "vault_key": vault_key.hex(),
        "record_key": hkdf(vault_key, salt=b"", info=LABEL_VAULT_RECORD, length=32).hex(),
        "index_key": hkdf(vault_key, salt=b"", info=LABEL_VAULT_INDEX, length=32).hex(),
        "key_id": RecordKeys(vault_key).key_id.hex(),
    }


def _record(
    keys: RecordKeys, kind: str, key: bytes, value: bytes, rng: DeterministicRandom
) -> dict[str, Any]:
    rows = keys.seal(kind, key, value, rng)
    return {
        "kind": kind,
        "key": key.hex(),
        "value": value.hex(),
        "chunks": chunk_count(1 + len(kind) + 1 + len(key) + 4 + len(value)),
        "rows": [{"row_id": r.row_id.hex(), "sealed": r.sealed.hex()} for r in rows],
    }


def build() -> dict[str, Any]:
    """Every vault vector, from the seeds alone."""
    rng = DeterministicRandom(SEED)
    vault_key = rng.random_bytes(VAULT_KEY_SIZE)
    header, _ = seal_header(vault_key, PASSPHRASE, FAST_TEST_KDF, rng)
    kek = derive_key(PASSPHRASE, header[18:34], FAST_TEST_KDF)
    keys = RecordKeys(vault_key)
    records = [_record(keys, kind, key, value, rng) for kind, key, value in RECORDS]

    rng = DeterministicRandom(ROTATION_SEED)
    new_key = rng.random_bytes(VAULT_KEY_SIZE)
    slot_1 = seal_slot(AeadKey(kek), header[:34], 1, new_key, rng)
    new_keys = RecordKeys(new_key)
    by_old_row = sorted(zip(records, RECORDS, strict=True), key=lambda pair: pair[0]["rows"][0]["row_id"])
    resealed = [_record(new_keys, kind, key, value, rng) for _, (kind, key, value) in by_old_row]
    resealed.append(_record(new_keys, *AFTER_ROTATION, rng))
    wiped_slot_0 = rng.random_bytes(SLOT_SIZE)
    return {
        "source": "burnerkit, tests/vectors/generate_vault.py (docs/protocol.md §15)",
        "seed": SEED.hex(),
        "passphrase": PASSPHRASE,
        "kdf": {
            "memory_kib": FAST_TEST_KDF.memory_kib,
            "iterations": FAST_TEST_KDF.iterations,
            "parallelism": FAST_TEST_KDF.parallelism,
        },
        "kek": kek.hex(),
        "header": header.hex(),
        **_keys(vault_key),
        "records": records,
        "rotation": {
            "seed": ROTATION_SEED.hex(),
            "slot": 1,
            "header_before_tidy": (header[:94] + slot_1).hex(),
            "header": (header[:34] + wiped_slot_0 + slot_1).hex(),
            **_keys(new_key),
            "records": resealed,
        },
    }


def main() -> None:
    """Write ``vault_v2.json``."""
    path = HERE / "vault_v2.json"
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
