"""The store's part of sender-secured queues, against every ``MessageStore``.

docs/protocol.md §14.8 (sender-secured queues). ``lock_sender_key`` is the one step
that decides which key a queue belongs to; ``put_notice`` leaves the recipient a
refused-sender notice, at most one waiting. Both are promises of ``store/base.py``; the
SQLite file's flags (and a file from before them) are checked at the bottom.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import MessageStore, PutResult, QueueRecord, StoredMessage
from burnerkit.relay.server.store.memory import MemoryStore
from burnerkit.relay.server.store.sqlite import SCHEMA_VERSION, SqliteStore
from burnerkit.relay.server.store.writebehind import WriteBehind

NOW = 1_700_000_000
BIG_QUOTA = 10_000
DEFER = 0.002

pytestmark = pytest.mark.asyncio


def new_queue(*, secured: bool = True) -> QueueRecord:
    return QueueRecord(os.urandom(24), os.urandom(24), os.urandom(32), os.urandom(32), sender_secured=secured)


def new_message(body: bytes = b"body") -> StoredMessage:
    return StoredMessage(os.urandom(24), NOW, False, body)


def new_notice() -> StoredMessage:
    return StoredMessage(os.urandom(24), NOW, False, b"", True)


async def put(store: MessageStore, queue: QueueRecord, body: bytes, *, quota: int = BIG_QUOTA) -> PutResult:
    accepted: list[PutResult] = []
    return await store.put_message(
        queue.sender_id, os.urandom(16), new_message(body), quota=quota, on_accepted=accepted.append
    )


async def drain(store: MessageStore, recipient_id: bytes) -> list[StoredMessage]:
    out = []
    while (message := await store.first_message(recipient_id)) is not None:
        out.append(message)
        assert await store.delete_message(recipient_id, message.msg_id)
    return out


@pytest_asyncio.fixture(params=["memory", "sqlite", "sqlite-write-behind"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[MessageStore]:
    backend: MessageStore
    if request.param == "memory":
        backend = MemoryStore()
    elif request.param == "sqlite":
        backend = await SqliteStore.open(tmp_path / "relay.sqlite")
    else:
        backend = WriteBehind(await SqliteStore.open(tmp_path / "relay.sqlite"), defer_seconds=DEFER)
    yield backend
    await backend.close()


@pytest_asyncio.fixture
async def secured(store: MessageStore) -> QueueRecord:
    queue = new_queue()
    await store.create_queue(queue)
    return queue


# -- the flag and the lock ---------------------------------------------------------------


async def test_a_queue_keeps_its_sender_secured_flag(store: MessageStore) -> None:
    for flag in (True, False):
        queue = new_queue(secured=flag)
        await store.create_queue(queue)
        assert await store.queue_by_recipient(queue.recipient_id) == queue
        assert (await store.queue_by_sender(queue.sender_id)) == queue


async def test_lock_sender_key_sets_a_key_once(store: MessageStore, secured: QueueRecord) -> None:
    first, other = os.urandom(32), os.urandom(32)
    assert await store.lock_sender_key(secured.recipient_id, first) is True
    assert await store.lock_sender_key(secured.recipient_id, first) is True  # a retry: still ours
    assert await store.lock_sender_key(secured.recipient_id, other) is False
    record = await store.queue_by_sender(secured.sender_id)
    assert record is not None
    assert (record.sender_key, record.sender_secured) == (first, True)


async def test_lock_sender_key_of_a_missing_queue_is_false(store: MessageStore, secured: QueueRecord) -> None:
    assert await store.lock_sender_key(os.urandom(24), os.urandom(32)) is False
    assert await store.lock_sender_key(secured.sender_id, os.urandom(32)) is False  # no recipient id
    assert await store.queue_by_recipient(secured.recipient_id) == secured


async def test_lock_sender_key_does_not_replace_a_key_set_by_key(store: MessageStore) -> None:
    queue = new_queue(secured=False)
    await store.create_queue(queue)
    by_key = os.urandom(32)
    assert await store.lock_sender_key(queue.recipient_id, by_key)
    assert await store.lock_sender_key(queue.recipient_id, os.urandom(32)) is False
    assert await store.lock_sender_key(queue.recipient_id, by_key) is True


async def test_concurrent_first_sends_lock_once(store: MessageStore, secured: QueueRecord) -> None:
    """Many first SENDs with different keys at once (the relay runs them concurrently):
    exactly one key wins, and the queue is locked to that one."""
    keys = [os.urandom(32) for _ in range(8)]
    won = await asyncio.gather(*(store.lock_sender_key(secured.recipient_id, key) for key in keys))
    assert sum(won) == 1
    record = await store.queue_by_recipient(secured.recipient_id)
    assert record is not None
    assert record.sender_key == keys[won.index(True)]


# -- refused-sender notices --------------------------------------------------------------


async def test_one_notice_waits_at_a_time_after_the_messages_before_it(
    store: MessageStore, secured: QueueRecord
) -> None:
    assert await put(store, secured, b"before") is PutResult.STORED
    assert await store.put_notice(secured.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.STORED
    for _ in range(3):
        assert (
            await store.put_notice(secured.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.DUPLICATE
        )
    assert await put(store, secured, b"after") is PutResult.STORED
    messages = await drain(store, secured.recipient_id)
    assert [(m.body, m.sender_refused) for m in messages] == [
        (b"before", False),
        (b"", True),
        (b"after", False),
    ]
    # Once it is acknowledged, the next refusal leaves a new one.
    assert await store.put_notice(secured.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.STORED
    assert [m.sender_refused for m in await drain(store, secured.recipient_id)] == [True]


async def test_a_notice_is_flagged_whatever_the_caller_passed(
    store: MessageStore, secured: QueueRecord
) -> None:
    plain = new_message(b"")
    assert await store.put_notice(secured.recipient_id, plain, quota=BIG_QUOTA) is PutResult.STORED
    (stored,) = await drain(store, secured.recipient_id)
    assert (stored.msg_id, stored.sender_refused, stored.body) == (plain.msg_id, True, b"")


async def test_a_notice_after_a_hot_message_comes_after_it(store: MessageStore, secured: QueueRecord) -> None:
    """An empty queue read by the recipient may be decided in memory (a queue held by write-behind):
    the notice still takes its place after what was accepted before it."""
    assert await store.first_message(secured.recipient_id) is None
    accepted: list[PutResult] = []
    pending = asyncio.ensure_future(
        store.put_message(
            secured.sender_id,
            os.urandom(16),
            new_message(b"hot"),
            quota=BIG_QUOTA,
            on_accepted=accepted.append,
        )
    )
    while not accepted and not pending.done():
        await asyncio.sleep(0)
    assert await store.put_notice(secured.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.STORED
    assert [(m.body, m.sender_refused) for m in await drain(store, secured.recipient_id)] == [
        (b"hot", False),
        (b"", True),
    ]
    assert await pending is PutResult.STORED


async def test_a_notice_takes_a_quota_slot_and_none_is_left_in_a_full_queue(
    store: MessageStore, secured: QueueRecord
) -> None:
    assert await put(store, secured, b"one", quota=2) is PutResult.STORED
    # The notice fills the queue: it carries the quota marker, and the sender after it is refused.
    assert await store.put_notice(secured.recipient_id, new_notice(), quota=2) is PutResult.STORED_MARKED
    assert await put(store, secured, b"two", quota=2) is PutResult.QUOTA
    messages = await drain(store, secured.recipient_id)
    assert [(m.sender_refused, m.quota_marker) for m in messages] == [(False, False), (True, True)]
    # A full queue gets no notice at all.
    assert await put(store, secured, b"three", quota=1) is PutResult.STORED_MARKED
    assert await store.put_notice(secured.recipient_id, new_notice(), quota=1) is PutResult.QUOTA
    assert [m.body for m in await drain(store, secured.recipient_id)] == [b"three"]


async def test_a_notice_to_a_missing_queue_is_no_queue(store: MessageStore, secured: QueueRecord) -> None:
    assert await store.put_notice(os.urandom(24), new_notice(), quota=BIG_QUOTA) is PutResult.NO_QUEUE
    assert await store.put_notice(secured.sender_id, new_notice(), quota=BIG_QUOTA) is PutResult.NO_QUEUE
    assert await store.first_message(secured.recipient_id) is None


async def test_a_notice_leaves_the_send_ids_alone(store: MessageStore, secured: QueueRecord) -> None:
    """A notice has no send id: it is never a duplicate of a SEND, and its deletion pushes
    no sender's retired send id out of the window."""
    send_id = os.urandom(16)
    assert (
        await store.put_message(secured.sender_id, send_id, new_message(), quota=BIG_QUOTA)
        is PutResult.STORED
    )
    await drain(store, secured.recipient_id)
    assert await store.put_notice(secured.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.STORED
    await drain(store, secured.recipient_id)
    retry = await store.put_message(secured.sender_id, send_id, new_message(), quota=BIG_QUOTA)
    assert retry is PutResult.DUPLICATE


async def test_a_notice_with_a_used_message_id_raises_store_error(
    store: MessageStore, secured: QueueRecord
) -> None:
    message = new_message()
    assert await put(store, secured, b"x") is PutResult.STORED
    await store.put_message(secured.sender_id, os.urandom(16), message, quota=BIG_QUOTA)
    clash = StoredMessage(message.msg_id, NOW, False, b"", True)
    with pytest.raises(StoreError):
        await store.put_notice(secured.recipient_id, clash, quota=BIG_QUOTA)
    assert [m.sender_refused for m in await drain(store, secured.recipient_id)] == [False, False]


async def test_a_closed_store_refuses_lock_and_notice(store: MessageStore, secured: QueueRecord) -> None:
    await store.close()
    with pytest.raises(StoreError):
        await store.lock_sender_key(secured.recipient_id, os.urandom(32))
    with pytest.raises(StoreError):
        await store.put_notice(secured.recipient_id, new_notice(), quota=BIG_QUOTA)


# -- the SQLite file -----------------------------------------------------------------------


async def test_sqlite_keeps_the_flag_the_lock_and_the_notice_across_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "relay.sqlite"
    store = await SqliteStore.open(path)
    queue = new_queue()
    await store.create_queue(queue)
    key = os.urandom(32)
    assert await store.lock_sender_key(queue.recipient_id, key)
    assert await store.put_notice(queue.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.STORED
    await store.close()
    store = await SqliteStore.open(path)
    try:
        record = await store.queue_by_recipient(queue.recipient_id)
        assert record is not None
        assert (record.sender_secured, record.sender_key) == (True, key)
        assert (
            await store.put_notice(queue.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.DUPLICATE
        )
        assert [(m.body, m.sender_refused) for m in await drain(store, queue.recipient_id)] == [(b"", True)]
    finally:
        await store.close()


#: The file layout of schema version 2, as relays before sender-secured queues wrote it.
_SCHEMA_V2 = (
    "CREATE TABLE queues (recipient_id BLOB PRIMARY KEY NOT NULL, sender_id BLOB NOT NULL UNIQUE,"
    " recipient_key BLOB NOT NULL, queue_key BLOB NOT NULL, sender_key BLOB) WITHOUT ROWID",
    "CREATE TABLE messages (recipient_id BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,"
    " qseq INTEGER NOT NULL, msg_id BLOB NOT NULL UNIQUE, send_id BLOB NOT NULL,"
    " received_at INTEGER NOT NULL, quota_marker INTEGER NOT NULL, body BLOB NOT NULL,"
    " PRIMARY KEY (recipient_id, qseq)) WITHOUT ROWID",
    "CREATE INDEX messages_by_age ON messages (received_at)",
    "CREATE TABLE send_ids (recipient_id BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,"
    " send_id BLOB NOT NULL, retired INTEGER, PRIMARY KEY (recipient_id, send_id)) WITHOUT ROWID",
    "CREATE INDEX send_ids_by_retirement ON send_ids (recipient_id, retired)",
    "PRAGMA user_version = 2",
)


async def test_sqlite_opens_a_relay_database_from_before_sender_secured_queues(tmp_path: Path) -> None:
    """A version-2 file opens, is migrated in place, and keeps its queues and messages:
    none of them secured, none a notice; new queues may be secured."""
    path = tmp_path / "old.sqlite"
    old = new_queue(secured=False)
    locked_key = os.urandom(32)
    message = new_message(b"from before")
    send_id = os.urandom(16)
    with sqlite3.connect(path) as conn:
        for statement in _SCHEMA_V2:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO queues VALUES (?, ?, ?, ?, ?)",
            (old.recipient_id, old.sender_id, old.recipient_key, old.queue_key, locked_key),
        )
        conn.execute(
            "INSERT INTO messages VALUES (?, 1, ?, ?, ?, 0, ?)",
            (old.recipient_id, message.msg_id, send_id, message.received_at, message.body),
        )
        conn.execute("INSERT INTO send_ids VALUES (?, ?, NULL)", (old.recipient_id, send_id))
    conn.close()
    store = await SqliteStore.open(path)
    try:
        record = await store.queue_by_sender(old.sender_id)
        assert record is not None
        assert (record.sender_key, record.sender_secured) == (locked_key, False)
        again = await store.put_message(old.sender_id, send_id, new_message(), quota=BIG_QUOTA)
        assert again is PutResult.DUPLICATE  # its send ids are still remembered
        assert await store.first_message(old.recipient_id) == message
        fresh = new_queue()
        await store.create_queue(fresh)
        assert await store.queue_by_recipient(fresh.recipient_id) == fresh
        assert await store.put_notice(old.recipient_id, new_notice(), quota=BIG_QUOTA) is PutResult.STORED
        assert [m.sender_refused for m in await drain(store, old.recipient_id)] == [False, True]
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
    conn.close()
    assert version == SCHEMA_VERSION == 4
