"""Fixtures of the end-to-end tests: the shared relay (tests/conftest.py) and people with their own homes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.helpers import Person
from tests.integration.harness import RelayProcess


@pytest.fixture
def relay(shared_relay: RelayProcess) -> RelayProcess:
    assert shared_relay.running, "an earlier test stopped the shared relay"
    return shared_relay


@pytest.fixture
def people(tmp_path: Path) -> Callable[..., list[Person]]:
    """``alice, bob = people("alice", "bob")``: each with a home under this test's tmp_path."""
    root = tmp_path / "people"

    def make(*names: str) -> list[Person]:
        return [Person(root, name) for name in names]

    return make
