"""Generate the frozen dead-man switch vectors ``deadman_v1.json`` (docs/protocol.md §17.8).

Run from the repository root after a deliberate change to the Heartbeat content or to the
``checkin`` and ``liveness`` records::

    .venv/bin/python -m tests.vectors.generate_deadman

The contact id comes from ``DeterministicRandom(SEED)``; times are fixed.
``tests/test_deadman_vectors.py`` rebuilds every value byte for byte, decodes the stored
bytes back to their fields, re-encodes them with ``struct`` alone, and checks that each
refused content is refused.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.app.checkin import CheckIn
from burnerkit.app.content import Heartbeat
from burnerkit.app.liveness import PeerLiveness
from burnerkit.crypto.rng import DeterministicRandom

__all__ = ["NOW", "SEED", "build", "main"]

HERE = Path(__file__).parent
SEED = b"burnerkit dead-man vectors v1"
NOW = 1_800_000_000
#: Windows of the heartbeats: the shortest, a day, the longest a u32 holds.
WINDOWS = (60, 86400, 0xFFFFFFFF)
#: Contents a receiver must refuse (RemoteProtocolError), and why.
REFUSED = {
    "window_too_short": "070000003b",
    "window_zero": "0700000000",
    "truncated": "07000151",
    "trailing_byte": "070001518000",
    "kind_only": "07",
}


def build() -> dict[str, Any]:
    """Every vector, as JSON-ready values."""
    rng = DeterministicRandom(SEED)
    contact_id = rng.random_bytes(16)
    checkin = CheckIn(86400, NOW, NOW - 3600)
    fresh = CheckIn(3600, NOW)
    liveness = PeerLiveness(contact_id, 86400, NOW - 7200)
    silent = PeerLiveness(contact_id, 3600, NOW - 7200, NOW)
    return {
        "source": "tests/vectors/generate_deadman.py, DeterministicRandom(b'burnerkit dead-man vectors v1')",
        "heartbeats": [{"window": w, "bytes": Heartbeat(w).encode().hex()} for w in WINDOWS],
        "refused": REFUSED,
        "checkin": [
            {
                "window": c.window,
                "checked_in_at": c.checked_in_at,
                "heartbeat_at": c.heartbeat_at,
                "bytes": c.to_bytes().hex(),
            }
            for c in (checkin, fresh)
        ],
        "liveness": [
            {
                "contact_id": p.contact_id.hex(),
                "window": p.window,
                "heard_at": p.heard_at,
                "silent_at": p.silent_at,
                "bytes": p.to_bytes().hex(),
            }
            for p in (liveness, silent)
        ],
    }


def main() -> None:
    """Write ``deadman_v1.json`` next to this file."""
    (HERE / "deadman_v1.json").write_text(json.dumps(build(), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
