"""Fixtures of the end-to-end tests: relay processes on loopback and people with their own homes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import Person
from tests.integration.harness import RelayProcess, Relays


@pytest.fixture(scope="session")
def shared_relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relays]:
    launcher = Relays(tmp_path_factory.mktemp("e2e-relay"))
    yield launcher
    launcher.close()  # SIGTERM, exit 0, no traceback in its output


@pytest.fixture(scope="session")
def shared_relay(shared_relays: Relays) -> RelayProcess:
    """One relay process (SQLite store) for the tests that do not stop or restart it."""
    return shared_relays.start()


@pytest.fixture
def relay(shared_relay: RelayProcess) -> RelayProcess:
    assert shared_relay.running, "an earlier test stopped the shared relay"
    return shared_relay


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[Relays]:
    """Relays of this test alone (to stop, restart or inspect): ``relays.start()``."""
    (tmp_path / "relays").mkdir()
    launcher = Relays(tmp_path / "relays")
    yield launcher
    launcher.close()


@pytest.fixture
def people(tmp_path: Path) -> Callable[..., list[Person]]:
    """``alice, bob = people("alice", "bob")``: each with a home under this test's tmp_path."""
    root = tmp_path / "people"

    def make(*names: str) -> list[Person]:
        return [Person(root, name) for name in names]

    return make
