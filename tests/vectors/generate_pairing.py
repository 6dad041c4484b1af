"""Generate the frozen pairing vectors ``pairing_v1.json`` (docs/protocol.md §16).

Run from the repository root after a deliberate change to the code, the SPAKE2 binding,
the key schedule or the pairing messages::

    .venv/bin/python -m tests.vectors.generate_pairing

One transcript, code to payloads, for a 2-word code (the top level) and one for a
3-word code (``three_words``, same layout): the code's words come from one seeded
``DeterministicRandom``, each side's SPAKE2 scalar and payload nonce from its own, so
every byte is reproducible. ``tests/unit/protocol/test_pairing.py`` replays it byte for
byte and re-derives the confirmations and payload keys with ``hmac`` and pyca alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from burnerkit.crypto import pake
from burnerkit.crypto.kdf import LABEL_PAIRING_PAKE
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.protocol.pairing import Pairing, ShortCode, Side

__all__ = ["NAMEPLATE", "SEEDS", "SEEDS_3_WORDS", "build", "main", "transcript"]

HERE = Path(__file__).parent
NAMEPLATE = 7
SEEDS = {
    "code": b"burnerkit pairing vectors v1 code",
    "a": b"burnerkit pairing vectors v1 side A",
    "b": b"burnerkit pairing vectors v1 side B",
}
SEEDS_3_WORDS = {**SEEDS, "code": b"burnerkit pairing vectors v1 code, 3 words"}
PAYLOAD_A = b"an invitation would go here"
PAYLOAD_B = b"ack"


def build() -> dict[str, Any]:
    """The transcripts, from the seeds alone."""
    return {
        "source": "burnerkit, tests/vectors/generate_pairing.py (docs/protocol.md §16)",
        **transcript(SEEDS, words=2),
        "three_words": transcript(SEEDS_3_WORDS, words=3),
    }


def transcript(seeds: dict[str, bytes], *, words: int) -> dict[str, Any]:
    """One pairing of a ``words``-word code, code to payloads."""
    code = ShortCode.generate(NAMEPLATE, DeterministicRandom(seeds["code"]), words=words)
    a = Pairing(code, Side.A, PAYLOAD_A, rng=DeterministicRandom(seeds["a"]))
    b = Pairing(code, Side.B, PAYLOAD_B, rng=DeterministicRandom(seeds["b"]))
    a_pake, b_pake = a.start(), b.start()
    a_confirm, b_confirm = a.receive(b_pake), b.receive(a_pake)
    if a_confirm is None or b_confirm is None:
        raise AssertionError("no confirmation")
    a_payload, b_payload = a.receive(b_confirm), b.receive(a_confirm)
    if a_payload is None or b_payload is None:
        raise AssertionError("no payload")
    if a.receive(b_payload) is not None or b.receive(a_payload) is not None:
        raise AssertionError("a reply after the payload")
    if (a.peer_payload, b.peer_payload) != (PAYLOAD_B, PAYLOAD_A):
        raise AssertionError("payloads not exchanged")
    # The SPAKE2 key itself, for the independent re-derivation: the machine draws its
    # scalar first, so a fresh stream of the same seed gives the same exchange.
    identity = LABEL_PAIRING_PAKE + NAMEPLATE.to_bytes(2, "big")
    key = pake.start(code.password, identity, DeterministicRandom(seeds["a"])).finish(b_pake[3:])
    return {
        "seeds": {name: seed.hex() for name, seed in seeds.items()},
        "nameplate": NAMEPLATE,
        "code": code.text,
        "password": code.password.hex(),
        "spake2_identity": identity.hex(),
        "payload_a": PAYLOAD_A.hex(),
        "payload_b": PAYLOAD_B.hex(),
        "spake2_key": key.hex(),
        "messages": {
            "a_pake": a_pake.hex(),
            "b_pake": b_pake.hex(),
            "a_confirm": a_confirm.hex(),
            "b_confirm": b_confirm.hex(),
            "a_payload": a_payload.hex(),
            "b_payload": b_payload.hex(),
        },
    }


def main() -> None:
    """Write ``pairing_v1.json``."""
    path = HERE / "pairing_v1.json"
    path.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
