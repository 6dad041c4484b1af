"""Write-behind: puts with ``on_accepted`` that ``WriteBehind`` holds back from a SQLite store.

Each test states one promise of ``store/writebehind.py`` and ``store/base.py``: a held
message is accepted before it is durable, a delete that comes first keeps its body off
the disk for good, everything else sees it as stored, and its put returns only once it
is safe. A queue is held once a read found it empty (``open_store`` reads each queue, as
the relay does when its recipient subscribes). The last test runs random mixes of
operations against the memory store (the reference) and a write-behind SQLite store.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import MessageStore, PutResult, QueueRecord, StoredMessage
from burnerkit.relay.server.store.memory import MemoryStore
from burnerkit.relay.server.store.sqlite import SqliteStore
from burnerkit.relay.server.store.writebehind import MAX_HELD, WriteBehind
from tests.contract.test_message_store import (
    BIG_QUOTA,
    NOW,
    disk_bytes,
    drain,
    new_message,
    new_queue,
    new_send_id,
)

#: Longer than any test: a message deferred this long is written only when something
#: else needs it in the file (or on close).
LONG = 60.0
#: A real, short deferral.
SHORT = 0.05
WAIT = 5.0  # seconds an awaited event may take before the test fails


class Pending:
    """A put with ``on_accepted``, running as a task."""

    def __init__(
        self,
        store: MessageStore,
        queue: QueueRecord,
        message: StoredMessage,
        *,
        send_id: bytes | None = None,
        quota: int = BIG_QUOTA,
    ) -> None:
        self.message = message
        self.send_id = send_id or new_send_id()
        self.accepted: list[PutResult] = []
        self.event = asyncio.Event()
        self.task = asyncio.ensure_future(
            store.put_message(
                queue.sender_id, self.send_id, message, quota=quota, on_accepted=self._on_accepted
            )
        )

    def _on_accepted(self, result: PutResult) -> None:
        # The put is not answered yet when the store accepts it.
        assert not self.task.done()
        self.accepted.append(result)
        self.event.set()

    async def accepted_now(self) -> None:
        """Wait for ``on_accepted`` (held or written: the put may have returned too)."""
        await asyncio.wait_for(self.event.wait(), WAIT)

    async def deferred(self) -> PutResult:
        """Wait for ``on_accepted``; the put is still waiting for its write (or delete)."""
        await asyncio.wait_for(self.event.wait(), WAIT)
        await asyncio.sleep(0)  # had the future resolved in the same wake-up, the task ran now
        assert not self.task.done()
        (result,) = self.accepted
        return result

    async def result(self) -> PutResult:
        return await asyncio.wait_for(self.task, WAIT)


async def decided(store: MessageStore) -> None:
    """Wait until every put handed to ``store`` so far is decided: accepted, answered, or held.

    No timeout: the SQLite store gets an operation queued behind every earlier one, and
    once the writer answers it, it has answered or accepted what it could of theirs.
    """
    for _ in range(3):
        await asyncio.sleep(0)
    if not isinstance(store, WriteBehind):
        if isinstance(store, SqliteStore):
            await store._call(lambda _conn: None)
            for _ in range(3):
                await asyncio.sleep(0)
        return
    # A put that waits for its queue's release is handed over a few turns after it ends:
    # rounds until one sees no release and follows one that saw none either.
    quiet = 0
    while quiet < 2:
        releases = list(store._releasing.values())
        await asyncio.gather(*(asyncio.shield(r) for r in releases))
        if isinstance(store.inner, SqliteStore):
            await store.inner._call(lambda _conn: None)
        for _ in range(3):
            await asyncio.sleep(0)
        quiet = 0 if releases or store._releasing else quiet + 1


def every_file(directory: Path) -> bytes:
    """The bytes of every file the store left in its directory (db, -wal, -shm, anything)."""
    return b"".join(path.read_bytes() for path in sorted(directory.iterdir()) if path.is_file())


def committed_body(db_path: Path, msg_id: bytes) -> bytes | None:
    """The body another connection reads: what is committed."""
    reader = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        row = reader.execute("SELECT body FROM messages WHERE msg_id = ?", (msg_id,)).fetchone()
    finally:
        reader.close()
    return None if row is None else bytes(row[0])


def canary(label: str) -> bytes:
    return b"CANARY-" + label.encode() + b"-" + os.urandom(8).hex().encode()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "store" / "relay.sqlite"


@pytest.fixture(autouse=True)
def _store_dir(db_path: Path) -> None:
    db_path.parent.mkdir()


async def open_store(
    db_path: Path, defer: float = LONG, *, timeout: float = 5.0
) -> tuple[WriteBehind, QueueRecord]:
    store = WriteBehind(await SqliteStore.open(db_path, timeout=timeout), defer_seconds=defer)
    queue = await new_held_queue(store)
    return store, queue


async def new_held_queue(store: WriteBehind) -> QueueRecord:
    """A new queue, read empty: held, as when its recipient subscribes."""
    queue = new_queue()
    await store.create_queue(queue)
    assert await store.first_message(queue.recipient_id) is None
    return queue


def commits(store: WriteBehind) -> int:
    assert isinstance(store.inner, SqliteStore)
    return store.inner.commit_count


# -- cancelled before the write -----------------------------------------------------------


@pytest.mark.asyncio
async def test_a_message_deleted_before_its_write_never_reaches_the_disk(db_path: Path) -> None:
    store, queue = await open_store(db_path)
    body = canary("acked")
    before = commits(store)
    pending = Pending(store, queue, new_message(b"<" + body + b">"))

    assert await pending.deferred() is PutResult.STORED
    assert commits(store) == before  # deciding it wrote nothing
    assert await store.delete_message(queue.recipient_id, pending.message.msg_id) is True
    assert await pending.result() is PutResult.STORED
    assert commits(store) == before  # the retired send id waits in memory for the release
    assert body not in disk_bytes(db_path)

    # Its send id is remembered as a deleted one's; the message is gone.
    assert (
        await store.put_message(queue.sender_id, pending.send_id, new_message(), quota=BIG_QUOTA)
        is PutResult.DUPLICATE
    )
    retry = Pending(store, queue, new_message(), send_id=pending.send_id)
    assert await retry.result() is PutResult.DUPLICATE
    assert retry.accepted == []
    assert await store.first_message(queue.recipient_id) is None
    assert await store.delete_message(queue.recipient_id, pending.message.msg_id) is False
    await store.close()
    assert body not in every_file(db_path.parent)


@pytest.mark.asyncio
async def test_deciding_deferred_puts_writes_and_commits_nothing(db_path: Path) -> None:
    store, queue = await open_store(db_path)
    wal = db_path.with_name(db_path.name + "-wal")
    before, wal_size = commits(store), wal.stat().st_size
    pendings = [Pending(store, queue, new_message(canary(str(i)))) for i in range(100)]
    assert [await p.deferred() for p in pendings] == [PutResult.STORED] * 100
    assert commits(store) == before
    assert wal.stat().st_size == wal_size
    for p in pendings:
        assert p.message.body not in disk_bytes(db_path)
    deleted = await asyncio.gather(
        *(store.delete_message(queue.recipient_id, p.message.msg_id) for p in pendings)
    )
    assert all(deleted)
    assert [await p.result() for p in pendings] == [PutResult.STORED] * 100
    await store.close()
    on_disk = every_file(db_path.parent)
    for p in pendings:
        assert p.message.body not in on_disk


# -- written after defer_seconds, on close, or when needed ---------------------------------


@pytest.mark.asyncio
async def test_a_deferred_message_is_written_after_defer_seconds_and_survives_reopen(db_path: Path) -> None:
    store, queue = await open_store(db_path, SHORT)
    message = new_message(canary("kept"))
    started = time.monotonic()
    pending = Pending(store, queue, message)
    assert await pending.deferred() is PutResult.STORED
    assert committed_body(db_path, message.msg_id) is None
    # Nothing else comes: the writer wakes up for the deadline by itself.
    assert await pending.result() is PutResult.STORED
    assert time.monotonic() - started >= SHORT
    assert committed_body(db_path, message.msg_id) == message.body
    await store.close()

    reopened = await SqliteStore.open(db_path)
    try:
        assert await reopened.first_message(queue.recipient_id) == message
        assert (
            await reopened.put_message(queue.sender_id, pending.send_id, new_message(), quota=BIG_QUOTA)
            is PutResult.DUPLICATE
        )
    finally:
        await reopened.close()


@pytest.mark.asyncio
async def test_close_writes_every_deferred_message(db_path: Path) -> None:
    store, a = await open_store(db_path)
    b = await new_held_queue(store)
    pendings = [Pending(store, queue, new_message(canary(str(i)))) for i, queue in enumerate((a, b, a))]
    for p in pendings:
        await p.deferred()
    await store.close()
    assert [await p.result() for p in pendings] == [PutResult.STORED] * 3

    reopened = await SqliteStore.open(db_path)
    try:
        assert await drain(reopened, a.recipient_id) == [pendings[0].message, pendings[2].message]
        assert await drain(reopened, b.recipient_id) == [pendings[1].message]
    finally:
        await reopened.close()


@pytest.mark.asyncio
async def test_a_put_written_at_once_writes_its_queues_deferred_messages_first(db_path: Path) -> None:
    store, a = await open_store(db_path)
    b = await new_held_queue(store)
    first, second = Pending(store, a, new_message(b"1")), Pending(store, a, new_message(b"2"))
    elsewhere = Pending(store, b, new_message(b"b"))
    for p in (first, second, elsewhere):
        await p.deferred()
    third = new_message(b"3")
    # No on_accepted: written at once, as before write-behind; a's deferred ones go first.
    assert await store.put_message(a.sender_id, new_send_id(), third, quota=BIG_QUOTA) is PutResult.STORED
    assert committed_body(db_path, third.msg_id) == b"3"
    assert [await first.result(), await second.result()] == [PutResult.STORED] * 2
    assert committed_body(db_path, first.message.msg_id) == b"1"
    assert not elsewhere.task.done()  # another queue's: still deferred
    assert await drain(store, a.recipient_id) == [first.message, second.message, third]
    assert await drain(store, b.recipient_id) == [elsewhere.message]
    assert await elsewhere.result() is PutResult.STORED
    await store.close()


# -- everything else sees deferred messages as stored --------------------------------------


@pytest.mark.asyncio
async def test_deferred_messages_count_for_quota_and_dedupe(db_path: Path) -> None:
    store, queue = await open_store(db_path)
    quota = 3
    pendings = [Pending(store, queue, new_message(canary(str(i))), quota=quota) for i in range(quota)]
    assert [await p.deferred() for p in pendings] == [
        PutResult.STORED,
        PutResult.STORED,
        PutResult.STORED_MARKED,
    ]

    refused = Pending(store, queue, new_message(), quota=quota)
    assert await refused.result() is PutResult.QUOTA
    retried = Pending(store, queue, new_message(), send_id=pendings[1].send_id, quota=quota)
    await decided(store)
    # A duplicate (before quota, as always: a QUOTA would be answered now), held until the
    # message it repeats is safe (§14.8 Durability): below, when the drain acknowledges it.
    assert not retried.task.done()
    assert refused.accepted == retried.accepted == []

    # An ACK of a deferred message frees its place.
    assert await store.delete_message(queue.recipient_id, pendings[0].message.msg_id)
    assert await pendings[0].result() is PutResult.STORED
    again = Pending(store, queue, new_message(canary("again")), quota=quota)
    assert await again.deferred() is PutResult.STORED_MARKED
    stored = await drain(store, queue.recipient_id)
    assert [m.msg_id for m in stored] == [p.message.msg_id for p in (*pendings[1:], again)]
    assert [m.quota_marker for m in stored] == [False, True, True]
    for p in (*pendings, again):
        assert await p.result() in (PutResult.STORED, PutResult.STORED_MARKED)
    assert await retried.result() is PutResult.DUPLICATE
    await store.close()
    for p in (*pendings, again):
        assert p.message.body not in every_file(db_path.parent)


@pytest.mark.asyncio
async def test_first_message_reads_deferred_messages_in_order_without_writing_them(db_path: Path) -> None:
    store, queue = await open_store(db_path)
    written = new_message(b"written")
    assert (
        await store.put_message(queue.sender_id, new_send_id(), written, quota=BIG_QUOTA) is PutResult.STORED
    )
    assert await store.first_message(queue.recipient_id) == written  # the file's come first
    assert await store.delete_message(queue.recipient_id, written.msg_id)
    assert await store.first_message(queue.recipient_id) is None  # held again
    pendings = [Pending(store, queue, new_message(canary(str(i))), quota=2) for i in range(2)]
    for p in pendings:
        await p.deferred()
    first = await store.first_message(queue.recipient_id)
    assert first == pendings[0].message
    assert await store.delete_message(queue.recipient_id, pendings[0].message.msg_id)
    marked = await store.first_message(queue.recipient_id)
    assert marked is not None
    assert marked.msg_id == pendings[1].message.msg_id
    assert marked.quota_marker is True  # as it is stored: the queue was full with it
    assert await drain(store, queue.recipient_id) == [marked]
    assert [await p.result() for p in pendings] == [PutResult.STORED, PutResult.STORED_MARKED]
    await store.close()
    on_disk = every_file(db_path.parent)
    for p in pendings:
        assert p.message.body not in on_disk


@pytest.mark.asyncio
async def test_messages_come_out_in_put_order_whatever_was_deferred(db_path: Path) -> None:
    store, queue = await open_store(db_path)
    order: list[StoredMessage] = []
    pendings: list[Pending] = []
    for i in range(12):
        message = new_message(bytes([i]), received_at=NOW - i)
        order.append(message)
        if i % 4 == 3:  # now and then a put written at once (it writes the deferred ones first)
            assert (
                await store.put_message(queue.sender_id, new_send_id(), message, quota=BIG_QUOTA)
                is PutResult.STORED
            )
        else:
            pendings.append(Pending(store, queue, message))
            await pendings[-1].accepted_now()  # held, or written through after a release
    assert await drain(store, queue.recipient_id) == order
    assert {await p.result() for p in pendings} == {PutResult.STORED}
    await store.close()


@pytest.mark.asyncio
async def test_expire_deletes_deferred_messages_too(db_path: Path) -> None:
    store, a = await open_store(db_path)
    b = await new_held_queue(store)
    old = Pending(store, a, new_message(received_at=NOW - 100))
    young = Pending(store, a, new_message(received_at=NOW + 100))
    other = Pending(store, b, new_message(received_at=NOW + 100))
    for p in (old, young, other):
        await p.deferred()

    assert await store.expire(NOW) == 1
    assert await old.result() is PutResult.STORED
    assert (
        await store.put_message(a.sender_id, old.send_id, new_message(), quota=BIG_QUOTA)
        is PutResult.DUPLICATE
    )
    assert await store.first_message(a.recipient_id) == young.message
    assert not other.task.done()  # a queue with nothing to expire keeps its deferred messages
    assert await store.expire(NOW) == 0
    await store.close()
    assert [await young.result(), await other.result()] == [PutResult.STORED] * 2


@pytest.mark.asyncio
async def test_delete_queue_drops_its_deferred_messages_unwritten(db_path: Path) -> None:
    store, doomed = await open_store(db_path)
    kept = await new_held_queue(store)
    gone = Pending(store, doomed, new_message(canary("burnt")))
    stays = Pending(store, kept, new_message(canary("kept")))
    await gone.deferred()
    await stays.deferred()

    assert await store.delete_queue(doomed.recipient_id) is True
    assert await gone.result() is PutResult.STORED
    assert not stays.task.done()
    assert await store.first_message(doomed.recipient_id) is None
    assert (
        await store.put_message(doomed.sender_id, gone.send_id, new_message(), quota=BIG_QUOTA)
        is PutResult.NO_QUEUE
    )
    await store.close()
    assert await stays.result() is PutResult.STORED
    on_disk = every_file(db_path.parent)
    assert gone.message.body not in on_disk
    assert stays.message.body in on_disk


@pytest.mark.asyncio
async def test_a_deferred_message_id_is_taken(db_path: Path) -> None:
    store, a = await open_store(db_path)
    b = await new_held_queue(store)
    pending = Pending(store, a, new_message(b"first"))
    await pending.deferred()
    taken = pending.message.msg_id

    clash = Pending(store, b, StoredMessage(taken, NOW, False, b"clash"))
    with pytest.raises(StoreError) as info:
        await clash.result()
    assert taken.hex() not in str(info.value)
    assert clash.accepted == []
    with pytest.raises(StoreError):  # written at once, same answer
        await store.put_message(b.sender_id, new_send_id(), StoredMessage(taken, NOW, False, b"x"), quota=9)
    # The checks come in their order: a retry is a duplicate before its id could clash.
    retry = Pending(store, a, StoredMessage(taken, NOW, False, b"retry"), send_id=pending.send_id)
    assert await store.first_message(b.recipient_id) is None
    assert await drain(store, a.recipient_id) == [pending.message]
    assert await retry.result() is PutResult.DUPLICATE  # once its original is safe: acknowledged
    assert await pending.result() is PutResult.STORED
    await store.close()


@pytest.mark.asyncio
async def test_beyond_max_deferred_a_put_is_written_at_once(db_path: Path) -> None:
    store, a = await open_store(db_path)
    b = await new_held_queue(store)
    held = [Pending(store, a, new_message()) for _ in range(MAX_HELD)]
    for p in held:
        await p.deferred()
    beyond = Pending(store, b, new_message(b"beyond"))
    assert await beyond.result() is PutResult.STORED
    assert beyond.accepted == [PutResult.STORED]  # still called, just before the put returned
    assert committed_body(db_path, beyond.message.msg_id) == b"beyond"
    assert not any(p.task.done() for p in held)
    await store.close()
    assert {await p.result() for p in held} == {PutResult.STORED}


@pytest.mark.asyncio
async def test_puts_without_on_accepted_are_committed_when_they_return(db_path: Path) -> None:
    store, queue = await open_store(db_path)
    message = new_message(b"at once")
    assert (
        await store.put_message(queue.sender_id, new_send_id(), message, quota=BIG_QUOTA) is PutResult.STORED
    )
    assert committed_body(db_path, message.msg_id) == b"at once"
    await store.close()


# -- failures -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_deferred_message_whose_write_fails_fails_its_put(db_path: Path) -> None:
    store, queue = await open_store(db_path, SHORT, timeout=0.05)
    pending = Pending(store, queue, new_message(b"lost"))
    await pending.deferred()
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # the write, due in SHORT seconds, meets this lock
        with pytest.raises(StoreError) as info:
            await pending.result()
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        other.execute("ROLLBACK")
    finally:
        other.close()
    assert pending.accepted == [PutResult.STORED]  # it had been accepted all the same
    # No trace of it: the send id is not remembered, so the client's retry is stored.
    assert await store.first_message(queue.recipient_id) is None
    retry = new_message(b"retry")
    assert (
        await store.put_message(queue.sender_id, pending.send_id, retry, quota=BIG_QUOTA) is PutResult.STORED
    )
    assert await drain(store, queue.recipient_id) == [retry]
    await store.close()


@pytest.mark.asyncio
async def test_a_deferred_write_that_fails_alone_fails_only_its_put(db_path: Path) -> None:
    store, a = await open_store(db_path)
    b = await new_held_queue(store)
    pending = Pending(store, a, new_message(b"deferred"))
    await pending.deferred()
    # Another process (a broken one) puts the deferred message's id in the file meanwhile.
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute(
            "INSERT INTO messages (recipient_id, qseq, msg_id, send_id, received_at, quota_marker, body)"
            " VALUES (?, 1, ?, ?, ?, 0, ?)",
            (b.recipient_id, pending.message.msg_id, new_send_id(), NOW, b"intruder"),
        )
    finally:
        other.close()
    # A put written at once to a's queue writes the deferred message first, in its batch.
    after = new_message(b"after")
    assert await store.put_message(a.sender_id, new_send_id(), after, quota=BIG_QUOTA) is PutResult.STORED
    with pytest.raises(StoreError):
        await pending.result()
    assert await drain(store, a.recipient_id) == [after]
    await store.close()


# -- against the reference ----------------------------------------------------------------


class Lcg:
    """A small deterministic generator: reproducible mixes, without ``random``."""

    def __init__(self, seed: int) -> None:
        self.state = seed * 0x9E3779B97F4A7C15 + 1

    def below(self, n: int) -> int:
        self.state = (self.state * 6364136223846793005 + 1442695040888963407) % 2**64
        return (self.state >> 33) % n

    def bytes(self, n: int) -> bytes:
        return bytes(self.below(256) for _ in range(n))


Outcome = tuple[str, object]


async def run_mix(store: MessageStore, seed: int, queues: list[QueueRecord], pause: float) -> list[Outcome]:
    """A seeded mix of puts (with and without on_accepted), deletes, reads, expiries and a burn.

    Operations are queued in a fixed order, many at a time (so that the SQLite writer gets
    them in batches), and some rounds pause long enough for deferred writes to come due.
    The outcomes, and what each on_accepted heard, are returned in that order.
    """
    rng = Lcg(seed)
    for queue in queues:
        await store.create_queue(queue)
    msg_ids: list[tuple[bytes, bytes]] = []  # (recipient id, msg id) of every put so far
    send_ids: list[bytes] = []
    accepted: dict[int, list[PutResult]] = {}
    tasks: list[asyncio.Future[Any]] = []
    for round_ in range(30):
        for _ in range(1 + rng.below(20)):
            index = len(tasks)
            queue = queues[rng.below(len(queues))]
            kind = rng.below(10)
            awaitable: asyncio.Future[Any]
            if kind < 5:
                send_id = (
                    send_ids[rng.below(len(send_ids))] if send_ids and rng.below(5) == 0 else rng.bytes(16)
                )
                send_ids.append(send_id)
                reused = bool(msg_ids) and rng.below(25) == 0
                msg_id = msg_ids[rng.below(len(msg_ids))][1] if reused else rng.bytes(24)
                msg_ids.append((queue.recipient_id, msg_id))
                message = StoredMessage(msg_id, NOW - 10 + rng.below(20), rng.below(8) == 0, msg_id[:4])
                callback: Callable[[PutResult], None] | None = None
                # A reused (clashing) id goes without on_accepted: a held put learns of a clash
                # with the inner store only when written (store/base.py), unlike the reference.
                if rng.below(4) and not reused:
                    accepted[index] = []
                    callback = accepted[index].append
                awaitable = asyncio.ensure_future(
                    store.put_message(queue.sender_id, send_id, message, quota=6, on_accepted=callback)
                )
            elif kind < 8 and msg_ids:
                recipient_id, msg_id = msg_ids[rng.below(len(msg_ids))]
                if rng.below(6) == 0:
                    recipient_id = queue.recipient_id  # perhaps the wrong queue
                awaitable = asyncio.ensure_future(store.delete_message(recipient_id, msg_id))
            elif kind < 9:
                awaitable = asyncio.ensure_future(store.first_message(queue.recipient_id))
            elif rng.below(10) == 0 and round_ > 20:
                awaitable = asyncio.ensure_future(store.delete_queue(queue.recipient_id))
            else:
                awaitable = asyncio.ensure_future(store.expire(NOW - 5 + rng.below(4)))
            tasks.append(awaitable)
        await asyncio.sleep(pause if rng.below(3) == 0 else 0)
    for queue in queues:
        tasks.append(asyncio.ensure_future(drain(store, queue.recipient_id)))
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    outcomes: list[Outcome] = []
    for index, result in enumerate(results):
        outcomes.append(
            ("error", type(result).__name__) if isinstance(result, BaseException) else ("ok", result)
        )
        if index in accepted:
            outcomes.append(("accepted", accepted[index]))
    return outcomes


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("defer", [0.0, 0.004, LONG])
async def test_a_deferring_store_answers_like_the_reference(db_path: Path, seed: int, defer: float) -> None:
    queues = [new_queue() for _ in range(3)]
    reference = MemoryStore()
    expected = await run_mix(reference, seed, queues, 0.01)
    inner = await SqliteStore.open(db_path)
    store: MessageStore = WriteBehind(inner, defer_seconds=defer) if defer else inner
    try:
        got = await run_mix(store, seed, queues, 0.01)
    finally:
        await store.close()
    assert got == expected
