"""Relay connections that do not link: one per contact per relay, opened apart.

docs/protocol.md §14.13a, docs/threat-model.md (the network). A relay, or a tap on a
``ws://`` link, sees which queues each connection touches (SUB, SEND, ACK, DEL carry the
queue's id in the clear of the relay protocol). One connection that subscribes all of a
burner's queues tells the relay that those contacts are one person's. So every relay
operation of the Messenger names the *party* it works for (a contact, an invitation, a
pairing) and gets a connection of that party's own: :meth:`RelayConnections.lease`.

- Two operations for the same party and relay at the same time (the outbox sending to a
  contact while the inbox listens to it) share one connection; the last one closes it.
- A connection opened while another of ours to the same relay is open or opening waits a
  uniform pick in ``[0, jitter]`` seconds first, so connections opened together (the inbox
  of a burner with ten contacts) do not arrive in a burst that links them by timing; the
  first opens at once, since alone it links nothing. Each one's reconnects after a loss
  are jittered likewise (``ClientLoop``'s ``reconnect_jitter``), as SimpleX does.
- :attr:`ConnectionPolicy.shared` gives one connection per relay for every party (what
  the Messenger did before): for measuring the cost, and for devices short of sockets.

Neither hides the device's IP address, which every connection shares: that is Tor's job
(docs/threat-model.md says what still shows).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Final

from burnerkit.crypto.rng import Random
from burnerkit.errors import UsageError
from burnerkit.relay.client import RelayClient

__all__ = [
    "DEFAULT_JITTER",
    "ENV_CONNECTIONS",
    "ENV_JITTER",
    "ConnectionPolicy",
    "RelayConnections",
]

#: Seconds over which connections opened together are spread (SimpleX spreads its
#: subscriptions' connections over a few seconds in the same way).
DEFAULT_JITTER: Final = 2.0
#: ``per-contact`` (the default) or ``shared``.
ENV_CONNECTIONS: Final = "BURNER_RELAY_CONNECTIONS"
#: Seconds of jitter; ``0`` turns it off (the test suites do, to stay fast).
ENV_JITTER: Final = "BURNER_CONNECT_JITTER"
_MODES: Final = {"per-contact": False, "shared": True}

#: Makes one client: (url, seconds before its first connect, its link reports).
ClientFactory = Callable[[str, float, Callable[[bool], None]], RelayClient]
#: Told (relay url, up) as a face's status line wants it.
LinkWatcher = Callable[[str, bool], None]


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    """How the Messenger spreads its work over relay connections.

    Attributes:
        shared: one connection per relay for all parties, instead of one per party.
        jitter: largest delay, in seconds, before a connection opened alongside another.
    """

    shared: bool = False
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if not self.jitter >= 0:
            raise ValueError("jitter must be a non-negative number of seconds")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> ConnectionPolicy:
        """The policy ``$BURNER_RELAY_CONNECTIONS`` and ``$BURNER_CONNECT_JITTER`` set.

        Raises:
            UsageError: a value that is neither a mode nor a number of seconds.
        """
        env = os.environ if environ is None else environ
        mode = env.get(ENV_CONNECTIONS, "per-contact")
        if mode not in _MODES:
            raise UsageError(f"{ENV_CONNECTIONS} must be per-contact or shared: {mode!r}")
        text = env.get(ENV_JITTER, str(DEFAULT_JITTER))
        try:
            jitter = float(text)
        except ValueError:
            jitter = -1.0
        if not 0 <= jitter <= 60:
            raise UsageError(f"{ENV_JITTER} must be a number of seconds from 0 to 60: {text!r}")
        return cls(shared=_MODES[mode], jitter=jitter)


class _Lease:
    """One open client and how many operations hold it."""

    __slots__ = ("client", "up", "users")

    def __init__(self, client: RelayClient) -> None:
        self.client = client
        self.users = 0
        self.up = False


class RelayConnections:
    """The Messenger's relay clients, one per (relay, party); see the module docstring."""

    def __init__(
        self,
        make: ClientFactory,
        *,
        policy: ConnectionPolicy,
        rng: Random,
        watcher: Callable[[], LinkWatcher | None] = lambda: None,
    ) -> None:
        """Lease clients made by ``make``; ``watcher`` gives the current link watcher, if any."""
        self.policy = policy
        self._make = make
        self._rng = rng
        self._watcher = watcher
        self._open: dict[tuple[str, bytes], _Lease] = {}
        #: Connections (clients) opened so far: what `make bench` counts.
        self.opened = 0

    @contextlib.asynccontextmanager
    async def lease(self, url: str, party: bytes) -> AsyncIterator[RelayClient]:
        """A client to ``url`` for ``party`` alone (shared by its concurrent operations).

        ``party`` is an opaque key: a contact's id, an invitation's, or fresh random bytes
        for an operation that belongs to no one yet (a pairing, a queue being made).

        Raises:
            RelayUnavailableError: ``url`` is unusable (from ``make``).
        """
        key = (url, b"" if self.policy.shared else bytes(party))
        lease = self._open.get(key)
        if lease is None:
            delay = self._delay(url)
            holder: list[_Lease] = []
            client = self._make(url, delay, lambda up: self._report(url, holder, up))
            lease = _Lease(client)
            holder.append(lease)
            self._open[key] = lease
            self.opened += 1
        lease.users += 1
        try:
            if lease.users == 1:
                await lease.client.__aenter__()
            yield lease.client
        finally:
            await self._release(key, lease)

    async def _release(self, key: tuple[str, bytes], lease: _Lease) -> None:
        lease.users -= 1
        if lease.users:
            return
        if self._open.get(key) is lease:
            del self._open[key]
        lease.up = False
        await lease.client.aclose()

    def _delay(self, url: str) -> float:
        """No wait for the first connection to ``url``; a random one beside another."""
        if not self.policy.jitter or not any(u == url for u, _ in self._open):
            return 0.0
        fraction = int.from_bytes(self._rng.random_bytes(4), "big") / 2**32
        return self.policy.jitter * fraction

    def _report(self, url: str, holder: list[_Lease], up: bool) -> None:
        """One connection came up or went down: tell the watcher how ``url`` stands.

        The relay counts as up while any of our connections to it is up, so a face's
        status line does not flicker as one contact's connection comes and goes.
        """
        if holder:
            holder[0].up = up
        watcher = self._watcher()
        if watcher is None:
            return
        if up:
            watcher(url, True)
        elif not any(lease.up for (u, _), lease in self._open.items() if u == url):
            watcher(url, False)
