"""The Messenger's relay connections: one per party, opened apart (app/connections.py, §14.13a).

No relay here: the clients' transports never connect (the examiner's test,
tests/examiner/test_connections.py, runs the real thing). What is checked is which
client each operation gets, and the delay each client is told to wait before it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from burnerkit.app.connections import ConnectionPolicy, RelayConnections
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.crypto.passphrase import FAST_TEST_KDF
from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import RelayTimeoutError, UsageError
from burnerkit.relay.client import RelayClient
from burnerkit.relay.transport import Transport

RELAY, OTHER = "ws://127.0.0.1:7000", "ws://127.0.0.1:7001"


async def never_connects() -> Transport:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


class Made:
    """A client factory for the pool that writes down what it was asked for."""

    def __init__(self) -> None:
        self.delays: list[tuple[str, float]] = []
        self.reports: list[Callable[[bool], None]] = []
        self.connects = 0

    def __call__(self, url: str, open_after: float, on_link: Callable[[bool], None]) -> RelayClient:
        self.delays.append((url, open_after))
        self.reports.append(on_link)
        return RelayClient(url, open_after=open_after, transport_factory=never_connects)


def pool(
    policy: ConnectionPolicy, made: Made, watcher: Callable[[str, bool], None] | None = None
) -> RelayConnections:
    return RelayConnections(made, policy=policy, rng=DeterministicRandom(b"pool"), watcher=lambda: watcher)


def test_each_party_gets_a_connection_of_its_own_and_shares_it_with_itself() -> None:
    async def run() -> None:
        made = Made()
        connections = pool(ConnectionPolicy(jitter=2.0), made)
        async with connections.lease(RELAY, b"bob") as bob, connections.lease(RELAY, b"carol") as carol:
            assert bob is not carol
            async with connections.lease(RELAY, b"bob") as again:
                assert again is bob  # the outbox and the inbox of one contact share it
            async with connections.lease(OTHER, b"bob") as elsewhere:
                assert elsewhere is not bob
        assert connections.opened == 3

    asyncio.run(run())


def test_connections_opened_together_do_not_open_at_once() -> None:
    """Timing would link what the queue ids do not: beside another, each waits its own random delay."""

    async def run() -> None:
        made = Made()
        connections = pool(ConnectionPolicy(jitter=2.0), made)
        async with contextlib.AsyncExitStack() as stack:
            for url, party in [(RELAY, b"c%d" % i) for i in range(6)] + [(OTHER, b"x")]:
                await stack.enter_async_context(connections.lease(url, party))
        delays = [delay for url, delay in made.delays if url == RELAY]
        assert delays[0] == 0.0  # alone, the first links nothing: it opens at once
        assert all(0.0 < delay < 2.0 for delay in delays[1:])
        assert len(set(delays[1:])) == len(delays) - 1
        assert dict(made.delays)[OTHER] == 0.0  # the first to its relay
        async with connections.lease(RELAY, b"later"):
            pass
        assert made.delays[-1] == (RELAY, 0.0)  # nothing else open by then

    asyncio.run(run())


def test_shared_setting_gives_every_party_one_connection_per_relay() -> None:
    async def run() -> None:
        made = Made()
        connections = pool(ConnectionPolicy(shared=True), made)
        async with connections.lease(RELAY, b"bob") as bob, connections.lease(RELAY, b"carol") as carol:
            assert bob is carol
        assert made.delays == [(RELAY, 0.0)]

    asyncio.run(run())


def test_no_jitter_draws_no_randomness() -> None:
    async def run() -> None:
        made = Made()
        connections = RelayConnections(made, policy=ConnectionPolicy(jitter=0), rng=Exhausted())
        async with connections.lease(RELAY, b"a"), connections.lease(RELAY, b"b"):
            pass
        assert made.delays == [(RELAY, 0.0), (RELAY, 0.0)]

    asyncio.run(run())


def test_relay_counts_as_up_while_any_of_its_connections_is() -> None:
    async def run() -> None:
        made, told = Made(), []
        connections = pool(ConnectionPolicy(jitter=0), made, lambda url, up: told.append((url, up)))
        async with connections.lease(RELAY, b"bob"), connections.lease(RELAY, b"carol"):
            bob, carol = made.reports
            bob(True)
            carol(True)
            bob(False)  # carol's still up: the face's status line must not say "down"
            carol(False)
        assert told == [(RELAY, True), (RELAY, True), (RELAY, False)]

    asyncio.run(run())


def test_first_connect_waits_for_its_delay() -> None:
    async def run() -> None:
        connects = []

        async def factory() -> Transport:
            connects.append(1)
            return await never_connects()

        async with RelayClient(RELAY, open_after=3600, transport_factory=factory) as client:
            with pytest.raises(RelayTimeoutError):
                await client.ping(timeout=0.05)
        assert connects == []

    asyncio.run(run())


def test_negative_delays_are_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        RelayClient(RELAY, open_after=-1)
    with pytest.raises(ValueError, match="negative"):
        RelayClient(RELAY, reconnect_jitter=-0.5)
    with pytest.raises(ValueError):
        ConnectionPolicy(jitter=-1)


def test_policy_from_the_environment() -> None:
    assert ConnectionPolicy.from_environ({}) == ConnectionPolicy(shared=False, jitter=2.0)
    assert ConnectionPolicy.from_environ(
        {"BURNER_RELAY_CONNECTIONS": "shared", "BURNER_CONNECT_JITTER": "0"}
    ) == ConnectionPolicy(shared=True, jitter=0.0)
    with pytest.raises(UsageError, match="per-contact or shared"):
        ConnectionPolicy.from_environ({"BURNER_RELAY_CONNECTIONS": "one"})
    for bad in ("soon", "-1", "nan", "61"):
        with pytest.raises(UsageError, match="BURNER_CONNECT_JITTER"):
            ConnectionPolicy.from_environ({"BURNER_CONNECT_JITTER": bad})


class Exhausted:
    """An rng that must not be asked."""

    def random_bytes(self, n: int) -> bytes:
        raise AssertionError("randomness drawn")


def test_a_bad_policy_fails_the_relay_operation_not_the_unlock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BURNER_RELAY_CONNECTIONS", "one")
    messenger = Messenger.create(Home(tmp_path), "alice", "pass", relay_url=RELAY, kdf=FAST_TEST_KDF)
    with messenger:
        assert messenger.contacts() == []  # what needs no relay still works
        with pytest.raises(UsageError, match="per-contact or shared"):
            asyncio.run(messenger.invite("bob"))
