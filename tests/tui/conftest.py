"""Fixtures of the chat UI tests: one relay process per test worker, burners on fixed clocks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import RelayProcess, Relays


@pytest.fixture(scope="session")
def tui_relays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relays]:
    launcher = Relays(tmp_path_factory.mktemp("tui-relay"))
    yield launcher
    launcher.close()  # SIGTERM, exit 0, no traceback in its output


@pytest.fixture(scope="session")
def shared_tui_relay(tui_relays: Relays) -> RelayProcess:
    """A real relay process (SQLite store) shared by the tests that do not stop it."""
    return tui_relays.start()


@pytest.fixture
def url(shared_tui_relay: RelayProcess) -> str:
    assert shared_tui_relay.running, "an earlier test stopped the shared relay"
    return shared_tui_relay.url


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[Relays]:
    """Relays of this test alone (to stop and restart): ``relays.start()``."""
    (tmp_path / "relays").mkdir()
    launcher = Relays(tmp_path / "relays")
    yield launcher
    launcher.close()
