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
triggers run the operation and record its outcome in the temp table ``outcomes``, read
back as one string (:data:`_PROGRAM`). The reason is the GIL: the sqlite3 module gives
it up for every ``sqlite3_step``, and under load the writer then waits for the event
loop to hand it back, once per statement (py-spy: 40 % of the writer's time with a
statement per operation). One statement per batch costs a handful of such waits
instead of one or more per operation. The temp objects live on the writer's connection
only, in memory (``temp_store=MEMORY``: bodies never reach a temp file), and are not
part of the file's schema. Other operations run one by one, in order with the runs
around them.

A failing operation is undone alone: the batch first runs without savepoints (they
cost two statements per operation, and failures are rare); if an operation raises,
the whole transaction is rolled back and the batch runs again with each operation in
a ``SAVEPOINT`` of its own (each row then is a statement of its own). If the commit
itself fails, every operation of the batch fails with :class:`StoreError` and none had
an effect. ``commit_count`` counts the commits.

Write-behind (deferred writes)
------------------------------
With ``defer_seconds`` > 0, a put that comes with ``on_accepted`` (the server passes one
when the recipient is online) is *deferred*: the writer decides it at once, by the same
rules and in the same order as any put, has ``on_accepted`` called, and keeps the
message in its own memory (the overlay, :class:`_Overlay`: per queue, in order) instead
of the file. Then either

- its ``delete_message`` (the recipient's ACK) comes first: the body is never written.
  The delete only numbers the send id as the queue's latest deletion (the ``send_ids``
  row a normal delete leaves), and once that commits both the delete and the put
  return. Nothing is zeroed and nothing needs a checkpoint (``_deleted_since_checkpoint``
  counts deletions of written bodies only); or
- it is written (and its put returns) once it has waited ``defer_seconds`` (the thread
  wakes up for that deadline), or earlier when the file must hold it: before a put to
  the same queue that is written at once (FIFO order), before an ``expire`` that would
  delete it (with the rest of its queue), before any operation of unknown kind, and on
  close.

Everything else counts deferred messages as stored: a put's decision adds the queue's
deferred count and send ids to what the file says, and a message id clash with a
deferred message is a clash; ``first_message`` answers from the overlay when the file
holds none of the queue's messages (deferred messages are always the newest of their
queue); ``delete_queue`` drops the queue's deferred messages with it (their puts return
once the queue's deletion commits). At most :data:`MAX_DEFERRED` messages wait; beyond
that a put is written at once, and a put that is written at once has its
``on_accepted`` called just before it returns.

Deferral is batched like the rest. A deferrable put is a row of kind ``C`` in ``ops``,
whose trigger records, without writing anything, the queue, whether the file remembers
the send id, the queue's length in the file and whether the message id is taken; the
writer then adds, in Python, the overlay as it stood when the row was queued and the
decisions of the run's earlier rows. Writing a deferred message (``W``) and retiring
the send id of a cancelled one (``R``) are rows too. A cycle that only decides such puts
writes nothing to the file: it runs without ``BEGIN IMMEDIATE``, commits nothing and
costs no fsync. The ``on_accepted`` calls of the puts a cycle defers go to each event
loop once every statement of the cycle has run and *before* its commit: nothing of
theirs is in that commit, so their delivery need not wait for its fsync (should the
commit fail, their puts fail and the senders retry: at least once). Other
``on_accepted`` calls go once per cycle, after the commit and ahead of the futures
resolved in that cycle.

The overlay is the writer thread's own state: the event loop reaches it only through
the op queue, and hears of it only through ``call_soon_threadsafe``. When a batch's
transaction is rolled back, an undo log puts the overlay back as it was. If writing a
deferred message fails, its put raises :class:`StoreError` (although ``on_accepted``
was called) and the message is gone; if retiring a cancelled one fails, the delete
fails and the message stays deferred.

Hot queues
----------
The writer thread costs the event loop even when it writes nothing: every hand-over
and answer crosses threads, and the two threads take the GIL from each other at every
system call (measured with ``make bench``: about 60 us of the event loop's time per
relayed message). So a queue that needs none of the writer's state is decided on the
event loop instead (:mod:`.hot`). A queue gets *hot* when a ``first_message`` finds it
empty (the writer answers :class:`_Empty`: the queue's sender id and its window of
retired send ids) and no operation naming the queue (by recipient or sender id, or all
queues) was handed to the writer after that read (the loop numbers hand-overs): then
the writer holds nothing of it and will hold nothing while it is hot. While hot:

- a put with ``on_accepted`` is decided by the reference rules against the hot
  entries and retired send ids (a message id is checked against the hot entries, the
  writer's unanswered puts and the file), ``on_accepted`` is called at once, and the
  put waits for its delete or its deadline. For the file, the loop keeps the set of
  message ids that may be there (read at open, added at every hand-over of a message
  to the writer, dropped when its delete is answered and no put with it is, rebuilt
  from the file whenever it doubles, given up beyond :data:`FILE_IDS_MAX`); only an
  id in that set costs a read (a read costs microseconds in the relay's busy cache,
  most of a hot put's event-loop time);
- a delete of a hot entry answers it and its put at once (the recipient has the
  message); its send id joins the window of retired ones, in memory;
- ``first_message`` answers from the entries.

Anything else cools the queue first: a put without ``on_accepted`` or beyond
:data:`MAX_DEFERRED` hot entries, ``delete_queue``, ``expire`` and operations of unknown
kind (all hot queues), a deadline reached (``defer_seconds`` unacknowledged), close.
Cooling hands the writer one operation (:class:`_Adopt`): it records the send ids
retired on the loop (``R`` rows) and takes the entries into its overlay as deferred
messages, in order, with their deadlines; from there on they are written, cancelled or
dropped as any deferred message. The price: the send ids retired on a hot queue reach
the file only when it cools (or the store closes); a relay killed meanwhile forgets
them, so a sender that never got its OK retries and the retry is stored again, which
the recipient's session refuses as a replay (the same window write-behind already
has; a sender that got its OK never retries, and no retry got an OK before its
original was safe: see "Duplicates").

Duplicates
----------
A put whose send id the store remembers is stored nothing, but it is answered only once
the message it repeats is safe (docs/protocol.md §14.8 Durability: an ``OK`` is never
given for a message a kill -9 could still lose). A message in the file, committed or
retired, is safe: such a duplicate is answered with its batch, after its commit. A
message still held in memory is not: the duplicate joins that message's ``retries`` (a
hot entry's on the loop, a deferred entry's on the writer; an adopted hot entry hands
its retries to the writer with it) and is answered with it: ``DUPLICATE`` once it is
written, acknowledged or dropped with its queue, the same ``StoreError`` if its write
fails. This covers a retry decided in the same run of rows as its original (the run's
``taken``) and a retry decided against the overlay as it stood when the row was queued
(``_DecideRow.seen``). A retry attached in a batch that is rolled back is detached again
(``_Outcome.followed``). It costs nothing on the hot path: one lookup, for duplicates
only, which are rare.

Reads and checkpoints
---------------------
``first_message`` runs on the writer thread like a write (it reads a 16 KiB body, and
must come after the delete of the message just acknowledged); it costs no fsync.
The small reads (``queue_by_recipient``, ``queue_by_sender``) do not queue
behind the writer's fsyncs: they run at once, on the caller's thread, on a second,
read-only connection (``query_only``), as does a hot put's message id check. In WAL
mode it reads a committed state without waiting for the writer. It keeps one read
transaction open from read to read, because opening one costs two ``fcntl`` locks (the
WAL's read marks), more than the read itself (py-spy: over half of a hot put's event-loop time); the
writer thread ends it after every batch, before it answers the batch or checkpoints.
So a read that follows a write's answer sees the write (a write's future resolves
after its commit and that refresh), and no snapshot of the reader keeps a TRUNCATE
checkpoint from emptying the WAL. The reader never waits for a lock; on
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

    queues(recipient_id BLOB PK, sender_id BLOB UNIQUE, recipient_key, queue_key, sender_key NULL,
           sender_secured)                                        WITHOUT ROWID
    messages(recipient_id FK CASCADE, qseq, msg_id BLOB UNIQUE, send_id, received_at,
             quota_marker, body, sender_refused, PK (recipient_id, qseq))
                                                                  WITHOUT ROWID, index (received_at)

A file of version 2 (before sender-secured queues) is migrated when it opens: the two
flag columns are added with their default 0 (no queue of it is secured, no message of it
is a notice). A refused-sender notice (``put_notice``) has an empty send id, which no
SEND has, so it never has a ``send_ids`` row: its deletion retires nothing.

No rowid and no global counter anywhere: nothing on disk orders queues by creation, or
messages of different queues by arrival, finer than the whole-second ``received_at``.
``qseq`` numbers messages within one queue only (max + 1), which FIFO order needs.
    send_ids(recipient_id FK CASCADE, send_id, retired NULL, PK (recipient_id, send_id))
                                                                  index (recipient_id, retired)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import functools
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any, Final, TypeVar

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import (
    PutResult,
    QueueRecord,
    StoredMessage,
    notify_accepted,
)
from burnerkit.relay.server.store.hot import HotEntry, HotQueue
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS

