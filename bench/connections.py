"""What a connection per contact costs (issue 15 item 4, docs/protocol.md §14.13a).

One relay process (``burner relay serve``, SQLite, as deployed; :func:`bench.relay._relay`)
and, in this process, a burner with :data:`CONTACTS` contacts, all made through the real
:class:`~burnerkit.app.messenger.Messenger` (fast test KDF: the vault's cost is not what is
measured here). Each contact leaves one message for the burner; then the burner takes them
in as ``burner chat`` does (``Messenger.follow``), once with one shared connection, once
with a connection per contact (the default, with its default jitter) and once without the
jitter, in turn, each
:data:`QUICK_ROUNDS` or :data:`FULL_ROUNDS` times; each figure is its median.

Figures, ``<mode>`` ``shared``, ``per_contact`` or ``per_contact_no_jitter`` (what the
connections cost apart from the jitter):

- ``conn_<mode>_connections_held``: relay connections the burner opened to take the messages in.
- ``conn_<mode>_first_delivery_ms``: from the start of ``follow`` to the first message stored.
- ``conn_<mode>_all_delivered_ms``: to the last one (per contact: the jitter's spread shows here).
- ``conn_<mode>_relay_kib``: growth of the relay's resident set while the burner holds its
  subscriptions, over the relay's before the burner connected.
- ``conn_first_delivery_vs_shared``: the per-contact first delivery over the shared one.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from burnerkit.app.connections import ConnectionPolicy
from burnerkit.app.home import Home
from burnerkit.app.messenger import Messenger
from burnerkit.app.views import InboxResult
from burnerkit.crypto.passphrase import FAST_TEST_KDF

from . import relay

__all__ = ["CONTACTS", "FIGURES", "METHOD", "measure", "rounds_text"]

CONTACTS: Final = 10
QUICK_ROUNDS: Final = 1
FULL_ROUNDS: Final = 3
MODES: Final = {
    "shared": ConnectionPolicy(shared=True, jitter=0.0),
    "per_contact": ConnectionPolicy(),
    # The connections' own cost, apart from the jitter's.
    "per_contact_no_jitter": ConnectionPolicy(jitter=0.0),
}
_PASS: Final = "bench passphrase"
#: Generous: a round ends as soon as every message is in.
_LIMIT: Final = 60.0

_NAMES: Final = ("connections_held", "first_delivery_ms", "all_delivered_ms", "relay_kib")
FIGURES: Final = (
    *(f"conn_{mode}_{name}" for mode in MODES for name in _NAMES),
    "conn_first_delivery_vs_shared",
)

METHOD = (
    "`conn_*`: a relay process (SQLite, as deployed) and, in the bench's process, a burner with "
    f"{CONTACTS} contacts made through the Messenger; each contact leaves one message, then the "
    "burner takes them in as `burner chat` does (`follow`), once over one shared connection "
    "(`BURNER_RELAY_CONNECTIONS=shared`), once over a connection per contact (the default, "
    "with its default 0-2 s jitter) and once so without the jitter (`_no_jitter`), in turn "
    "({rounds}); each figure is the median. `connections_held`: "
    "connections the burner opened; `first_delivery_ms`, `all_delivered_ms`: from the start of `follow` to "
    "the first and the last message stored; `relay_kib`: growth of the relay's resident set while "
    "the subscriptions are held."
)


def rounds_text(quick: bool) -> str:
    """How many rounds, in words, for :data:`METHOD`."""
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    return "one round" if rounds == 1 else f"{rounds} rounds"


def measure(quick: bool) -> dict[str, float]:
    """The ``conn_*`` figures (:data:`FIGURES`)."""
    return asyncio.run(_measure(QUICK_ROUNDS if quick else FULL_ROUNDS))


async def _measure(rounds: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="burner-bench-conn-") as tmp:
        async with relay._relay() as server:
            url = f"ws://127.0.0.1:{server.port}"
            burner, contacts = await _paired(Path(tmp), url)
            try:
                for _ in range(rounds):
                    for mode, policy in MODES.items():
                        for name, value in (await _round(burner, contacts, policy, server.pid)).items():
                            samples.setdefault(f"conn_{mode}_{name}", []).append(value)
            finally:
                for person in (burner, *contacts):
                    person.close()
    figures = {name: statistics.median(values) for name, values in samples.items()}
    figures["conn_first_delivery_vs_shared"] = (
        figures["conn_per_contact_first_delivery_ms"] / figures["conn_shared_first_delivery_ms"]
    )
    return figures


async def _paired(root: Path, url: str) -> tuple[Messenger, list[Messenger]]:
    def mint(name: str) -> Messenger:
        return Messenger.create(Home(root / name), name, _PASS, relay_url=url, kdf=FAST_TEST_KDF)

    burner = mint("burner")
    # Setting up is not what is measured: no jitter while pairing.
    burner.connections.policy = ConnectionPolicy(jitter=0.0)
    contacts = [mint(f"c{i}") for i in range(CONTACTS)]
    for index, contact in enumerate(contacts):
        contact.connections.policy = ConnectionPolicy(jitter=0.0)
        view = await burner.invite(f"c{index}", short=False)
        await contact.accept(view.long_link, "burner")
    got = await burner.receive()
    if len(got.new_contacts) != CONTACTS:
        raise RuntimeError(f"pairing made {len(got.new_contacts)} contacts, not {CONTACTS}")
    return burner, contacts


async def _round(
    burner: Messenger, contacts: list[Messenger], policy: ConnectionPolicy, relay_pid: int
) -> dict[str, float]:
    for contact in contacts:
        await contact.send("burner", "one message")
    burner.connections.policy = policy
    await asyncio.sleep(0.2)
    before_kib = relay._rss_kib(relay_pid)
    opened = burner.connections.opened
    arrivals: list[float] = []
    start = time.perf_counter()

    def heard(news: InboxResult) -> None:
        arrivals.extend(time.perf_counter() for _ in news.messages)

    follow = asyncio.create_task(burner.follow(heard))
    try:
        await _until(lambda: len(arrivals) >= CONTACTS, follow)
        held_kib = relay._rss_kib(relay_pid)
    finally:
        follow.cancel()
        await asyncio.gather(follow, return_exceptions=True)
    return {
        "connections_held": float(burner.connections.opened - opened),
        "first_delivery_ms": (arrivals[0] - start) * 1000,
        "all_delivered_ms": (arrivals[CONTACTS - 1] - start) * 1000,
        "relay_kib": float(held_kib - before_kib),
    }


async def _until(done: Callable[[], bool], follow: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + _LIMIT
    while not done():
        if follow.done():
            follow.result()  # its error, if any
            raise RuntimeError("follow ended before every message came")
        if time.monotonic() > deadline:
            raise RuntimeError("the messages did not all come in time")
        await asyncio.sleep(0.005)


def main() -> int:
    """Print the figures (``python -m bench.connections``; ``BENCH_QUICK=1`` for one round)."""
    import os

    for name, value in measure(os.environ.get("BENCH_QUICK") == "1").items():
        print(f"{name:40} {value:10.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
