"""``SqliteStore``: the relay's default, durable :class:`~burnerkit.relay.server.store.base.MessageStore`.

Theory of operation
-------------------
All writes run on one dedicated writer thread that owns the writing connection.
Coroutines hand it an operation through a :class:`queue.SimpleQueue` and await an
asyncio future that the thread resolves with ``loop.call_soon_threadsafe`` (one call
per batch and event loop, not one per operation).

The thread does *group commit*: it takes every operation waiting in the queue (up to
:data:`MAX_BATCH`), runs them in one ``BEGIN IMMEDIATE`` transaction, commits once and
only then resolves their futures. So ``put_message`` returns only after its commit
(``synchronous=FULL``: the WAL is fsynced), and many concurrent puts share one fsync.

Within the transaction, each run of consecutive puts and deletes is *one* statement: an
``INSERT`` of one row per operation into the temp view ``ops``, whose ``INSTEAD OF``
trigger runs the operation (the same SQL as the operation's own statements) and records
its outcome in the temp table ``outcomes``, read back as one string (:data:`_PROGRAM`).
The reason is the GIL: the sqlite3 module gives it up for every ``sqlite3_step``, and
under load the writer then waits for the event loop to hand it back, once per statement
(py-spy: 40 % of the writer's time with a statement per operation). One statement per
batch costs a handful of such waits instead of one or more per operation. The temp
objects live on the writer's connection only, in memory (``temp_store=MEMORY``: bodies
never reach a temp file), and are not part of the file's schema. Other operations run
one by one, in order with the runs around them.

A failing operation is undone alone: the batch first runs without savepoints (they
cost two statements per operation, and failures are rare); if an operation raises,
the whole transaction is rolled back and the batch runs again with each operation in
a ``SAVEPOINT`` of its own (and its own statements, not the view ``ops``). If the
commit itself fails, every operation of the batch fails with :class:`StoreError` and
none had an effect. ``commit_count`` counts the commits.

``first_message`` runs on the writer thread like a write (it reads a 16 KiB body, and
must come after the delete of the message just acknowledged); it costs no fsync.
The small reads (``queue_by_recipient``, ``queue_by_sender``) do not queue
behind the writer's fsyncs: they run at once, on the caller's thread, on a second,
read-only connection (``query_only``). In WAL mode it reads the last committed state
without waiting for the writer, and since a write's future resolves only after its
commit, a read that follows a write sees it. The reader never waits for a lock; on
``SQLITE_BUSY`` (rare in WAL mode) the read goes to the writer thread instead.

Pragmas: ``journal_mode=WAL``, ``synchronous=FULL``, ``secure_delete=ON`` (deleted
rows and freed pages are overwritten with zeros), ``foreign_keys=ON`` (a queue's
messages and send ids go with it). After every ``checkpoint_every`` deleted messages,
after every deleted queue and on close the thread runs ``wal_checkpoint(TRUNCATE)``, so the WAL frames that
still held a deleted message's bytes are gone from the disk too. The checkpoint runs
before the batch that crossed the mark is answered, unless the last one ran less than
``checkpoint_interval`` seconds ago: then it runs as soon as that interval is over
(the relay uses 0.25 s: a TRUNCATE checkpoint is costly, and under load 64 deletions
take a few milliseconds).

Every ``sqlite3.Error`` is translated to :class:`StoreError` at the boundaries,
:meth:`SqliteStore._call`, :meth:`SqliteStore._query` and :meth:`SqliteStore.open`;
the message names the SQLite error code only, never an id, a key or a body.

A coroutine cancelled while its operation waits may still see the operation take
effect; for ``put_message`` that is harmless, since a retry with the same ``send_id``
answers ``DUPLICATE``.

Dedupe and quota rules are those of :mod:`burnerkit.relay.server.store.memory`: a
send id is remembered while its message is on the queue and then as one of the
:data:`~burnerkit.relay.server.store.memory.RETIRED_SEND_IDS` most recently deleted
send ids of that queue (table ``send_ids``, column ``retired`` numbering deletions
per queue). Rows that fell out of that window are no longer consulted and are pruned
in bulk every :data:`_PRUNE_EVERY` deletions of the queue.

Needs SQLite 3.35 or later (``RETURNING``, ``ON CONFLICT DO UPDATE`` without a target).

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    queues(recipient_id BLOB PK, sender_id BLOB UNIQUE, recipient_key, queue_key, sender_key NULL)
                                                                  WITHOUT ROWID
    messages(recipient_id FK CASCADE, qseq, msg_id BLOB UNIQUE, send_id, received_at,
             quota_marker, body, PK (recipient_id, qseq))         WITHOUT ROWID, index (received_at)

No rowid and no global counter anywhere: nothing on disk orders queues by creation, or
messages of different queues by arrival, finer than the whole-second ``received_at``.
``qseq`` numbers messages within one queue only (max + 1), which FIFO order needs.
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
import time
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
SCHEMA_VERSION: Final = 2  # 2: no rowids, per-queue message numbers (nothing shipped v1)
#: The writer's page cache, in KiB (a negative cache_size is KiB).
_CACHE_KIB: Final = -16_384
#: RETURNING and ON CONFLICT without a target.
_MIN_SQLITE: Final = (3, 35, 0)

_T = TypeVar("_T")
_log = logging.getLogger(__name__)

_SCHEMA: Final = f"""
CREATE TABLE queues (
    recipient_id  BLOB PRIMARY KEY NOT NULL,
    sender_id     BLOB NOT NULL UNIQUE,
    recipient_key BLOB NOT NULL,
    queue_key     BLOB NOT NULL,
    sender_key    BLOB
) WITHOUT ROWID;
CREATE TABLE messages (
    recipient_id  BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,
    qseq          INTEGER NOT NULL,
    msg_id        BLOB NOT NULL UNIQUE,
    send_id       BLOB NOT NULL,
    received_at   INTEGER NOT NULL,
    quota_marker  INTEGER NOT NULL,
    body          BLOB NOT NULL,
    PRIMARY KEY (recipient_id, qseq)
) WITHOUT ROWID;
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
    #: a put or a delete, as one row of the temp view ``ops`` (see _PROGRAM), or None
    row: tuple[object, ...] | None = None


