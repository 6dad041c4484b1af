"""Argon2id: from a passphrase to a 32-byte key (docs/protocol.md §15.3).

The one place burnerkit calls ``argon2-cffi``. The parameters travel in the vault header, so a
file written with today's defaults still opens after the defaults rise. Because those
parameters are read from a file an attacker may have edited, :class:`KdfParams` refuses
anything outside a band *before* Argon2 runs: a header claiming 4 TiB of memory fails at once
with ``ValueError`` instead of exhausting the machine.

Parameters below the floor of :data:`DEFAULT_KDF` are allowed (tests use
:data:`FAST_TEST_KDF`): weakening the parameters in a header does not weaken the vault, since
the wrapped key then simply fails to open.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

from argon2.exceptions import HashingError
from argon2.low_level import Type, hash_secret_raw

__all__ = [
    "DEFAULT_KDF",
    "FAST_TEST_KDF",
    "KEY_SIZE",
    "MAX_ITERATIONS",
    "MAX_MEMORY_KIB",
    "MAX_PARALLELISM",
    "MAX_WORK_KIB",
    "SALT_SIZE",
    "KdfParams",
    "derive_key",
]

KEY_SIZE: Final = 32
SALT_SIZE: Final = 16

#: 1 GiB: four times the default; more than that is a tampered header or a mistake.
MAX_MEMORY_KIB: Final = 1 << 20
MAX_ITERATIONS: Final = 16
MAX_PARALLELISM: Final = 16
#: memory * iterations, bounded too, so a tampered header costs at most a few seconds
#: (about 5x the default's work) before it fails to unlock.
MAX_WORK_KIB: Final = 4 << 20


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters (RFC 9106 §3.1 names them m, t and p).

    Attributes:
        memory_kib: memory in KiB (m); at least ``8 * parallelism``, as Argon2 requires.
        iterations: passes over the memory (t), at least 1.
        parallelism: lanes (p), at least 1; also the number of threads argon2-cffi uses.

    Raises:
        ValueError: if a value is outside the band Argon2 accepts or above our ceilings
            (:data:`MAX_MEMORY_KIB`, :data:`MAX_ITERATIONS`, :data:`MAX_PARALLELISM`,
            :data:`MAX_WORK_KIB`).
    """

    memory_kib: int
    iterations: int
    parallelism: int

    def __post_init__(self) -> None:
        for name in ("memory_kib", "iterations", "parallelism"):
            value = getattr(self, name)
            if type(value) is not int:
                raise TypeError(f"{name} must be an int")
        if not 1 <= self.parallelism <= MAX_PARALLELISM:
            raise ValueError(f"parallelism must be between 1 and {MAX_PARALLELISM}")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise ValueError(f"iterations must be between 1 and {MAX_ITERATIONS}")
        if not 8 * self.parallelism <= self.memory_kib <= MAX_MEMORY_KIB:
            raise ValueError(f"memory_kib must be between 8 * parallelism and {MAX_MEMORY_KIB}")
        if self.memory_kib * self.iterations > MAX_WORK_KIB:
            raise ValueError(f"memory_kib * iterations must not exceed {MAX_WORK_KIB}")


#: 256 MiB, 3 passes, 2 lanes. RFC 9106's second recommendation is 64 MiB, t = 3; we spend four
#: times the memory because a seized laptop gives its captor unlimited offline guesses and an
#: unlock is rare (once per command, once per chat session).
DEFAULT_KDF: Final = KdfParams(memory_kib=256 * 1024, iterations=3, parallelism=2)
#: The cheapest parameters Argon2 accepts (8 KiB, one pass). Tests and vectors only: a vault
#: created with them falls to a passphrase guesser at millions of guesses per second.
FAST_TEST_KDF: Final = KdfParams(memory_kib=8, iterations=1, parallelism=1)


def derive_key(passphrase: str, salt: bytes, params: KdfParams) -> bytes:
    """Argon2id (version 0x13) of a passphrase: 32 bytes.

    The passphrase is NFC-normalised and UTF-8 encoded first, so the same words typed on two
    keyboards (a precomposed "é" or "e" plus a combining accent) give the same key.

    Args:
        passphrase: the user's passphrase; the empty string is allowed here (policy is the
            caller's).
        salt: 16 random bytes, stored next to the result's use.
        params: the cost parameters.

    Returns:
        The 32-byte key.

    Raises:
        TypeError: if ``passphrase`` is not a ``str``.
        ValueError: if ``salt`` is not 16 bytes or the passphrase cannot be encoded.
    """
    if not isinstance(passphrase, str):
        raise TypeError("passphrase must be a str")
    if len(salt) != SALT_SIZE:
        raise ValueError(f"salt must be {SALT_SIZE} bytes")
    try:
        secret = unicodedata.normalize("NFC", passphrase).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate; `from None`, as its message would echo it
        raise ValueError("passphrase is not valid unicode") from None
    try:
        return hash_secret_raw(
            secret,
            bytes(salt),
            time_cost=params.iterations,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            hash_len=KEY_SIZE,
            type=Type.ID,
        )
    except HashingError as exc:  # e.g. the memory could not be allocated
        raise ValueError("argon2id failed") from exc
