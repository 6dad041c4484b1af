"""One contract suite for every ``MessageStore`` (memory is the reference, SQLite the default).

Each test states one promise of ``store/base.py`` (or of the dedupe rule in
``store/memory.py``) and runs against every backend; the tests at the bottom cover
what only a file-backed store can promise: durability, locking, what stays on disk.

Each store also runs under write-behind (``WriteBehind``), where every put of these
tests passes ``on_accepted`` and may be held back; ``put`` checks the ``on_accepted``
promise on every call. What write-behind adds is tested in ``test_deferred_writes.py``
and ``test_hot_queues.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sqlite3
import threading
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from burnerkit.errors import StoreError
from burnerkit.relay.protocol import QUEUE_QUOTA
from burnerkit.relay.server.store.base import MessageStore, PutResult, QueueMemory, QueueRecord, StoredMessage
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS, MemoryStore
from burnerkit.relay.server.store.sqlite import MAX_BATCH, SCHEMA_VERSION, SqliteStore
from burnerkit.relay.server.store.writebehind import WriteBehind

NOW = 1_700_000_000
BIG_QUOTA = 10_000
#: Short enough for the many sequential puts of these tests (each waits for its write).
DEFER = 0.002
#: Stores of the write-behind variant: ``put`` passes them ``on_accepted``.
WRITE_BEHIND: weakref.WeakSet[MessageStore] = weakref.WeakSet()


def new_queue() -> QueueRecord:
    return QueueRecord(os.urandom(24), os.urandom(24), os.urandom(32), os.urandom(32))


def new_message(
    body: bytes = b"body", *, received_at: int = NOW, quota_marker: bool = False
) -> StoredMessage:
    return StoredMessage(os.urandom(24), received_at, quota_marker, body)


def new_send_id() -> bytes:
    return os.urandom(16)


async def put(
    store: MessageStore,
    queue: QueueRecord,
    message: StoredMessage,
    *,
    send_id: bytes | None = None,
    quota: int = BIG_QUOTA,
) -> PutResult:
    if store not in WRITE_BEHIND:
        return await store.put_message(queue.sender_id, send_id or new_send_id(), message, quota=quota)
    accepted: list[PutResult] = []
    result = await store.put_message(
        queue.sender_id, send_id or new_send_id(), message, quota=quota, on_accepted=accepted.append
    )
    # on_accepted ran before the put returned, once, with its result; and only if stored.
    assert accepted == ([result] if result in (PutResult.STORED, PutResult.STORED_MARKED) else [])
    return result


async def drain(store: MessageStore, recipient_id: bytes) -> list[StoredMessage]:
    """Every message of the queue, oldest first, deleting each as a recipient's ACK would."""
    out = []
    while (message := await store.first_message(recipient_id)) is not None:
        out.append(message)
        assert await store.delete_message(recipient_id, message.msg_id)
    return out


