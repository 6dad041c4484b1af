"""The relay server's settings, one frozen value (docs/protocol.md §14.2, §14.8)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

from burnerkit.relay.protocol import MAILBOX_TTL, MESSAGE_TTL, QUEUE_QUOTA

__all__ = ["DEFAULT_STORE", "MEMORY_STORE", "RelayConfig"]

#: The SQLite file ``burner relay serve`` uses when no ``--store`` is given (relative to the cwd).
DEFAULT_STORE: Final = "burner-relay.sqlite"
#: The ``store`` value that selects the in-memory store (nothing survives a restart).
MEMORY_STORE: Final = ":memory:"


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """Everything ``burner relay serve`` can be told.

    Raises:
        ValueError: at construction, if a value is out of range or only one of
            ``tls_cert`` and ``tls_key`` is given.
    """

    host: str = "127.0.0.1"
    #: The name clients use to reach the relay, for the URL it prints (``--host 0.0.0.0``
    #: is an interface, not a name); ``host`` when None.
    public_host: str | None = None
    #: TCP port of the WebSocket listener; 0 picks a free one (see ``RelayServer.bound_port``).
    port: int = 7000
    #: Path of the SQLite file, or :data:`MEMORY_STORE`.
    store: str = DEFAULT_STORE
    #: PEM certificate chain and key; both or neither. With them the relay speaks ``wss://`` (TLS 1.3).
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Port of the Prometheus text endpoint (``GET /metrics``); None turns it off.
    metrics_port: int | None = None
    #: Interface of the metrics endpoint. Loopback by default: even aggregate counters, read
    #: every second, say when messages move, so we do not hand them to the whole network.
    metrics_host: str = "127.0.0.1"
    #: Messages a queue holds before senders get ``ERR QUOTA``.
    quota: int = QUEUE_QUOTA
    #: Seconds a message waits for its recipient before the sweeper deletes it.
    ttl: int = MESSAGE_TTL
    #: Seconds between two sweeps.
    sweep_interval: float = 3600.0
    #: Commands per second one connection may send on average (token bucket refill rate).
    rate_limit: float = 500.0
    #: Commands one connection may send in a burst (token bucket size).
    rate_burst: int = 1000
    #: Open connections beyond which new ones are refused with HTTP 503.
    max_connections: int = 10_000
    #: Seconds a pairing mailbox lives (§14.12).
    mailbox_ttl: float = MAILBOX_TTL
    #: Pairing mailboxes the relay holds at once; beyond it ``MB_ALLOC`` gets ``ERR QUOTA``.
    max_mailboxes: int = 10_000
    #: Mailbox sides one connection may hold at once.
    mailboxes_per_connection: int = 4
    #: Seconds the SQLite store may hold back the write of a message whose recipient is
    #: online (§14.8 Write-behind): acknowledged within them, it is never written. 0 writes
    #: every message before it is delivered. A quarter of a second covers the round trip
    #: of a recipient on a slow mobile link or Tor, and is all a sender's OK may wait for it.
    write_behind: float = 0.25

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65_535:
            raise ValueError("port must be between 0 and 65535")
        if self.metrics_port is not None and not 0 <= self.metrics_port <= 65_535:
            raise ValueError("metrics port must be between 0 and 65535")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both a TLS certificate and a TLS key, or neither")
        if not self.store:
            raise ValueError("store must not be empty")
        if self.public_host is not None and not self.public_host:
            raise ValueError("public host must not be empty")
        if self.quota < 1:
            raise ValueError("quota must be at least 1")
        if self.ttl < 1:
            raise ValueError("ttl must be at least 1 second")
        if not 0 < self.sweep_interval < math.inf:
            raise ValueError("sweep interval must be a positive number")
        if not 0 < self.rate_limit < math.inf:
            raise ValueError("rate limit must be a positive number")
        if self.rate_burst < 1:
            raise ValueError("rate burst must be at least 1")
        if self.max_connections < 1:
            raise ValueError("max connections must be at least 1")
        if not 0 < self.mailbox_ttl < math.inf:
            raise ValueError("mailbox ttl must be a positive number")
        if not 1 <= self.max_mailboxes <= 65_535:
            raise ValueError("max mailboxes must be between 1 and 65535")
        if self.mailboxes_per_connection < 1:
            raise ValueError("mailboxes per connection must be at least 1")
        if not 0 <= self.write_behind <= 5:
            raise ValueError("write-behind must be between 0 and 5 seconds")

    @property
    def tls(self) -> bool:
        """Whether the relay serves ``wss://``."""
        return self.tls_cert is not None
