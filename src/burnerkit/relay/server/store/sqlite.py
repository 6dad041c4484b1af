"""``SqliteStore``: the relay's default, durable :class:`~burnerkit.relay.server.store.base.MessageStore`.

Theory of operation: every write (and ``first_message``/``head``, which must come after
the writes before them) runs on one writer thread that owns the writing connection.
Coroutines hand it operations through a queue and await futures it resolves. The thread
does *group commit*: it takes up to :data:`MAX_BATCH` waiting operations, runs them in one
``BEGIN IMMEDIATE`` transaction and commits once (``synchronous=FULL``: one fsync of the
WAL), and only then answers them. So every write returns once durable, and concurrent
writes share an fsync. An operation that fails is undone alone: the batch is rolled back
and run again with each operation in a savepoint of its own. Nothing is held back here:
write-behind is :mod:`.writebehind`'s, over this store as over any.

Pragmas: ``journal_mode=WAL``, ``synchronous=FULL``, ``secure_delete=ON`` (deleted rows
are overwritten with zeros), ``foreign_keys=ON`` (a queue's rows go with it). After every
``checkpoint_every`` deleted messages (at most once per ``checkpoint_interval``), after a
deleted queue and on close, ``wal_checkpoint(TRUNCATE)`` empties the WAL, so the frames
that held a deleted message leave the disk too. The small lookups (``queue_by_*``) run
on a read-only connection on the caller's thread, outside any transaction between reads.
Every ``sqlite3.Error`` becomes :class:`StoreError` naming the SQLite error code only.

Dedupe and quota rules are those of :mod:`.memory`: table ``send_ids`` keeps a send id
while its message waits (``retired`` NULL) and numbers its deletion per queue; only the
queue's latest :data:`~.memory.RETIRED_SEND_IDS` numbers count, older rows are pruned now
and then. No rowid and no global counter: nothing on disk orders queues by creation, or
messages of different queues by arrival, finer than the whole-second ``received_at``;
``qseq`` numbers messages within one queue (FIFO). Needs SQLite 3.35 or later. The schema
is in :mod:`.sqlite_schema`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, Final, TypeVar

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import (
    PutResult,
    QueueMemory,
    QueueRecord,
    StoredMessage,
    notify_accepted,
)
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS
from burnerkit.relay.server.store.sqlite_schema import (
    RETIRED,
    SCHEMA_VERSION,
    SEEN,
    insert_message,
    migrate,
    retire,
    select_queue,
)

__all__ = ["MAX_BATCH", "SCHEMA_VERSION", "SqliteStore"]

#: Operations one transaction (one commit, one fsync) carries at most.
MAX_BATCH: Final = 64  # group commit holds up relay_write_through_vs_ws_echo
#: The writer's page cache, in KiB (a negative cache_size is KiB).
_CACHE_KIB: Final = -16_384
#: RETURNING and ON CONFLICT without a target.
_MIN_SQLITE: Final = (3, 35, 0)
_STORED: Final = (PutResult.STORED, PutResult.STORED_MARKED)

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    on_accepted: Callable[[PutResult], None] | None = None


@dataclass(frozen=True, slots=True)
class _Close:
    future: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


class _Retry(Exception):
    """An operation of a batch run without savepoints failed: run it again with them."""


def _settle(answers: list[tuple[_Op, object, BaseException | None]]) -> None:
    """On the op's loop: tell on_accepted first (it goes before the put returns), then answer."""
    for op, value, exc in answers:
        if op.on_accepted is not None and isinstance(value, PutResult) and value in _STORED:
            notify_accepted(op.on_accepted, value)
        if op.future.done():
            continue  # cancelled meanwhile; what it did stands
        if exc is None:
            op.future.set_result(value)
        else:
            op.future.set_exception(exc)


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return f"sqlite store failed: {name}"


