"""A retried SEND is answered only once the message it repeats is safe (docs/protocol.md §14.8).

The attack these tests reproduce needs no attacker: under write-behind the relay holds a
delivered message in memory (``WriteBehind``'s held queue) until its recipient
acknowledges it or its deadline writes it. A client that
resends that SEND (same ``send_id``: after a cut connection, or its outbox's timeout)
used to get ``OK`` at once, as a duplicate; a kill -9 before the first copy's write then
lost a message whose sender had been told ``OK``. The rule now: the retry's put returns
with the original's, DUPLICATE once the original is committed or acknowledged, or the
original's failure should its write fail.

Every test runs against every way a store may hold the original: the memory store (the
reference: safe at once), SQLite written through, and write-behind over each with the
queue held (the original waits on the event loop). The write-behind stores defer for a
minute, so nothing is written unless the test makes it so.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import MessageStore, PutResult, QueueRecord, StoredMessage
from burnerkit.relay.server.store.memory import MemoryStore
from burnerkit.relay.server.store.sqlite import SqliteStore
from burnerkit.relay.server.store.writebehind import WriteBehind
from tests.contract.test_deferred_writes import LONG, WAIT, Pending, committed_body, decided
from tests.contract.test_message_store import BIG_QUOTA, NOW, drain, new_message, new_queue, new_send_id

#: How the original may be held: the reference, written through, held by write-behind.
KINDS = ["memory", "sqlite", "memory-held", "sqlite-hot"]
#: The kinds where the original's put is still waiting when its retry comes.
HELD = ["memory-held", "sqlite-hot"]


async def open_store(kind: str, db_path: Path) -> tuple[MessageStore, QueueRecord]:
    """A store of this kind with one queue (held, for the kinds in HELD)."""
    inner: MessageStore = MemoryStore() if kind.startswith("memory") else await SqliteStore.open(db_path)
    store: MessageStore = WriteBehind(inner, defer_seconds=LONG) if kind in HELD else inner
    queue = new_queue()
    await store.create_queue(queue)
    if isinstance(store, WriteBehind):
        assert await store.first_message(queue.recipient_id) is None  # the queue gets held
        assert queue.recipient_id in store._held
    return store, queue


class Held:
    """A store with one queue, the original put (with ``on_accepted``) made, and its retries."""

    def __init__(self, store: MessageStore, queue: QueueRecord, kind: str, db_path: Path | None) -> None:
        self.store = store
        self.queue = queue
        self.kind = kind
        self.db_path = db_path
        self.send_id = new_send_id()
        self.message = new_message(b"original")
        self.original: asyncio.Future[PutResult] | None = None
        #: what each put's on_accepted heard
        self.heard: dict[asyncio.Future[PutResult], list[PutResult]] = {}

    def put(self, message: StoredMessage | None = None) -> asyncio.Future[PutResult]:
        """A put of this send id, with ``on_accepted`` (the relay passes one: the recipient is online)."""
        pending = Pending(self.store, self.queue, message or new_message(b"retry"), send_id=self.send_id)
        self.heard[pending.task] = pending.accepted
        return pending.task

    async def decided(self) -> None:
        """Every put handed to the store so far is decided: accepted, answered, or held."""
        await decided(self.store)

    async def start(self) -> asyncio.Future[PutResult]:
        self.original = self.put(self.message)
        await self.decided()
        assert self.heard[self.original] == [PutResult.STORED]
        assert self.original.done() == (self.kind not in HELD)
        return self.original


@pytest_asyncio.fixture(params=KINDS)
async def held(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Held]:
    kind: str = request.param
    db_path = tmp_path / "relay.sqlite"
    store, queue = await open_store(kind, db_path)
    yield Held(store, queue, kind, None if kind.startswith("memory") else db_path)
    await store.close()


@pytest.mark.asyncio
async def test_duplicate_send_is_answered_only_once_the_original_is_safe(held: Held) -> None:
    original = await held.start()
    retry = held.put()
    await held.decided()
    # The retry may not say OK while the original could still be lost with the process.
    assert original.done() or not retry.done()
    # The recipient acknowledges the original: it has the message, so both are answered.
    assert await held.store.delete_message(held.queue.recipient_id, held.message.msg_id) is True
    assert await asyncio.wait_for(original, WAIT) is PutResult.STORED
    assert await asyncio.wait_for(retry, WAIT) is PutResult.DUPLICATE
    assert held.heard[retry] == []
    assert await drain(held.store, held.queue.recipient_id) == []  # stored once, and acknowledged


@pytest.mark.asyncio
async def test_duplicate_of_an_unwritten_message_is_answered_only_after_its_write_commits(
    held: Held,
) -> None:
    original = await held.start()
    retries = [held.put(), held.put()]  # the client library's resend, and the outbox's
    await held.decided()
    assert all(original.done() or not retry.done() for retry in retries)
    seen_in_file: list[bytes | None] = []
    if held.db_path is not None:
        db_path, msg_id = held.db_path, held.message.msg_id
        # What another process reads at the instant a retry is answered: committed or not.
        for retry in retries:
            retry.add_done_callback(lambda _f: seen_in_file.append(committed_body(db_path, msg_id)))
    # A put written at once to the same queue writes the held one first (FIFO order).
    after = new_message(b"after")
    assert (
        await held.store.put_message(held.queue.sender_id, new_send_id(), after, quota=BIG_QUOTA)
        is PutResult.STORED
    )
    assert await asyncio.wait_for(original, WAIT) is PutResult.STORED
    assert [await asyncio.wait_for(retry, WAIT) for retry in retries] == [PutResult.DUPLICATE] * 2
    if held.db_path is not None:
        assert seen_in_file == [held.message.body] * 2
    assert await drain(held.store, held.queue.recipient_id) == [held.message, after]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["sqlite-hot"])
async def test_duplicate_of_a_message_whose_write_fails_gets_the_failure(tmp_path: Path, kind: str) -> None:
    db_path = tmp_path / "relay.sqlite"
    store, queue = await open_store(kind, db_path)
    other = new_queue()
    await store.create_queue(other)
    held = Held(store, queue, kind, db_path)
    original = await held.start()
    retry = held.put()
    await held.decided()
    assert not retry.done()
    # Another process (a broken one) puts the held message's id in the file meanwhile.
    intruder = sqlite3.connect(db_path, isolation_level=None)
    try:
        intruder.execute(
            "INSERT INTO messages (recipient_id, qseq, msg_id, send_id, received_at, quota_marker, body)"
            " VALUES (?, 1, ?, ?, ?, 0, ?)",
            (other.recipient_id, held.message.msg_id, new_send_id(), NOW, b"intruder"),
        )
    finally:
        intruder.close()
    after = new_message(b"after")
    assert await store.put_message(queue.sender_id, new_send_id(), after, quota=BIG_QUOTA) is PutResult.STORED
    # The original is not safe, and never will be: neither put may say OK (the relay
    # answers ERR INTERNAL, and the client sends again).
    with pytest.raises(StoreError):
        await asyncio.wait_for(original, WAIT)
    with pytest.raises(StoreError):
        await asyncio.wait_for(retry, WAIT)
    # The next retry finds no trace of the lost message and stores it.
    again = new_message(b"again")
    assert await store.put_message(queue.sender_id, held.send_id, again, quota=BIG_QUOTA) is PutResult.STORED
    assert await drain(store, queue.recipient_id) == [after, again]
    await store.close()


@pytest.mark.asyncio
async def test_duplicate_in_the_same_batch_as_its_original_waits_for_it(tmp_path: Path) -> None:
    # The original and its retry reach the writer together: the retry is decided against
    # the original's decision in the same run of rows, before anything is committed.
    store, queue = await open_store("sqlite-hot", tmp_path / "relay.sqlite")
    held = Held(store, queue, "sqlite-hot", tmp_path / "relay.sqlite")
    held.original = held.put(held.message)
    retry = held.put()
    await held.decided()
    assert held.heard[held.original] == [PutResult.STORED]
    assert not held.original.done()
    assert not retry.done()
    assert await store.delete_message(queue.recipient_id, held.message.msg_id) is True
    assert await asyncio.wait_for(held.original, WAIT) is PutResult.STORED
    assert await asyncio.wait_for(retry, WAIT) is PutResult.DUPLICATE
    await store.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", HELD)
async def test_a_cancelled_retry_leaves_the_original_and_other_retries_alone(
    tmp_path: Path, kind: str
) -> None:
    # A SEND's coroutine is cancelled when its connection goes away; the put it awaited
    # (and the original's, which the retry waits on) must not be cancelled with it.
    store, queue = await open_store(kind, tmp_path / "relay.sqlite")
    held = Held(store, queue, kind, tmp_path / "relay.sqlite")
    original = await held.start()
    cancelled, kept = held.put(), held.put()
    await held.decided()
    cancelled.cancel()
    await held.decided()
    assert not original.done()
    assert not kept.done()
    assert await store.delete_message(queue.recipient_id, held.message.msg_id) is True
    assert await asyncio.wait_for(original, WAIT) is PutResult.STORED
    assert await asyncio.wait_for(kept, WAIT) is PutResult.DUPLICATE
    assert cancelled.cancelled()
    await store.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", HELD)
async def test_close_answers_a_held_duplicate_once_its_original_is_written(tmp_path: Path, kind: str) -> None:
    db_path = tmp_path / "relay.sqlite"
    store, queue = await open_store(kind, db_path)
    held = Held(store, queue, kind, db_path)
    original = await held.start()
    retry = held.put()
    await held.decided()
    assert not retry.done()
    await store.close()  # writes every held message (the relay's SIGTERM path)
    assert await asyncio.wait_for(original, WAIT) is PutResult.STORED
    assert await asyncio.wait_for(retry, WAIT) is PutResult.DUPLICATE
    if kind.startswith("sqlite"):
        assert committed_body(db_path, held.message.msg_id) == held.message.body
