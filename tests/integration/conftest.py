"""Fixtures of the integration tests: relay processes, stopped and checked after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import Relays


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[Relays]:
    """Start relays with ``relays.start(*args)``; each is stopped (SIGTERM, exit 0) and its
    stdout and stderr checked for tracebacks and non-JSON lines when the test ends."""
    launcher = Relays(tmp_path)
    yield launcher
    launcher.close()
