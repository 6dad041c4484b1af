"""A relay that goes away: the Messenger's error names it and says why (docs/protocol.md §14.13)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.errors import RelayUnavailableError
from tests.integration.harness import Relays

PASS = "correct horse battery"


def test_inbox_with_its_relay_down_names_the_relay_and_the_cause_at_once(
    tmp_path: Path, relays: Relays
) -> None:
    relay = relays.start()
    with Messenger.create(
        Home(tmp_path), "alice", PASS, relay_url=relay.url, kdf=FAST_TEST_KDF, relay_timeout=60.0
    ) as alice:
        asyncio.run(alice.invite("bob"))  # a queue to listen on
        relay.stop()

        async def inbox() -> None:
            # Far inside the 60 s relay timeout: a first connect that is refused is not retried.
            async with asyncio.timeout(30):
                await alice.receive()

        with pytest.raises(RelayUnavailableError) as excinfo:
            asyncio.run(inbox())
    assert str(excinfo.value) == f"relay unreachable: {relay.url} (connection refused)"
    assert (excinfo.value.url, excinfo.value.cause) == (relay.url, "connection refused")