@pytest_asyncio.fixture(params=["memory", "sqlite", "memory-write-behind", "sqlite-write-behind"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MessageStore]:
    backend: MessageStore
    if request.param.startswith("memory"):
        backend = MemoryStore()
    else:
        backend = await SqliteStore.open(tmp_path / "relay.sqlite")
    if request.param.endswith("write-behind"):
        backend = WriteBehind(backend, defer_seconds=DEFER)
        WRITE_BEHIND.add(backend)
    yield backend
    await backend.close()


def sqlite_of(store: MessageStore) -> SqliteStore | None:
    """The SQLite store under ``store``, if any."""
    inner = store.inner if isinstance(store, WriteBehind) else store
    return inner if isinstance(inner, SqliteStore) else None


@pytest_asyncio.fixture
async def created(store: MessageStore) -> QueueRecord:
    queue = new_queue()
    await store.create_queue(queue)
    return queue


# -- queues -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_create_queue_then_look_it_up_by_either_id(store: MessageStore) -> None:
    queue = new_queue()
    await store.create_queue(queue)
    assert await store.queue_by_recipient(queue.recipient_id) == queue
    assert await store.queue_by_sender(queue.sender_id) == queue


@pytest.mark.asyncio
async def test_lookups_do_not_confuse_the_two_ids(store: MessageStore, created: QueueRecord) -> None:
    assert await store.queue_by_recipient(created.sender_id) is None
    assert await store.queue_by_sender(created.recipient_id) is None
    assert await store.queue_by_recipient(os.urandom(24)) is None
    assert await store.queue_by_sender(os.urandom(24)) is None


@pytest.mark.asyncio
async def test_create_queue_with_a_used_id_raises_store_error(
    store: MessageStore, created: QueueRecord
) -> None:
    same_recipient = QueueRecord(created.recipient_id, os.urandom(24), os.urandom(32), os.urandom(32))
    same_sender = QueueRecord(os.urandom(24), created.sender_id, os.urandom(32), os.urandom(32))
    for clash in (same_recipient, same_sender):
        with pytest.raises(StoreError):
            await store.create_queue(clash)
    # ... and had no effect.
    assert await store.queue_by_recipient(same_sender.recipient_id) is None
    assert await store.queue_by_sender(same_recipient.sender_id) is None
    assert await store.queue_by_recipient(created.recipient_id) == created


@pytest.mark.asyncio
async def test_lock_sender_key_sets_the_key(store: MessageStore, created: QueueRecord) -> None:
    assert created.sender_key is None
    key = os.urandom(32)
    assert await store.lock_sender_key(created.recipient_id, key) is True
    expected = QueueRecord(
        created.recipient_id, created.sender_id, created.recipient_key, created.queue_key, key
    )
    assert await store.queue_by_recipient(created.recipient_id) == expected
    assert await store.queue_by_sender(created.sender_id) == expected


@pytest.mark.asyncio
async def test_lock_sender_key_on_a_missing_queue_is_false(store: MessageStore, created: QueueRecord) -> None:
    assert await store.lock_sender_key(os.urandom(24), os.urandom(32)) is False
    assert (
        await store.lock_sender_key(created.sender_id, os.urandom(32)) is False
    )  # a sender id is no recipient id
    assert (await store.queue_by_recipient(created.recipient_id)) == created


@pytest.mark.asyncio
async def test_delete_queue_deletes_its_messages(store: MessageStore) -> None:
    doomed, kept = new_queue(), new_queue()
    await store.create_queue(doomed)
    await store.create_queue(kept)
    doomed_message, kept_message = new_message(b"doomed"), new_message(b"kept")
    send_id = new_send_id()
    assert await put(store, doomed, doomed_message, send_id=send_id) is PutResult.STORED
    assert await put(store, kept, kept_message) is PutResult.STORED

    assert await store.delete_queue(doomed.recipient_id) is True

    assert await store.queue_by_recipient(doomed.recipient_id) is None
    assert await store.queue_by_sender(doomed.sender_id) is None
    assert await store.first_message(doomed.recipient_id) is None
    assert await store.delete_message(doomed.recipient_id, doomed_message.msg_id) is False
    assert await put(store, doomed, new_message(), send_id=send_id) is PutResult.NO_QUEUE
    assert await store.delete_queue(doomed.recipient_id) is False
    assert await store.expire(NOW + 1) == 1  # only the kept queue's message was left to expire
    assert await store.queue_by_recipient(kept.recipient_id) == kept


@pytest.mark.asyncio
async def test_delete_queue_by_sender_id_does_nothing(store: MessageStore, created: QueueRecord) -> None:
    assert await store.delete_queue(created.sender_id) is False
    assert await store.queue_by_recipient(created.recipient_id) == created


# -- put ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_put_to_a_missing_queue_is_no_queue(store: MessageStore, created: QueueRecord) -> None:
    assert (
        await store.put_message(os.urandom(24), new_send_id(), new_message(), quota=10) is PutResult.NO_QUEUE
    )
    # The recipient id does not address the queue for sending.
    assert (
        await store.put_message(created.recipient_id, new_send_id(), new_message(), quota=10)
        is PutResult.NO_QUEUE
    )
    assert await store.first_message(created.recipient_id) is None


@pytest.mark.asyncio
async def test_put_then_first_message_returns_it(store: MessageStore, created: QueueRecord) -> None:
    message = new_message(b"\x00hello\xff" * 100)
    assert await put(store, created, message) is PutResult.STORED
    assert await store.first_message(created.recipient_id) == message
    assert await store.first_message(created.recipient_id) == message  # reading does not consume


@pytest.mark.asyncio
async def test_messages_come_out_in_the_order_stored(store: MessageStore) -> None:
    a, b = new_queue(), new_queue()
    await store.create_queue(a)
    await store.create_queue(b)
    sent_a: list[StoredMessage] = []
    sent_b: list[StoredMessage] = []
    for i in range(20):
        # Interleaved queues, and received_at deliberately not monotonic: order is storage order.
        for queue, sent in ((a, sent_a), (b, sent_b)):
            message = new_message(f"{i}".encode(), received_at=NOW - i)
            assert await put(store, queue, message) is PutResult.STORED
            sent.append(message)
    assert await drain(store, a.recipient_id) == sent_a
    assert await drain(store, b.recipient_id) == sent_b


@pytest.mark.asyncio
async def test_put_with_a_bad_quota_is_a_value_error(store: MessageStore, created: QueueRecord) -> None:
    with pytest.raises(ValueError, match="quota"):
        await put(store, created, new_message(), quota=0)


@pytest.mark.asyncio
async def test_put_with_a_used_msg_id_raises_store_error_and_has_no_effect(store: MessageStore) -> None:
    a, b = new_queue(), new_queue()
    await store.create_queue(a)
    await store.create_queue(b)
    first = new_message(b"first")
    await put(store, a, first)
    send_id = new_send_id()
    with pytest.raises(StoreError) as info:
        await put(store, b, StoredMessage(first.msg_id, NOW, False, b"clash"), send_id=send_id)
    assert first.msg_id.hex() not in str(info.value)
    assert repr(first.msg_id) not in str(info.value)
    assert await store.first_message(b.recipient_id) is None
    # The failed put left no trace: its send id is not remembered.
    assert await put(store, b, new_message(b"again"), send_id=send_id) is PutResult.STORED
    assert await drain(store, a.recipient_id) == [first]


@pytest.mark.asyncio
async def test_a_failing_put_does_not_disturb_concurrent_ones(
    store: MessageStore, created: QueueRecord
) -> None:
    taken = new_message(b"taken")
    await put(store, created, taken)
    ok1, ok2 = new_message(b"ok1"), new_message(b"ok2")
    results = await asyncio.gather(
        put(store, created, ok1),
        put(store, created, StoredMessage(taken.msg_id, NOW, False, b"clash")),
        put(store, created, ok2),
        return_exceptions=True,
    )
    assert results[0] is PutResult.STORED
    assert isinstance(results[1], StoreError)
    assert results[2] is PutResult.STORED
    assert await drain(store, created.recipient_id) == [taken, ok1, ok2]


@pytest.mark.asyncio
async def test_on_accepted_is_called_with_the_result_before_put_returns(
    store: MessageStore, created: QueueRecord
) -> None:
    calls: list[tuple[PutResult, bool]] = []
    puts: list[asyncio.Task[PutResult]] = []

    def on_accepted(result: PutResult) -> None:
        calls.append((result, puts[-1].done()))

    for _ in range(2):
        message = new_message()
        puts.append(
            asyncio.ensure_future(
                store.put_message(created.sender_id, new_send_id(), message, quota=2, on_accepted=on_accepted)
            )
        )
        assert await puts[-1] in (PutResult.STORED, PutResult.STORED_MARKED)
    assert calls == [(PutResult.STORED, False), (PutResult.STORED_MARKED, False)]
    assert [m.quota_marker for m in await drain(store, created.recipient_id)] == [False, True]


@pytest.mark.asyncio
async def test_on_accepted_is_not_called_for_duplicate_quota_or_no_queue(
    store: MessageStore, created: QueueRecord
) -> None:
    send_id = new_send_id()
    assert await put(store, created, new_message(), send_id=send_id, quota=1) is PutResult.STORED_MARKED
    calls: list[PutResult] = []
    for sender_id, retried, expected in (
        (created.sender_id, send_id, PutResult.DUPLICATE),
        (created.sender_id, new_send_id(), PutResult.QUOTA),
        (os.urandom(24), new_send_id(), PutResult.NO_QUEUE),
    ):
        result = await store.put_message(sender_id, retried, new_message(), quota=1, on_accepted=calls.append)
        assert result is expected
    assert calls == []


@pytest.mark.asyncio
async def test_an_on_accepted_that_raises_goes_to_the_loop_and_the_put_stands(
    store: MessageStore, created: QueueRecord
) -> None:
    loop = asyncio.get_running_loop()
    reported: list[BaseException | None] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context.get("exception")))

    def on_accepted(result: PutResult) -> None:
        raise RuntimeError("the caller's bug")

    message = new_message()
    try:
        result = await store.put_message(
            created.sender_id, new_send_id(), message, quota=BIG_QUOTA, on_accepted=on_accepted
        )
    finally:
        loop.set_exception_handler(None)
    assert result is PutResult.STORED
    assert len(reported) == 1
    assert isinstance(reported[0], RuntimeError)
    assert await drain(store, created.recipient_id) == [message]


