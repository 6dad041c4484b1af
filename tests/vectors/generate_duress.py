"""Generate the frozen duress vectors ``duress_v1.json`` (docs/protocol.md §17.11).

Run from the repository root after a deliberate change to the ``duress`` records, the
``DuressKey`` content (0x08), the ``duress-key`` record or the alert body::

    .venv/bin/python -m tests.vectors.generate_duress

The directory ids, queue ids and keys come from ``DeterministicRandom(SEED)``.
``tests/test_duress_vectors.py`` rebuilds every value byte for byte, decodes the stored
bytes back to their fields, re-encodes them with ``struct`` alone, and rebuilds the alert
body with pyca alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from burnerkit.app.content import DuressKey
from burnerkit.app.duress import Decoy, Guard, HeldKey, Kit, KitEntry, alert_body
from burnerkit.app.home import new_id
from burnerkit.crypto.rng import DeterministicRandom

__all__ = ["SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit duress vectors v1"
#: Records a reader must refuse (VaultCorruptedError), and why.
_A26 = (b"a" * 26).hex()
REFUSED = {
    "decoy_slot_2": "01" + _A26 + "0200",
    "decoy_upper_case_id": "01" + (b"A" * 26).hex() + "0000",
    "decoy_truncated": "01" + (b"a" * 25).hex(),
    "decoy_short_alerted": "01" + _A26 + "0001" + "00" * 39,
    "guard_trailing_byte": "01" + _A26 + "00",
    "guard_version_2": "02" + _A26,
}


def build() -> dict[str, Any]:
    """Every vector, as JSON-ready values."""
    rng = DeterministicRandom(SEED)
    real, decoy = new_id(rng), new_id(rng)
    entries = tuple(
        KitEntry(url, rng.random_bytes(24), rng.random_bytes(32), rng.random_bytes(32))
        for url in ("ws://127.0.0.1:7000", "wss://relay.example:443#sha256=" + "ab" * 32)
    )
    key = entries[0].key
    body = alert_body(key, rng)
    alerted_pairs = tuple((rng.random_bytes(16), rng.random_bytes(24)) for _ in range(2))
    return {
        "source": "tests/vectors/generate_duress.py, DeterministicRandom(b'burnerkit duress vectors v1')",
        "decoy": [
            {
                "directory": decoy,
                "slot": slot,
                "alerted": [[cid.hex(), sid.hex()] for cid, sid in alerted],
                "bytes": Decoy(decoy, slot, alerted).to_bytes().hex(),
            }
            for slot, alerted in ((0, ()), (1, alerted_pairs))
        ],
        "guard": [{"directory": real, "bytes": Guard(real).to_bytes().hex()}],
        "refused": REFUSED,
        "kit": {
            "entries": [
                {
                    "relay_url": e.relay_url,
                    "sender_id": e.sender_id.hex(),
                    "sender_key": e.sender_key.hex(),
                    "key": e.key.hex(),
                }
                for e in entries
            ],
            "bytes": Kit(entries).to_bytes().hex(),
        },
        "duress_key_content": {"key": key.hex(), "bytes": DuressKey(key).encode().hex()},
        "held_key": [
            {"key": key.hex(), "spent": spent, "bytes": HeldKey(key, spent).to_bytes().hex()}
            for spent in (False, True)
        ],
        "alert_body": {
            "key": key.hex(),
            "nonce": body[:12].hex(),
            "size": len(body),
            "sha256": hashlib.sha256(body).hexdigest(),
            "tag": body[-16:].hex(),
        },
    }


def main() -> None:
    """Write ``duress_v1.json`` next to this file."""
    (HERE / "duress_v1.json").write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