class _OperationFailed(Exception):
    """An operation of a batch failed and the batch's transaction was rolled back."""


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


def _settle_all(outcomes: list[tuple[asyncio.Future[Any], object, BaseException | None]]) -> None:
    for future, result, exc in outcomes:
        _settle(future, result, exc)


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


def _resolve_batch(batch: list[_Op], outcomes: list[tuple[object, BaseException | None]]) -> None:
    """Resolve a batch's futures with one wake-up of each event loop, not one per operation."""
    by_loop: dict[
        asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object, BaseException | None]]
    ] = {}
    for op, (result, error) in zip(batch, outcomes, strict=True):
        by_loop.setdefault(op.loop, []).append((op.future, result, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_all, settled)


def _connect_reader(path: str) -> sqlite3.Connection:
    """The event loop's read-only connection: never waits for a lock (``timeout=0``)."""
    reader = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        reader.execute("PRAGMA query_only = ON")
    except BaseException:
        reader.close()
        raise
    return reader


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

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float,
        checkpoint_every: int,
        checkpoint_interval: float = 0.0,
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
        self._checkpoint_now = False  # writer thread only: a queue was deleted in this batch
        #: writer thread only: monotonic time of the last checkpoint, and when a deferred one is due
        self._checkpointed_at = float("-inf")
        self._checkpoint_due: float | None = None
        self._queue: SimpleQueue[_Op | _Close] = SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._deleted_since_checkpoint = 0  # writer thread only
        #: the read-only connection of the event-loop side, and what serialises its use
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
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
            checkpoint_interval: seconds between two checkpoints at least: under load a
                checkpoint due by ``checkpoint_every`` waits until then (the thread wakes up
                for it even if nothing else comes), so a busy relay checkpoints a few times a
                second instead of after every few batches.

        Raises:
            StoreError: the file cannot be opened, is not a database, is locked, or
                holds an unknown schema version; or this SQLite is older than 3.35.
            ValueError: ``timeout`` is negative or ``checkpoint_every`` is below 1.
        """
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError("sqlite store needs SQLite 3.35 or later")
        store = cls(
            path, timeout=timeout, checkpoint_every=checkpoint_every, checkpoint_interval=checkpoint_interval
        )
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
        try:
            store._reader = _connect_reader(store._path)
        except sqlite3.Error as exc:
            with contextlib.suppress(StoreError):
                await store.close()
            raise StoreError(_describe(exc)) from exc
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
            # 16 MiB of page cache (the default is 2 MB): a batch of 64 operations dirties about
            # 1 MiB of 16 KiB bodies, and a smaller cache spills them to the WAL mid-transaction.
            conn.execute(f"PRAGMA cache_size = {_CACHE_KIB}")
            # The temp view ops and table outcomes (see _PROGRAM) carry bodies and ids through
            # the writer's memory only, never through a temp file.
            conn.execute("PRAGMA temp_store = MEMORY")
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
            for statement in _PROGRAM:
                conn.execute(statement)
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
            due = self._checkpoint_due
            if due is None:
                item = self._queue.get()
            else:
                try:
                    item = self._queue.get(timeout=max(0.0, due - time.monotonic()))
                except Empty:
                    self._checkpoint(conn)  # deferred, and nothing came meanwhile
                    continue
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
                self._run_batch(conn, batch, checkpoint=closing is None)
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

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op], *, checkpoint: bool) -> None:
        deleted = self._deleted_since_checkpoint
        try:
            try:
                outcomes = self._transact(conn, batch, isolate=False)
            except _OperationFailed:
                # Undo the whole batch and run it again with every operation in a savepoint
                # of its own, so that the failing one is undone alone. Rare: an id clash,
                # or a broken file.
                self._deleted_since_checkpoint = deleted
                outcomes = self._transact(conn, batch, isolate=True)
        except Exception as exc:  # sqlite3.Error in practice; the boundary in _call translates it
            if conn.in_transaction:
                # If even this fails the connection is broken; the next BEGIN reports it.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            outcomes = [(None, exc)] * len(batch)
        # The checkpoint runs before the batch is answered, so an ACK is answered only
        # once the deleted message's WAL frames are gone too (when it crossed the mark and
        # the interval allowed it; else within checkpoint_interval).
        if checkpoint and self._checkpoint_now:
            self._checkpoint(conn)
        elif checkpoint and self._deleted_since_checkpoint >= self._checkpoint_every:
            next_allowed = self._checkpointed_at + self._checkpoint_interval
            if time.monotonic() >= next_allowed:
                self._checkpoint(conn)
            else:
                self._checkpoint_due = next_allowed
        _resolve_batch(batch, outcomes)

    def _transact(
        self, conn: sqlite3.Connection, batch: list[_Op], *, isolate: bool
    ) -> list[tuple[object, BaseException | None]]:
        """Run ``batch`` in one transaction and commit it.

        Without ``isolate`` each run of consecutive puts and deletes is one statement (see
        :meth:`_run_rows`), any other operation runs alone, and the first failure rolls
        everything back and raises :class:`_OperationFailed`; with it, each operation runs
        its own statements in a savepoint, and a failing one is undone alone.
        """
        outcomes: list[tuple[object, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        if not isolate:
            index = 0
            while index < len(batch):
                end = index
                while end < len(batch) and batch[end].row is not None:
                    end += 1
                try:
                    if end > index:
                        outcomes.extend(self._run_rows(conn, batch[index:end]))
                    else:
                        outcomes.append((batch[index].fn(conn), None))
                        end = index + 1
                except Exception as exc:
                    conn.execute("ROLLBACK")
                    raise _OperationFailed from exc
                index = end
        else:
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
        return outcomes

    def _run_rows(
        self, conn: sqlite3.Connection, ops: list[_Op]
    ) -> list[tuple[object, BaseException | None]]:
        """Run consecutive puts and deletes as one statement: one step out of Python for all.

        Each ``sqlite3_step`` gives up the GIL, and under load taking it back from the event
        loop is what the writer waits for most; so the batch's puts and deletes go in as the
        rows of one INSERT into the temp view ``ops``, whose trigger runs each in turn, and
        their outcomes come back as one string.
        """
        params: list[object] = []
        for seq, op in enumerate(ops):
            assert op.row is not None
            params.append(seq)
            params.extend(op.row)
        conn.execute(_OPS_INSERT[len(ops)], params)
        (codes,) = conn.execute(_OPS_RESULTS, (len(ops),)).fetchone()
        if codes is None or len(codes) != len(ops):
            raise AssertionError("ops: an outcome is missing")  # pragma: no cover
        outcomes: list[tuple[object, BaseException | None]] = []
        for code in codes:
            if code == "1":
                self._deleted_since_checkpoint += 1
            outcomes.append((_OUTCOMES[code], None))
        return outcomes

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # Whatever the outcome, the next try waits for another checkpoint_every deletes:
        # TRUNCATE waits up to the busy timeout for readers, and must not do so every batch.
        self._deleted_since_checkpoint = 0
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
        self, fn: Callable[[sqlite3.Connection], _T], row: tuple[object, ...] | None = None
    ) -> _T:
        """Run ``fn`` on the writer thread inside the next transaction; return after its commit.

        ``row``: the same operation as a row of the view ``ops``, which the writer runs
        together with its neighbours in one statement (``fn`` then serves only when an
        operation of the batch fails and each must run alone).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            self._queue.put(_Op(fn, future, loop, row))
        try:
            return await future
        except sqlite3.Error as exc:
            raise StoreError(_describe(exc)) from exc

    async def _query(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run the read-only ``fn`` right here, on the reader; it sees every committed write.

        A read takes microseconds (rows by key, from the page cache), so it runs on the
        caller's thread rather than queueing behind the writer's fsyncs. Should the
        reader meet a lock (``SQLITE_BUSY``, rare in WAL mode; it never waits for one),
        the read goes to the writer thread instead, which waits.
        """
        with self._read_lock:
            reader = self._reader
            if reader is None or self._closed:
                raise StoreError("store is closed")
            try:
                return fn(reader)
            except sqlite3.OperationalError:
                pass
            except sqlite3.Error as exc:
                raise StoreError(_describe(exc)) from exc
        return await self._call(fn)

    def _shut_down(self, future: asyncio.Future[None] | None, loop: asyncio.AbstractEventLoop | None) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            self._queue.put(_Close(future, loop))
        with self._read_lock:
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
        return await self._query(lambda conn: _select_queue(conn, "recipient_id", recipient_id))

    async def queue_by_sender(self, sender_id: bytes) -> QueueRecord | None:
        """The queue with this sender id, if any.

        Raises:
            StoreError: the store failed.
        """
        return await self._query(lambda conn: _select_queue(conn, "sender_id", sender_id))

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
            # A deleted queue (a burn) is checkpointed out of the WAL before DEL is answered,
            # not after the next 64 deletions or the interval: its keys and ids must not
            # outlive the answer. Queue deletions are rare, so this costs nothing under load.
            self._deleted_since_checkpoint += count + 1
            self._checkpoint_now = True
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
            # One statement answers all three checks, in the order of the contract.
            rows = conn.execute(_PUT_CHECKS, (sender_id, send_id, RETIRED_SEND_IDS)).fetchall()
            if not rows:
                return PutResult.NO_QUEUE
            recipient_id, seen, count = rows[0]
            if seen:
                return PutResult.DUPLICATE
            if count >= quota:
                return PutResult.QUOTA
            marker = message.quota_marker or count == quota - 1
            conn.execute(
                "INSERT INTO messages (recipient_id, qseq, msg_id, send_id, received_at, quota_marker, body)"
                " VALUES (?, (SELECT COALESCE(MAX(qseq), 0) + 1 FROM messages WHERE recipient_id = ?),"
                " ?, ?, ?, ?, ?)",
                (
                    recipient_id,
                    recipient_id,
                    message.msg_id,
                    send_id,
                    message.received_at,
                    int(marker),
                    message.body,
                ),
            )
            # A row may linger for a send id already forgotten (pruning is lazy, see _retire).
            conn.execute(
                "INSERT INTO send_ids (recipient_id, send_id) VALUES (?, ?)"
                " ON CONFLICT DO UPDATE SET retired = NULL",
                (recipient_id, send_id),
            )
            return PutResult.STORED_MARKED if marker else PutResult.STORED

        row = (
            "P",
            sender_id,
            send_id,
            message.msg_id,
            message.received_at,
            int(message.quota_marker),
            message.body,
            quota,
        )
        return await self._call(op, row)

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> StoredMessage | None:
            rows = conn.execute(
                "SELECT msg_id, received_at, quota_marker, body FROM messages"
                " WHERE recipient_id = ? ORDER BY qseq LIMIT 1",
                (recipient_id,),
            ).fetchall()  # to the end: the statement is reset, the read transaction over
            if not rows:
                return None
            row = rows[0]
            return StoredMessage(bytes(row[0]), int(row[1]), bool(row[2]), bytes(row[3]))

        # On the writer thread, not the caller's: it reads a 16 KiB body, and it is ordered
        # after every write queued before it (a delete of the message just acknowledged).
        return await self._call(op)

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message of this queue; False if it is not on this queue.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "DELETE FROM messages WHERE recipient_id = ? AND msg_id = ? RETURNING send_id",
                (recipient_id, msg_id),
            ).fetchall()
            if not rows:
                return False
            _retire(conn, recipient_id, rows[0][0])
            self._deleted_since_checkpoint += 1
            return True

        return await self._call(op, ("X", recipient_id, msg_id, None, None, None, None, None))

    async def expire(self, older_than: int) -> int:
        """Delete messages with ``received_at < older_than``; return how many.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT recipient_id, qseq, send_id FROM messages WHERE received_at < ?"
                " ORDER BY recipient_id, qseq",
                (older_than,),
            ).fetchall()
            for recipient_id, qseq, send_id in rows:
                conn.execute("DELETE FROM messages WHERE recipient_id = ? AND qseq = ?", (recipient_id, qseq))
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
    rows = conn.execute(_QUEUE_BY[column], (value,)).fetchall()  # to the end, see first_message
    if not rows:
        return None
    row = rows[0]
    sender_key = None if row[4] is None else bytes(row[4])
    return QueueRecord(bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), sender_key)