# -- dedupe -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_duplicate_send_id_is_stored_once(store: MessageStore, created: QueueRecord) -> None:
    send_id = new_send_id()
    original = new_message(b"original")
    assert await put(store, created, original, send_id=send_id) is PutResult.STORED
    assert await put(store, created, new_message(b"retry"), send_id=send_id) is PutResult.DUPLICATE
    assert await drain(store, created.recipient_id) == [original]


@pytest.mark.asyncio
async def test_duplicate_send_id_after_the_message_was_acked(
    store: MessageStore, created: QueueRecord
) -> None:
    send_id = new_send_id()
    original = new_message()
    await put(store, created, original, send_id=send_id)
    assert await store.delete_message(created.recipient_id, original.msg_id)
    # The retry arrives after the recipient already took the first copy.
    assert await put(store, created, new_message(), send_id=send_id) is PutResult.DUPLICATE
    assert await store.first_message(created.recipient_id) is None


@pytest.mark.asyncio
async def test_duplicate_send_id_after_the_message_expired(store: MessageStore, created: QueueRecord) -> None:
    send_id = new_send_id()
    await put(store, created, new_message(received_at=NOW - 10), send_id=send_id)
    assert await store.expire(NOW) == 1
    assert await put(store, created, new_message(), send_id=send_id) is PutResult.DUPLICATE
    assert await store.first_message(created.recipient_id) is None


@pytest.mark.asyncio
async def test_send_ids_are_per_queue(store: MessageStore) -> None:
    a, b = new_queue(), new_queue()
    await store.create_queue(a)
    await store.create_queue(b)
    send_id = new_send_id()
    assert await put(store, a, new_message(), send_id=send_id) is PutResult.STORED
    assert await put(store, b, new_message(), send_id=send_id) is PutResult.STORED


