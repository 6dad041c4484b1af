"""The ``MessageStore`` seam: what the relay keeps and the promises each store makes.

docs/protocol.md §14.7. One contract test suite (tests/contract) runs against every
implementation; the in-memory store is the reference, not a mock.

Promises:

- ``put_message`` returns once the message is *durable* (for SQLite: committed with
  ``synchronous=FULL``); so does every other write. The relay's one rule of when it may
  answer ``OK`` (docs/protocol.md §14.8 Durability) is kept on top of this by
  :mod:`.writebehind`, the only store that answers a put before its message is durable.
- ``on_accepted``: a caller that passes it learns the outcome early. A store calls
  ``on_accepted(result)`` on the caller's event loop if the put is ``STORED`` or
  ``STORED_MARKED``, always before the put returns, never for another result; it must not
  raise (an exception goes to the loop's exception handler), and it is called even if the
  awaiting coroutine was cancelled, since the message is on the queue all the same. A
  durable store calls it just before returning; :class:`.writebehind.WriteBehind` calls it
  as soon as it decides the put, before the message is durable (its module docstring).
- A ``send_id`` is remembered per queue while its message waits and, after the message
  is deleted (ACK or expiry), among the queue's 256 most recently deleted send ids; a
  put with a remembered ``send_id`` is not stored again (``DUPLICATE``), so a client
  retrying an unacknowledged send never creates a second copy. A durable store keeps no
  count and no order of them on disk (SQLite: a ring of 256 slots, docs/protocol.md
  §14.8b): across a restart the 256 stay remembered, and each is then forgotten after
  between 1 and 256 further deletions. ``put_message`` checks
  no-queue, then duplicate, then quota, so a retry to a full queue is still ``DUPLICATE``.
- Message ids are unique across the store; a clash raises ``StoreError`` with no effect.
  (Ids are 24 random bytes of the relay's: a clash is a 2^-192 event. A put held by
  :class:`.writebehind.WriteBehind` is checked against the held messages only; should its
  id be taken in the inner store, its write fails and the put raises ``StoreError``
  although ``on_accepted`` was called.)
- Operations take effect in the order they are called (their coroutines started), and
  ``head`` sees every write called before it: :class:`.writebehind.WriteBehind` relies on
  it to know when a queue holds nothing but what it holds itself.
- ``lock_sender_key`` sets a queue's sender key once (KEY and a sender-secured queue's
  first SEND share it; a key once set is never replaced), in one step: of two concurrent
  calls with different keys exactly one gets True, and the lock is durable when it
  returns (the server locks a sender-secured queue with it before storing the SEND).
- ``put_notice`` stores a refused-sender notice (``sender_refused``, empty body) unless
  the queue already holds one or is full: at most one waits per queue, and it takes a
  quota slot like any message (``quota_marker`` by the same rule). It needs no send id
  and leaves none to remember.
- A closed store raises ``StoreError``; a cancelled call may still take effect (harmless
  for puts, because of the dedupe rule).
- Messages of one queue come out in the order they were stored.
- ``delete_message`` deletes exactly the named message of the named queue, nothing else.
  ``delete_message_now`` is the same delete started here and now: done at once when the
  store needs to wait for nothing (an in-memory store always; a queue held by write-behind),
  or a future of it (SQLite: its commit), or not at all (None); ``put_message_now`` likewise
  for a put. The relay runs these without a task per message.
- No error from the backing library escapes: each is raised as ``StoreError``.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["MessageStore", "PutResult", "QueueMemory", "QueueRecord", "StoredMessage", "notify_accepted"]


@dataclass(frozen=True, slots=True)
class QueueRecord:
    """One queue. Holds no sender identity: the relay never learns who sends."""

    recipient_id: bytes  #: 24 random bytes; only the recipient uses it
    sender_id: bytes  #: 24 random bytes, independent of the recipient id
    recipient_key: bytes = field(repr=False)  #: Ed25519 public key the recipient signs with
    queue_key: bytes = field(repr=False)  #: 32-byte secret of the server-to-recipient layer
    sender_key: bytes | None = field(default=None, repr=False)  #: set by KEY; then sends must be signed
    #: created sender-secured (NEW flag): the first signed SEND sets ``sender_key``,
    #: unsigned SENDs are refused
    sender_secured: bool = False


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One message waiting on a queue."""

    msg_id: bytes  #: 24 random bytes
    received_at: int  #: server clock, whole seconds
    quota_marker: bool  #: the queue reached its quota with this message
    body: bytes = field(repr=False)
    #: a refused-sender notice (``put_notice``): empty body, delivered with flag bit 1
    sender_refused: bool = False


@dataclass(frozen=True, slots=True)
class QueueMemory:
    """What a queue that holds no message remembers: :meth:`MessageStore.head`'s empty answer."""

    sender_id: bytes
    #: its window of retired send ids (at most 256), oldest deletion first; a store that
    #: cannot tell them from the random bytes it pads them with (SQLite, for a queue made
    #: before a restart) lists all 256 slots, in an order it chose at random
    retired: list[bytes] = field(repr=False)