__all__ = ["MAX_BATCH", "MAX_DEFERRED", "SCHEMA_VERSION", "SqliteStore"]

#: Operations one transaction (one commit, one fsync) carries at most.
MAX_BATCH: Final = 64
#: Deferred messages (accepted, not yet written) the writer holds at most; a put beyond
#: that is written at once.
MAX_DEFERRED: Final = 1024
#: Message ids the event loop keeps of those that may be in the file (see "Hot queues");
#: with more, each hot put asks the reader.
FILE_IDS_MAX: Final = 1 << 20
#: The fewest ids at which that set is rebuilt (it is rebuilt whenever it has doubled).
_FILE_IDS_REBUILD_FLOOR: Final = 4096
#: ``PRAGMA user_version`` of the schema this module writes.
SCHEMA_VERSION: Final = 3  # 2: no rowids, per-queue message numbers (nothing shipped v1); 3: flags
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
    sender_key    BLOB,
    sender_secured INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE messages (
    recipient_id  BLOB NOT NULL REFERENCES queues (recipient_id) ON DELETE CASCADE,
    qseq          INTEGER NOT NULL,
    msg_id        BLOB NOT NULL UNIQUE,
    send_id       BLOB NOT NULL,
    received_at   INTEGER NOT NULL,
    quota_marker  INTEGER NOT NULL,
    body          BLOB NOT NULL,
    sender_refused INTEGER NOT NULL DEFAULT 0,
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
#: From version 2 to 3: sender-secured queues and refused-sender notices. The triggers
#: of _PROGRAM name their columns, so rows they insert take the default 0.
_MIGRATE_2_TO_3: Final = (
    "ALTER TABLE queues ADD COLUMN sender_secured INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE messages ADD COLUMN sender_refused INTEGER NOT NULL DEFAULT 0",
    "PRAGMA user_version = 3",
)


class _Needs(enum.Enum):
    """What an operation that is no put or delete needs done to the deferred messages first."""

    WRITE_ALL = enum.auto()  #: any operation: every deferred message is written first
    NOTHING = enum.auto()  #: it touches no message (create_queue, lock_sender_key, queue reads)
    DROP_QUEUE = enum.auto()  #: delete_queue: the queue's deferred messages go with it, unwritten
    EXPIRE = enum.auto()  #: expire: queues with a deferred message it would delete are written first
    FIRST = enum.auto()  #: first_message: if the file holds none of the queue's, the oldest deferred one
    WRITE_QUEUE = enum.auto()  #: put_notice: the queue's deferred messages are written first (FIFO)


@dataclass(frozen=True, slots=True)
class _Put:
    sender_id: bytes
    send_id: bytes
    message: StoredMessage
    quota: int


@dataclass(frozen=True, slots=True)
class _Op:
    fn: Callable[[sqlite3.Connection], Any] | None  #: None for a put or a delete
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    put: _Put | None = None
    delete: tuple[bytes, bytes] | None = None  #: recipient id, msg id
    on_accepted: Callable[[PutResult], None] | None = None
    needs: _Needs = _Needs.WRITE_ALL
    target: bytes | int | None = None  #: the recipient id or ``older_than`` that ``needs`` is about
    adopt: _Adopt | None = None  #: a hot queue cooling down (see _plan_adopt)


@dataclass(frozen=True, slots=True)
class _Adopt:
    """What a cooling hot queue hands the writer: its messages, and the send ids it retired."""

    recipient_id: bytes
    sender_id: bytes
    entries: tuple[HotEntry, ...]
    retired: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class _Empty:
    """``first_message``'s answer from the writer when the queue holds no message anywhere.

    With the queue's sender id and its window of retired send ids: what the event loop
    needs to make the queue hot.
    """

    sender_id: bytes
    retired: list[bytes]


@dataclass(eq=False, slots=True)
class _Deferred:
    """A put accepted (``on_accepted`` called) whose message is not in the file (yet)."""

    op: _Op
    recipient_id: bytes
    sender_id: bytes
    send_id: bytes
    message: StoredMessage  #: as stored: with the quota marker it gets
    result: PutResult
    due: float  #: monotonic time by which it is written
    seq: int  #: order of acceptance
    live: bool = True  #: still deferred (not written, cancelled or dropped)
    #: puts with the same send id that came while it was deferred (retries): each is
    #: answered with it, DUPLICATE or its failure, never before (see "Duplicates")
    retries: list[_Op] = dataclasses.field(default_factory=list)

    def answers(
        self, result: object, exc: BaseException | None
    ) -> list[tuple[_Op, object, BaseException | None]]:
        """Its put's answer and its retries' (DUPLICATE, or the same failure)."""
        out = [(self.op, result, exc)]
        out.extend((retry, None if exc is not None else PutResult.DUPLICATE, exc) for retry in self.retries)
        return out


class _Overlay:
    """The deferred messages: the writer thread's own state, never touched by another thread.

    Per queue in order of acceptance (which is their order on the queue: every message
    of the file comes before them), with the indexes the writer needs, and an undo log
    that puts everything back if the batch's transaction is rolled back.
    """

    def __init__(self) -> None:
        self.queues: dict[bytes, dict[bytes, _Deferred]] = {}  # recipient id -> msg id -> entry
        self.send_ids: dict[bytes, dict[bytes, _Deferred]] = {}  # recipient id -> send id -> entry
        self.by_msg: dict[bytes, _Deferred] = {}
        self.by_sender: dict[bytes, bytes] = {}  # sender id -> recipient id, queues with entries
        #: every entry in order of acceptance, hence of ``due``; entries no longer live
        #: stay until they reach the left end (see purge)
        self.order: deque[_Deferred] = deque()
        #: while a batch runs: (added, entry) for each change, to undo them in reverse
        self.undo: list[tuple[bool, _Deferred]] = []
        self.recording = False
        self._seq = 0

    def __len__(self) -> int:
        return len(self.by_msg)

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def add(self, entry: _Deferred) -> None:
        self._link(entry)
        self.order.append(entry)
        if self.recording:
            self.undo.append((True, entry))

    def remove(self, entry: _Deferred) -> None:
        self._unlink(entry)
        if self.recording:
            self.undo.append((False, entry))

    def rollback_to(self, mark: int) -> None:
        """Undo the changes logged since ``len(self.undo)`` was ``mark``."""
        while len(self.undo) > mark:
            added, entry = self.undo.pop()
            if added:
                self._unlink(entry)
                popped = self.order.pop()  # no purge runs while recording: it is the last
                assert popped is entry
            else:
                self._link(entry)
                queue = self.queues[entry.recipient_id]
                if len(queue) > 1:  # back in its place
                    self.queues[entry.recipient_id] = dict(sorted(queue.items(), key=lambda kv: kv[1].seq))

    def of_queue(self, recipient_id: bytes) -> list[_Deferred]:
        queue = self.queues.get(recipient_id)
        return [] if queue is None else list(queue.values())

    def entries(self) -> list[_Deferred]:
        """Every entry, in order of acceptance."""
        return [entry for entry in self.order if entry.live]

    def due(self, now: float) -> list[_Deferred]:
        """The entries that have waited long enough, in order of acceptance."""
        out = []
        for entry in self.order:
            if entry.live:
                if entry.due > now:
                    break
                out.append(entry)
        return out

    def next_due(self) -> float | None:
        self.purge()
        return self.order[0].due if self.order else None

    def first(self, recipient_id: bytes) -> StoredMessage | None:
        queue = self.queues.get(recipient_id)
        return None if not queue else next(iter(queue.values())).message

    def purge(self) -> None:
        """Drop the entries no longer live from the left end of ``order`` (not while recording)."""
        order = self.order
        while order and not order[0].live:
            order.popleft()

    def _link(self, entry: _Deferred) -> None:
        recipient_id = entry.recipient_id
        queue = self.queues.get(recipient_id)
        if queue is None:
            queue = self.queues[recipient_id] = {}
            self.send_ids[recipient_id] = {}
            self.by_sender[entry.sender_id] = recipient_id
        queue[entry.message.msg_id] = entry
        self.send_ids[recipient_id][entry.send_id] = entry
        self.by_msg[entry.message.msg_id] = entry
        entry.live = True

    def _unlink(self, entry: _Deferred) -> None:
        recipient_id = entry.recipient_id
        queue = self.queues[recipient_id]
        del queue[entry.message.msg_id]
        del self.send_ids[recipient_id][entry.send_id]
        del self.by_msg[entry.message.msg_id]
        if not queue:
            del self.queues[recipient_id]
            del self.send_ids[recipient_id]
            del self.by_sender[entry.sender_id]
        entry.live = False


# What each row of a run of ``ops`` stands for, to read its outcome.
@dataclass(frozen=True, slots=True)
class _PutRow:
    index: int  #: in the batch
    op: _Op


@dataclass(frozen=True, slots=True)
class _DeleteRow:
    index: int


@dataclass(frozen=True, slots=True)
class _DecideRow:
    index: int
    op: _Op
    #: the overlay's share when the row was queued: the queue's deferred count, the
    #: deferred message with this send id (if any), whether the message id is deferred
    #: (anywhere)
    count: int
    seen: _Deferred | None
    clash: bool


@dataclass(frozen=True, slots=True)
class _WriteRow:
    entry: _Deferred


@dataclass(frozen=True, slots=True)
class _RetireRow:
    index: int  #: the delete's
    entry: _Deferred
    mark: int  #: the overlay's undo mark before the entry was removed


@dataclass(frozen=True, slots=True)
class _AdoptRow:
    index: int  #: the adoption's


_Tag = _PutRow | _DeleteRow | _DecideRow | _WriteRow | _RetireRow | _AdoptRow


@dataclass(slots=True)
class _Run:
    """Rows of ``ops`` queued to run as one statement."""

    rows: list[tuple[object, ...]] = dataclasses.field(default_factory=list)
    tags: list[_Tag] = dataclasses.field(default_factory=list)
    writes: bool = False  #: a row other than a decision: the run needs the write transaction
    #: message ids and senders of the decisions queued (their outcome is not known yet)
    undecided_msgs: set[bytes] = dataclasses.field(default_factory=set)
    undecided_senders: set[bytes] = dataclasses.field(default_factory=set)
    #: while the outcomes are read: send ids (per sender, with their entries) and msg ids
    #: the run's earlier decisions deferred
    taken: dict[bytes, dict[bytes, _Deferred]] = dataclasses.field(default_factory=dict)
    taken_msgs: set[bytes] = dataclasses.field(default_factory=set)

    def clear(self) -> None:
        self.rows.clear()
        self.tags.clear()
        self.writes = False
        self.undecided_msgs.clear()
        self.undecided_senders.clear()
        self.taken.clear()
        self.taken_msgs.clear()


@dataclass(slots=True)
class _Outcome:
    """What a batch's cycle hands back to the event loops."""

    #: per operation of the batch, (result, error); None: a put deferred, answered later
    results: list[tuple[object, BaseException | None] | None]
    #: deferred puts (of this cycle or earlier) answered now: written, cancelled or dropped
    settled: list[tuple[_Op, object, BaseException | None]] = dataclasses.field(default_factory=list)
    #: on_accepted calls, made before any future of the cycle is resolved
    accepted: list[tuple[_Op, PutResult]] = dataclasses.field(default_factory=list)
    #: on_accepted calls of puts deferred in this cycle: made before its commit (see _transact)
    early: list[tuple[_Op, PutResult]] = dataclasses.field(default_factory=list)
    #: deferred messages that got a retry in this cycle, in order (undone on rollback)
    followed: list[_Deferred] = dataclasses.field(default_factory=list)


class _OperationFailed(Exception):
    """An operation of a batch failed and the batch's transaction was rolled back."""


@dataclass(frozen=True, slots=True)
class _Close:
    future: asyncio.Future[None] | None
    loop: asyncio.AbstractEventLoop | None


_STORED: Final = (PutResult.STORED, PutResult.STORED_MARKED)


def _settle(future: asyncio.Future[Any], result: object, exc: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


def _settle_all(
    accepted: list[tuple[Callable[[PutResult], None], PutResult]],
    outcomes: list[tuple[asyncio.Future[Any], object, BaseException | None]],
) -> None:
    for callback, accepted_as in accepted:
        notify_accepted(callback, accepted_as)  # the futures below resolve whatever it does
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


def _accept(accepted: list[tuple[_Op, PutResult]]) -> None:
    """Make ``on_accepted`` calls now, with one wake-up of each event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Callable[[PutResult], None], PutResult]]] = {}
    for op, accepted_as in accepted:
        assert op.on_accepted is not None
        by_loop.setdefault(op.loop, []).append((op.on_accepted, accepted_as))
    for loop, calls in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_all, calls, [])


def _deliver(batch: list[_Op], outcome: _Outcome) -> None:
    """Hand a cycle's outcome to the event loops: one wake-up of each, not one per operation.

    Each loop runs its ``on_accepted`` calls first, then resolves its futures.
    """
    by_loop: dict[
        asyncio.AbstractEventLoop,
        tuple[
            list[tuple[Callable[[PutResult], None], PutResult]],
            list[tuple[asyncio.Future[Any], object, BaseException | None]],
        ],
    ] = {}
    for op, accepted_as in outcome.accepted:
        assert op.on_accepted is not None
        by_loop.setdefault(op.loop, ([], []))[0].append((op.on_accepted, accepted_as))
    for op, settled in zip(batch, outcome.results, strict=True):
        if settled is not None:
            by_loop.setdefault(op.loop, ([], []))[1].append((op.future, settled[0], settled[1]))
    for op, result, exc in outcome.settled:
        by_loop.setdefault(op.loop, ([], []))[1].append((op.future, result, exc))
    for loop, (accepted, settled_futures) in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(_settle_all, accepted, settled_futures)


def _clash() -> sqlite3.IntegrityError:
    """The error of a message id already stored (deferred): what SQLite raises for one in the file."""
    return sqlite3.IntegrityError("UNIQUE constraint failed: messages.msg_id")


def _connect_reader(path: str) -> sqlite3.Connection:
    """The event loop's read-only connection: never waits for a lock (``timeout=0``)."""
    reader = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        reader.execute("PRAGMA query_only = ON")
    except BaseException:
        reader.close()
        raise
    return reader


def _begin_read(reader: sqlite3.Connection) -> None:
    """Open the reader's read transaction unless it is open (its snapshot starts at its first read)."""
    if not reader.in_transaction:
        reader.execute("BEGIN")


def _end_read(reader: sqlite3.Connection) -> None:
    """End the reader's read transaction, if one is open (it wrote nothing: nothing is lost)."""
    if reader.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            reader.execute("ROLLBACK")


def _describe(exc: sqlite3.Error) -> str:
    name = getattr(exc, "sqlite_errorname", None) or type(exc).__name__
    return f"sqlite store failed ({name})"


class SqliteStore:
    """Queues and messages in one SQLite file; create with :meth:`open`.

    Attributes:
        commit_count: transactions committed so far, one per batch (a batch that wrote
            something costs one fsync of the WAL; a read-only batch costs none; a batch
            that only decided deferred puts commits nothing).
    """

    commit_count: int

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        timeout: float,
        checkpoint_every: int,
        checkpoint_interval: float = 0.0,
        defer_seconds: float = 0.0,
    ) -> None:
        """Prepare a store; :meth:`open` is the constructor to call."""
        if timeout < 0:
            raise ValueError("timeout must not be negative")
        if checkpoint_every < 1:
            raise ValueError("checkpoint_every must be at least 1")
        if checkpoint_interval < 0:
            raise ValueError("checkpoint_interval must not be negative")
        if not defer_seconds >= 0:  # also refuses NaN
            raise ValueError("defer_seconds must not be negative")
        self._path = os.fspath(path)
        self._timeout = timeout
        self._checkpoint_every = checkpoint_every
        self._checkpoint_interval = checkpoint_interval
        self._defer_seconds = defer_seconds
        self._checkpoint_now = False  # writer thread only: a queue was deleted in this batch
        #: writer thread only: monotonic time of the last checkpoint, and when a deferred one is due
        self._checkpointed_at = float("-inf")
        self._checkpoint_due: float | None = None
        self._queue: SimpleQueue[list[_Op] | _Close] = SimpleQueue()
        #: operations of the event loop's current turn, handed over together (see _call)
        self._outbox: list[_Op] = []
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._deleted_since_checkpoint = 0  # writer thread only
        #: writer thread only: the deferred messages, and those the running batch writes
        self._overlay = _Overlay()
        self._writing: list[_Deferred] = []
        #: the read-only connection of the event-loop side, and what serialises its use
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self.commit_count = 0
        #: event loop only: the hot queues (see "Hot queues" above), by recipient, sender
        #: and message id, and their entries in order of deadline
        self._hot: dict[bytes, HotQueue] = {}
        self._hot_by_sender: dict[bytes, HotQueue] = {}
        self._hot_msgs: dict[bytes, HotQueue] = {}
        self._hot_due: deque[tuple[HotEntry, HotQueue]] = deque()
        self._hot_timer: asyncio.TimerHandle | None = None
        #: event loop only: msg ids of puts the writer has and has not answered (clash checks)
        self._unanswered_msgs: dict[bytes, int] = {}
        #: event loop only: every msg id that may be in the file (more, never fewer), or
        #: None if that is not known; rebuilt from the file once it reaches _file_ids_rebuild_at
        self._file_ids: set[bytes] | None = None
        self._file_ids_rebuild_at = 0
        #: event loop only: operations handed over (numbered), the first_message reads the
        #: writer has not answered, and while there are any, the number of the latest
        #: operation naming each queue (by recipient or sender id) or every queue
        self._handed = 0
        self._firsts = 0
        self._named: dict[bytes, int] = {}
        self._named_all = -1

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        timeout: float = 5.0,
        checkpoint_every: int = 64,
        checkpoint_interval: float = 0.0,
        defer_seconds: float = 0.0,
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
            defer_seconds: how long a put with ``on_accepted`` may wait unwritten for its
                message's deletion (see the module docstring); 0, the default, writes every
                message at once. The relay uses a few hundredths of a second.

        Raises:
            StoreError: the file cannot be opened, is not a database, is locked, or
                holds an unknown schema version; or this SQLite is older than 3.35.
            ValueError: ``timeout`` or ``defer_seconds`` is negative, or
                ``checkpoint_every`` is below 1.
        """
        if sqlite3.sqlite_version_info < _MIN_SQLITE:
            raise StoreError("sqlite store needs SQLite 3.35 or later")
        store = cls(
            path,
            timeout=timeout,
            checkpoint_every=checkpoint_every,
            checkpoint_interval=checkpoint_interval,
            defer_seconds=defer_seconds,
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
        store._rebuild_file_ids()
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
                elif version == 2:
                    for statement in _MIGRATE_2_TO_3:
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
        waiting: deque[_Op] = deque()  # handed over, not yet run (a hand-over may exceed a batch)
        while closing is None:
            if not waiting:
                wake = self._wake_at()
                if wake is None:
                    item = self._queue.get()
                else:
                    try:
                        item = self._queue.get(timeout=max(0.0, wake - time.monotonic()))
                    except Empty:
                        self._idle(conn)  # a deadline passed, and nothing came meanwhile
                        continue
                if isinstance(item, _Close):
                    closing = item
                else:
                    waiting.extend(item)
            while closing is None and len(waiting) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except Empty:
                    break
                if isinstance(item, _Close):
                    closing = item
                else:
                    waiting.extend(item)
            batch = [waiting.popleft() for _ in range(min(MAX_BATCH, len(waiting)))]
            if closing is not None and waiting:
                # Everything queued before the close runs before it: batch after batch.
                while waiting:
                    self._run_batch(conn, batch, checkpoint=False)
                    batch = [waiting.popleft() for _ in range(min(MAX_BATCH, len(waiting)))]
            if batch or (closing is not None and self._overlay):
                # On close, every deferred message is written with the last batch.
                self._run_batch(conn, batch, checkpoint=closing is None, write_all=closing is not None)
        self._checkpoint(conn)
        close_error: BaseException | None = None
        try:
            conn.close()
        except sqlite3.Error as exc:
            close_error = exc
        closed = StoreError("store is closed")
        for entry in self._overlay.entries():  # none: the last batch wrote or failed them all
            for op, _, _ in entry.answers(None, closed):
                _resolve(op.loop, op.future, None, closed)
        # Nothing can be queued after the close request (the lock sees to it), but be sure.
        while True:
            try:
                stray = self._queue.get_nowait()
            except Empty:
                break
            if isinstance(stray, list):
                for op in stray:
                    _resolve(op.loop, op.future, None, closed)
        _resolve(closing.loop, closing.future, None, close_error)

    def _wake_at(self) -> float | None:
        """When the thread must wake up even if nothing comes: a deferred checkpoint or write."""
        write = self._overlay.next_due()
        checkpoint = self._checkpoint_due
        if write is None or checkpoint is None:
            return checkpoint if write is None else write
        return min(write, checkpoint)

    def _idle(self, conn: sqlite3.Connection) -> None:
        write = self._overlay.next_due()
        if write is not None and write <= time.monotonic():
            self._run_batch(conn, [], checkpoint=True)
        due = self._checkpoint_due
        if due is not None and due <= time.monotonic():
            self._checkpoint(conn)

    def _run_batch(
        self, conn: sqlite3.Connection, batch: list[_Op], *, checkpoint: bool, write_all: bool = False
    ) -> None:
        deleted = self._deleted_since_checkpoint
        try:
            try:
                outcome = self._transact(conn, batch, isolate=False, write_all=write_all)
            except _OperationFailed:
                # Undo the whole batch and run it again with every operation in a savepoint
                # of its own, so that the failing one is undone alone. Rare: an id clash,
                # or a broken file.
                self._deleted_since_checkpoint = deleted
                outcome = self._transact(conn, batch, isolate=True, write_all=write_all)
        except Exception as exc:  # sqlite3.Error in practice; the boundary in _call translates it
            if conn.in_transaction:
                # If even this fails the connection is broken; the next BEGIN reports it.
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._deleted_since_checkpoint = deleted
            outcome = _Outcome([(None, exc)] * len(batch))
            # The deferred messages this batch was to write are not written: their puts fail.
            for entry in self._writing:
                if entry.live:
                    self._overlay.remove(entry)
                    outcome.settled.extend(entry.answers(None, exc))
            self._overlay.purge()
        self._writing = []
        self._refresh_reader()
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
        _deliver(batch, outcome)

    def _transact(
        self, conn: sqlite3.Connection, batch: list[_Op], *, isolate: bool, write_all: bool
    ) -> _Outcome:
        """Run ``batch`` in one transaction, then write the deferred messages that are due.

        Without ``isolate`` each run of consecutive puts, deletes and writes is one
        statement (see :meth:`_flush`), any other operation runs alone, the write
        transaction begins only when something is to be written, and the first failure
        rolls everything back (the overlay too) and raises :class:`_OperationFailed`;
        with it, each row and operation runs in a savepoint of its own, and a failing one
        is undone alone. ``write_all``: write every deferred message (on close).
        """
        overlay = self._overlay
        outcome = _Outcome([None] * len(batch))
        run = _Run()
        self._writing = []
        overlay.recording = True
        try:
            if isolate:
                conn.execute("BEGIN IMMEDIATE")
            for index, op in enumerate(batch):
                if op.put is not None:
                    self._plan_put(conn, run, outcome, index, op, isolate=isolate)
                elif op.delete is not None:
                    self._plan_delete(conn, run, outcome, index, op, isolate=isolate)
                elif op.adopt is not None:
                    self._plan_adopt(conn, run, outcome, index, op, isolate=isolate)
                else:
                    self._run_fn(conn, run, outcome, index, op, isolate=isolate)
            if write_all:
                self._flush(conn, run, outcome, isolate=isolate)  # its decisions too
                writes = overlay.entries()
            else:
                writes = overlay.due(time.monotonic())
            for entry in writes:
                self._write(conn, run, outcome, entry, isolate=isolate)
            self._flush(conn, run, outcome, isolate=isolate)
            # Every statement has run: the puts deferred in this cycle are decided for good,
            # and their messages go out now rather than after the fsync of the commit below
            # (nothing of theirs is in it). Should the commit fail, their puts fail too and
            # their senders retry: delivery is at least once.
            _accept(outcome.early)
            outcome.early.clear()
            if conn.in_transaction:
                conn.execute("COMMIT")
                self.commit_count += 1
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            overlay.rollback_to(0)
            for entry in reversed(outcome.followed):  # the batch runs again, or fails whole
                entry.retries.pop()
            raise
        finally:
            overlay.recording = False
            overlay.undo.clear()
        overlay.purge()
        return outcome

    # The steps of a batch. Each queues rows into ``run`` (without ``isolate``) or runs
    # them at once, each in a savepoint (with it); ``_flush`` runs what is queued.

    def _plan_put(
        self, conn: sqlite3.Connection, run: _Run, outcome: _Outcome, index: int, op: _Op, *, isolate: bool
    ) -> None:
        put = op.put
        assert put is not None
        overlay = self._overlay
        msg_id = put.message.msg_id
        if msg_id in run.undecided_msgs:
            self._flush(conn, run, outcome, isolate=isolate)  # did an earlier put take this id?
        if (
            op.on_accepted is not None
            and self._defer_seconds > 0
            and len(overlay) + len(run.undecided_msgs) < MAX_DEFERRED
        ):
            recipient_id = overlay.by_sender.get(put.sender_id)
            seen: _Deferred | None
            if recipient_id is None:
                count, seen = 0, None
            else:
                count = len(overlay.queues[recipient_id])
                seen = overlay.send_ids[recipient_id].get(put.send_id)
            tag = _DecideRow(index, op, count, seen, msg_id in overlay.by_msg)
            row: tuple[object, ...] = ("C", put.sender_id, put.send_id, msg_id, None, None, None, put.quota)
            run.undecided_msgs.add(msg_id)
            run.undecided_senders.add(put.sender_id)
            self._queue_row(conn, run, outcome, row, tag, isolate=isolate)
            return
        # Written at once. The queue's deferred messages go first: they come before it.
        if put.sender_id in run.undecided_senders:
            self._flush(conn, run, outcome, isolate=isolate)
        owner = overlay.by_msg.get(msg_id)
        if owner is not None:
            # Its message id is deferred (never in practice: ids are random). Write that
            # message, and the clash comes out of the file as it would have.
            for entry in overlay.of_queue(owner.recipient_id):
                self._write(conn, run, outcome, entry, isolate=isolate)
        recipient_id = overlay.by_sender.get(put.sender_id)
        if recipient_id is not None:
            for entry in overlay.of_queue(recipient_id):
                self._write(conn, run, outcome, entry, isolate=isolate)
        message = put.message
        row = (
            "P",
            put.sender_id,
            put.send_id,
            msg_id,
            message.received_at,
            int(message.quota_marker),
            message.body,
            put.quota,
        )
        self._queue_row(conn, run, outcome, row, _PutRow(index, op), isolate=isolate)

    def _plan_delete(
        self, conn: sqlite3.Connection, run: _Run, outcome: _Outcome, index: int, op: _Op, *, isolate: bool
    ) -> None:
        assert op.delete is not None
        recipient_id, msg_id = op.delete
        if msg_id in run.undecided_msgs:
            self._flush(conn, run, outcome, isolate=isolate)  # is it deferred?
        entry = self._overlay.by_msg.get(msg_id)
        if entry is not None and entry.recipient_id == recipient_id:
            # Deferred: cancel its write, and retire its send id as a deletion would.
            mark = len(self._overlay.undo)
            self._overlay.remove(entry)
            row: tuple[object, ...] = ("R", recipient_id, entry.send_id, None, None, None, None, None)
            self._queue_row(conn, run, outcome, row, _RetireRow(index, entry, mark), isolate=isolate)
        else:
            row = ("X", recipient_id, msg_id, None, None, None, None, None)
            self._queue_row(conn, run, outcome, row, _DeleteRow(index), isolate=isolate)

    def _plan_adopt(
        self, conn: sqlite3.Connection, run: _Run, outcome: _Outcome, index: int, op: _Op, *, isolate: bool
    ) -> None:
        """A hot queue cools down: its send ids retired on the loop, then its messages deferred here.

        The writer holds nothing of the queue (that is what made it hot), so its entries
        become the queue's deferred messages, in order, with their own deadlines; their
        puts are answered from here on like any deferred put's.
        """
        adopt = op.adopt
        assert adopt is not None
        for send_id in adopt.retired:
            row: tuple[object, ...] = ("R", adopt.recipient_id, send_id, None, None, None, None, None)
            self._queue_row(conn, run, outcome, row, _AdoptRow(index), isolate=isolate)
        overlay = self._overlay
        for hot in adopt.entries:
            entry = _Deferred(
                _Op(None, hot.future, op.loop),
                adopt.recipient_id,
                adopt.sender_id,
                hot.send_id,
                hot.message,
                hot.result,
                hot.due,
                overlay.next_seq(),
                retries=[_Op(None, retry, op.loop) for retry in hot.retries],
            )
            overlay.add(entry)
        outcome.results[index] = (True, None)

    def _write(
        self, conn: sqlite3.Connection, run: _Run, outcome: _Outcome, entry: _Deferred, *, isolate: bool
    ) -> None:
        """Write a deferred message; its put is answered once that commits."""
        self._overlay.remove(entry)
        self._writing.append(entry)
        message = entry.message
        row = (
            "W",
            entry.recipient_id,
            entry.send_id,
            message.msg_id,
            message.received_at,
            int(message.quota_marker),
            message.body,
            None,
        )
        self._queue_row(conn, run, outcome, row, _WriteRow(entry), isolate=isolate)

    def _run_fn(
        self, conn: sqlite3.Connection, run: _Run, outcome: _Outcome, index: int, op: _Op, *, isolate: bool
    ) -> None:
        """Run an operation that is neither a put nor a delete, after the rows before it."""
        assert op.fn is not None
        overlay = self._overlay
        self._flush(conn, run, outcome, isolate=isolate)
        if op.needs is _Needs.WRITE_ALL:
            for entry in overlay.entries():
                self._write(conn, run, outcome, entry, isolate=isolate)
        elif op.needs is _Needs.EXPIRE:
            older_than = op.target
            assert isinstance(older_than, int)
            for recipient_id in [
                recipient_id
                for recipient_id, queue in overlay.queues.items()
                if any(entry.message.received_at < older_than for entry in queue.values())
            ]:
                for entry in overlay.of_queue(recipient_id):
                    self._write(conn, run, outcome, entry, isolate=isolate)
        elif op.needs is _Needs.WRITE_QUEUE:
            assert isinstance(op.target, bytes)
            for entry in overlay.of_queue(op.target):
                self._write(conn, run, outcome, entry, isolate=isolate)
        self._flush(conn, run, outcome, isolate=isolate)
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")  # outside the try: a lock is no operation's failure
        mark = len(overlay.undo)
        dropped: list[_Deferred] = []
        if isolate:
            conn.execute("SAVEPOINT op")
        try:
            if op.needs is _Needs.DROP_QUEUE:
                assert isinstance(op.target, bytes)
                dropped = overlay.of_queue(op.target)
                for entry in dropped:
                    overlay.remove(entry)
            result = op.fn(conn)
            if op.needs is _Needs.FIRST and (result is None or isinstance(result, _Empty)):
                # Deferred messages come after every message of the file.
                assert isinstance(op.target, bytes)
                deferred = overlay.first(op.target)
                if deferred is not None:
                    result = deferred
        except Exception as exc:
            if not isolate:
                raise _OperationFailed from exc
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            overlay.rollback_to(mark)
            outcome.results[index] = (None, exc)
            return
        if isolate:
            conn.execute("RELEASE op")
        outcome.results[index] = (result, None)
        for entry in dropped:
            outcome.settled.extend(entry.answers(entry.result, None))

    def _queue_row(
        self,
        conn: sqlite3.Connection,
        run: _Run,
        outcome: _Outcome,
        row: tuple[object, ...],
        tag: _Tag,
        *,
        isolate: bool,
    ) -> None:
        run.rows.append(row)
        run.tags.append(tag)
        if not isinstance(tag, _DecideRow):
            run.writes = True
        if isolate or len(run.rows) >= MAX_BATCH:
            self._flush(conn, run, outcome, isolate=isolate)

    def _flush(self, conn: sqlite3.Connection, run: _Run, outcome: _Outcome, *, isolate: bool) -> None:
        """Run the queued rows as one statement: one step out of Python for all.

        Each ``sqlite3_step`` gives up the GIL, and under load taking it back from the event
        loop is what the writer waits for most; so the rows go in as one INSERT into the
        temp view ``ops``, whose triggers run each in turn, and their outcomes come back as
        one string. Decisions alone need no write transaction (they write the temp table
        only); anything else begins it first.
        """
        if not run.rows:
            return
        if run.writes and not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")  # outside the try: a lock is no operation's failure
        if isolate:
            conn.execute("SAVEPOINT op")
        try:
            params: list[object] = []
            for seq, row in enumerate(run.rows):
                params.append(seq)
                params.extend(row)
            conn.execute(_OPS_INSERT[len(run.rows)], params)
            (joined,) = conn.execute(_OPS_RESULTS, (len(run.rows),)).fetchone()
        except Exception as exc:
            if not isolate:
                raise _OperationFailed from exc
            conn.execute("ROLLBACK TO op")
            conn.execute("RELEASE op")
            (tag,) = run.tags
            self._failed(tag, exc, outcome)
        else:
            if isolate:
                conn.execute("RELEASE op")
            codes = [] if joined is None else joined.split(",")
            if len(codes) != len(run.rows):
                raise AssertionError("ops: an outcome is missing")  # pragma: no cover
            for code, tag in zip(codes, run.tags, strict=True):
                self._read_outcome(code, tag, run, outcome)
        run.clear()

    def _read_outcome(self, code: str, tag: _Tag, run: _Run, outcome: _Outcome) -> None:
        if isinstance(tag, _DecideRow):
            self._decide(code, tag, run, outcome)
        elif isinstance(tag, _PutRow):
            result = _OUTCOMES[code]
            outcome.results[tag.index] = (result, None)
            if tag.op.on_accepted is not None and result in _STORED:
                assert isinstance(result, PutResult)
                outcome.accepted.append((tag.op, result))
        elif isinstance(tag, _DeleteRow):
            if code == "1":
                self._deleted_since_checkpoint += 1
            outcome.results[tag.index] = (code == "1", None)
        elif isinstance(tag, _WriteRow):
            outcome.settled.extend(tag.entry.answers(tag.entry.result, None))
        elif isinstance(tag, _AdoptRow):
            pass  # its result was set when it was planned (a failure replaces it)
        else:
            outcome.results[tag.index] = (True, None)
            outcome.settled.extend(tag.entry.answers(tag.entry.result, None))

    def _decide(self, code: str, tag: _DecideRow, run: _Run, outcome: _Outcome) -> None:
        """A deferrable put: what the file says, plus the overlay as it stood, plus the run."""
        put = tag.op.put
        assert put is not None
        if code == "N":
            outcome.results[tag.index] = (PutResult.NO_QUEUE, None)
            return
        if code == "D":
            outcome.results[tag.index] = (PutResult.DUPLICATE, None)
            return
        head, _, recipient_hex = code.partition(".")
        taken = run.taken.get(put.sender_id)
        original = tag.seen or (None if taken is None else taken.get(put.send_id))
        if original is not None:
            # A retry of a message not in the file: answered with it, once it is safe
            # (see "Duplicates"). It is not answered yet: its answer comes when a later
            # row of this run, or a later cycle, writes, cancels or drops the original.
            original.retries.append(tag.op)
            outcome.followed.append(original)
            return
        count = int(head[1:]) + tag.count + (0 if taken is None else len(taken))
        if count >= put.quota:
            outcome.results[tag.index] = (PutResult.QUOTA, None)
            return
        message = put.message
        if head[0] == "u" or tag.clash or message.msg_id in run.taken_msgs:
            outcome.results[tag.index] = (None, _clash())
            return
        if count == put.quota - 1 and not message.quota_marker:
            message = dataclasses.replace(message, quota_marker=True)
        result = PutResult.STORED_MARKED if message.quota_marker else PutResult.STORED
        overlay = self._overlay
        entry = _Deferred(
            tag.op,
            bytes.fromhex(recipient_hex),
            put.sender_id,
            put.send_id,
            message,
            result,
            time.monotonic() + self._defer_seconds,
            overlay.next_seq(),
        )
        overlay.add(entry)
        run.taken.setdefault(put.sender_id, {})[put.send_id] = entry
        run.taken_msgs.add(message.msg_id)
        outcome.early.append((tag.op, result))  # the put itself is answered later

    def _failed(self, tag: _Tag, exc: BaseException, outcome: _Outcome) -> None:
        """A row failed alone (``isolate``) and was rolled back to its savepoint."""
        if isinstance(tag, _WriteRow):
            # Not written: the put fails, and the message is gone (the overlay lost it).
            outcome.settled.extend(tag.entry.answers(None, exc))
        elif isinstance(tag, _RetireRow):
            self._overlay.rollback_to(tag.mark)  # not cancelled: it stays deferred
            outcome.results[tag.index] = (None, exc)
        else:
            outcome.results[tag.index] = (None, exc)

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # Whatever the outcome, the next try waits for another checkpoint_every deletes:
        # TRUNCATE waits up to the busy timeout for readers, and must not do so every batch.
        self._deleted_since_checkpoint = 0
        self._checkpoint_now = False
        self._checkpoint_due = None
        self._checkpointed_at = time.monotonic()
        self._refresh_reader()  # a snapshot of the reader would keep the WAL from truncating
        try:
            (busy, _, _) = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            _log.warning("wal checkpoint failed: %s", _describe(exc))
            return
        if busy:
            _log.warning("wal checkpoint could not finish: a reader holds an old snapshot")

    # -- the event-loop side --------------------------------------------------------------

    async def _call(
        self,
        fn: Callable[[sqlite3.Connection], _T] | None,
        *,
        put: _Put | None = None,
        delete: tuple[bytes, bytes] | None = None,
        on_accepted: Callable[[PutResult], None] | None = None,
        needs: _Needs = _Needs.WRITE_ALL,
        target: bytes | int | None = None,
    ) -> _T:
        """Run an operation on the writer thread inside the next transaction; return after its commit.

        ``fn``: any operation, run alone (after ``needs`` is done); or ``put``/``delete``,
        which the writer runs together with its neighbours as rows of the view ``ops``.
        """
        if fn is not None and needs in (_Needs.WRITE_ALL, _Needs.EXPIRE):
            self._cool_all()  # the writer must hold every message it is to see
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_T] = loop.create_future()
        self._submit(_Op(fn, future, loop, put, delete, on_accepted, needs, target))
        return await _answer(future)

    def _submit(self, op: _Op) -> int:
        """Queue ``op`` for the writer; returns its number in the order of hand-over.

        Raises:
            StoreError: the store is closed.
        """
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            self._outbox.append(op)
            first = len(self._outbox) == 1
        if first:
            # Handed over at the end of this turn of the loop, with every operation the
            # turn adds: one wake-up of the writer (and one wait for the interpreter lock
            # on each side) for all of them, not one per operation.
            op.loop.call_soon(self._hand_over)
        self._handed += 1
        number = self._handed
        if op.put is not None:
            self._unanswered(op.put.message.msg_id, op.future)
        if self._firsts:
            # Whether a queue may get hot when its first_message finds it empty (see _heat).
            if op.put is not None:
                self._named[op.put.sender_id] = number
            elif op.delete is not None:
                self._named[op.delete[0]] = number
            elif op.needs in (_Needs.WRITE_ALL, _Needs.EXPIRE):
                self._named_all = number
            elif isinstance(op.target, bytes):
                self._named[op.target] = number
        return number

    def _unanswered(self, msg_id: bytes, future: asyncio.Future[Any]) -> None:
        """A message with this id goes to the writer, and may reach the file (until ``future``)."""
        self._unanswered_msgs[msg_id] = self._unanswered_msgs.get(msg_id, 0) + 1
        future.add_done_callback(functools.partial(self._answered, msg_id))
        ids = self._file_ids
        if ids is not None:
            ids.add(msg_id)
            if len(ids) >= self._file_ids_rebuild_at:
                self._rebuild_file_ids()

    def _rebuild_file_ids(self) -> None:
        """Know again which message ids may be in the file: those it holds, and the unanswered.

        The set loses none (a deleted message's id is dropped only when no put with it is
        unanswered) but keeps some too many (ids of expired messages, deleted queues and
        refused puts); this scan, once it has doubled, drops them. The reader's snapshot
        holds every answered write, and what is not answered is in ``_unanswered_msgs``.
        Above :data:`FILE_IDS_MAX` ids, or if the reader fails, the set is given up.
        """
        self._file_ids = None
        rows = self._read_here(
            lambda reader: reader.execute(
                "SELECT msg_id FROM messages LIMIT ?", (FILE_IDS_MAX + 1,)
            ).fetchall()
        )
        if rows is None:
            return
        ids = {bytes(row[0]) for row in rows}
        ids.update(self._unanswered_msgs)
        if len(ids) > FILE_IDS_MAX:
            return
        self._file_ids = ids
        self._file_ids_rebuild_at = max(2 * len(ids), _FILE_IDS_REBUILD_FLOOR)

    def _answered(self, msg_id: bytes, _future: object) -> None:
        left = self._unanswered_msgs[msg_id] - 1
        if left:
            self._unanswered_msgs[msg_id] = left
        else:
            del self._unanswered_msgs[msg_id]

    # -- hot queues (event loop only) ---------------------------------------------------

    def _heat(self, recipient_id: bytes, empty: _Empty, number: int) -> None:
        """The writer found the queue empty when it ran read ``number``: make it hot, if still so.

        It is, exactly when no operation that could change it was handed over after that
        read: the writer holds nothing of it then, and will not (every later operation on
        a hot queue runs here, or cools it first).
        """
        if (
            self._defer_seconds <= 0
            or self._closed
            or recipient_id in self._hot
            or self._named.get(recipient_id, number) > number
            or self._named.get(empty.sender_id, -1) > number
            or self._named_all > number
        ):
            return
        hot = HotQueue(recipient_id, empty.sender_id, empty.retired)
        self._hot[recipient_id] = hot
        self._hot_by_sender[empty.sender_id] = hot

    def _hot_put(
        self,
        hot: HotQueue,
        send_id: bytes,
        message: StoredMessage,
        quota: int,
        on_accepted: Callable[[PutResult], None],
    ) -> PutResult | asyncio.Future[PutResult] | None:
        """A put with ``on_accepted`` to a hot queue, decided here.

        Returns its result if it stores nothing and is answered now, the future its answer
        comes on if it stores the message (``on_accepted`` has been called) or repeats a
        waiting one (answered with it, see "Duplicates"), or None if the writer must
        decide it after all.

        Raises:
            StoreError: the message id is taken.
        """
        result, message = hot.decide(send_id, message, quota)
        if result not in _STORED:
            original = hot.waiting(send_id) if result is PutResult.DUPLICATE else None
            if original is None:
                return result  # refused, or a retry of an acknowledged message: safe
            retry: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()
            original.retries.append(retry)
            return retry
        msg_id = message.msg_id
        if msg_id in self._hot_msgs or msg_id in self._unanswered_msgs:
            raise StoreError(_describe(_clash()))
        file_ids = self._file_ids
        if file_ids is None or msg_id in file_ids:
            # A read costs several microseconds with a busy cache: only for an id that may be there.
            in_file = self._msg_in_file(msg_id)
            if in_file is None:
                return None  # the reader met a lock: let the writer decide
            if in_file:
                raise StoreError(_describe(_clash()))
        loop = asyncio.get_running_loop()
        entry = HotEntry(
            send_id, message, result, time.monotonic() + self._defer_seconds, loop.create_future()
        )
        hot.add(entry)
        self._hot_msgs[msg_id] = hot
        self._hot_due.append((entry, hot))
        if self._hot_timer is None:
            self._hot_timer = loop.call_at(_loop_time(loop, entry.due), self._hot_expired)
        notify_accepted(on_accepted, result)
        return entry.future

    def _msg_in_file(self, msg_id: bytes) -> bool | None:
        """Whether the file holds a message with this id; None if the reader could not tell."""
        rows = self._read_here(
            lambda reader: reader.execute("SELECT 1 FROM messages WHERE msg_id = ?", (msg_id,)).fetchall()
        )
        return None if rows is None else bool(rows)

    def _read_here(self, fn: Callable[[sqlite3.Connection], list[Any]]) -> list[Any] | None:
        """The rows ``fn`` reads on the reader, now, on this thread; None if it could not read."""
        with self._read_lock:
            reader = self._reader
            if reader is None:
                return None
            try:
                _begin_read(reader)
                return fn(reader)
            except sqlite3.Error:
                _end_read(reader)
                return None

    def _refresh_reader(self) -> None:
        """Writer thread, after a commit and before its answers: end the reader's snapshot.

        The reader keeps one read transaction from read to read (see "Reads and
        checkpoints"); ending it here, before the loop hears of the commit, means that
        every read that follows an answered write sees it, and that no snapshot of the
        loop's keeps a checkpoint from truncating the WAL.
        """
        with self._read_lock:
            if self._reader is not None:
                _end_read(self._reader)

    def _hot_expired(self) -> None:
        """Entries waited ``defer_seconds`` unacknowledged: their queues cool (the writer writes them)."""
        self._hot_timer = None
        now = time.monotonic()
        due = self._hot_due
        while due:
            entry, hot = due[0]
            live = hot.entries.get(entry.message.msg_id) is entry and self._hot.get(hot.recipient_id) is hot
            if live and entry.due > now:
                break
            due.popleft()
            if live:
                self._cool(hot)
        if due:
            loop = asyncio.get_running_loop()
            self._hot_timer = loop.call_at(_loop_time(loop, due[0][0].due), self._hot_expired)

    def _cool(self, hot: HotQueue) -> None:
        """``hot`` goes back to the writer: its messages deferred there, its retired send ids recorded."""
        del self._hot[hot.recipient_id]
        del self._hot_by_sender[hot.sender_id]
        entries = tuple(hot.entries.values())
        retired = tuple(hot.fresh_retired())
        for entry in entries:
            del self._hot_msgs[entry.message.msg_id]
            self._unanswered(entry.message.msg_id, entry.future)
        if not entries and not retired:
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        future.add_done_callback(_log_adoption)
        try:
            self._submit(
                _Op(None, future, loop, adopt=_Adopt(hot.recipient_id, hot.sender_id, entries, retired))
            )
        except StoreError as exc:  # closed: the messages are lost, their puts (and retries) fail
            future.cancel()
            for entry in entries:
                entry.fail(StoreError(str(exc)))

    def _cool_all(self) -> None:
        for hot in list(self._hot.values()):
            self._cool(hot)
        if self._hot_timer is not None:
            self._hot_timer.cancel()
            self._hot_timer = None
        self._hot_due.clear()

    def _hand_over(self) -> None:
        with self._lock:
            ops, self._outbox = self._outbox, []
            if not self._closed:
                if ops:
                    self._queue.put(ops)
                return
        for op in ops:  # never, in fact: closing hands the outbox over first
            _settle(op.future, None, StoreError("store is closed"))

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
                _begin_read(reader)
                return fn(reader)
            except sqlite3.OperationalError:
                _end_read(reader)
            except sqlite3.Error as exc:
                _end_read(reader)
                raise StoreError(_describe(exc)) from exc
        return await self._call(fn, needs=_Needs.NOTHING)

    def _shut_down(self, future: asyncio.Future[None] | None, loop: asyncio.AbstractEventLoop | None) -> bool:
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            if self._outbox:  # queued before the close: they run before it
                self._queue.put(self._outbox)
                self._outbox = []
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
        if not self._closed:
            self._cool_all()  # the writer writes every message on close, the hot ones too
        if not self._shut_down(done, loop):
            return
        try:
            await _answer(done)
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
                "INSERT INTO queues"
                " (recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    queue.recipient_id,
                    queue.sender_id,
                    queue.recipient_key,
                    queue.queue_key,
                    queue.sender_key,
                    int(queue.sender_secured),
                ),
            )

        await self._call(op, needs=_Needs.NOTHING)

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

    async def lock_sender_key(self, recipient_id: bytes, sender_key: bytes) -> bool:
        """Set the sender key if none is set; whether the queue is now locked to ``sender_key``.

        One conditional UPDATE on the writer thread, committed before this returns: of
        two concurrent calls with different keys, the one the writer runs first wins.

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> bool:
            rows = conn.execute(
                "UPDATE queues SET sender_key = coalesce(sender_key, ?2) WHERE recipient_id = ?1"
                " RETURNING sender_key",
                (recipient_id, sender_key),
            ).fetchall()
            return bool(rows) and bytes(rows[0][0]) == sender_key

        return await self._call(op, needs=_Needs.NOTHING)

    async def put_notice(self, recipient_id: bytes, message: StoredMessage, *, quota: int) -> PutResult:
        """Store a refused-sender notice unless one waits on the queue or it is full.

        Written at once, after the queue's deferred and hot messages (its order on the
        queue is its order of arrival); it is never deferred.

        Raises:
            ValueError: ``quota`` is less than 1.
            StoreError: ``message.msg_id`` is already stored, or the store failed.
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")

        def op(conn: sqlite3.Connection) -> PutResult:
            count, waiting = conn.execute(
                "SELECT count(*), coalesce(max(sender_refused), 0) FROM messages WHERE recipient_id = ?",
                (recipient_id,),
            ).fetchone()
            exists = conn.execute("SELECT 1 FROM queues WHERE recipient_id = ?", (recipient_id,)).fetchall()
            if not exists:
                return PutResult.NO_QUEUE
            if waiting:
                return PutResult.DUPLICATE
            if count >= quota:
                return PutResult.QUOTA
            marker = message.quota_marker or count == quota - 1
            conn.execute(
                "INSERT INTO messages (recipient_id, qseq, msg_id, send_id, received_at, quota_marker, body,"
                " sender_refused) VALUES (?1, (SELECT coalesce(max(qseq), 0) + 1 FROM messages"
                " WHERE recipient_id = ?1), ?2, x'', ?3, ?4, ?5, 1)",
                (recipient_id, message.msg_id, message.received_at, int(marker), message.body),
            )
            return PutResult.STORED_MARKED if marker else PutResult.STORED

        hot = self._hot.get(recipient_id)
        if hot is not None:
            self._cool(hot)  # the writer must hold the queue's messages: the notice comes after them
        loop = asyncio.get_running_loop()
        future: asyncio.Future[PutResult] = loop.create_future()
        self._submit(_Op(op, future, loop, needs=_Needs.WRITE_QUEUE, target=recipient_id))
        self._unanswered(message.msg_id, future)  # its id may reach the file: hot puts must see it
        return await _answer(future)

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

        hot = self._hot.get(recipient_id)
        if hot is not None:
            self._cool(hot)
        # Its deferred messages are dropped with it, never written (their puts return).
        return await self._call(op, needs=_Needs.DROP_QUEUE, target=recipient_id)

    async def put_message(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> PutResult:
        """Append a message, durably, unless the send id is remembered or the queue is full.

        Returns only after the transaction holding the message has committed, or (a
        deferred message, see the module docstring) the one holding its deletion.

        Args:
            sender_id: the queue's sender id.
            send_id: the sender's id of this send, for dedupe.
            message: the message; its ``quota_marker`` may be set on the way in.
            quota: messages the queue holds at most.
            on_accepted: called on this event loop with the result, if it is ``STORED``
                or ``STORED_MARKED``, as soon as the writer decided the put (before the
                write when the message is deferred) and before this returns. With it, and
                ``defer_seconds`` > 0, the write may be deferred.

        Raises:
            ValueError: ``quota`` is less than 1.
            StoreError: ``message.msg_id`` is already stored, or the store failed (also
                when writing a deferred message failed after ``on_accepted``).
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")
        hot = self._hot_by_sender.get(sender_id)
        if hot is not None:
            if self._closed:
                raise StoreError("store is closed")
            if on_accepted is not None and len(self._hot_msgs) < MAX_DEFERRED:
                decided = self._hot_put(hot, send_id, message, quota, on_accepted)
                if isinstance(decided, PutResult):
                    return decided
                if decided is not None:
                    # Answered by the recipient's delete, or by the writer once the queue
                    # cooled down. Awaited here, not through _answer: one coroutine less to
                    # resume on every relayed message.
                    try:
                        return await decided
                    except sqlite3.Error as exc:
                        raise StoreError(_describe(exc)) from exc
            # Written at once, or the writer decides: it must hold the queue's messages first.
            if self._hot.get(hot.recipient_id) is hot:
                self._cool(hot)
        result: PutResult = await self._call(
            None, put=_Put(sender_id, send_id, message, quota), on_accepted=on_accepted
        )
        return result

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any (a deferred one too).

        Raises:
            StoreError: the store failed.
        """

        def op(conn: sqlite3.Connection) -> StoredMessage | _Empty | None:
            rows = conn.execute(
                "SELECT msg_id, received_at, quota_marker, body, sender_refused FROM messages"
                " WHERE recipient_id = ? ORDER BY qseq LIMIT 1",
                (recipient_id,),
            ).fetchall()  # to the end: the statement is reset, the read transaction over
            if rows:
                row = rows[0]
                return StoredMessage(bytes(row[0]), int(row[1]), bool(row[2]), bytes(row[3]), bool(row[4]))
            return _empty(conn, recipient_id) if self._defer_seconds > 0 else None

        hot = self._hot.get(recipient_id)
        if hot is not None:
            return hot.first()
        # On the writer thread, not the caller's: it reads a 16 KiB body, and it is ordered
        # after every write queued before it (a delete of the message just acknowledged).
        # When the file holds none of the queue's messages, the writer answers with the
        # oldest deferred one: no deferred message needs writing for this.
        loop = asyncio.get_running_loop()
        future: asyncio.Future[StoredMessage | _Empty | None] = loop.create_future()
        self._firsts += 1
        try:
            number = self._submit(_Op(op, future, loop, needs=_Needs.FIRST, target=recipient_id))
            result = await _answer(future)
            if isinstance(result, _Empty):
                self._heat(recipient_id, result, number)
                return None
            return result
        finally:
            self._firsts -= 1
            if not self._firsts:
                self._named.clear()
                self._named_all = -1

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message of this queue; False if it is not on this queue.

        A deferred message is never written: its put returns along with this.

        Raises:
            StoreError: the store failed.
        """
        done = self.delete_message_now(recipient_id, msg_id)
        if done is not None:
            return done
        deleted: bool = await self._call(None, delete=(recipient_id, msg_id))
        if deleted and self._file_ids is not None and msg_id not in self._unanswered_msgs:
            # Gone from the file (ids are unique there); a put with the same id still
            # unanswered may yet store it again, so the id stays while there is one.
            self._file_ids.discard(msg_id)
        return deleted

    def delete_message_now(self, recipient_id: bytes, msg_id: bytes) -> bool | None:
        """:meth:`delete_message` of a hot queue, here and now; None for any other queue.

        Raises:
            StoreError: the store is closed.
        """
        hot = self._hot.get(recipient_id)
        if hot is None:
            return None
        if self._closed:
            raise StoreError("store is closed")
        # A hot queue's messages are all here: nothing to write, nothing to wait for.
        # The recipient has the message (it acknowledges only what it stored), so its
        # put is answered now; the send id reaches the file when the queue cools.
        entry = hot.take(msg_id)
        if entry is None:
            return False
        del self._hot_msgs[msg_id]
        entry.answer()
        return True

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

        # A queue with a deferred message this deletes is written first (rare: deferred
        # messages are a few hundredths of a second old).
        return await self._call(op, needs=_Needs.EXPIRE, target=older_than)


_SELECT_QUEUE: Final = (
    "SELECT recipient_id, sender_id, recipient_key, queue_key, sender_key, sender_secured FROM queues"
)
_QUEUE_BY: Final = {
    "recipient_id": _SELECT_QUEUE + " WHERE recipient_id = ?",
    "sender_id": _SELECT_QUEUE + " WHERE sender_id = ?",
}


async def _answer(future: asyncio.Future[_T]) -> _T:
    """Await the writer's answer; its sqlite3 errors become StoreError here."""
    try:
        return await future
    except sqlite3.Error as exc:
        raise StoreError(_describe(exc)) from exc


def _loop_time(loop: asyncio.AbstractEventLoop, monotonic: float) -> float:
    """``loop.time()`` at the ``time.monotonic()`` instant ``monotonic``."""
    return loop.time() + (monotonic - time.monotonic())


def _log_adoption(future: asyncio.Future[bool]) -> None:
    if not future.cancelled() and future.exception() is not None:
        _log.warning("a cooling queue's send ids were not recorded: %s", type(future.exception()).__name__)


def _empty(conn: sqlite3.Connection, recipient_id: bytes) -> _Empty | None:
    """What makes a queue with no message in the file hot; None if there is no such queue."""
    rows = conn.execute("SELECT sender_id FROM queues WHERE recipient_id = ?", (recipient_id,)).fetchall()
    if not rows:
        return None
    retired = conn.execute(
        "SELECT send_id FROM send_ids WHERE recipient_id = ?1 AND retired IS NOT NULL AND retired >"
        " (SELECT coalesce(max(retired), 0) FROM send_ids WHERE recipient_id = ?1) - ?2 ORDER BY retired",
        (recipient_id, RETIRED_SEND_IDS),
    ).fetchall()
    return _Empty(bytes(rows[0][0]), [bytes(row[0]) for row in retired])


def _select_queue(conn: sqlite3.Connection, column: str, value: bytes) -> QueueRecord | None:
    rows = conn.execute(_QUEUE_BY[column], (value,)).fetchall()  # to the end, see first_message
    if not rows:
        return None
    row = rows[0]
    sender_key = None if row[4] is None else bytes(row[4])
    return QueueRecord(bytes(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), sender_key, bool(row[5]))


#: Deletions per queue between two prunings of its forgotten send ids.
_PRUNE_EVERY: Final = 64


def _retire(conn: sqlite3.Connection, recipient_id: bytes, send_id: bytes) -> None:
    """Number ``send_id`` as the queue's latest deletion; now and then, drop the forgotten ones.

    Only the latest :data:`RETIRED_SEND_IDS` numbers count as remembered (the check in
    the ``ops`` triggers compares with the queue's latest number), so the rows below that
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


#: Whether the queue ``q`` remembers the send id ``NEW.b``: while its message waits
#: (``retired`` NULL) or while it is among the queue's RETIRED_SEND_IDS latest deletions;
#: older rows may linger until pruned.
_SEEN: Final = f"""EXISTS (SELECT 1 FROM send_ids s
                       WHERE s.recipient_id = q.recipient_id AND s.send_id = NEW.b
                         AND (s.retired IS NULL
                              OR s.retired > (SELECT coalesce(max(r.retired), 0) FROM send_ids r
                                              WHERE r.recipient_id = q.recipient_id)
                                             - {RETIRED_SEND_IDS}))"""  # noqa: S608

#: The writer's program for a batch's rows (temp objects: per connection, in memory, not
#: part of the file's schema). A row inserted into the view ``ops`` is not stored: its
#: INSTEAD OF trigger runs the operation and records its outcome in ``outcomes`` (keyed
#: by the row's position in the run; each run overwrites the previous one's). Kinds and
#: outcome codes:
#:
#: - ``P`` a put, written at once: N(o queue), D(uplicate), Q(uota), S(tored), M(arked);
#: - ``X`` a delete: 1 (deleted) or 0;
#: - ``C`` a deferrable put's decision, writing nothing: N, D, or ``c<count>.<hex id>``
#:   (``u`` for ``c`` when the message id is taken): the queue's length and recipient id,
#:   for the writer to add its overlay;
#: - ``W`` the write of a deferred message (the decision is made): ``w``;
#: - ``R`` the retirement of a cancelled deferred message's send id, numbered as the
#:   queue's latest deletion as ``X`` does, with the same pruning: ``r``.
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
               {_SEEN} AS seen,
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
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS ops_decide INSTEAD OF INSERT ON ops WHEN NEW.kind = 'C' BEGIN
    INSERT OR REPLACE INTO outcomes (seq, code)
    SELECT NEW.seq,
           CASE WHEN c.recipient_id IS NULL THEN 'N'
                WHEN c.seen THEN 'D'
                ELSE CASE WHEN c.used THEN 'u' ELSE 'c' END || c.count || '.' || hex(c.recipient_id) END
    FROM (SELECT 1) LEFT JOIN (
        SELECT q.recipient_id,
               {_SEEN} AS seen,
               (SELECT count(*) FROM messages m WHERE m.recipient_id = q.recipient_id) AS count,
               EXISTS (SELECT 1 FROM messages m WHERE m.msg_id = NEW.msg_id) AS used
        FROM queues q WHERE q.sender_id = NEW.a) c;
END
""",  # noqa: S608
    """
CREATE TEMP TRIGGER IF NOT EXISTS ops_write INSTEAD OF INSERT ON ops WHEN NEW.kind = 'W' BEGIN
    INSERT OR REPLACE INTO outcomes (seq, code) VALUES (NEW.seq, 'w');
    INSERT INTO messages (recipient_id, qseq, msg_id, send_id, received_at, quota_marker, body)
    VALUES (NEW.a, (SELECT coalesce(max(qseq), 0) + 1 FROM messages WHERE recipient_id = NEW.a),
            NEW.msg_id, NEW.b, NEW.received_at, NEW.marker, NEW.body);
    INSERT INTO send_ids (recipient_id, send_id) VALUES (NEW.a, NEW.b)
    ON CONFLICT DO UPDATE SET retired = NULL;
END
""",
    f"""
CREATE TEMP TRIGGER IF NOT EXISTS ops_retire INSTEAD OF INSERT ON ops WHEN NEW.kind = 'R' BEGIN
    INSERT OR REPLACE INTO outcomes (seq, code) VALUES (NEW.seq, 'r');
    INSERT INTO send_ids (recipient_id, send_id, retired)
    VALUES (NEW.a, NEW.b, (SELECT coalesce(max(retired), 0) + 1 FROM send_ids WHERE recipient_id = NEW.a))
    ON CONFLICT DO UPDATE SET retired = excluded.retired;
    DELETE FROM send_ids WHERE recipient_id = NEW.a AND retired <=
        (SELECT s.retired - {RETIRED_SEND_IDS} FROM send_ids s
         WHERE s.recipient_id = NEW.a AND s.send_id = NEW.b AND s.retired % {_PRUNE_EVERY} = 0);
END
""",  # noqa: S608
)
#: The INSERT into ops for a run of n rows, n = 1 .. MAX_BATCH.
_OPS_INSERT: Final = {
    n: "INSERT INTO ops (seq, kind, a, b, msg_id, received_at, marker, body, quota) VALUES "  # noqa: S608
    + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * n)
    for n in range(1, MAX_BATCH + 1)
}
#: The outcomes of the run's first n rows, in order, as one string.
_OPS_RESULTS: Final = (
    "SELECT group_concat(code, ',') FROM (SELECT code FROM outcomes WHERE seq < ? ORDER BY seq)"
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