@pytest.mark.asyncio
async def test_only_the_latest_retired_send_ids_are_remembered(
    store: MessageStore, created: QueueRecord
) -> None:
    total = RETIRED_SEND_IDS + 44
    send_ids = [new_send_id() for _ in range(total)]
    messages = [new_message(i.to_bytes(2, "big")) for i in range(total)]
    results = await asyncio.gather(
        *(put(store, created, m, send_id=s) for m, s in zip(messages, send_ids, strict=True))
    )
    assert set(results) == {PutResult.STORED}
    # Delete them in storage order (gather submits in argument order).
    deleted = await asyncio.gather(*(store.delete_message(created.recipient_id, m.msg_id) for m in messages))
    assert all(deleted)

    forgotten = total - RETIRED_SEND_IDS
    assert await put(store, created, new_message(), send_id=send_ids[0]) is PutResult.STORED
    assert await put(store, created, new_message(), send_id=send_ids[forgotten - 1]) is PutResult.STORED
    assert await put(store, created, new_message(), send_id=send_ids[forgotten]) is PutResult.DUPLICATE
    assert await put(store, created, new_message(), send_id=send_ids[-1]) is PutResult.DUPLICATE
    assert len(await drain(store, created.recipient_id)) == 2


# -- quota --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_quota_marks_the_last_message_and_refuses_the_next(
    store: MessageStore, created: QueueRecord
) -> None:
    send_ids = [new_send_id() for _ in range(QUEUE_QUOTA)]
    results = [
        await put(store, created, new_message(), send_id=send_id, quota=QUEUE_QUOTA) for send_id in send_ids
    ]
    assert results == [PutResult.STORED] * (QUEUE_QUOTA - 1) + [PutResult.STORED_MARKED]
    assert await put(store, created, new_message(), quota=QUEUE_QUOTA) is PutResult.QUOTA
    # A retry of a stored message is still a duplicate (answered OK), not a quota refusal.
    assert (
        await put(store, created, new_message(), send_id=send_ids[5], quota=QUEUE_QUOTA)
        is PutResult.DUPLICATE
    )

    stored = await drain(store, created.recipient_id)
    assert len(stored) == QUEUE_QUOTA
    assert [m.quota_marker for m in stored] == [False] * (QUEUE_QUOTA - 1) + [True]


@pytest.mark.asyncio
async def test_quota_frees_up_after_an_ack(store: MessageStore, created: QueueRecord) -> None:
    quota = 3
    first = new_message()
    await put(store, created, first, quota=quota)
    await put(store, created, new_message(), quota=quota)
    await put(store, created, new_message(), quota=quota)
    assert await put(store, created, new_message(), quota=quota) is PutResult.QUOTA
    assert await store.delete_message(created.recipient_id, first.msg_id)
    assert await put(store, created, new_message(), quota=quota) is PutResult.STORED_MARKED
    assert [m.quota_marker for m in await drain(store, created.recipient_id)] == [False, True, True]


@pytest.mark.asyncio
async def test_quota_marker_passed_by_the_caller_is_kept(store: MessageStore, created: QueueRecord) -> None:
    message = new_message(quota_marker=True)
    assert await put(store, created, message, quota=5) is PutResult.STORED_MARKED
    assert await store.first_message(created.recipient_id) == message


@pytest.mark.asyncio
async def test_quota_is_per_queue(store: MessageStore) -> None:
    full, other = new_queue(), new_queue()
    await store.create_queue(full)
    await store.create_queue(other)
    for _ in range(2):
        await put(store, full, new_message(), quota=2)
    assert await put(store, full, new_message(), quota=2) is PutResult.QUOTA
    assert await put(store, other, new_message(), quota=2) is PutResult.STORED


# -- delete and expire --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_delete_message_deletes_only_the_named_message(store: MessageStore) -> None:
    a, b = new_queue(), new_queue()
    await store.create_queue(a)
    await store.create_queue(b)
    a1, a2, a3 = new_message(b"a1"), new_message(b"a2"), new_message(b"a3")
    b1 = new_message(b"b1")
    for message in (a1, a2, a3):
        await put(store, a, message)
    await put(store, b, b1)

    # Another queue's message id, through this queue: nothing happens.
    assert await store.delete_message(a.recipient_id, b1.msg_id) is False
    # The sender id does not address the queue for deleting.
    assert await store.delete_message(a.sender_id, a1.msg_id) is False
    assert await store.delete_message(a.recipient_id, os.urandom(24)) is False
    # Deleting from the middle keeps the others in order.
    assert await store.delete_message(a.recipient_id, a2.msg_id) is True
    assert await store.delete_message(a.recipient_id, a2.msg_id) is False

    assert await drain(store, a.recipient_id) == [a1, a3]
    assert await drain(store, b.recipient_id) == [b1]


@pytest.mark.asyncio
async def _now(done: bool | asyncio.Future[bool] | None) -> bool | None:
    """What a ``delete_message_now`` did: at once, or once its future is done."""
    return await done if isinstance(done, asyncio.Future) else done


