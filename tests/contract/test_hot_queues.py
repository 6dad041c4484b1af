"""Held queues: ``WriteBehind`` (``store/writebehind.py``) over a SQLite store.

A queue whose ``first_message`` finds it empty, with nothing handed to the inner store
for it since, is held: its puts with ``on_accepted`` and its deletes never reach the
inner store while it stays held. Each test states one promise of that path; the last
runs random mixes, awaited one by one so that queues do get held, against the memory
store (the reference).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import MessageStore, PutResult, QueueRecord, StoredMessage
from burnerkit.relay.server.store.memory import MemoryStore
from burnerkit.relay.server.store.sqlite import SqliteStore
from burnerkit.relay.server.store.writebehind import WriteBehind
from tests.contract.test_deferred_writes import (
    LONG,
    SHORT,
    Lcg,
    Pending,
    canary,
    commits,
    decided,
    every_file,
)
from tests.contract.test_message_store import BIG_QUOTA, NOW, drain, new_message, new_queue, new_send_id


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "relay.sqlite"


async def write_behind(db_path: Path, defer: float = LONG, **options: Any) -> WriteBehind:
    return WriteBehind(await SqliteStore.open(db_path, **options), defer_seconds=defer)


async def hot_store(db_path: Path, defer: float = LONG) -> tuple[WriteBehind, QueueRecord]:
    """A store with one queue made hot: its first read found it empty."""
    store = await write_behind(db_path, defer)
    queue = new_queue()
    await store.create_queue(queue)
    assert await store.first_message(queue.recipient_id) is None
    return store, queue


@pytest.mark.asyncio
async def test_a_hot_message_acknowledged_in_time_costs_the_writer_nothing(db_path: Path) -> None:
    store, queue = await hot_store(db_path)
    before = commits(store)
    body = canary("hot")
    pending = Pending(store, queue, StoredMessage(new_message().msg_id, NOW, False, body))
    assert await pending.deferred() is PutResult.STORED
    assert await store.first_message(queue.recipient_id) == pending.message
    assert await store.delete_message(queue.recipient_id, pending.message.msg_id) is True
    assert await pending.result() is PutResult.STORED
    assert commits(store) == before  # no transaction for either
    assert await store.delete_message(queue.recipient_id, pending.message.msg_id) is False
    await store.close()
    assert body not in every_file(db_path.parent)


@pytest.mark.asyncio
async def test_a_hot_delete_is_done_at_once_and_answers_its_deferred_put(db_path: Path) -> None:
    store, queue = await hot_store(db_path)
    before = commits(store)
    pending = Pending(store, queue, new_message())
    assert await pending.deferred() is PutResult.STORED
    assert store.delete_message_now(queue.recipient_id, pending.message.msg_id) is True
    assert await pending.result() is PutResult.STORED
    assert store.delete_message_now(queue.recipient_id, pending.message.msg_id) is False
    assert commits(store) == before
    cold = new_queue()
    await store.create_queue(cold)
    waiting = new_message()
    assert (
        await store.put_message(cold.sender_id, new_send_id(), waiting, quota=BIG_QUOTA) is PutResult.STORED
    )
    # A queue that is not hot: the writer deletes, and the answer is its commit's.
    started = store.delete_message_now(cold.recipient_id, waiting.msg_id)
    assert isinstance(started, asyncio.Future)
    before = commits(store)
    assert await started is True
    assert commits(store) == before + 1
    assert await store.first_message(cold.recipient_id) is None
    await store.close()
    # A closed store has no hot queue left: it decides nothing, and says it is closed.
    with pytest.raises(StoreError):
        store.delete_message_now(queue.recipient_id, new_message().msg_id)


@pytest.mark.asyncio
async def test_a_retry_of_an_acknowledged_hot_message_is_a_duplicate_even_after_reopen(db_path: Path) -> None:
    store, queue = await hot_store(db_path)
    pending = Pending(store, queue, new_message())
    await pending.deferred()
    assert await store.delete_message(queue.recipient_id, pending.message.msg_id) is True
    retry = await store.put_message(
        queue.sender_id, pending.send_id, new_message(), quota=BIG_QUOTA, on_accepted=lambda _r: None
    )
    assert retry is PutResult.DUPLICATE
    await store.close()  # the cooling queue's retired send id reaches the file
    reopened = await write_behind(db_path)
    assert await reopened.first_message(queue.recipient_id) is None  # hot again
    again = await reopened.put_message(
        queue.sender_id, pending.send_id, new_message(), quota=BIG_QUOTA, on_accepted=lambda _r: None
    )
    assert again is PutResult.DUPLICATE
    await reopened.close()


@pytest.mark.asyncio
async def test_an_unacknowledged_hot_message_is_written_when_due_and_survives_reopen(db_path: Path) -> None:
    store, queue = await hot_store(db_path, defer=SHORT)
    pending = Pending(store, queue, new_message())
    await pending.deferred()
    assert await pending.result() is PutResult.STORED  # answered once written
    await store.close()
    reopened = await SqliteStore.open(db_path)
    assert await drain(reopened, queue.recipient_id) == [pending.message]
    await reopened.close()


@pytest.mark.asyncio
async def test_a_queue_released_by_a_burst_is_held_again_once_drained(db_path: Path) -> None:
    store, queue = await hot_store(db_path, defer=SHORT)
    late = Pending(store, queue, new_message())
    await late.deferred()
    assert await late.result() is PutResult.STORED  # unacknowledged past its time: written, released
    assert queue.recipient_id not in store._held
    # Released, a put goes through the writer; the recipient drains the queue.
    during = Pending(store, queue, new_message())
    assert await during.result() is PutResult.STORED
    for pending in (late, during):
        assert await store.delete_message(queue.recipient_id, pending.message.msg_id) is True
    # Nobody reads the queue again (its subscription knows it is empty), yet it is held again.
    deadline = asyncio.get_running_loop().time() + 5
    while queue.recipient_id not in store._held:
        assert asyncio.get_running_loop().time() < deadline, "the drained queue was not held again"
        await asyncio.sleep(0.01)
    before = commits(store)
    again = Pending(store, queue, new_message())
    assert await again.deferred() is PutResult.STORED
    assert await store.delete_message(queue.recipient_id, again.message.msg_id) is True
    assert await again.result() is PutResult.STORED
    assert commits(store) == before  # held: no transaction for the put or its delete
    # A retry of a message acknowledged while released is still a duplicate.
    assert (
        await store.put_message(
            queue.sender_id, during.send_id, new_message(), quota=BIG_QUOTA, on_accepted=lambda _: None
        )
        is PutResult.DUPLICATE
    )
    await store.close()


@pytest.mark.asyncio
async def test_a_hot_queue_keeps_quota_order_and_marker(db_path: Path) -> None:
    store, queue = await hot_store(db_path)
    puts = [Pending(store, queue, new_message(), quota=2) for _ in range(3)]
    results = [await put.deferred() for put in puts[:2]]
    assert results == [PutResult.STORED, PutResult.STORED_MARKED]
    assert await puts[2].result() is PutResult.QUOTA
    # A put without on_accepted cools the queue: the writer gets its messages, in order, first.
    assert await store.put_message(queue.sender_id, new_send_id(), new_message(), quota=2) is PutResult.QUOTA
    marked = StoredMessage(puts[1].message.msg_id, NOW, True, puts[1].message.body)
    assert await drain(store, queue.recipient_id) == [puts[0].message, marked]
    assert [await put.result() for put in puts[:2]] == results
    await store.close()


@pytest.mark.asyncio
async def test_a_held_put_whose_id_is_taken_in_the_file_fails_when_written(db_path: Path) -> None:
    # Ids are 24 random bytes: a held put is not checked against the file at once
    # (store/base.py); the clash fails its put when it is written, and leaves nothing.
    store = await write_behind(db_path, SHORT)
    cold, hot = new_queue(), new_queue()
    for queue in (cold, hot):
        await store.create_queue(queue)
    taken = new_message()
    assert await store.put_message(cold.sender_id, new_send_id(), taken, quota=BIG_QUOTA) is PutResult.STORED
    assert await store.first_message(hot.recipient_id) is None
    clash = Pending(store, hot, StoredMessage(taken.msg_id, NOW, False, b"x"))
    assert await clash.deferred() is PutResult.STORED
    with pytest.raises(StoreError) as info:
        await clash.result()
    assert taken.msg_id.hex() not in str(info.value)
    assert await store.first_message(hot.recipient_id) is None  # no effect
    assert await drain(store, cold.recipient_id) == [taken]
    await store.close()


@pytest.mark.asyncio
async def test_a_message_id_held_on_another_queue_clashes_at_once(db_path: Path) -> None:
    store, hot = await hot_store(db_path)
    held = Pending(store, hot, new_message())
    await held.deferred()
    other = new_queue()
    await store.create_queue(other)
    with pytest.raises(StoreError):  # written through: refused before it reaches the file
        await store.put_message(
            other.sender_id,
            new_send_id(),
            StoredMessage(held.message.msg_id, NOW, False, b"x"),
            quota=BIG_QUOTA,
        )
    assert await store.first_message(other.recipient_id) is None
    assert await store.delete_message(hot.recipient_id, held.message.msg_id) is True
    assert await held.result() is PutResult.STORED
    await store.close()


@pytest.mark.asyncio
async def test_the_readers_snapshot_never_keeps_deleted_bodies_in_the_wal(db_path: Path) -> None:
    # A checkpoint cannot empty the WAL while a reader holds an old snapshot;
    # the writer ends the reader's snapshot first, so deleted bodies still leave the disk.
    store = await write_behind(db_path, checkpoint_every=2)
    hot, cold = new_queue(), new_queue()
    for queue in (hot, cold):
        await store.create_queue(queue)
    secret = canary("deleted")
    messages = [StoredMessage(new_message().msg_id, NOW, False, secret), new_message()]
    for message in messages:
        assert (
            await store.put_message(cold.sender_id, new_send_id(), message, quota=BIG_QUOTA)
            is PutResult.STORED
        )
    assert await store.first_message(hot.recipient_id) is None
    pending = Pending(store, hot, new_message())
    await pending.deferred()  # the reader's snapshot now includes the cold queue's rows
    for message in messages:
        assert await store.delete_message(cold.recipient_id, message.msg_id) is True
    await store.first_message(cold.recipient_id)  # queued behind the checkpoint
    wal = db_path.with_name(db_path.name + "-wal")
    assert not wal.read_bytes().strip(b"\0")  # checkpointed, and zeroed in place
    assert secret not in every_file(db_path.parent)
    assert await store.delete_message(hot.recipient_id, pending.message.msg_id) is True
    await store.close()


@pytest.mark.asyncio
async def test_a_deleted_message_id_is_free_again_for_a_hot_put(db_path: Path) -> None:
    # As in the reference: ids are unique among stored messages, not forever.
    store = await write_behind(db_path)
    cold, hot = new_queue(), new_queue()
    for queue in (cold, hot):
        await store.create_queue(queue)
    message = new_message()
    assert (
        await store.put_message(cold.sender_id, new_send_id(), message, quota=BIG_QUOTA) is PutResult.STORED
    )
    assert await store.delete_message(cold.recipient_id, message.msg_id) is True
    assert await store.first_message(hot.recipient_id) is None
    again = Pending(store, hot, StoredMessage(message.msg_id, NOW, False, b"again"))
    assert await again.deferred() is PutResult.STORED
    assert await store.delete_message(hot.recipient_id, message.msg_id) is True
    assert await again.result() is PutResult.STORED
    await store.close()


@pytest.mark.asyncio
async def test_delete_queue_drops_hot_messages_unwritten(db_path: Path) -> None:
    store, queue = await hot_store(db_path)
    body = canary("dropped")
    pending = Pending(store, queue, StoredMessage(new_message().msg_id, NOW, False, body))
    await pending.deferred()
    assert await store.delete_queue(queue.recipient_id) is True
    assert await pending.result() is PutResult.STORED
    await store.close()
    assert body not in every_file(db_path.parent)


@pytest.mark.asyncio
async def test_expire_deletes_hot_messages_too(db_path: Path) -> None:
    store, queue = await hot_store(db_path)
    pending = Pending(store, queue, StoredMessage(new_message().msg_id, NOW - 100, False, b"old"))
    await pending.deferred()
    assert await store.expire(NOW) == 1
    assert await store.first_message(queue.recipient_id) is None
    await store.close()


@pytest.mark.asyncio
async def test_a_put_handed_over_after_the_read_keeps_the_queue_cold(db_path: Path) -> None:
    # The read finds the queue empty, but a put queued behind it lands there: had the
    # queue got hot, the loop would not know that message.
    store = await write_behind(db_path)
    queue = new_queue()
    await store.create_queue(queue)
    read = asyncio.ensure_future(store.first_message(queue.recipient_id))
    await asyncio.sleep(0)  # the read is handed over first
    first = new_message()
    behind = Pending(store, queue, first)
    assert await read is None
    await behind.accepted_now()  # written through: the queue was not held
    assert await store.first_message(queue.recipient_id) == first
    assert await store.delete_message(queue.recipient_id, first.msg_id) is True
    assert await behind.result() is PutResult.STORED
    await store.close()


# -- against the reference ----------------------------------------------------------------


async def run_steps(
    store: MessageStore, seed: int, queues: list[QueueRecord], check: Callable[[], None] = lambda: None
) -> list[tuple[str, object]]:
    """A seeded mix, each step awaited before the next (puts with on_accepted until accepted).

    Awaited one by one, reads find queues empty with nothing behind them, so queues get
    hot and the steps after run on the hot path, and cool down again. ``check`` runs
    after every step.
    """
    rng = Lcg(seed)
    for queue in queues:
        await store.create_queue(queue)
    msg_ids: list[tuple[bytes, bytes]] = []
    send_ids: list[bytes] = []
    outcomes: list[tuple[str, object]] = []
    puts: list[asyncio.Future[Any]] = []

    async def step(awaitable: Any) -> None:
        try:
            outcomes.append(("ok", await awaitable))
        except StoreError as exc:
            outcomes.append(("error", type(exc).__name__))

    for _ in range(120):
        check()
        queue = queues[rng.below(len(queues))]
        kind = rng.below(12)
        if kind < 5:
            send_id = send_ids[rng.below(len(send_ids))] if send_ids and rng.below(5) == 0 else rng.bytes(16)
            send_ids.append(send_id)
            reused = bool(msg_ids) and rng.below(25) == 0
            msg_id = msg_ids[rng.below(len(msg_ids))][1] if reused else rng.bytes(24)
            msg_ids.append((queue.recipient_id, msg_id))
            message = StoredMessage(msg_id, NOW - 10 + rng.below(20), rng.below(8) == 0, msg_id[:4])
            # A reused (clashing) id goes without on_accepted: a held put learns of a clash
            # with the inner store only when written (store/base.py), unlike the reference.
            if rng.below(5) and not reused:
                heard: list[PutResult] = []
                put = asyncio.ensure_future(
                    store.put_message(queue.sender_id, send_id, message, quota=5, on_accepted=heard.append)
                )
                # Accepted, answered, or (a retry of a message held unwritten) waiting for
                # the message it repeats: its answer is gathered at the end.
                await decided(store)
                outcomes.append(("heard", list(heard)))
                puts.append(put)
            else:
                await step(store.put_message(queue.sender_id, send_id, message, quota=5))
        elif kind < 8 and msg_ids:
            recipient_id, msg_id = msg_ids[rng.below(len(msg_ids))]
            if rng.below(6) == 0:
                recipient_id = queue.recipient_id
            if rng.below(2):
                await step(store.delete_message(recipient_id, msg_id))
            elif (done := store.delete_message_now(recipient_id, msg_id)) is not None:
                outcomes.append(("ok", await done if isinstance(done, asyncio.Future) else done))
            else:  # the store must wait: nothing was done, the awaited delete does it
                await step(store.delete_message(recipient_id, msg_id))
        elif kind < 11:
            await step(store.first_message(queue.recipient_id))
        elif rng.below(8) == 0:
            await step(store.delete_queue(queue.recipient_id))
        else:
            await step(store.expire(NOW - 5 + rng.below(4)))
    for queue in queues:
        await step(drain(store, queue.recipient_id))
    results = await asyncio.wait_for(asyncio.gather(*puts, return_exceptions=True), 30)
    check()
    outcomes.extend(
        ("error", type(result).__name__) if isinstance(result, BaseException) else ("put", result)
        for result in results
    )
    return outcomes


@pytest.mark.asyncio
@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("defer", [0.002, LONG])
async def test_a_store_with_hot_queues_answers_like_the_reference(
    db_path: Path, seed: int, defer: float
) -> None:
    queues = [new_queue() for _ in range(2)]
    expected = await run_steps(MemoryStore(), seed, queues)
    store = await write_behind(db_path, defer)
    try:
        got = await run_steps(store, seed, queues)
    finally:
        await store.close()
    assert got == expected
