"""``SqliteStore``: the relay's default, durable :class:`~burnerkit.relay.server.store.base.MessageStore`.

Theory of operation
-------------------
All sqlite3 work, reads included, runs on one dedicated writer thread that owns the
only connection. Coroutines hand it an operation through a :class:`queue.SimpleQueue` and
await an asyncio future that the thread resolves with ``loop.call_soon_threadsafe``.

The thread does *group commit*: it takes every operation waiting in the queue (up to
:data:`MAX_BATCH`), runs them in one ``BEGIN IMMEDIATE`` transaction, each inside its
own ``SAVEPOINT`` so a failing operation is undone alone, commits once and only then
resolves their futures. So ``put_message`` returns only after its commit
(``synchronous=FULL``: the WAL is fsynced), and many concurrent puts share one fsync.
If the commit itself fails, every operation of the batch fails with
:class:`StoreError` and none had an effect. ``commit_count`` counts the commits.

Pragmas: ``journal_mode=WAL``, ``synchronous=FULL``, ``secure_delete=ON`` (deleted
rows and freed pages are overwritten with zeros), ``foreign_keys=ON`` (a queue's
messages and send ids go with it). After every ``checkpoint_every`` deleted messages
and on close the thread runs ``wal_checkpoint(TRUNCATE)``, so the WAL frames that
still held a deleted message's bytes are gone from the disk too.

Every ``sqlite3.Error`` is translated to :class:`StoreError` at one boundary,
:meth:`SqliteStore._call` (and :meth:`SqliteStore.open`); the message names the
SQLite error code only, never an id, a key or a body.

A coroutine cancelled while its operation waits may still see the operation take
effect; for ``put_message`` that is harmless, since a retry with the same ``send_id``
answers ``DUPLICATE``.

Dedupe and quota rules are those of :mod:`burnerkit.relay.server.store.memory`: a
send id is remembered while its message is on the queue and then as one of the
:data:`~burnerkit.relay.server.store.memory.RETIRED_SEND_IDS` most recently deleted
send ids of that queue (table ``send_ids``, column ``retired`` numbering deletions
per queue).

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    queues(recipient_id BLOB PK, sender_id BLOB UNIQUE, recipient_key, queue_key, sender_key NULL)
    messages(seq INTEGER PK AUTOINCREMENT, recipient_id FK CASCADE, msg_id BLOB UNIQUE,
             send_id, received_at, quota_marker, body)            index (recipient_id, seq), (received_at)
    send_ids(recipient_id FK CASCADE, send_id, retired NULL, PK (recipient_id, send_id))
                                                                  index (recipient_id, retired)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, Final, TypeVar

from burnerkit.relay.server.store.base import PutResult, QueueRecord, StoredMessage, StoreError
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS

__all__ = ["MAX_BATCH", "SCHEMA_VERSION", "SqliteStore"]

#: Operations one transaction (one commit, one fsync) carries at most.
MAX_BATCH: Final = 64
#: ``PRAGMA user_version`` of the schema this module writes.
SCHEMA_VERSION: Final = 1

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

_SCHEMA: Final = f"""
CREATE TABLE queues (
    recipient_id  BLOB PRIMARY KEY NOT NULL,
    sender_id     BLOB NOT NULL UNIQUE,
    recipient_key BLOB NOT NULL,
    queue_key     BLOB NOT NULL,
    sender_key    BLOB
);
CREATE TABLE messages (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_id  BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,
    msg_id        BLOB NOT NULL UNIQUE,
    send_id       BLOB NOT NULL,
    received_at   INTEGER NOT NULL,
    quota_marker  INTEGER NOT NULL,
    body          BLOB NOT NULL
);
CREATE INDEX messages_by_queue ON messages (recipient_id, seq);
CREATE INDEX messages_by_age ON messages (received_at);
CREATE TABLE send_ids (
    recipient_id  BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,
    send_id       BLOB NOT NULL,
    retired       INTEGER,
    PRIMARY KEY (recipient_id, send_id)
) WITHOUT ROWID;
CREATE INDEX send_ids_by_retirement ON send_ids (recipient_id, retired);
PRAGMA user_version = {SCHEMA_VERSION};
"""


@dataclass(frozen=True, slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


@dataclass(frozen=True, slots=True)
class _Close:
    future: asyncio.Future[None] | None
    loop: asyncio.AbstractEventLoop | None


def _settle(future: asyncio.Future[Any], result: object, exc: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


def _resolve(
    loop: asyncio.AbstractEventLoop | None,
    future: asyncio.Future[Any] | None,
    result: object,
    exc: BaseException | None,
) -> None:
    if loop is None or future is None:
        return
    with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
        loop.call_soon_threadsafe(_settle, future, result, exc)


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return f"sqlite store failed ({name})"


class SqliteStore:
    """Queues and messages in one SQLite file; create with :meth:`open`.

    Attributes:
        commit_count: transactions committed so far, one per batch (a batch that wrote
            something costs one fsync of the WAL; a read-only batch costs none).
    """

    commit_count: int

    def __init__(self, path: str | os.PathLike[str], *, timeout: float, checkpoint_every: int) -> None:
        """Prepare a store; :meth:`open` is the constructor to call."""
        if timeout < 0:
            raise ValueError("timeout must not be negative")
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        self._path = os.fspath(path)
        self._timeout = timeout
        self._checkpoint_every = checkpoint_every
        self._queue: SimpleQueue[_Op | _Close] = SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._deleted_since_checkpoint = 0  # writer thread only
        self.commit_count = 0

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, timeout: float = 5.0, checkpoint_every: int = 64
    ) -> SqliteStore:
        """Open (or create) the store at ``path`` and start its writer thread.

        Args:
            path: the database file; ``-wal`` and ``-shm`` files live beside it.
            timeout: seconds to wait for a lock another process holds before failing.
            checkpoint_every: deleted messages between two ``wal_checkpoint(TRUNCATE)``.

        Raises:
            StoreError: the file cannot be opened, is not a database, is locked, or
                holds an unknown schema version.
            ValueError: ``timeout`` is negative or ``checkpoint_every`` is below 1.
        """
        store = cls(path, timeout=timeout, checkpoint_every=checkpoint_every)
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        thread = threading.Thread(
            target=store._serve, args=(loop, ready), name="burnerkit-sqlite-store", daemon=True
        )
        store._thread = thread
        thread.start()
        try:
            await ready
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc)) from exc
        except asyncio.CancelledError:
            store._shut_down(None, None)
            raise
        return store

    # -- the writer thread ----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=self._timeout, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA secure_delete = ON")
            (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
            if str(mode).lower() != "wal":
                raise StoreError("sqlite store needs a file that supports WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute("PRAGMA user_version").fetchone()
                if version == 0:
                    # Not executescript: it would COMMIT first. One statement at a time instead.
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                elif version != SCHEMA_VERSION:
                    raise StoreError("sqlite store has an unsupported schema version")
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except BaseException:
            conn.close()
            raise
        return conn

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except Exception as exc:
            with self._lock:
                self._closed = True
            _resolve(loop, ready, None, exc)
            return
        _resolve(loop, ready, None, None)
        closing: _Close | None = None
        while closing is None:
            item = self._queue.get()
            batch: list[_Op] = []
            while True:
                if isinstance(item, _Close):
                    closing = item
                    break
                batch.append(item)
                if len(batch) >= MAX_BATCH:
                    break
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
            if batch:
                self._run_batch(conn, batch)
            if closing is None and self._deleted_since_checkpoint >= self._checkpoint_every:
                self._checkpoint(conn)
        self._checkpoint(conn)
        close_error: BaseException | None = None
        try:
            conn.close()
        except sqlite3.Error as exc:
            close_error = exc
        # Nothing can be queued after the close request (the lock sees to it), but be sure.
        while True:
            try:
                stray = self._queue.get_nowait()
            except Empty:
                break
            if isinstance(stray, _Op):
                _resolve(stray.loop, stray.future, None, StoreError("store is closed"))
        _resolve(closing.loop, closing.future, None, close_error)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        outcomes: list[tuple[object, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                conn.execute("SAVEPOINT op")
                try:
                    result = op.fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((result, None))
            conn.execute("COMMIT")
            self.commit_count += 1
        except Exception as exc:  # sqlite3.Error in practice; the boundary in _call translates it
            if conn.in_transaction:
                # If even this fails the connection is broken; the next BEGIN reports it.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [(None, exc)] * len(batch)
        for op, (result, error) in zip(batch, outcomes, strict=True):
            _resolve(op.loop, op.future, result, error)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # Whatever the outcome, the next try waits for another checkpoint_every deletes:
        # TRUNCATE waits up to the busy timeout for readers, and must not do so every batch.
        self._deleted_since_checkpoint = 0
        try:
            (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            _log.warning("wal checkpoint failed: %s", _describe(exc))
            return
        if busy:
            _log.warning("wal checkpoint could not finish: a reader holds an old snapshot")

    # -- the event-loop side --------------------------------------------------------------

    async def _call(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run ``fn`` on the writer thread inside the next transaction; return after its commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            self._queue.put(_Op(fn, future, loop))
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc)) from exc

    def _shut_down(self, future: asyncio.Future[None] | None, loop: asyncio.AbstractEventLoop | None) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._queue.put(_Close(future, loop))
        return True

    async def close(self) -> None:
        """Finish queued operations, checkpoint the WAL, close the file. Closing twice is harmless.

        Raises:
            StoreError: closing the database failed.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._shut_down(done, loop):
            return
        try:
            await done
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc)) from exc
        finally:
            if self._thread is not None:
                self._thread.join()

    # -- MessageStore ---------------------------------------------------------------------

    async def create_queue(self, queue: QueueRecord) -> None:
        """Store a new queue.

        Raises:
            StoreError: either id is already in use, or the store failed.
        """

        def op(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO queues (recipient_id, sender_id, recipient_key, queue_key, sender_key)"
                " VALUES (?, ?, ?, ?, ?)",
                (queue.recipient_id, queue.sender_id, queue.recipient_key, queue.queue_key, queue.sender_key),
            )

        await self._call(op)

    async def queue_by_recipient(self, recipient_id: bytes) -> QueueRecord | None:
        """The queue with this recipient id, if any.

        Raises:
            StoreError: the store failed.
        """
        return await self._call(lambda conn: _select_queue(conn, "recipient_id", recipient_id))

    async def queue_by_sender(self, sender_id: bytes) -> QueueRecord | None:
        """The queue with this sender id, if any.

        Raises:
            StoreError: the store failed.
        """
        return await self._call(lambda conn: _select_queue(conn, "sender_id", sender_id))

    async def set_sender_key(self, recipient_id: bytes, sender_key: bytes) -> bool:
        """Lock a queue to a sender key; False if no such queue.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE queues SET sender_key = ? WHERE recipient_id = ?", (sender_key, recipient_id)
            )
            return cursor.rowcount == 1

        return await self._call(op)

    async def delete_queue(self, recipient_id: bytes) -> bool:
        """Delete a queue, its messages and every send id it remembers; False if no such queue.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> bool:
            (count,) = conn.execute(
                "SELECT count(*) FROM messages WHERE recipient_id = ?", (recipient_id,)
            ).fetchone()
            cursor = conn.execute("DELETE FROM queues WHERE recipient_id = ?", (recipient_id,))
            if cursor.rowcount != 1:
                return False
            self._deleted_since_checkpoint += count + 1
            return True

        return await self._call(op)

    async def put_message(
        self, sender_id: bytes, send_id: bytes, message: StoredMessage, *, quota: int
    ) -> PutResult:
        """Append a message, durably, unless the send id is remembered or the queue is full.

        Returns only after the transaction holding the message has committed.

        Raises:
            ValueError: ``quota`` is less than 1.
            StoreError: ``message.msg_id`` is already stored, or the store failed.
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")

        def op(conn: sqlite3.Connection) -> PutResult:
            row = conn.execute("SELECT recipient_id FROM queues WHERE sender_id = ?", (sender_id,)).fetchone()
            if row is None:
                return PutResult.NO_QUEUE
            recipient_id: bytes = row[0]
            seen = conn.execute(
                "SELECT 1 FROM send_ids WHERE recipient_id = ? AND send_id = ?", (recipient_id, send_id)
            ).fetchone()
            if seen is not None:
                return PutResult.DUPLICATE
            (count,) = conn.execute(
                "SELECT count(*) FROM messages WHERE recipient_id = ?", (recipient_id,)
            ).fetchone()
            if count >= quota:
                return PutResult.QUOTA
            marker = message.quota_marker or count == quota - 1
            conn.execute(
                "INSERT INTO messages (recipient_id, msg_id, send_id, received_at, quota_marker, body)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (recipient_id, message.msg_id, send_id, message.received_at, int(marker), message.body),
            )
            conn.execute(
                "INSERT INTO send_ids (recipient_id, send_id) VALUES (?, ?)", (recipient_id, send_id)
            )
            return PutResult.STORED

        return await self._call(op)

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> StoredMessage | None:
            row = conn.execute(
                "SELECT msg_id, received_at, quota_marker, body FROM messages"
                " WHERE recipient_id = ? ORDER BY seq LIMIT 1",
                (recipient_id,),
            ).fetchone()
            if row is None:
                return None
            return StoredMessage(bytes(row[0]), int(row[1]), bool(row[2]), bytes(row[3]))

        return await self._call(op)

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message of this queue; False if it is not on this queue.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT seq, send_id FROM messages WHERE recipient_id = ? AND msg_id = ?",
                (recipient_id, msg_id),
            ).fetchone()
            if row is None:
                return False
            conn.execute("DELETE FROM messages WHERE seq = ?", (row[0],))
            _retire(conn, recipient_id, row[1])
            self._deleted_since_checkpoint += 1
            return True

        return await self._call(op)

    async def expire(self, older_than: int) -> int:
        """Delete messages with ``received_at < older_than``; return how many.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT seq, recipient_id, send_id FROM messages WHERE received_at < ? ORDER BY seq",
                (older_than,),
            ).fetchall()
            for seq, recipient_id, send_id in rows:
                conn.execute("DELETE FROM messages WHERE seq = ?", (seq,))
                _retire(conn, recipient_id, send_id)
            self._deleted_since_checkpoint += len(rows)
            return len(rows)

        return await self._call(op)