@pytest.mark.asyncio
async def test_delete_message_now_deletes_as_delete_message_does_or_does_nothing(store: MessageStore) -> None:
    queue = new_queue()
    await store.create_queue(queue)
    assert await store.first_message(queue.recipient_id) is None  # a SQLite queue read empty may get hot
    first, second = new_message(b"first"), new_message(b"second")
    for message in (first, second):
        await put(store, queue, message)
    started = store.delete_message_now(queue.recipient_id, first.msg_id)
    if isinstance(store, MemoryStore):
        assert started is True  # an in-memory store never waits
    done = await _now(started)
    if done is None:
        # Nothing was done here: the message is still first, and the awaited delete deletes it.
        assert await store.first_message(queue.recipient_id) == first
        assert await store.delete_message(queue.recipient_id, first.msg_id) is True
    else:
        assert done is True
    assert await store.first_message(queue.recipient_id) == second
    # What is gone stays gone, either way; another queue's id is not this queue's.
    assert await _now(store.delete_message_now(queue.recipient_id, first.msg_id)) in (False, None)
    assert await store.delete_message(queue.recipient_id, first.msg_id) is False
    assert await _now(store.delete_message_now(queue.sender_id, second.msg_id)) in (False, None)
    assert await drain(store, queue.recipient_id) == [second]


@pytest.mark.asyncio
async def test_put_message_now_puts_as_put_message_does_or_does_nothing(store: MessageStore) -> None:
    queue = new_queue()
    await store.create_queue(queue)
    assert await store.first_message(queue.recipient_id) is None  # a queue read empty may get held
    send_id, message = new_send_id(), new_message(b"now")
    accepted: list[PutResult] = []
    future = store.put_message_now(queue.sender_id, send_id, message, quota=2, on_accepted=accepted.append)
    if isinstance(store, MemoryStore):
        assert future is not None  # an in-memory store never waits
        assert future.done()
    if future is None:
        # Nothing was done here: the queue is still empty, and the awaited put stores it.
        assert accepted == []
        assert await store.first_message(queue.recipient_id) is None
        assert await put(store, queue, message, send_id=send_id, quota=2) is PutResult.STORED
    else:
        if not accepted:
            await future  # a store that decides on its writer thread: accepted before the answer
        assert accepted == [PutResult.STORED]  # accepted before the answer, once
        assert await store.first_message(queue.recipient_id) == message
        assert await store.delete_message(queue.recipient_id, message.msg_id) is True
        assert await future is PutResult.STORED  # answered once safe: here, acknowledged
        # A retry of it is a duplicate, decided now or awaited, and stores nothing.
        retry = store.put_message_now(
            queue.sender_id, send_id, new_message(), quota=2, on_accepted=accepted.append
        )
        assert await (
            retry if retry is not None else put(store, queue, new_message(), send_id=send_id, quota=2)
        ) is (PutResult.DUPLICATE)
        assert accepted == [PutResult.STORED]
    with pytest.raises(ValueError):
        store.put_message_now(queue.sender_id, new_send_id(), new_message(), quota=0)


@pytest.mark.asyncio
async def test_expire_deletes_only_older_messages(store: MessageStore) -> None:
    a, b = new_queue(), new_queue()
    await store.create_queue(a)
    await store.create_queue(b)
    a_old, a_edge, a_new = (new_message(received_at=t) for t in (NOW - 100, NOW, NOW + 100))
    b_old, b_new = (new_message(received_at=t) for t in (NOW - 1, NOW + 1))
    for message in (a_new, a_old, a_edge):
        await put(store, a, message)
    for message in (b_old, b_new):
        await put(store, b, message)

    assert await store.expire(NOW) == 2  # strictly older than NOW
    assert await store.expire(NOW) == 0
    assert await drain(store, a.recipient_id) == [a_new, a_edge]
    assert await drain(store, b.recipient_id) == [b_new]


@pytest.mark.asyncio
async def test_head_is_the_first_message_or_what_an_empty_queue_remembers(store: MessageStore) -> None:
    queue = new_queue()
    assert await store.head(queue.recipient_id) is None
    await store.create_queue(queue)
    assert await store.head(queue.recipient_id) == QueueMemory(queue.sender_id, [])
    first, second = new_message(b"1"), new_message(b"2")
    send_ids = [new_send_id(), new_send_id()]
    for message, send_id in zip((first, second), send_ids, strict=True):
        assert await put(store, queue, message, send_id=send_id) is PutResult.STORED
    assert await store.head(queue.recipient_id) == first
    assert await drain(store, queue.recipient_id) == [first, second]
    assert await store.head(queue.recipient_id) == QueueMemory(queue.sender_id, send_ids)


@pytest.mark.asyncio
async def test_retired_send_ids_join_the_window_as_the_latest_deletions(
    store: MessageStore, created: QueueRecord
) -> None:
    acked = new_send_id()
    await put(store, created, new_message(), send_id=acked)
    await drain(store, created.recipient_id)
    elsewhere = [new_send_id() for _ in range(RETIRED_SEND_IDS)]
    await store.retire_send_ids(created.recipient_id, elsewhere[:1])
    assert await put(store, created, new_message(), send_id=elsewhere[0]) is PutResult.DUPLICATE
    head = await store.head(created.recipient_id)
    assert head == QueueMemory(created.sender_id, [acked, elsewhere[0]])
    # The window keeps the latest 256 deletions, whoever made them.
    await store.retire_send_ids(created.recipient_id, elsewhere[1:])
    head = await store.head(created.recipient_id)
    assert head == QueueMemory(created.sender_id, elsewhere)
    message = new_message()
    assert await put(store, created, message, send_id=acked) is PutResult.STORED
    assert await put(store, created, new_message(), send_id=elsewhere[-1]) is PutResult.DUPLICATE
    await store.retire_send_ids(new_queue().recipient_id, [new_send_id()])  # no such queue: nothing
    assert await drain(store, created.recipient_id) == [message]


