"""``MemoryStore``: the reference :class:`~burnerkit.relay.server.store.base.MessageStore`.

Plain dicts, no I/O, nothing survives the process. Every other store must behave
exactly like this one; the contract suite (tests/contract) checks that they do.

Dedupe rule (shared by every store):

- A ``send_id`` is remembered per queue while its message is on the queue, and then,
  once the message is deleted (by ``delete_message`` or by ``expire``), as one of the
  :data:`RETIRED_SEND_IDS` most recently deleted send ids of that queue. A ``put``
  with a remembered ``send_id`` answers ``DUPLICATE`` and stores nothing, so a
  client's retry that arrives after the recipient already acknowledged the first copy
  is still not delivered twice. Older send ids are forgotten: a retry of one of them is
  stored again (the client deduplicates, delivery is at-least-once). The SQLite store
  keeps the same window without writing its order or its count to disk (docs/protocol.md
  §14.8b), so across a restart it forgets them in an order of its own.
- ``delete_queue`` forgets every send id of the queue.
- The check order of ``put_message`` is: no queue, then duplicate, then quota, so a
  retry to a full queue still answers ``DUPLICATE`` (OK) rather than ``QUOTA``.

Quota rule: a queue holding ``quota`` messages refuses puts (``QUOTA``); the message
that makes it hold exactly ``quota`` is stored with ``quota_marker=True`` (a caller's
``True`` is kept in any case).

Message ids are unique across the whole store, as in SQLite: storing a ``msg_id``
that is already on any queue raises :class:`StoreError` and stores nothing.

This store is durable at once (as durable as it gets): a put with ``on_accepted``
stores the message, calls ``on_accepted(result)`` and returns. Write-behind over it
(:class:`~.writebehind.WriteBehind`) runs as over any store.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import OrderedDict
from collections.abc import Callable, Container
from dataclasses import dataclass
from typing import Final

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import (
    PutResult,
    QueueMemory,
    QueueRecord,
    StoredMessage,
    notify_accepted,
)

__all__ = ["RETIRED_SEND_IDS", "MemoryStore", "as_stored", "decide_put", "retire_send_id"]

#: Send ids of deleted messages each queue keeps for deduplication; the oldest deletion is forgotten first.
RETIRED_SEND_IDS: Final = 256
#: What a refused-sender notice has for a send id: no SEND carries it (theirs are 16
#: bytes), so it is never a duplicate of one, and it is never remembered.
_NOTICE_SEND_ID: Final = b""


@dataclass(slots=True)
class _Queue:
    record: QueueRecord
    #: msg_id -> (send_id, message), in the order stored (dicts keep insertion order).
    messages: dict[bytes, tuple[bytes, StoredMessage]] = dataclasses.field(default_factory=dict)
    #: send ids of the messages on the queue.
    live_send_ids: set[bytes] = dataclasses.field(default_factory=set)
    #: send ids of deleted messages, oldest deletion first, at most RETIRED_SEND_IDS.
    retired_send_ids: OrderedDict[bytes, None] = dataclasses.field(default_factory=OrderedDict)

    def retire(self, send_id: bytes) -> None:
        if send_id == _NOTICE_SEND_ID:
            return  # a notice's: no sender will ever retry it
        self.live_send_ids.discard(send_id)
        retire_send_id(self.retired_send_ids, send_id)


def retire_send_id(retired: OrderedDict[bytes, None], send_id: bytes) -> None:
    """Remember ``send_id`` as a queue's latest deletion, forgetting beyond RETIRED_SEND_IDS."""
    retired[send_id] = None
    retired.move_to_end(send_id)
    while len(retired) > RETIRED_SEND_IDS:
        retired.popitem(last=False)