_SELECT_QUEUE: Final = "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key FROM queues"
_QUEUE_BY: Final = {
    "recipient_id": _SELECT_QUEUE + " WHERE recipient_id = ?",
    "sender_id": _SELECT_QUEUE + " WHERE sender_id = ?",
}


def _select_queue(conn: sqlite3.Connection, column: str, value: bytes) -> QueueRecord | None:
    row = conn.execute(_QUEUE_BY[column], (value,)).fetchone()
    if row is None:
        return None
    sender_key = None if row[4] is None else bytes(row[4])
    return QueueRecord(bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), sender_key)


def _retire(conn: sqlite3.Connection, recipient_id: bytes, send_id: bytes) -> None:
    """Number ``send_id`` as the queue's latest deletion; forget all but the latest few."""
    conn.execute(
        "UPDATE send_ids SET retired ="
        " (SELECT coalesce(max(retired), 0) + 1 FROM send_ids WHERE recipient_id = ?1)"
        " WHERE recipient_id = ?1 AND send_id = ?2",
        (recipient_id, send_id),
    )
    conn.execute(
        "DELETE FROM send_ids WHERE recipient_id = ?1 AND retired <="
        " (SELECT max(retired) FROM send_ids WHERE recipient_id = ?1) - ?2",
        (recipient_id, RETIRED_SEND_IDS),
    )