#: put_message's checks: the queue, whether the send id is remembered, and the queue's length.
#: A send id is remembered while its message waits (``retired`` NULL) or while it is among
#: the queue's RETIRED_SEND_IDS latest deletions; older rows may linger until pruned.
_PUT_CHECKS: Final = """
SELECT q.recipient_id,
       EXISTS (SELECT 1 FROM send_ids s
               WHERE s.recipient_id = q.recipient_id AND s.send_id = ?2
                 AND (s.retired IS NULL
                      OR s.retired > (SELECT coalesce(max(r.retired), 0) FROM send_ids r
                                      WHERE r.recipient_id = q.recipient_id) - ?3)),
       (SELECT count(*) FROM messages m WHERE m.recipient_id = q.recipient_id)
FROM queues q WHERE q.sender_id = ?1
"""
#: Deletions per queue between two prunings of its forgotten send ids.
_PRUNE_EVERY: Final = 64


def _retire(conn: sqlite3.Connection, recipient_id: bytes, send_id: bytes) -> None:
    """Number ``send_id`` as the queue's latest deletion; now and then, drop the forgotten ones.

    Only the latest :data:`RETIRED_SEND_IDS` numbers count as remembered (the check in
    :data:`_PUT_CHECKS` compares with the queue's latest number), so the rows below that
    window can go in bulk, every :data:`_PRUNE_EVERY` deletions, rather than one per delete.
    """
    rows = conn.execute(
        "UPDATE send_ids SET retired ="
        " (SELECT coalesce(max(retired), 0) + 1 FROM send_ids WHERE recipient_id = ?1)"
        " WHERE recipient_id = ?1 AND send_id = ?2 RETURNING retired",
        (recipient_id, send_id),
    ).fetchall()
    if rows and rows[0][0] % _PRUNE_EVERY == 0:
        conn.execute(
            "DELETE FROM send_ids WHERE recipient_id = ? AND retired <= ?",
            (recipient_id, rows[0][0] - RETIRED_SEND_IDS),
        )