@enum.unique
class PutResult(enum.Enum):
    """Outcome of :meth:`MessageStore.put_message`."""

    STORED = "stored"
    #: Stored, and it filled the queue: it carries the quota marker (the server delivers
    #: it from memory and must know).
    STORED_MARKED = "stored-marked"
    #: This ``send_id`` is already on the queue (a retry): nothing stored, answer OK.
    DUPLICATE = "duplicate"
    #: The queue is full: nothing stored.
    QUOTA = "quota"
    #: No queue has this sender id.
    NO_QUEUE = "no-queue"


def notify_accepted(on_accepted: Callable[[PutResult], None], result: PutResult) -> None:
    """Call ``on_accepted(result)``; what it raises (the caller's bug) goes to the loop's handler.

    Every store calls it this way, so the put (and any other put answered with it) goes on.
    """
    try:
        on_accepted(result)
    except Exception as exc:
        asyncio.get_running_loop().call_exception_handler({"message": "on_accepted raised", "exception": exc})


class MessageStore(Protocol):
    """Durable queues and messages. Every method may raise :class:`StoreError`."""

    async def create_queue(self, queue: QueueRecord) -> None:
        """Store a new queue (ids are fresh randoms; a collision raises StoreError)."""
        ...

    async def queue_by_recipient(self, recipient_id: bytes) -> QueueRecord | None:
        """The queue with this recipient id, if any."""
        ...

    async def queue_by_sender(self, sender_id: bytes) -> QueueRecord | None:
        """The queue with this sender id, if any."""
        ...

    async def lock_sender_key(self, recipient_id: bytes, sender_key: bytes) -> bool:
        """Set the queue's sender key if none is set; whether it is now locked to ``sender_key``.

        True if this call locked it or it was locked to ``sender_key`` already; False if
        it is locked to another key or there is no such queue. Atomic, and durable on return.
        """
        ...

    async def put_notice(self, recipient_id: bytes, message: StoredMessage, *, quota: int) -> PutResult:
        """Store ``message`` (a refused-sender notice) unless one waits or the queue is full.

        ``STORED`` or ``STORED_MARKED`` (it filled the queue: quota marker set), durably;
        ``DUPLICATE`` if a notice already waits on the queue, ``QUOTA`` if it is full,
        ``NO_QUEUE``. The stored message carries ``sender_refused=True`` whatever the
        caller passed, after every message stored before it.
        """
        ...

    async def delete_queue(self, recipient_id: bytes) -> bool:
        """Delete a queue and all its messages; False if no such queue."""
        ...

    async def put_message(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> PutResult:
        """Append a message, durably, unless the queue holds ``quota`` messages.

        When the queue is one short of ``quota``, the stored message gets
        ``quota_marker=True`` whatever the caller passed, so the recipient learns
        that senders were refused after it; the result is then ``STORED_MARKED``
        (also when the caller passed the marker), else ``STORED``.

        ``on_accepted``: called with that result, on the caller's event loop, before this
        returns; not called for any other result. A durable store calls it once the message
        is durable; write-behind as soon as it is decided (see the module docstring).
        """
        ...

    def put_message_now(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> asyncio.Future[PutResult] | None:
        """:meth:`put_message` decided here and now, if the store needs to wait for nothing to decide it.

        Returns a future of what ``put_message`` would return, resolved when it would
        return (the message safe, §14.8), with ``on_accepted`` called as it would be and
        puts started here kept in the order they were started; None if the store cannot
        start the put here: nothing was done, and the caller awaits ``put_message``. The
        relay puts SENDs to subscribed queues this way, without a task per SEND. Raises
        what ``put_message`` raises.
        """
        ...

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any."""
        ...

    async def head(self, recipient_id: bytes) -> StoredMessage | QueueMemory | None:
        """The oldest message on the queue; if it holds none, what it remembers; None if no such queue.

        :meth:`first_message` with what write-behind needs to take over an empty queue:
        its sender id and its window of retired send ids (:class:`QueueMemory`).
        """
        ...

    async def retire_send_ids(self, recipient_id: bytes, send_ids: list[bytes]) -> None:
        """Remember ``send_ids``, in order, as the queue's latest deletions (durably on return).

        What a delete leaves of a message's send id, for messages deleted elsewhere (held
        by write-behind and acknowledged there). Older ones fall out of the window of 256
        as usual. No such queue: nothing happens.
        """
        ...

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message; False if it is not on this queue."""
        ...

    def delete_message_now(self, recipient_id: bytes, msg_id: bytes) -> bool | asyncio.Future[bool] | None:
        """:meth:`delete_message` started here and now.

        Returns what ``delete_message`` would return if the store needs to wait for
        nothing, with every effect it has taken (a held put it answers is answered); a
        future of it if the store waits for something else than the caller (a commit);
        None if it cannot start the delete here: nothing was done, and the caller awaits
        ``delete_message``. The relay deletes acknowledged messages this way, without a
        task per ACK.
        """
        ...

    async def expire(self, older_than: int) -> int:
        """Delete messages with ``received_at < older_than``; return how many."""
        ...

    async def close(self) -> None:
        """Flush and release resources."""
        ...