# -- concurrency and lifecycle ------------------------------------------------------------


@pytest.mark.asyncio
async def test_concurrent_puts_and_deletes_keep_every_rule(store: MessageStore) -> None:
    """Operations queued together (one batch, for SQLite) behave as if they ran one by one."""
    full, other = new_queue(), new_queue()
    await store.create_queue(full)
    await store.create_queue(other)
    waiting = [new_message(bytes([i])) for i in range(4)]
    for message in waiting:
        await put(store, other, message)
    repeated = new_send_id()
    quota = 5
    bodies = [new_message(bytes([i])) for i in range(7)]
    results = await asyncio.gather(
        *(put(store, full, m, quota=quota) for m in bodies[:3]),
        store.delete_message(other.recipient_id, waiting[0].msg_id),
        put(store, full, bodies[3], send_id=repeated, quota=quota),
        put(store, full, bodies[4], send_id=repeated, quota=quota),  # the same send id: a retry
        store.delete_message(other.recipient_id, waiting[0].msg_id),  # already gone
        put(store, full, bodies[5], quota=quota),
        put(store, full, bodies[6], quota=quota),
        store.delete_message(full.recipient_id, waiting[1].msg_id),  # not on this queue
        store.put_message(b"\0" * 24, new_send_id(), new_message(), quota=quota),
        store.delete_message(other.recipient_id, waiting[1].msg_id),
    )
    assert results == [
        *[PutResult.STORED] * 3,
        True,
        PutResult.STORED,
        PutResult.DUPLICATE,
        False,
        PutResult.STORED_MARKED,
        PutResult.QUOTA,
        False,
        PutResult.NO_QUEUE,
        True,
    ]
    marked = dataclasses.replace(bodies[5], quota_marker=True)
    assert await drain(store, full.recipient_id) == [*bodies[:4], marked]
    assert await put(store, full, new_message(), send_id=repeated) is PutResult.DUPLICATE

    # A message id clash among concurrent operations fails that one alone.
    clash = waiting[2]
    fresh = [new_message(b"a"), new_message(b"b")]
    outcomes = await asyncio.gather(
        put(store, other, fresh[0]),
        put(store, other, StoredMessage(clash.msg_id, NOW, False, b"x")),
        store.delete_message(other.recipient_id, waiting[3].msg_id),
        put(store, other, fresh[1]),
        return_exceptions=True,
    )
    assert outcomes[0] is PutResult.STORED
    assert isinstance(outcomes[1], StoreError)
    assert outcomes[2] is True
    assert outcomes[3] is PutResult.STORED
    assert await drain(store, other.recipient_id) == [clash, *fresh]


@pytest.mark.asyncio
async def test_many_concurrent_puts_are_each_stored_once(store: MessageStore, created: QueueRecord) -> None:
    count = 200
    send_ids = [new_send_id() for _ in range(count)]
    messages = [new_message(i.to_bytes(2, "big")) for i in range(count)]
    sqlite = sqlite_of(store)
    commits_before = sqlite.commit_count if sqlite is not None else 0

    results = await asyncio.gather(
        *(put(store, created, m, send_id=s) for m, s in zip(messages, send_ids, strict=True))
    )

    assert results == [PutResult.STORED] * count
    if sqlite is not None:
        commits = sqlite.commit_count - commits_before
        print(f"group commit: {count} concurrent puts in {commits} commits")
        assert commits < count
        if store not in WRITE_BEHIND:  # deferred puts are decided without a commit
            assert commits >= count // MAX_BATCH
    retries = await asyncio.gather(*(put(store, created, new_message(), send_id=s) for s in send_ids))
    assert retries == [PutResult.DUPLICATE] * count
    assert await drain(store, created.recipient_id) == messages


@pytest.mark.asyncio
async def test_a_closed_store_raises_store_error(store: MessageStore, created: QueueRecord) -> None:
    await store.close()
    await store.close()  # twice is harmless
    with pytest.raises(StoreError):
        await store.queue_by_recipient(created.recipient_id)
    with pytest.raises(StoreError):
        await put(store, created, new_message())


# -- SQLite only: what a file can promise -------------------------------------------------


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "relay.sqlite"


