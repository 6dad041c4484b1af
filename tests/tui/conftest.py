"""Fixtures of the chat UI tests: the shared relay (tests/conftest.py) by its URL."""

from __future__ import annotations

import pytest

from tests.integration.harness import RelayProcess


@pytest.fixture
def url(shared_relay: RelayProcess) -> str:
    assert shared_relay.running, "an earlier test stopped the shared relay"
    return shared_relay.url
