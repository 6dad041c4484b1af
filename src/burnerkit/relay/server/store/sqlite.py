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
and freed pages are overwritten with zeros), ``wal_autocheckpoint=0``. The WAL is
checkpointed here only, with ``RESTART``, and the frames it held are then zeroed in place,
synced by the next commit or at once (the file is never truncated, so no block goes back
to the file system with a deleted message in it): after every ``checkpoint_every`` deleted messages and within
``checkpoint_within`` of any deletion (at most once per ``checkpoint_interval``), after a
deleted queue, before the WAL grows past 4 MiB or its size, at open and on close. The
small lookups (``queue_by_*``) run on a read-only connection on the caller's thread,
outside any transaction between reads. Every ``sqlite3.Error`` becomes
:class:`StoreError` naming the SQLite error code only.

Dedupe and quota rules are those of :mod:`.memory`: a send id is remembered while its
message waits (its ``messages`` row), then in its queue's ring of
:data:`~.memory.RETIRED_SEND_IDS` slots, over the oldest; where the ring is written next
is kept in memory only (docs/protocol.md §14.8b). No rowid, no global counter and no
per-queue counter: nothing on disk orders queues by creation, or messages of different
queues by arrival, finer than the whole-second ``received_at``, or counts a queue's
messages; ``qseq`` numbers messages within one queue (FIFO) from a random start. Needs
SQLite 3.35 or later. The schema is in :mod:`.sqlite_schema`.
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

from burnerkit.crypto.rng import SystemRandom
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
    NO_SENDER_KEY,
    SCHEMA_VERSION,
    SLOT_SIZE,
    first_qseq,
    insert_message,
    insert_queue,
    migrate,
    new_ring,
    ring_has,
    ring_ids,
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
#: Bytes of the WAL's header, and of each frame's header (its page follows).
_WAL_HEADER: Final = 32
_FRAME_HEADER: Final = 24
#: Zeros written at once when a WAL is overwritten.
_ZEROS: Final = bytes(1 << 20)
#: The WAL is checkpointed (and zeroed) before it grows beyond this size, or beyond the
#: size it has already: SQLite's own automatic checkpoints are off (after one of them the
#: next write would start the log again over frames nobody zeroed).
_WAL_BYTES: Final = 4 << 20

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
        elif isinstance(exc, sqlite3.Error):
            failure = StoreError(_describe(exc))
            failure.__cause__ = exc
            op.future.set_exception(failure)
        else:
            op.future.set_exception(exc)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:  # none yet; or unreadable, and then the checkpoint will say so
        return 0


def _zero_prefix(path: str, length: int | None, *, sync: bool) -> int:
    """Overwrite the first ``length`` bytes of ``path`` (None: all) with zeros; return its size.

    In place: the same blocks (on a file system that writes in place, docs/protocol.md
    §14.8b); synced if ``sync``. A missing file has nothing to overwrite.
    """
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return 0
    try:
        size = os.fstat(fd).st_size
        length = size if length is None else min(length, size)
        done = 0
        while done < length:
            done += os.pwrite(fd, _ZEROS[: min(len(_ZEROS), length - done)], done)
        if sync:
            _datasync(fd)
    finally:
        os.close(fd)
    return size


def _datasync(fd: int) -> None:
    os.fdatasync(fd) if hasattr(os, "fdatasync") else os.fsync(fd)


