"""The vault's unlock and key rotation (issue 15): what forward secrecy at rest costs.

``vault_argon2_ms`` is the default Argon2id derivation alone: before key epochs an unlock was
that and an SQLite open. ``vault_unlock_extra_ms`` is everything else an unlock that reads now
costs (``Vault.open`` and a first ``items``, which opens every record once to build the kind
index) on a vault of :data:`RECORDS` records, timed with the test KDF so that Argon2's noise
stays out of it; ``vault_unlock_ms`` is their sum and ``vault_unlock_vs_argon2`` the sum over
the derivation (the target: at most 1.10). ``vault_rotate_ms`` is the first write transaction
after an unlock (one record put): a new key into the spare slot, every record re-sealed,
COMMIT, the old slot overwritten and the journal zeroed, each with its fsync.
``python -m bench.vault_epochs`` measures only these and prints them.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from burnerkit.crypto.passphrase import DEFAULT_KDF, FAST_TEST_KDF, derive_key
from burnerkit.crypto.rng import SystemRandom
from burnerkit.vault import Vault

__all__ = ["FIGURES", "FULL_ROUNDS", "METHOD", "QUICK_ROUNDS", "RECORDS", "measure"]

FIGURES = (
    "vault_argon2_ms",
    "vault_unlock_extra_ms",
    "vault_unlock_ms",
    "vault_unlock_vs_argon2",
    "vault_rotate_ms",
)
#: A burner after a trip: contacts, sessions and a few hundred messages.
RECORDS = 500
QUICK_ROUNDS = 3
FULL_ROUNDS = 9
METHOD = (
    "`vault_unlock_vs_argon2` is an unlock's cost over what an unlock cost before key epochs: the "
    "default Argon2id derivation alone (`vault_argon2_ms`, median of {quick} rounds in quick mode, "
    "{full} in full) plus everything else an unlock that reads now does (`vault_unlock_extra_ms`: "
    "`Vault.open` and a first `items`, which opens each of {records} records once for the kind "
    "index, timed with the test KDF so that Argon2's noise stays out), over the derivation. "
    "`vault_rotate_ms` is the median first write transaction of an unlock on that vault: a new key, "
    "every record re-sealed, the old key's slot overwritten and the journal zeroed "
    "(docs/protocol.md §15.11). Run alone with `python -m bench.vault_epochs`."
)
_PASSPHRASE = "a benchmark passphrase"


def _filled(directory: Path) -> None:
    with Vault.create(directory, _PASSPHRASE, rng=SystemRandom(), kdf=FAST_TEST_KDF) as vault:
        with vault.transaction() as tx:
            tx.put("profile", b"", os.urandom(120))
            for n in range(20):
                tx.put("contact", n.to_bytes(2, "big"), os.urandom(1500))
        with vault.transaction() as tx:
            for n in range(RECORDS - 21):
                tx.put("message", n.to_bytes(4, "big"), os.urandom(300))


def measure(quick: bool) -> dict[str, float]:
    """The five figures, from :data:`QUICK_ROUNDS` or :data:`FULL_ROUNDS` rounds."""
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    salt = os.urandom(16)
    derivations = []
    for _ in range(rounds):
        start = time.perf_counter()
        derive_key(_PASSPHRASE, salt, DEFAULT_KDF)
        derivations.append(time.perf_counter() - start)
    extras: list[float] = []
    rotations: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-vault-") as tmp:
        directory = Path(tmp) / "vault"
        _filled(directory)
        for n in range(rounds + 1):
            start = time.perf_counter()
            vault = Vault.open(directory, _PASSPHRASE)
            assert len(vault.items("message")) >= RECORDS - 21
            unlocked = time.perf_counter()
            with vault.transaction() as tx:
                tx.put("message", b"bench", os.urandom(300))
            rotated = time.perf_counter()
            vault.close()
            if n:  # the first round warms the page cache
                extras.append(unlocked - start)
                rotations.append(rotated - unlocked)
    argon2 = statistics.median(derivations)
    extra = statistics.median(extras)
    return {
        "vault_argon2_ms": argon2 * 1000,
        "vault_unlock_extra_ms": extra * 1000,
        "vault_unlock_ms": (argon2 + extra) * 1000,
        "vault_unlock_vs_argon2": (argon2 + extra) / argon2,
        "vault_rotate_ms": statistics.median(rotations) * 1000,
    }


def main() -> int:
    """Measure only these and print them."""
    for name, value in measure(bool(os.environ.get("BENCH_QUICK"))).items():
        print(f"{name}: {value:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
