"""Randomness as an injectable seam.

The protocol core never calls ``os.urandom`` itself: every function that needs
randomness takes a :class:`Random`. Production code passes :class:`SystemRandom`;
test vectors pass :class:`DeterministicRandom` so a transcript can be reproduced
(docs/protocol.md §3.7).
"""

from __future__ import annotations

import os
from typing import Protocol

from cryptography.hazmat.primitives import hashes

from .kdf import LABEL_TEST_RNG

__all__ = ["DeterministicRandom", "Random", "SystemRandom"]


class Random(Protocol):
    """A source of random bytes."""

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` random bytes."""
        ...


class SystemRandom:
    """The operating system's CSPRNG; the only randomness production code uses."""

    __slots__ = ()

    def random_bytes(self, n: int) -> bytes:
        """Return ``n`` bytes from ``os.urandom``."""
        return os.urandom(n)

    def __repr__(self) -> str:
        return "SystemRandom()"


class DeterministicRandom:
    """SHA-256 in counter mode over a seed: reproducible, for test vectors only.

    Never use it for a real burner: anyone who knows the seed knows every key.
    """

    __slots__ = ("_buffer", "_counter", "_seed")

    def __init__(self, seed: bytes) -> None:
        if not seed:
            raise ValueError("seed must not be empty")
        self._seed = bytes(seed)
        self._counter = 0
        self._buffer = b""

    def random_bytes(self, n: int) -> bytes:
        """Return the next ``n`` bytes of the stream."""
        if n < 0:
            raise ValueError("n must not be negative")
        out = bytearray(self._buffer)
        while len(out) < n:
            digest = hashes.Hash(hashes.SHA256())
            digest.update(LABEL_TEST_RNG)
            digest.update(self._seed)
            digest.update(self._counter.to_bytes(8, "big"))
            out += digest.finalize()
            self._counter += 1
        self._buffer = bytes(out[n:])
        return bytes(out[:n])

    def __repr__(self) -> str:
        return "DeterministicRandom(<seed>)"