class SqliteStore:
    """Queues and messages in one SQLite file; create with :meth:`open`.

    Every method raises :class:`StoreError` if the store failed or is closed.

    Attributes:
        commit_count: transactions committed so far, one per batch.
    """

    commit_count: int

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float,
        checkpoint_every: int,
        checkpoint_interval: float,
    ) -> None:
        """Prepare a store; :meth:`open` is the constructor to call."""
        if timeout < 0:
            raise ValueError("timeout must not be negative")
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if checkpoint_interval < 0:
            raise ValueError("checkpoint_interval must not be negative")
        self._path = os.fspath(path)
        self._timeout = timeout
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._queue: SimpleQueue[_Op | _Close] = SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._reader: sqlite3.Connection | None = None
        # Writer thread only:
        self._deleted = 0  # messages deleted since the last checkpoint
        self._checkpoint_now = False  # a queue was deleted in this batch
        self._checkpointed_at = float("-inf")
        self._checkpoint_due: float | None = None
        self.commit_count = 0

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        checkpoint_every: int = 64,
        checkpoint_interval: float = 0.0,
    ) -> SqliteStore:
        """Open (or create) the store at ``path`` and start its writer thread.

        Args:
            path: the database file; ``-wal`` and ``-shm`` files live beside it.
            timeout: seconds to wait for a lock another process holds before failing.
            checkpoint_every: deleted messages between two ``wal_checkpoint(TRUNCATE)``.
            checkpoint_interval: seconds between two such checkpoints at least: one due
                sooner waits until then (the thread wakes up for it).

        Raises:
            StoreError: the file cannot be opened, is not a database, is locked, or
                holds an unknown schema version; or this SQLite is older than 3.35.
            ValueError: ``timeout`` or ``checkpoint_interval`` is negative, or
                ``checkpoint_every`` is below 1.
        """
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError("sqlite store needs SQLite 3.35 or later")
        store = cls(
            path, timeout=timeout, checkpoint_every=checkpoint_every, checkpoint_interval=checkpoint_interval
        )
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        store._thread = threading.Thread(
            target=store._serve, args=(loop, ready), name="burnerkit-sqlite-store", daemon=True
        )
        store._thread.start()
        try:
            await ready
            reader = sqlite3.connect(store._path, isolation_level=None, check_same_thread=False, timeout=0)
            reader.execute("PRAGMA query_only = ON")
            store._reader = reader
        except sqlite3.Error as exc:
            with contextlib.suppress(StoreError):
                await store.close()
            raise StoreError(_describe(exc)) from exc
        except asyncio.CancelledError:
            store._shut_down(None)
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
            # A batch of 64 puts dirties about 1 MiB of 16 KiB bodies, and each is read back:
            # holds up relay_write_through_vs_ws_echo.
            conn.execute(f"PRAGMA cache_size = {_CACHE_KIB}")
            migrate(conn)
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
            loop.call_soon_threadsafe(_set_once, ready, None, exc)
            return
        loop.call_soon_threadsafe(_set_once, ready, None, None)
        waiting: list[_Op] = []
        closing: _Close | None = None
        while closing is None or waiting:
            if not waiting and closing is None:
                try:
                    due = self._checkpoint_due
                    item = self._queue.get(timeout=None if due is None else max(0.0, due - time.monotonic()))
                except Empty:
                    self._checkpoint(conn)  # a deferred checkpoint came due, and nothing else came
                    continue
                if isinstance(item, _Close):
                    closing = item
                else:
                    waiting.append(item)
            while closing is None and len(waiting) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
                if isinstance(item, _Close):
                    closing = item
                else:
                    waiting.append(item)
            batch, waiting = waiting[:MAX_BATCH], waiting[MAX_BATCH:]
            if batch:
                self._run_batch(conn, batch)
        self._checkpoint(conn)
        error: BaseException | None = None
        try:
            conn.close()
        except sqlite3.Error as exc:
            error = exc
        closing.loop.call_soon_threadsafe(_set_once, closing.future, None, error)

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op]) -> None:
        deleted = self._deleted
        try:
            try:
                outcome = self._transact(conn, batch, isolate=False)
            except _Retry:
                # Rare (an id clash, a broken file): each operation in a savepoint of its own
                # this time, so the failing one is undone alone.
                self._deleted = deleted
                outcome = self._transact(conn, batch, isolate=True)
        except Exception as failure:  # the commit failed: so did every operation of the batch
            self._deleted = deleted
            outcome = [(None, failure)] * len(batch)
        # The checkpoint runs before the batch is answered: a deleted queue's rows leave the
        # WAL before DEL is answered, a message's within checkpoint_interval of its ACK.
        if self._checkpoint_now:
            self._checkpoint(conn)
        elif self._deleted >= self._checkpoint_every:
            allowed = self._checkpointed_at + self._checkpoint_interval
            if time.monotonic() >= allowed:
                self._checkpoint(conn)
            else:
                self._checkpoint_due = allowed
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Op, object, BaseException | None]]] = {}
        for op, (value, exc) in zip(batch, outcome, strict=True):
            by_loop.setdefault(op.loop, []).append((op, value, exc))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, answers)

    def _transact(
        self, conn: sqlite3.Connection, batch: list[_Op], *, isolate: bool
    ) -> list[tuple[object, BaseException | None]]:
        outcome: list[tuple[object, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                if isolate:
                    conn.execute("SAVEPOINT op")
                try:
                    value = op.fn(conn)
                except Exception as exc:
                    if not isolate:
                        raise _Retry from exc
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcome.append((None, exc))
                    continue
                if isolate:
                    conn.execute("RELEASE op")
                outcome.append((value, None))
            conn.execute("COMMIT")
            self.commit_count += 1
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        return outcome

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # Whatever the outcome, the next try waits for another checkpoint_every deletions:
        # TRUNCATE waits up to the busy timeout for readers, and must not do so every batch.
        self._deleted = 0
        self._checkpoint_now = False
        self._checkpoint_due = None
        self._checkpointed_at = time.monotonic()
        try:
            (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            _log.warning("wal checkpoint failed: %s", _describe(exc))
            return
        if busy:
            _log.warning("wal checkpoint could not finish: a reader holds an old snapshot")

    # -- the event-loop side --------------------------------------------------------------

    async def _call(
        self, fn: Callable[[sqlite3.Connection], _T], on_accepted: Callable[[PutResult], None] | None = None
    ) -> _T:
        """Run ``fn`` on the writer thread in the next transaction; return after its commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            self._queue.put(_Op(fn, future, loop, on_accepted))
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc)) from exc

    async def _query(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run the read-only ``fn`` here, on the reader; on a lock, on the writer thread instead."""
        # Holds up relay_vs_ws_echo: queue lookups stay off the writer thread and its fsyncs.
        reader = self._reader
        if reader is None or self._closed:
            raise StoreError("store is closed")
        try:
            return fn(reader)
        except sqlite3.OperationalError:
            pass  # SQLITE_BUSY (rare in WAL mode): the writer waits for the lock instead
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc)) from exc
        return await self._call(fn)

    def _shut_down(self, close: _Close | None) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            if close is not None:
                self._queue.put(close)
        reader, self._reader = self._reader, None
        if reader is not None:
            with contextlib.suppress(sqlite3.Error):
                reader.close()
        return True

    async def close(self) -> None:
        """Finish queued operations, checkpoint the WAL, close the file. Closing twice is harmless.

        Raises:
            StoreError: closing the database failed.
        """
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._shut_down(_Close(done, loop)):
            return
        try:
            await done
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc)) from exc
        finally:
            if self._thread is not None:
                await asyncio.to_thread(self._thread.join)

    # -- MessageStore ---------------------------------------------------------------------

    async def create_queue(self, queue: QueueRecord) -> None:
        """Store a new queue.

        Raises:
            StoreError: either id is already in use, or the store failed.
        """
        row = (queue.recipient_id, queue.sender_id, queue.recipient_key, queue.queue_key)
        await self._call(
            lambda conn: conn.execute(
                "INSERT INTO queues (recipient_id, sender_id, recipient_key, queue_key, sender_key,"
                " sender_secured) VALUES (?, ?, ?, ?, ?, ?)",
                (*row, queue.sender_key, int(queue.sender_secured)),
            )
        )

    async def queue_by_recipient(self, recipient_id: bytes) -> QueueRecord | None:
        """The queue with this recipient id, if any."""
        return await self._query(lambda conn: select_queue(conn, "recipient_id", recipient_id))

    async def queue_by_sender(self, sender_id: bytes) -> QueueRecord | None:
        """The queue with this sender id, if any."""
        return await self._query(lambda conn: select_queue(conn, "sender_id", sender_id))

    async def lock_sender_key(self, recipient_id: bytes, sender_key: bytes) -> bool:
        """Set the sender key if none is set; whether the queue is now locked to ``sender_key``.

        One conditional UPDATE, committed before this returns: of two concurrent calls
        with different keys, the one the writer runs first wins.
        """

        def op(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "UPDATE queues SET sender_key = coalesce(sender_key, ?2) WHERE recipient_id = ?1"
                " RETURNING sender_key",
                (recipient_id, sender_key),
            ).fetchall()
            return bool(rows) and bytes(rows[0][0]) == sender_key

        return await self._call(op)

    async def put_notice(self, recipient_id: bytes, message: StoredMessage, *, quota: int) -> PutResult:
        """Store a refused-sender notice unless one waits on the queue or it is full.

        Raises:
            ValueError: ``quota`` is less than 1.
            StoreError: ``message.msg_id`` is already stored, or the store failed.
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")

        def op(conn: sqlite3.Connection) -> PutResult:
            if (
                conn.execute("SELECT 1 FROM queues WHERE recipient_id = ?", (recipient_id,)).fetchone()
                is None
            ):
                return PutResult.NO_QUEUE
            count, waiting, last = conn.execute(
                "SELECT count(*), coalesce(max(sender_refused), 0), coalesce(max(qseq), 0) FROM messages"
                " WHERE recipient_id = ?",
                (recipient_id,),
            ).fetchone()
            if waiting:
                return PutResult.DUPLICATE
            if count >= quota:
                return PutResult.QUOTA
            marker = message.quota_marker or count == quota - 1
            insert_message(conn, recipient_id, last + 1, b"", message, marker, sender_refused=True)
            return PutResult.STORED_MARKED if marker else PutResult.STORED

        return await self._call(op)

    async def delete_queue(self, recipient_id: bytes) -> bool:
        """Delete a queue, its messages and every send id it remembers; False if no such queue."""

        def op(conn: sqlite3.Connection) -> bool:
            (count,) = conn.execute(
                "SELECT count(*) FROM messages WHERE recipient_id = ?", (recipient_id,)
            ).fetchone()
            if conn.execute("DELETE FROM queues WHERE recipient_id = ?", (recipient_id,)).rowcount != 1:
                return False
            # A deleted queue (a burn) is checkpointed out of the WAL before DEL is answered:
            # its keys and ids must not outlive the answer. Rare, so it costs nothing under load.
            self._deleted += count + 1
            self._checkpoint_now = True
            return True

        return await self._call(op)

    async def put_message(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> PutResult:
        """Append a message unless the send id is remembered or the queue is full; return once committed.

        ``on_accepted`` is called with a ``STORED``/``STORED_MARKED`` result once committed,
        just before this returns (also if the awaiting coroutine was cancelled).

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
            recipient_id = row[0]
            if conn.execute(SEEN, (recipient_id, send_id, RETIRED_SEND_IDS)).fetchone() is not None:
                return PutResult.DUPLICATE
            count, last = conn.execute(
                "SELECT count(*), coalesce(max(qseq), 0) FROM messages WHERE recipient_id = ?",
                (recipient_id,),
            ).fetchone()
            if count >= quota:
                return PutResult.QUOTA
            marker = message.quota_marker or count == quota - 1
            insert_message(conn, recipient_id, last + 1, send_id, message, marker)
            conn.execute(
                "INSERT INTO send_ids (recipient_id, send_id) VALUES (?, ?)"
                " ON CONFLICT DO UPDATE SET retired = NULL",
                (recipient_id, send_id),
            )
            return PutResult.STORED_MARKED if marker else PutResult.STORED

        return await self._call(op, on_accepted)

    async def head(self, recipient_id: bytes) -> StoredMessage | QueueMemory | None:
        """The oldest message; if none, what the queue remembers; None if there is no such queue.

        On the writer thread, in order with the writes before it (a delete just acknowledged).
        """

        def op(conn: sqlite3.Connection) -> StoredMessage | QueueMemory | None:
            row = conn.execute(
                "SELECT msg_id, received_at, quota_marker, body, sender_refused FROM messages"
                " WHERE recipient_id = ? ORDER BY qseq LIMIT 1",
                (recipient_id,),
            ).fetchone()
            if row is not None:
                return StoredMessage(bytes(row[0]), int(row[1]), bool(row[2]), bytes(row[3]), bool(row[4]))
            queue = conn.execute(
                "SELECT sender_id FROM queues WHERE recipient_id = ?", (recipient_id,)
            ).fetchone()
            if queue is None:
                return None
            retired = conn.execute(RETIRED, (recipient_id, RETIRED_SEND_IDS)).fetchall()
            return QueueMemory(bytes(queue[0]), [bytes(r[0]) for r in retired])

        return await self._call(op)

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any."""
        first = await self.head(recipient_id)
        return first if isinstance(first, StoredMessage) else None

    async def retire_send_ids(self, recipient_id: bytes, send_ids: list[bytes]) -> None:
        """Remember ``send_ids`` as the queue's latest deletions, in order; durable on return."""

        def op(conn: sqlite3.Connection) -> None:
            if (
                conn.execute("SELECT 1 FROM queues WHERE recipient_id = ?", (recipient_id,)).fetchone()
                is None
            ):
                return
            for send_id in send_ids:
                conn.execute(
                    "INSERT INTO send_ids (recipient_id, send_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (recipient_id, send_id),
                )
                retire(conn, recipient_id, send_id)

        await self._call(op)

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message of this queue; False if it is not on this queue."""

        def op(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "DELETE FROM messages WHERE recipient_id = ? AND msg_id = ? RETURNING send_id",
                (recipient_id, msg_id),
            ).fetchall()
            if not rows:
                return False
            retire(conn, recipient_id, bytes(rows[0][0]))
            self._deleted += 1
            return True

        return await self._call(op)

    def put_message_now(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> None:
        """Nothing: a put here waits for its commit (the caller awaits ``put_message``).

        Raises:
            ValueError: if ``quota`` is less than 1, as ``put_message`` would.
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")
        return None

    def delete_message_now(self, recipient_id: bytes, msg_id: bytes) -> None:
        """Nothing: a delete here waits for its commit (the caller awaits ``delete_message``)."""
        return None

    async def expire(self, older_than: int) -> int:
        """Delete messages with ``received_at < older_than``; return how many."""

        def op(conn: sqlite3.Connection) -> int:
            # Retired in queue order, as the reference does.
            rows = conn.execute(
                "SELECT recipient_id, send_id FROM messages WHERE received_at < ?"
                " ORDER BY recipient_id, qseq",
                (older_than,),
            ).fetchall()
            conn.execute("DELETE FROM messages WHERE received_at < ?", (older_than,))
            for recipient_id, send_id in rows:
                retire(conn, recipient_id, bytes(send_id))
            self._deleted += len(rows)
            return len(rows)

        return await self._call(op)


def _set_once(future: asyncio.Future[None], value: None, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(value)
    else:
        future.set_exception(exc)
