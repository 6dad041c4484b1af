"""A restored or rolled-back ratchet state never encrypts twice under one key and nonce.

A border image of a burner, a backup restored, or a crash that loses the last save all
give a copy of the sending state that re-derives the *same* message key and header key
for its next message as the original did (the chain is deterministic: docs/protocol.md
§6.5). AES-GCM under a repeated (key, nonce) leaks the XOR of the plaintexts and the
GHASH key, so the defence is the nonce: each one is drawn fresh from the operating
system's generator, which is not part of the saved state (§3.6, threat model §5.13).

These tests record every (key, nonce) pair the ratchet seals under, across many copies of
one state each sending a different message at the same position, and check that the keys
do repeat (the danger is real) while the pairs never do (the defence holds).
"""

from __future__ import annotations

from collections import Counter

import pytest

from burnerkit.crypto import aead
from burnerkit.crypto.aead import AeadKey
from burnerkit.crypto.rng import SystemRandom
from burnerkit.protocol import ratchet as ratchet_module
from tests.helpers import ALICE, BOB, Party, SessionPair, restore, snapshot

COPIES = 16


class Seals:
    """Every (key, nonce) the ratchet sealed under, tagged ``header`` or ``body``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pairs: list[tuple[str, bytes, bytes]] = []
        seals = self.pairs
        real_seal = aead.seal

        class RecordingKey(AeadKey):
            """A header key that remembers its bytes (the real one keeps only a cipher context)."""

            def __init__(self, key: bytes) -> None:
                super().__init__(key)
                self.key = key

            def seal(self, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
                seals.append(("header", self.key, nonce))
                return super().seal(nonce, plaintext, associated_data)

        def seal(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
            seals.append(("body", key, nonce))
            return real_seal(key, nonce, plaintext, associated_data)

        monkeypatch.setattr(ratchet_module, "AeadKey", RecordingKey)
        monkeypatch.setattr(aead, "seal", seal)

    def of(self, kind: str) -> list[tuple[bytes, bytes]]:
        return [(key, nonce) for tag, key, nonce in self.pairs if tag == kind]


@pytest.mark.parametrize("who", [ALICE, BOB])
def test_rolled_back_state_never_reuses_a_nonce(monkeypatch: pytest.MonkeyPatch, who: Party) -> None:
    pair = SessionPair(rng=SystemRandom())  # what production draws from: os.urandom
    pair.round_trip()
    saved = snapshot(pair.sessions[who])
    seals = Seals(monkeypatch)

    # The original and every copy restored from the same saved state send the next message.
    for copy in range(COPIES):
        restore(saved, SystemRandom()).send(f"message {copy} from copy".encode(), now=pair.now)

    for kind in ("header", "body"):
        pairs = seals.of(kind)
        assert len(pairs) == COPIES
        # Same position, same state: every copy derived the same key ...
        assert len({key for key, _ in pairs}) == 1, kind
        # ... and yet no (key, nonce) pair was ever used twice.
        assert max(Counter(pairs).values()) == 1, kind
    # A copy's nonces are fresh even within one envelope: header and body never share one.
    nonces = [nonce for _, _, nonce in seals.pairs]
    assert len(set(nonces)) == len(nonces)


def test_a_saved_state_holds_no_generator_state() -> None:
    # The reason the test above holds: the nonce source is not in the bytes a copy takes.
    pair = SessionPair(rng=SystemRandom())
    pair.round_trip()
    saved = snapshot(pair.bob)
    one, two = restore(saved, SystemRandom()), restore(saved, SystemRandom())
    assert snapshot(one) == snapshot(two) == saved
    first, second = one.send(b"same text", now=pair.now), two.send(b"same text", now=pair.now)
    # Same state, same text, same time: only fresh randomness tells the envelopes apart.
    assert first != second
    assert snapshot(one) == snapshot(two)
