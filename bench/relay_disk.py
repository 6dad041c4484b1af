"""What a relay disk that does not link costs the store (issue 15 item 3, docs/protocol.md §14.8b).

The relay's SQLite store itself, in this process (:class:`~burnerkit.relay.server.store.sqlite.SqliteStore`,
as ``burner relay serve`` opens it), filled with :data:`QUEUES` queues:

- ``relay_store_new_queue_ms``: one NEW, committed (it writes the new row's 64 neighbours
  again, and each queue's ring of 256 send-id slots);
- ``relay_store_commit_ms``: one small committed write on the same store (a queue's sender
  key set: one row overwritten in place), what any NEW cost before beyond its own row;
- ``relay_store_new_queue_vs_commit``: the first over the second;
- ``relay_store_queue_kib``: the database's size over its queues (the ring is 4 KiB).

The relay's throughput with the store (checkpoints and the WAL's zeroing included) is
``relay_write_through_msgs_per_s`` of :mod:`bench.relay`. ``python -m bench.relay_disk``
measures only these and prints them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from burnerkit.relay.server.store.base import QueueRecord
from burnerkit.relay.server.store.sqlite import SqliteStore

__all__ = ["FIGURES", "METHOD", "QUEUES", "measure"]

FIGURES = (
    "relay_store_new_queue_ms",
    "relay_store_commit_ms",
    "relay_store_new_queue_vs_commit",
    "relay_store_queue_kib",
)
#: Queues in the store before the timed NEWs: more than one neighbourhood (65 rows).
QUEUES = 1_000
QUICK_SAMPLES = 30
FULL_SAMPLES = 200
METHOD = (
    "`relay_store_new_queue_ms` is the median of {samples} NEWs, each committed alone, on the "
    "relay's SQLite store holding {queues:,} queues (a NEW writes its 64 neighbours again, "
    "docs/protocol.md §14.8b); `relay_store_commit_ms` the median of as many small committed "
    "writes on the same store (a sender key set, in place), what a NEW cost before beyond its "
    "own row; `relay_store_queue_kib` the database's size over its queues. Run alone with "
    "`python -m bench.relay_disk`."
)


def _queue() -> QueueRecord:
    return QueueRecord(os.urandom(24), os.urandom(24), os.urandom(32), os.urandom(32))


async def _measure(samples: int, directory: Path) -> dict[str, float]:
    path = directory / "relay.sqlite"
    store = await SqliteStore.open(path)
    try:
        made = [_queue() for _ in range(QUEUES)]
        await asyncio.gather(*(store.create_queue(queue) for queue in made))  # group commits
        news: list[float] = []
        commits: list[float] = []
        for n in range(samples):
            start = time.perf_counter()
            await store.create_queue(_queue())
            news.append(time.perf_counter() - start)
            start = time.perf_counter()
            await store.lock_sender_key(made[n].recipient_id, os.urandom(32))
            commits.append(time.perf_counter() - start)
    finally:
        await store.close()
    new_ms = statistics.median(news) * 1000
    commit_ms = statistics.median(commits) * 1000
    return {
        "relay_store_new_queue_ms": new_ms,
        "relay_store_commit_ms": commit_ms,
        "relay_store_new_queue_vs_commit": new_ms / commit_ms,
        "relay_store_queue_kib": path.stat().st_size / 1024 / (QUEUES + samples),
    }


def measure(quick: bool) -> dict[str, float]:
    """The four figures (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="bench-relay-disk-") as tmp:
        return asyncio.run(_measure(QUICK_SAMPLES if quick else FULL_SAMPLES, Path(tmp)))


def main() -> int:
    for name, value in measure("--quick" in sys.argv).items():
        print(f"{name:36} {value:10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
