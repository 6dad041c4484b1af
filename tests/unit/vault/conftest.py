"""Fixtures for the vault tests: a fresh directory and a fast vault in it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.vault import FAST_TEST_KDF, Vault

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def vault_dir(tmp_path: Path) -> Path:
    return tmp_path / "burner-lisbon"


@pytest.fixture
def vault(vault_dir: Path) -> Iterator[Vault]:
    v = Vault.create(vault_dir, PASSPHRASE, rng=DeterministicRandom(b"vault tests"), kdf=FAST_TEST_KDF)
    yield v
    v.close()
