"""Generate the frozen duress vectors ``duress_v1.json`` (docs/protocol.md §17.11).

Run from the repository root after a deliberate change to the ``duress`` records::

    .venv/bin/python -m tests.vectors.generate_duress

The directory ids come from ``DeterministicRandom(SEED)``. ``tests/test_duress_vectors.py``
rebuilds every value byte for byte, decodes the stored bytes back to their fields, and
re-encodes them with ``struct`` alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.app.duress import Decoy, Guard
from burnerkit.app.home import new_id
from burnerkit.crypto.rng import DeterministicRandom

__all__ = ["SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit duress vectors v1"
#: Records a reader must refuse (VaultCorruptedError), and why.
_A26 = (b"a" * 26).hex()
REFUSED = {
    "decoy_slot_2": "01" + _A26 + "02",
    "decoy_upper_case_id": "01" + (b"A" * 26).hex() + "00",
    "decoy_truncated": "01" + (b"a" * 25).hex(),
    "guard_trailing_byte": "01" + _A26 + "00",
    "guard_version_2": "02" + _A26,
}


def build() -> dict[str, Any]:
    """Every vector, as JSON-ready values."""
    rng = DeterministicRandom(SEED)
    real, decoy = new_id(rng), new_id(rng)
    return {
        "source": "tests/vectors/generate_duress.py, DeterministicRandom(b'burnerkit duress vectors v1')",
        "decoy": [
            {"directory": decoy, "slot": slot, "bytes": Decoy(decoy, slot).to_bytes().hex()}
            for slot in (0, 1)
        ],
        "guard": [{"directory": real, "bytes": Guard(real).to_bytes().hex()}],
        "refused": REFUSED,
    }


def main() -> None:
    """Write ``duress_v1.json`` next to this file."""
    (HERE / "duress_v1.json").write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