def _sync(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return
    try:
        _datasync(fd)
    finally:
        os.close(fd)


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
        checkpoint_within: float,
    ) -> None:
        """Prepare a store; :meth:`open` is the constructor to call."""
        if timeout < 0:
            raise ValueError("timeout must not be negative")
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if checkpoint_interval < 0:
            raise ValueError("checkpoint_interval must not be negative")
        if not checkpoint_within >= checkpoint_interval:  # also refuses NaN
            raise ValueError("checkpoint_within must not be below checkpoint_interval")
        self._path = os.fspath(path)
        self._checkpoint_within = checkpoint_within
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
        self._wal = self._path + "-wal"
        self._wal_size = 0  # the WAL's size after the last checkpoint: it is zeros up to there
        self._wal_zeroed = False  # False until a checkpoint zeroed the whole file
        #: when zeros written over the WAL must be on the disk by, if no commit (which
        #: syncs the WAL) comes first
        self._sync_due: float | None = None
        self._rng = SystemRandom()
        #: recipient id -> (the ring slot its next retired send id goes to, how many of the
        #: slots before it this process wrote). In memory only: on disk nothing says which
        #: slot is the newest, nor which slots hold a send id rather than random bytes.
        self._ring_next: dict[bytes, tuple[int, int]] = {}
        #: (recipient id, place before) of ring moves in the running transaction, to undo
        #: them with it, or with the operation that made them (its savepoint).
        self._ring_undo: list[tuple[bytes, tuple[int, int] | None]] = []
        self.commit_count = 0

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        checkpoint_every: int = 64,
        checkpoint_interval: float = 0.0,
        checkpoint_within: float = 1.0,
    ) -> SqliteStore:
        """Open (or create) the store at ``path`` and start its writer thread.

        Args:
            path: the database file; ``-wal`` and ``-shm`` files live beside it.
            timeout: seconds to wait for a lock another process holds before failing.
            checkpoint_every: deleted messages that make a checkpoint (and the WAL's
                zeroing) due at once.
            checkpoint_interval: seconds between two such checkpoints at least: one due
                sooner waits until then (the thread wakes up for it).
            checkpoint_within: seconds after a deletion by which a checkpoint runs even if
                fewer than ``checkpoint_every`` deletions came: what a deleted message
                may linger in the WAL at most (plus one batch).

        Raises:
            StoreError: the file cannot be opened, is not a database, is locked, or
                holds an unknown schema version; or this SQLite is older than 3.35.
            ValueError: ``timeout`` or ``checkpoint_interval`` is negative,
                ``checkpoint_every`` is below 1, or ``checkpoint_within`` is below
                ``checkpoint_interval``.
        """
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError("sqlite store needs SQLite 3.35 or later")
        store = cls(
            path,
            timeout=timeout,
            checkpoint_every=checkpoint_every,
            checkpoint_interval=checkpoint_interval,
            checkpoint_within=checkpoint_within,
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
            conn.execute("PRAGMA wal_autocheckpoint = 0")
            # A batch of 64 puts dirties about 1 MiB of 16 KiB bodies, and each is read back:
            # holds up relay_write_through_vs_ws_echo.
            conn.execute(f"PRAGMA cache_size = {_CACHE_KIB}")
            migrate(conn, self._rng)
            # What a crash left in the WAL (recovered on open), or what a migration wrote
            # there, is checkpointed and zeroed before the first operation runs.
            self._checkpoint(conn)
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
                    dues = [d for d in (self._checkpoint_due, self._sync_due) if d is not None]
                    timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
                    item = self._queue.get(timeout=timeout)
                except Empty:
                    self._idle(conn)  # something came due, and nothing else came
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

    def _idle(self, conn: sqlite3.Connection) -> None:
        now = time.monotonic()
        if self._checkpoint_due is not None and now >= self._checkpoint_due:
            self._checkpoint(conn)
        elif self._sync_due is not None and now >= self._sync_due:
            self._sync_due = None
            try:
                _sync(self._wal)
            except OSError as exc:
                _log.warning("wal sync failed: %s", type(exc).__name__)

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
        # WAL before DEL is answered, a message's within checkpoint_within of its ACK.
        now = time.monotonic()
        allowed = self._checkpointed_at + self._checkpoint_interval
        if self._checkpoint_now:
            self._checkpoint(conn)
        elif self._checkpoint_due is not None and now >= self._checkpoint_due:
            # Under steady load the thread never waits for it to come due. Its zeros reach
            # the disk with the next commit's sync of the WAL (or when idle): no sync of its own.
            self._checkpoint(conn, sync=False)
        elif self._deleted >= self._checkpoint_every:
            if now >= allowed:
                self._checkpoint(conn, sync=False)
            else:
                self._checkpoint_due = allowed
        elif self._deleted > deleted and self._checkpoint_due is None:
            self._checkpoint_due = max(allowed, now + self._checkpoint_within)
        elif _size(self._wal) > max(self._wal_size, _WAL_BYTES):
            self._checkpoint(conn, sync=False)  # what SQLite's automatic checkpoint would do
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
        self._ring_undo.clear()
        changes = conn.total_changes
        conn.execute("BEGIN IMMEDIATE")
        try:
            for op in batch:
                mark = len(self._ring_undo)
                if isolate:
                    conn.execute("SAVEPOINT op")
                try:
                    value = op.fn(conn)
                except Exception as exc:
                    if not isolate:
                        raise _Retry from exc
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    self._undo_ring_moves(mark)
                    outcome.append((None, exc))
                    continue
                if isolate:
                    conn.execute("RELEASE op")
                outcome.append((value, None))
            conn.execute("COMMIT")
            self.commit_count += 1
            if conn.total_changes != changes:
                self._sync_due = None  # the commit synced the WAL, zeros written before it included
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._undo_ring_moves(0)
            raise
        return outcome

    def _undo_ring_moves(self, mark: int) -> None:
        while len(self._ring_undo) > mark:
            recipient_id, place = self._ring_undo.pop()
            if place is None:
                self._ring_next.pop(recipient_id, None)
            else:
                self._ring_next[recipient_id] = place

    def _checkpoint(self, conn: sqlite3.Connection, *, sync: bool = True) -> None:
        """Copy the WAL into the database, then overwrite the frames it held with zeros, in place.

        ``RESTART`` (not ``TRUNCATE``): a truncated WAL would hand its blocks, deleted
        bodies and keys included, back to the file system as they are. After a complete
        RESTART checkpoint every frame is in the database file, no reader reads the WAL
        (readers that start now read the database only) and the next write starts the
        log again from its first byte; this thread is the only writer. So the WAL's used
        bytes are zeroed here, and the file keeps its size. SQLite deletes the (zeroed) WAL
        when the last connection closes. ``sync``: the zeros are synced now (a deleted
        queue, open, close); else by the next commit that writes (SQLite syncs the WAL at
        each), or within ``checkpoint_within`` if none comes.
        """
        # Whatever the outcome, the next try waits for another checkpoint_every deletions:
        # RESTART waits up to the busy timeout for readers, and must not do so every batch.
        self._deleted = 0
        self._checkpoint_now = False
        self._checkpoint_due = None
        self._checkpointed_at = time.monotonic()
        try:
            (busy, frames, copied) = conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            if busy or frames != copied:
                # A writer may yet start the log again over these frames once the reader
                # is gone: the next checkpoint zeroes the whole file.
                self._wal_zeroed = False
                _log.warning("wal checkpoint could not finish: a reader holds an old snapshot")
                return
            if not self._wal_zeroed:
                self._wal_size = _zero_prefix(self._wal, None, sync=True)
                self._wal_zeroed = True
                self._sync_due = None
            elif frames > 0:
                (page_size,) = conn.execute("PRAGMA page_size").fetchone()
                # Past the log's end the file is zeros already: only this log's frames.
                used = _WAL_HEADER + frames * (_FRAME_HEADER + page_size)
                self._wal_size = _zero_prefix(self._wal, used, sync=sync)
                if sync:
                    self._sync_due = None
                elif self._sync_due is None:
                    self._sync_due = time.monotonic() + self._checkpoint_within
            elif sync and self._sync_due is not None:
                _sync(self._wal)
                self._sync_due = None
        except (sqlite3.Error, OSError) as exc:
            name = _describe(exc) if isinstance(exc, sqlite3.Error) else type(exc).__name__
            _log.warning("wal checkpoint failed: %s", name)

    def _retire(self, conn: sqlite3.Connection, recipient_id: bytes, send_ids: list[bytes]) -> None:
        """Write ``send_ids`` (oldest first) into the queue's ring, each over its oldest slot.

        A notice's empty send id is nobody's: skipped. Where the ring's oldest slot is
        (its write position) is known to this process only; a queue it has not seen yet
        starts at a random slot, so after a restart the ids then remembered are forgotten
        in an order nobody chose.
        """
        send_ids = [send_id for send_id in send_ids if send_id]
        if not send_ids:
            return
        row = conn.execute("SELECT send_ids FROM queues WHERE recipient_id = ?", (recipient_id,)).fetchone()
        if row is None:
            return
        ring = bytearray(row[0])
        slot, known = self._ring_slot(recipient_id)
        for send_id in send_ids:
            if ring_has(ring, send_id):
                continue
            ring[slot * SLOT_SIZE : (slot + 1) * SLOT_SIZE] = send_id
            slot = (slot + 1) % RETIRED_SEND_IDS
            known = min(known + 1, RETIRED_SEND_IDS)
        self._move_ring(recipient_id, (slot, known))
        # The same size as before: SQLite overwrites the row in place.
        conn.execute("UPDATE queues SET send_ids = ? WHERE recipient_id = ?", (bytes(ring), recipient_id))

    def _ring_slot(self, recipient_id: bytes, *, new: bool = False) -> tuple[int, int]:
        """Where the queue's ring is written next, and how many slots before that are send ids.

        A ring this process made holds random bytes only; one from before it (a restart)
        may hold send ids in any slot, and all of them count, so that a retry from before
        the restart is still a duplicate.
        """
        place = self._ring_next.get(recipient_id)
        if place is None:
            slot = int.from_bytes(self._rng.random_bytes(2), "big") % RETIRED_SEND_IDS
            place = (slot, 0 if new else RETIRED_SEND_IDS)
            self._move_ring(recipient_id, place)
        return place

    def _move_ring(self, recipient_id: bytes, place: tuple[int, int]) -> None:
        self._ring_undo.append((recipient_id, self._ring_next.get(recipient_id)))
        self._ring_next[recipient_id] = place

    # -- the event-loop side --------------------------------------------------------------

    async def _call(
        self, fn: Callable[[sqlite3.Connection], _T], on_accepted: Callable[[PutResult], None] | None = None
    ) -> _T:
        """Run ``fn`` on the writer thread in the next transaction; return after its commit."""
        return await self._submit(fn, on_accepted)

    def _submit(
        self, fn: Callable[[sqlite3.Connection], _T], on_accepted: Callable[[PutResult], None] | None = None
    ) -> asyncio.Future[_T]:
        """Queue ``fn`` for the writer thread's next transaction; the future of its outcome after the commit.

        Raises:
            StoreError: if the store is closed.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            self._queue.put(_Op(fn, future, loop, on_accepted))
        return future

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
        """Store a new queue, with a ring of random send ids, among rows written again with it.

        Raises:
            StoreError: either id is already in use, or the store failed.
        """
        ring = new_ring(self._rng)

        def op(conn: sqlite3.Connection) -> None:
            insert_queue(conn, queue, ring)
            self._ring_slot(queue.recipient_id, new=True)

        await self._call(op)

    async def queue_by_recipient(self, recipient_id: bytes) -> QueueRecord | None:
        """The queue with this recipient id, if any."""
        return await self._query(lambda conn: select_queue(conn, "recipient_id", recipient_id))

    async def queue_by_sender(self, sender_id: bytes) -> QueueRecord | None:
        """The queue with this sender id, if any."""
        return await self._query(lambda conn: select_queue(conn, "sender_id", sender_id))

    async def lock_sender_key(self, recipient_id: bytes, sender_key: bytes) -> bool:
        """Set the sender key if none is set; whether the queue is now locked to ``sender_key``.

        One conditional UPDATE, committed before this returns: of two concurrent calls
        with different keys, the one the writer runs first wins. The key takes the place
        of the 32 zero bytes that stood for none: the row keeps its size and its place.
        """

        def op(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "UPDATE queues SET sender_key = CASE WHEN sender_key = ?3 THEN ?2 ELSE sender_key END"
                " WHERE recipient_id = ?1 RETURNING sender_key",
                (recipient_id, sender_key, NO_SENDER_KEY),
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
                "SELECT count(*), coalesce(max(sender_refused), 0), max(qseq) FROM messages"
                " WHERE recipient_id = ?",
                (recipient_id,),
            ).fetchone()
            if waiting:
                return PutResult.DUPLICATE
            if count >= quota:
                return PutResult.QUOTA
            marker = message.quota_marker or count == quota - 1
            qseq = first_qseq(self._rng) if last is None else last + 1
            insert_message(conn, recipient_id, qseq, b"", message, marker, sender_refused=True)
            return PutResult.STORED_MARKED if marker else PutResult.STORED

        return await self._call(op)

    async def delete_queue(self, recipient_id: bytes) -> bool:
        """Delete a queue and its messages (the send ids it remembers are in its row); False if none."""

        def op(conn: sqlite3.Connection) -> bool:
            count = conn.execute("DELETE FROM messages WHERE recipient_id = ?", (recipient_id,)).rowcount
            if conn.execute("DELETE FROM queues WHERE recipient_id = ?", (recipient_id,)).rowcount != 1:
                return False
            if recipient_id in self._ring_next:
                self._ring_undo.append((recipient_id, self._ring_next.pop(recipient_id)))
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
        return await self.put_message_now(sender_id, send_id, message, quota=quota, on_accepted=on_accepted)

    def put_message_now(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> asyncio.Future[PutResult]:
        """:meth:`put_message` queued for the writer thread here: its future, done once committed.

        Raises:
            ValueError: ``quota`` is less than 1.
            StoreError: the store is closed (a failure of the put: from the future).
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")

        def op(conn: sqlite3.Connection) -> PutResult:
            row = conn.execute(
                "SELECT recipient_id, send_ids FROM queues WHERE sender_id = ?", (sender_id,)
            ).fetchone()
            if row is None:
                return PutResult.NO_QUEUE
            recipient_id = row[0]
            if ring_has(row[1], send_id):
                return PutResult.DUPLICATE
            count, waiting, last = conn.execute(
                "SELECT count(*), coalesce(max(send_id = ?2), 0), max(qseq) FROM messages"
                " WHERE recipient_id = ?1",
                (recipient_id, send_id),
            ).fetchone()
            if waiting:
                return PutResult.DUPLICATE
            if count >= quota:
                return PutResult.QUOTA
            marker = message.quota_marker or count == quota - 1
            qseq = first_qseq(self._rng) if last is None else last + 1
            insert_message(conn, recipient_id, qseq, send_id, message, marker)
            return PutResult.STORED_MARKED if marker else PutResult.STORED

        return self._submit(op, on_accepted)

    async def head(self, recipient_id: bytes) -> StoredMessage | QueueMemory | None:
        """The oldest message; if none, what the queue remembers; None if there is no such queue.

        What it remembers: the send ids this process wrote into its ring, oldest first, if
        this process made the queue; else its whole ring from a random slot (after a
        restart nobody can tell its send ids from the random bytes around them, the relay
        no more than an examiner). Write-behind keeps the list for each queue it holds:
        short for a queue made since the start. On the writer thread, in order with the
        writes before it (a delete just acknowledged).
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
                "SELECT sender_id, send_ids FROM queues WHERE recipient_id = ?", (recipient_id,)
            ).fetchone()
            if queue is None:
                return None
            slot, known = self._ring_slot(recipient_id)
            return QueueMemory(bytes(queue[0]), ring_ids(bytes(queue[1]), slot)[RETIRED_SEND_IDS - known :])

        return await self._call(op)

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any."""
        first = await self.head(recipient_id)
        return first if isinstance(first, StoredMessage) else None

    async def retire_send_ids(self, recipient_id: bytes, send_ids: list[bytes]) -> None:
        """Remember ``send_ids`` as the queue's latest deletions, in order; durable on return."""
        await self._call(lambda conn: self._retire(conn, recipient_id, send_ids))

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message of this queue; False if it is not on this queue."""
        return await self.delete_message_now(recipient_id, msg_id)

    def delete_message_now(self, recipient_id: bytes, msg_id: bytes) -> asyncio.Future[bool]:
        """:meth:`delete_message` queued for the writer thread here: its future, done once committed.

        Raises:
            StoreError: the store is closed (a failure of the delete: from the future).
        """

        def op(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "DELETE FROM messages WHERE recipient_id = ? AND msg_id = ? RETURNING send_id",
                (recipient_id, msg_id),
            ).fetchall()
            if not rows:
                return False
            self._retire(conn, recipient_id, [bytes(rows[0][0])])
            self._deleted += 1
            return True

        return self._submit(op)

    async def expire(self, older_than: int) -> int:
        """Delete messages with ``received_at < older_than``; return how many."""

        def op(conn: sqlite3.Connection) -> int:
            # A scan (no index orders messages by age across queues); hourly. Retired in
            # queue order, as the reference does.
            rows = conn.execute(
                "SELECT recipient_id, send_id FROM messages WHERE received_at < ?"
                " ORDER BY recipient_id, qseq",
                (older_than,),
            ).fetchall()
            conn.execute("DELETE FROM messages WHERE received_at < ?", (older_than,))
            by_queue: dict[bytes, list[bytes]] = {}
            for recipient_id, send_id in rows:
                by_queue.setdefault(bytes(recipient_id), []).append(bytes(send_id))
            for recipient_id, send_ids in by_queue.items():
                self._retire(conn, recipient_id, send_ids)
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
