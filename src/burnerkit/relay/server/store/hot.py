"""Hot queues: the SQLite store's write-behind fast path, kept on the event loop.

docs/protocol.md §14.8 (Write-behind). A queue is *hot* while the store knows, on the
event loop, everything about it that a put or a delete needs: the file and the writer
thread hold none of its messages, so its messages are exactly the entries here (each
accepted, delivered, not yet written), and its remembered send ids are the entries'
plus the window of retired ones. Puts with ``on_accepted`` and deletes of a hot queue
are then decided here, by the reference rules (:mod:`.memory`), without the writer
thread: nothing is written, no fsync is waited for, and no GIL is handed back and
forth between the two threads for them. :class:`~.sqlite.SqliteStore` decides when a
queue gets hot and when it cools down (its entries go to the writer's own overlay).

This module holds the data and the rules; it does no I/O.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field

from burnerkit.relay.server.store.base import PutResult, StoredMessage
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS, decide_put, retire_send_id

__all__ = ["HotEntry", "HotQueue"]


@dataclass(eq=False, slots=True)
class HotEntry:
    """A message of a hot queue: accepted and delivered, in no file."""

    send_id: bytes
    message: StoredMessage  #: as stored: with the quota marker it got
    result: PutResult  #: what its put answers
    due: float  #: monotonic time by which it must be in the file (or acknowledged)
    future: asyncio.Future[PutResult]  #: its put waits on it
    #: one future per retry of this put (same send id) that came while it waits: each is
    #: answered with it, DUPLICATE or its failure, never before (§14.8 Durability). Not
    #: ``future`` itself: cancelling one SEND's wait must not cancel another's.
    retries: list[asyncio.Future[PutResult]] = field(default_factory=list)

    def answer(self) -> None:
        """The recipient acknowledged the message: its put and every retry are answered."""
        if not self.future.done():
            self.future.set_result(self.result)
        for retry in self.retries:
            if not retry.done():
                retry.set_result(PutResult.DUPLICATE)

    def fail(self, exc: BaseException) -> None:
        """The message is lost before it was safe: its put and every retry fail with ``exc``."""
        for future in (self.future, *self.retries):
            if not future.done():
                future.set_exception(exc)


class HotQueue:
    """One hot queue: its messages in order, its live and retired send ids."""

    __slots__ = ("entries", "fresh", "recipient_id", "retired", "send_ids", "sender_id")

    def __init__(self, recipient_id: bytes, sender_id: bytes, retired: list[bytes]) -> None:
        self.recipient_id = recipient_id
        self.sender_id = sender_id
        #: msg id -> entry, oldest first
        self.entries: dict[bytes, HotEntry] = {}
        #: send id -> its entry
        self.send_ids: dict[bytes, HotEntry] = {}
        #: the window of retired send ids, oldest retirement first (the file's, then ours)
        self.retired: OrderedDict[bytes, None] = OrderedDict.fromkeys(retired[-RETIRED_SEND_IDS:])
        #: how many of the newest ``retired`` were retired here, so not yet in the file
        self.fresh = 0

    def decide(self, send_id: bytes, message: StoredMessage, quota: int) -> tuple[PutResult, StoredMessage]:
        """The reference decision of a put (no queue is not a case: a hot queue exists).

        Returns the result and the message as it would be stored (marked when it fills
        the queue). DUPLICATE and QUOTA store nothing; a DUPLICATE of a waiting entry
        (see :meth:`waiting`) must not be answered before that entry is.
        """
        count = len(self.entries)
        refused = decide_put(self.send_ids, self.retired, count, send_id, quota)
        if refused is not None:
            return refused, message
        if count == quota - 1 and not message.quota_marker:
            message = dataclasses.replace(message, quota_marker=True)
        return (PutResult.STORED_MARKED if message.quota_marker else PutResult.STORED), message

    def waiting(self, send_id: bytes) -> HotEntry | None:
        """The entry with this send id, if one waits (None if the send id is retired or unknown)."""
        return self.send_ids.get(send_id)

    def add(self, entry: HotEntry) -> None:
        """Append a message stored by :meth:`decide`'s rules."""
        self.entries[entry.message.msg_id] = entry
        self.send_ids[entry.send_id] = entry

    def take(self, msg_id: bytes) -> HotEntry | None:
        """Delete the message ``msg_id`` (its send id becomes the latest retired one)."""
        entry = self.entries.pop(msg_id, None)
        if entry is None:
            return None
        del self.send_ids[entry.send_id]
        retire_send_id(self.retired, entry.send_id)
        self.fresh = min(self.fresh + 1, len(self.retired))
        return entry

    def first(self) -> StoredMessage | None:
        """The oldest message, if any."""
        for entry in self.entries.values():
            return entry.message
        return None

    def fresh_retired(self) -> list[bytes]:
        """The send ids retired here, oldest first (the file must learn them on cooling)."""
        if not self.fresh:
            return []
        return list(self.retired)[-self.fresh :]
