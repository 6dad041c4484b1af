"""Relay processes on loopback, for every test directory that starts real relays.

``relays`` starts relays of one test alone (to stop, restart or inspect them); ``shared_relay``
is one relay process per test worker for the tests that neither stop nor inspect it. Every
relay is stopped with SIGTERM at the end, and must exit 0 with no traceback in its output.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e import zygote
from tests.integration.harness import RelayProcess, Relays

# Connections opened together are spread over up to 2 s (docs/protocol.md §14.13a): the
# suites turn that off to stay fast, here and in every burner and relay process they start.
# Tests of the spread itself set it per Messenger.
os.environ.setdefault("BURNER_CONNECT_JITTER", "0")


@pytest.fixture(scope="session", autouse=True)
def _zygote() -> Iterator[None]:
    """Stop this worker's fork server for ``burner`` steps (tests/e2e/zygote.py) at the end."""
    yield
    zygote.shutdown()


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[Relays]:
    """Relays of this test alone: ``relays.start(*args)``."""
    (tmp_path / "relays").mkdir()
    launcher = Relays(tmp_path / "relays")
    yield launcher
    launcher.close()


@pytest.fixture(scope="session")
def shared_relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relays]:
    launcher = Relays(tmp_path_factory.mktemp("shared-relay"))
    yield launcher
    launcher.close()


@pytest.fixture(scope="session")
def shared_relay(shared_relays: Relays) -> RelayProcess:
    """One relay process (SQLite store) for the tests that do not stop or restart it."""
    return shared_relays.start()