def decide_put(
    live: Container[bytes], retired: OrderedDict[bytes, None], count: int, send_id: bytes, quota: int
) -> PutResult | None:
    """The dedupe and quota rules of a put to a queue holding ``count`` messages.

    DUPLICATE or QUOTA (nothing is stored), or None: it is stored (the caller then
    checks the message id, and marks the message when ``count == quota - 1``).
    """
    if send_id in live or send_id in retired:
        return PutResult.DUPLICATE
    if count >= quota:
        return PutResult.QUOTA
    return None


def as_stored(message: StoredMessage, count: int, quota: int) -> tuple[PutResult, StoredMessage]:
    """A put's result and its message as stored after ``count`` others: marked if it fills the queue."""
    if count == quota - 1 and not message.quota_marker:
        message = dataclasses.replace(message, quota_marker=True)
    return (PutResult.STORED_MARKED if message.quota_marker else PutResult.STORED), message


class MemoryStore:
    """Queues and messages in dicts; the reference implementation of ``MessageStore``."""

    def __init__(self) -> None:
        self._queues: dict[bytes, _Queue] = {}  # by recipient id
        self._by_sender: dict[bytes, bytes] = {}  # sender id -> recipient id
        self._msg_owner: dict[bytes, bytes] = {}  # msg id -> recipient id
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    async def create_queue(self, queue: QueueRecord) -> None:
        """Store a new queue.

        Raises:
            StoreError: if either id is already in use, or the store is closed.
        """
        self._check_open()
        if queue.recipient_id in self._queues or queue.sender_id in self._by_sender:
            raise StoreError("queue id already in use")
        self._queues[queue.recipient_id] = _Queue(queue)
        self._by_sender[queue.sender_id] = queue.recipient_id

    async def queue_by_recipient(self, recipient_id: bytes) -> QueueRecord | None:
        """The queue with this recipient id, if any.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        entry = self._queues.get(recipient_id)
        return None if entry is None else entry.record

    async def queue_by_sender(self, sender_id: bytes) -> QueueRecord | None:
        """The queue with this sender id, if any.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        recipient_id = self._by_sender.get(sender_id)
        return None if recipient_id is None else self._queues[recipient_id].record

    async def lock_sender_key(self, recipient_id: bytes, sender_key: bytes) -> bool:
        """Set the sender key if none is set; whether the queue is now locked to ``sender_key``.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        entry = self._queues.get(recipient_id)
        if entry is None:
            return False
        if entry.record.sender_key is None:
            entry.record = dataclasses.replace(entry.record, sender_key=sender_key)
        return entry.record.sender_key == sender_key

    async def put_notice(self, recipient_id: bytes, message: StoredMessage, *, quota: int) -> PutResult:
        """Store a refused-sender notice unless one waits on the queue or it is full.

        Raises:
            ValueError: if ``quota`` is less than 1.
            StoreError: if ``message.msg_id`` is already stored, or the store is closed.
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")
        self._check_open()
        entry = self._queues.get(recipient_id)
        if entry is None:
            return PutResult.NO_QUEUE
        if any(waiting.sender_refused for _, waiting in entry.messages.values()):
            return PutResult.DUPLICATE
        count = len(entry.messages)
        if count >= quota:
            return PutResult.QUOTA
        if message.msg_id in self._msg_owner:
            raise StoreError("message id already in use")
        message = dataclasses.replace(
            message, sender_refused=True, quota_marker=message.quota_marker or count == quota - 1
        )
        entry.messages[message.msg_id] = (_NOTICE_SEND_ID, message)
        self._msg_owner[message.msg_id] = recipient_id
        return PutResult.STORED_MARKED if message.quota_marker else PutResult.STORED

    async def delete_queue(self, recipient_id: bytes) -> bool:
        """Delete a queue, its messages and every send id it remembers; False if no such queue.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        entry = self._queues.pop(recipient_id, None)
        if entry is None:
            return False
        del self._by_sender[entry.record.sender_id]
        for msg_id in entry.messages:
            del self._msg_owner[msg_id]
        return True

    async def put_message(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> PutResult:
        """Append a message unless the send id is remembered or the queue is full.

        ``on_accepted`` is called with the result before this returns, if it is
        ``STORED`` or ``STORED_MARKED``; an exception it raises goes to the event loop's
        exception handler, as with every store.

        Raises:
            ValueError: if ``quota`` is less than 1.
            StoreError: if ``message.msg_id`` is already stored, or the store is closed.
        """
        return self._put(sender_id, send_id, message, quota, on_accepted)

    def put_message_now(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> asyncio.Future[PutResult]:
        """:meth:`put_message`, which never waits here: its result as a done future.

        Raises:
            ValueError: if ``quota`` is less than 1.
            StoreError: if ``message.msg_id`` is already stored, or the store is closed.
        """
        future: asyncio.Future[PutResult] = asyncio.get_running_loop().create_future()
        future.set_result(self._put(sender_id, send_id, message, quota, on_accepted))
        return future

    def _put(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None,
    ) -> PutResult:
        if quota < 1:
            raise ValueError("quota must be at least 1")
        self._check_open()
        recipient_id = self._by_sender.get(sender_id)
        if recipient_id is None:
            return PutResult.NO_QUEUE
        entry = self._queues[recipient_id]
        count = len(entry.messages)
        refused = decide_put(entry.live_send_ids, entry.retired_send_ids, count, send_id, quota)
        if refused is not None:
            return refused
        if message.msg_id in self._msg_owner:
            raise StoreError("message id already in use")
        result, message = as_stored(message, count, quota)
        entry.messages[message.msg_id] = (send_id, message)
        entry.live_send_ids.add(send_id)
        self._msg_owner[message.msg_id] = recipient_id
        if on_accepted is not None:
            notify_accepted(on_accepted, result)
        return result

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        entry = self._queues.get(recipient_id)
        if entry is None:
            return None
        first = next(iter(entry.messages.values()), None)
        return None if first is None else first[1]

    async def head(self, recipient_id: bytes) -> StoredMessage | QueueMemory | None:
        """The oldest message; if none, the queue's sender id and retired send ids; None if no queue.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        entry = self._queues.get(recipient_id)
        if entry is None:
            return None
        for _, message in entry.messages.values():
            return message
        return QueueMemory(entry.record.sender_id, list(entry.retired_send_ids))

    async def retire_send_ids(self, recipient_id: bytes, send_ids: list[bytes]) -> None:
        """Remember ``send_ids`` as the queue's latest deletions, in order.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        entry = self._queues.get(recipient_id)
        if entry is not None:
            for send_id in send_ids:
                retire_send_id(entry.retired_send_ids, send_id)

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message of this queue; False if it is not on this queue.

        Raises:
            StoreError: if the store is closed.
        """
        return self.delete_message_now(recipient_id, msg_id)

    def delete_message_now(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """:meth:`delete_message`, which never waits here.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        entry = self._queues.get(recipient_id)
        if entry is None or msg_id not in entry.messages:
            return False
        send_id, _ = entry.messages.pop(msg_id)
        entry.retire(send_id)
        del self._msg_owner[msg_id]
        return True

    async def expire(self, older_than: int) -> int:
        """Delete messages with ``received_at < older_than``; return how many.

        Raises:
            StoreError: if the store is closed.
        """
        self._check_open()
        deleted = 0
        for entry in self._queues.values():
            old = [
                (msg_id, send_id)
                for msg_id, (send_id, message) in entry.messages.items()
                if message.received_at < older_than
            ]
            for msg_id, send_id in old:
                del entry.messages[msg_id]
                entry.retire(send_id)
                del self._msg_owner[msg_id]
            deleted += len(old)
        return deleted

    async def close(self) -> None:
        """Drop everything; later calls raise :class:`StoreError`. Closing twice is harmless."""
        self._closed = True
        self._queues.clear()
        self._by_sender.clear()
        self._msg_owner.clear()