def disk_bytes(path: Path) -> bytes:
    """Everything SQLite keeps for ``path``: the database, its WAL and its shared memory."""
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.mark.asyncio
async def test_sqlite_pragmas(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    try:
        pragmas = await store._call(
            lambda conn: {
                name: conn.execute(f"PRAGMA {name}").fetchone()[0]
                for name in ("journal_mode", "synchronous", "secure_delete", "foreign_keys", "user_version")
            }
        )
    finally:
        await store.close()
    assert pragmas == {
        "journal_mode": "wal",
        "synchronous": 2,  # FULL
        "secure_delete": 1,
        "foreign_keys": 1,
        "user_version": SCHEMA_VERSION,
    }


@pytest.mark.asyncio
async def test_sqlite_put_is_visible_to_another_connection_when_it_returns(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    try:
        queue = new_queue()
        await store.create_queue(queue)
        message = new_message(b"committed")
        assert await put(store, queue, message) is PutResult.STORED
        reader = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            row = reader.execute("SELECT body FROM messages WHERE msg_id = ?", (message.msg_id,)).fetchone()
        finally:
            reader.close()
        assert row == (b"committed",)
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_sqlite_put_survives_close_and_reopen(db_path: Path) -> None:
    queue = new_queue()
    message = new_message(b"durable")
    send_id = new_send_id()
    store = await SqliteStore.open(db_path)
    await store.create_queue(queue)
    await store.lock_sender_key(queue.recipient_id, b"k" * 32)
    await put(store, queue, message, send_id=send_id)
    await store.close()

    store = await SqliteStore.open(db_path)
    try:
        record = await store.queue_by_sender(queue.sender_id)
        assert record is not None
        assert record.sender_key == b"k" * 32
        assert await store.first_message(queue.recipient_id) == message
        assert await put(store, queue, new_message(), send_id=send_id) is PutResult.DUPLICATE
    finally:
        await store.close()


async def put_and_delete(store: SqliteStore, queue: QueueRecord, send_ids: list[bytes]) -> None:
    """One message per send id, stored and deleted (acknowledged), concurrently: group commits."""
    messages = [new_message() for _ in send_ids]
    results = await asyncio.gather(
        *(put(store, queue, m, send_id=s) for m, s in zip(messages, send_ids, strict=True))
    )
    assert set(results) == {PutResult.STORED}
    assert all(await asyncio.gather(*(store.delete_message(queue.recipient_id, m.msg_id) for m in messages)))


@pytest.mark.asyncio
async def test_sqlite_keeps_remembered_send_ids_across_a_restart_and_forgets_them_within_256(
    db_path: Path,
) -> None:
    """The bound of docs/protocol.md §14.8 Idempotency across a restart: the ring keeps the ids,
    not their order, so after it each is forgotten within the next 256 deletions."""
    queue = new_queue()
    old = [new_send_id() for _ in range(RETIRED_SEND_IDS)]
    store = await SqliteStore.open(db_path)
    await store.create_queue(queue)
    await put_and_delete(store, queue, old)
    await store.close()

    store = await SqliteStore.open(db_path)
    try:
        retries = await asyncio.gather(*(put(store, queue, new_message(), send_id=s) for s in old))
        assert retries == [PutResult.DUPLICATE] * len(old)
        head = await store.head(queue.recipient_id)
        assert isinstance(head, QueueMemory)
        assert sorted(head.retired) == sorted(old)  # all 256 slots, in an order of its own
        await put_and_delete(store, queue, [new_send_id() for _ in range(RETIRED_SEND_IDS)])
        again = await asyncio.gather(*(put(store, queue, new_message(), send_id=s) for s in old))
        assert again == [PutResult.STORED] * len(old)
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_sqlite_file_counts_no_queue_s_deliveries(db_path: Path) -> None:
    """A per-queue counter (two seizures give the rate) is what the relay's file must not hold."""
    quiet, busy = new_queue(), new_queue()
    deliveries = 300
    store = await SqliteStore.open(db_path)
    try:
        for queue in (quiet, busy):
            await store.create_queue(queue)
        await put_and_delete(store, busy, [new_send_id() for _ in range(deliveries)])
        await put(store, busy, new_message())
        rows = await store._call(lambda conn: conn.execute("SELECT * FROM queues").fetchall())
        numbers = await store._call(lambda conn: conn.execute("SELECT qseq FROM messages").fetchall())
    finally:
        await store.close()
    # The same row, byte for byte in size, whatever the history; and no number that counts.
    assert [[len(c) if isinstance(c, bytes) else c for c in row] for row in rows] == [
        [24, 24, 32, 32, 32, 0, RETIRED_SEND_IDS * 16]
    ] * 2
    (qseq,) = numbers[0]
    assert qseq not in (deliveries, deliveries + 1)  # a 2^-28 chance of a false alarm


@pytest.mark.asyncio
async def test_sqlite_delete_queue_cascades_in_the_database(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    try:
        queue = new_queue()
        await store.create_queue(queue)
        for _ in range(3):
            await put(store, queue, new_message())
        assert await store.delete_queue(queue.recipient_id)
        counts = await store._call(
            lambda conn: [
                conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("messages", "queues")
            ]
        )
        assert counts == [0, 0]  # its send ids were in its row
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_sqlite_open_a_directory_raises_store_error(tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        await SqliteStore.open(tmp_path)


@pytest.mark.asyncio
async def test_sqlite_open_a_corrupt_file_raises_store_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is not a database, just bytes " * 200)
    with pytest.raises(StoreError) as info:
        await SqliteStore.open(db_path)
    assert isinstance(info.value.__cause__, sqlite3.Error)


@pytest.mark.asyncio
async def test_sqlite_open_an_unknown_schema_version_raises_store_error(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="schema version"):
        await SqliteStore.open(db_path)


@pytest.mark.asyncio
async def test_sqlite_locked_file_raises_store_error(db_path: Path) -> None:
    store = await SqliteStore.open(db_path, timeout=0.05)
    try:
        queue = new_queue()
        await store.create_queue(queue)
        other = sqlite3.connect(db_path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            with pytest.raises(StoreError) as info:
                await put(store, queue, new_message())
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            with pytest.raises(StoreError):
                await SqliteStore.open(db_path, timeout=0.05)
            other.execute("ROLLBACK")
        finally:
            other.close()
        # The lock is gone and the failed put had no effect.
        assert await store.first_message(queue.recipient_id) is None
        assert await put(store, queue, new_message()) is PutResult.STORED
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_sqlite_checkpoint_after_deletes_clears_the_wal_while_open(db_path: Path) -> None:
    store = await SqliteStore.open(db_path, checkpoint_every=2)
    wal = db_path.with_name(db_path.name + "-wal")
    canary = b"CANARY-" + os.urandom(8).hex().encode()
    try:
        queue = new_queue()
        await store.create_queue(queue)
        messages = [new_message(canary), new_message()]
        for message in messages:
            await put(store, queue, message)
        size = wal.stat().st_size
        assert size > 0
        assert canary in disk_bytes(db_path)
        for message in messages:
            await store.delete_message(queue.recipient_id, message.msg_id)
        await store.first_message(queue.recipient_id)  # queued behind the checkpoint
        # Zeroed in place, never truncated: no block of it goes back to the file system
        # with a deleted message in it (docs/protocol.md §14.8b).
        assert wal.stat().st_size >= size
        assert not wal.read_bytes().strip(b"\0")
        # A kill -9 now would leave nothing of the deleted message behind.
        assert canary not in disk_bytes(db_path)
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_sqlite_group_commit_undoes_a_failing_operation_alone(db_path: Path) -> None:
    store = await SqliteStore.open(db_path)
    try:
        gate = threading.Event()
        # Hold the writer thread so that the next three operations queue up into one batch.
        blocker = asyncio.ensure_future(store._call(lambda conn: gate.wait(5)))
        await asyncio.sleep(0.05)
        good1, bad, good2 = new_queue(), new_queue(), new_queue()

        def write_then_fail(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO queues (recipient_id, sender_id, recipient_key, queue_key) VALUES (?, ?, ?, ?)",
                (bad.recipient_id, bad.sender_id, bad.recipient_key, bad.queue_key),
            )
            raise sqlite3.OperationalError("disk I/O error, say")

        futures = [
            asyncio.ensure_future(store.create_queue(good1)),
            asyncio.ensure_future(store._call(write_then_fail)),
            asyncio.ensure_future(store.create_queue(good2)),
        ]
        await asyncio.sleep(0.05)  # let all three reach the queue
        commits = store.commit_count
        gate.set()
        assert await blocker is True
        results = await asyncio.gather(*futures, return_exceptions=True)
        assert results[0] is None
        assert isinstance(results[1], StoreError)
        assert results[2] is None
        assert store.commit_count - commits == 2  # the blocker's batch, then one for all three
        assert await store.queue_by_recipient(good1.recipient_id) == good1
        assert await store.queue_by_recipient(bad.recipient_id) is None
        assert await store.queue_by_recipient(good2.recipient_id) == good2
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_deleted_message_leaves_no_plaintext_on_disk(db_path: Path) -> None:
    token = os.urandom(8).hex().encode()
    acked = b"CANARY-acked-" + token
    overflowing = b"CANARY-overflow-" + token  # in a body spread over overflow pages
    expired = b"CANARY-expired-" + token
    in_queue = b"CANARY-queue-" + token
    kept = b"KEEP-" + token

    store = await SqliteStore.open(db_path)
    a, b = new_queue(), new_queue()
    await store.create_queue(a)
    await store.create_queue(b)
    acked_message = new_message(b"<" + acked + b">")
    overflow_message = new_message(b"x" * 6000 + overflowing + b"y" * 6000)
    await put(store, a, acked_message)
    await put(store, a, overflow_message)
    await put(store, a, new_message(expired, received_at=NOW - 100))
    await put(store, b, new_message(in_queue))
    await put(store, a, new_message(kept))
    on_disk = disk_bytes(db_path)
    for canary in (acked, overflowing, expired, in_queue, kept):
        assert canary in on_disk  # the grep does see stored bytes

    assert await store.delete_message(a.recipient_id, acked_message.msg_id)
    assert await store.delete_message(a.recipient_id, overflow_message.msg_id)
    assert await store.expire(NOW) == 1
    assert await store.delete_queue(b.recipient_id)
    await store.close()

    on_disk = disk_bytes(db_path)
    for canary in (acked, overflowing, expired, in_queue):
        assert canary not in on_disk
    assert kept in on_disk