#: The writer's program for a batch's puts and deletes (temp objects: per connection, in
#: memory, not part of the file's schema). A row inserted into the view ``ops`` is not
#: stored: its INSTEAD OF trigger runs the operation, the same statements as
#: put_message's and delete_message's ``op``, and records its outcome in ``outcomes``
#: (keyed by the row's position in the batch; each batch overwrites the previous one's).
#: Outcome codes: a put N(o queue), D(uplicate), Q(uota), S(tored), M(arked); a delete 1
#: (deleted) or 0.
_PROGRAM: Final = (
    "CREATE TEMP TABLE IF NOT EXISTS outcomes (seq INTEGER PRIMARY KEY, code TEXT NOT NULL)",
    "CREATE TEMP VIEW IF NOT EXISTS ops (seq, kind, a, b, msg_id, received_at, marker, body, quota) AS"
    " SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
    # Formatted with this module's constants only (a trigger takes no parameters).
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS ops_put INSTEAD OF INSERT ON ops WHEN NEW.kind = 'P' BEGIN
    INSERT OR REPLACE INTO outcomes (seq, code)
    SELECT NEW.seq,
           CASE WHEN c.recipient_id IS NULL THEN 'N'
                WHEN c.seen THEN 'D'
                WHEN c.count >= NEW.quota THEN 'Q'
                WHEN NEW.marker OR c.count = NEW.quota - 1 THEN 'M'
                ELSE 'S' END
    FROM (SELECT 1) LEFT JOIN (
        SELECT q.recipient_id,
               EXISTS (SELECT 1 FROM send_ids s
                       WHERE s.recipient_id = q.recipient_id AND s.send_id = NEW.b
                         AND (s.retired IS NULL
                              OR s.retired > (SELECT coalesce(max(r.retired), 0) FROM send_ids r
                                              WHERE r.recipient_id = q.recipient_id)
                                             - {RETIRED_SEND_IDS})) AS seen,
               (SELECT count(*) FROM messages m WHERE m.recipient_id = q.recipient_id) AS count
        FROM queues q WHERE q.sender_id = NEW.a) c;
    INSERT INTO messages (recipient_id, qseq, msg_id, send_id, received_at, quota_marker, body)
    SELECT q.recipient_id,
           (SELECT coalesce(max(m.qseq), 0) + 1 FROM messages m WHERE m.recipient_id = q.recipient_id),
           NEW.msg_id, NEW.b, NEW.received_at, o.code = 'M', NEW.body
    FROM queues q, outcomes o WHERE q.sender_id = NEW.a AND o.seq = NEW.seq AND o.code IN ('S', 'M');
    INSERT INTO send_ids (recipient_id, send_id)
    SELECT q.recipient_id, NEW.b FROM queues q, outcomes o
    WHERE q.sender_id = NEW.a AND o.seq = NEW.seq AND o.code IN ('S', 'M')
    ON CONFLICT DO UPDATE SET retired = NULL;
END
""",  # noqa: S608
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS ops_delete INSTEAD OF INSERT ON ops WHEN NEW.kind = 'X' BEGIN
    INSERT OR REPLACE INTO outcomes (seq, code)
    SELECT NEW.seq, CASE WHEN EXISTS (SELECT 1 FROM messages WHERE recipient_id = NEW.a AND msg_id = NEW.b)
                         THEN '1' ELSE '0' END;
    UPDATE send_ids SET retired =
        (SELECT coalesce(max(retired), 0) + 1 FROM send_ids WHERE recipient_id = NEW.a)
    WHERE recipient_id = NEW.a
      AND send_id = (SELECT send_id FROM messages WHERE recipient_id = NEW.a AND msg_id = NEW.b);
    DELETE FROM send_ids WHERE recipient_id = NEW.a AND retired <=
        (SELECT s.retired - {RETIRED_SEND_IDS} FROM send_ids s
         WHERE s.recipient_id = NEW.a AND s.retired % {_PRUNE_EVERY} = 0
           AND s.send_id = (SELECT send_id FROM messages WHERE recipient_id = NEW.a AND msg_id = NEW.b));
    DELETE FROM messages WHERE recipient_id = NEW.a AND msg_id = NEW.b;
END
""",  # noqa: S608
)
#: The INSERT into ops for a batch of n operations, n = 1 .. MAX_BATCH.
_OPS_INSERT: Final = {
    n: "INSERT INTO ops (seq, kind, a, b, msg_id, received_at, marker, body, quota) VALUES "  # noqa: S608
    + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * n)
    for n in range(1, MAX_BATCH + 1)
}
#: The outcomes of the batch's first n operations, in order, as one string.
_OPS_RESULTS: Final = (
    "SELECT group_concat(code, '') FROM (SELECT code FROM outcomes WHERE seq < ? ORDER BY seq)"
)
_OUTCOMES: Final[dict[str, object]] = {
    "N": PutResult.NO_QUEUE,
    "D": PutResult.DUPLICATE,
    "Q": PutResult.QUOTA,
    "S": PutResult.STORED,
    "M": PutResult.STORED_MARKED,
    "1": True,
    "0": False,
}
