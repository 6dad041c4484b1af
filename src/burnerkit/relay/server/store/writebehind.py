"""``WriteBehind``: hold a message back from the store while its recipient is online.

A decorator over any :class:`~.base.MessageStore` (memory, SQLite, Redis to come), itself
one, all on the event loop. It *holds* the queues it knows fully, and decides their puts
itself, by the reference rules of :mod:`.memory`, without the inner store:

- A queue becomes held when a ``head`` read finds it empty in the inner store and no
  operation that may touch the queue (naming its recipient or sender id, or every queue)
  went to the inner store since that read was called: the inner store then holds nothing
  of it but its sender id and window of retired send ids, which the read brought back.
- A put to a held queue that comes with ``on_accepted`` is decided here (dedupe, quota,
  marker), kept in memory, and ``on_accepted`` is called at once: the server delivers it.
  Its put is answered by the first of: its recipient's delete (the ACK: the send id joins
  the queue's retired window, here), or the queue's release, ``defer_seconds`` after the
  queue's oldest held message came, when the message was written to the inner store.
- A queue is *released*, and no longer held, by its timer, by a put without
  ``on_accepted`` or beyond ``max_held`` held messages, ``put_notice``,
  ``retire_send_ids``, ``expire`` (if it holds a message it deletes) and ``close``. Its
  messages are put into the inner store in order, then the send ids retired here are
  handed to it, then the held puts are answered. Operations on a queue being released
  wait for the release. ``delete_queue`` drops the held messages unwritten and answers
  their puts once the queue's deletion is durable.
- A retry (same send id) of a held message is answered with it: ``DUPLICATE`` once it is
  safe, or its write's failure.
- A queue it released is counted (messages written, plus puts passed on, minus deletes passed
  on) until something it cannot count touches it (``put_notice``, ``retire_send_ids``,
  ``expire``, ``delete_queue``); when the count comes back to zero, a ``head`` read is made,
  which holds the queue again by the rule above. Without it, a burst that held messages past
  ``defer_seconds`` would leave its queues written to disk, message by message, until their
  recipients subscribed again.

Everything else passes straight to the inner store. What the relay gains: an
acknowledged message never reaches the disk, and costs no write and no fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from burnerkit.errors import StoreError
from burnerkit.relay.server.store.base import (
    MessageStore,
    PutResult,
    QueueMemory,
    QueueRecord,
    StoredMessage,
    notify_accepted,
)
from burnerkit.relay.server.store.memory import RETIRED_SEND_IDS, as_stored, decide_put, retire_send_id

__all__ = ["MAX_HELD", "WriteBehind"]

#: Held messages (accepted, not yet written) at most, over all queues; a put beyond that
#: releases its queue and goes to the inner store.
MAX_HELD: Final = 1024

_T = TypeVar("_T")
_log = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class _Entry:
    """A held message: accepted and delivered, in no store."""

    send_id: bytes
    message: StoredMessage  #: as stored: with the quota marker it got
    result: PutResult  #: what its put answers
    due: float  #: loop time by which it is released unless acknowledged
    future: asyncio.Future[PutResult]  #: its put waits on it
    #: one future per retry of this put (same send id) that came while it is held:
    #: cancelling one SEND's wait must not cancel another's
    retries: list[asyncio.Future[PutResult]] = field(default_factory=list)

    def answer(self, exc: BaseException | None = None) -> None:
        """Its put gets its result and every retry DUPLICATE, or all of them ``exc``."""
        _settle(self.future, self.result, exc)
        for retry in self.retries:
            _settle(retry, PutResult.DUPLICATE, exc)


def _settle(future: asyncio.Future[PutResult], result: PutResult, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(result)
    else:
        future.set_exception(exc)


class _Held:
    """One held queue: its messages in order, its live and retired send ids."""

    __slots__ = ("entries", "fresh", "recipient_id", "retired", "send_ids", "sender_id", "timer")

    def __init__(self, recipient_id: bytes, memory: QueueMemory) -> None:
        self.recipient_id = recipient_id
        self.sender_id = memory.sender_id
        self.entries: dict[bytes, _Entry] = {}  #: msg id -> entry, oldest first
        self.send_ids: dict[bytes, _Entry] = {}  #: send id -> entry
        #: the retired window, oldest retirement first (the inner store's, then ours)
        self.retired: OrderedDict[bytes, None] = OrderedDict.fromkeys(memory.retired[-RETIRED_SEND_IDS:])
        self.fresh = 0  #: how many of the newest ``retired`` the inner store does not know yet
        self.timer: asyncio.TimerHandle | None = None

    def take(self, msg_id: bytes) -> _Entry | None:
        """Delete the message ``msg_id``: its send id becomes the latest retired one."""
        entry = self.entries.pop(msg_id, None)
        if entry is not None:
            del self.send_ids[entry.send_id]
            retire_send_id(self.retired, entry.send_id)
            self.fresh = min(self.fresh + 1, len(self.retired))
        return entry


class WriteBehind:
    """A :class:`~.base.MessageStore` that holds messages of online recipients back from ``inner``."""

    def __init__(self, inner: MessageStore, *, defer_seconds: float, max_held: int = MAX_HELD) -> None:
        """Wrap ``inner``; a held message waits at most ``defer_seconds`` for its ACK."""
        if not defer_seconds > 0:  # also refuses NaN
            raise ValueError("defer_seconds must be positive")
        self.inner = inner
        self._defer = defer_seconds
        self._max_held = max_held
        self._held: dict[bytes, _Held] = {}  # by recipient id
        self._by_sender: dict[bytes, _Held] = {}
        self._msgs: dict[bytes, _Held] = {}  # held msg id -> its queue
        #: queue ids (recipient and sender) being released -> done when the release is
        self._releasing: dict[bytes, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()  # releases the timers started
        #: operations handed to the inner store, and while a head read is out, the number
        #: of the latest one naming each queue id (or every queue)
        self._handed = 0
        self._reads = 0
        self._named: dict[bytes, int] = {}
        self._named_all = -1
        #: queues released here, by recipient id: [messages the inner store holds, sender id]
        self._written: dict[bytes, list[Any]] = {}
        self._written_by_sender: dict[bytes, bytes] = {}  # sender id -> recipient id
        self._closed = False

    # -- the rule ---------------------------------------------------------------------------

    async def put_message(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> PutResult:
        """Decide a put to a held queue here, else pass it to the inner store (see the module docstring).

        Raises:
            ValueError: ``quota`` is less than 1.
            StoreError: the message id is taken (by a held message at once; in the inner
                store when it is written), or the store failed or is closed.
        """
        future = self.put_message_now(sender_id, send_id, message, quota=quota, on_accepted=on_accepted)
        if future is not None:
            return await future
        if (held := self._by_sender.get(sender_id)) is not None:
            self._release(held)  # a put it cannot hold: the inner store gets the queue first
        if message.msg_id in self._msgs:
            raise StoreError("message id already in use")
        result = await self._pass(
            sender_id,
            lambda: self.inner.put_message(sender_id, send_id, message, quota=quota, on_accepted=on_accepted),
        )
        if result is PutResult.STORED or result is PutResult.STORED_MARKED:
            recipient_id = self._written_by_sender.get(sender_id)
            if recipient_id is not None:
                self._written[recipient_id][0] += 1
        return result

    def put_message_now(
        self,
        sender_id: bytes,
        send_id: bytes,
        message: StoredMessage,
        *,
        quota: int,
        on_accepted: Callable[[PutResult], None] | None = None,
    ) -> asyncio.Future[PutResult] | None:
        """A held queue's put, decided here and now; None for any other (await ``put_message``).

        Raises:
            ValueError: ``quota`` is less than 1.
            StoreError: the message id is held already, or the store is closed.
        """
        if quota < 1:
            raise ValueError("quota must be at least 1")
        self._check_open()
        held = self._by_sender.get(sender_id)
        if held is None or on_accepted is None or len(self._msgs) >= self._max_held:
            return None
        loop = asyncio.get_running_loop()
        count = len(held.entries)
        refused = decide_put(held.send_ids, held.retired, count, send_id, quota)
        if refused is PutResult.DUPLICATE and (original := held.send_ids.get(send_id)) is not None:
            retry: asyncio.Future[PutResult] = loop.create_future()
            original.retries.append(retry)
            return retry
        if refused is not None:
            done: asyncio.Future[PutResult] = loop.create_future()
            done.set_result(refused)  # QUOTA, or DUPLICATE of a retired send id: its message was safe
            return done
        if message.msg_id in self._msgs:
            raise StoreError("message id already in use")
        result, message = as_stored(message, count, quota)
        entry = _Entry(send_id, message, result, loop.time() + self._defer, loop.create_future())
        held.entries[message.msg_id] = entry
        held.send_ids[send_id] = entry
        self._msgs[message.msg_id] = held
        if held.timer is None:
            held.timer = loop.call_at(entry.due, self._due, held)
        notify_accepted(on_accepted, result)
        # docs/protocol.md §14.8 Durability: the put's answer waits until the message is safe,
        # that is acknowledged (delete_message_now) or durable in the inner store (_release).
        return entry.future

    def delete_message_now(self, recipient_id: bytes, msg_id: bytes) -> bool | asyncio.Future[bool] | None:
        """A held queue's delete, here and now; else the inner store's ``delete_message_now``.

        Raises:
            StoreError: the inner store's.
        """
        held = self._held.get(recipient_id)
        if held is None:
            if recipient_id in self._releasing:
                return None
            done = self.inner.delete_message_now(recipient_id, msg_id)
            if done is not None:
                self._name(recipient_id)
                if recipient_id in self._written:
                    if isinstance(done, asyncio.Future):
                        done.add_done_callback(lambda deleted: self._deleted(recipient_id, deleted))
                    elif done:
                        self._uncount(recipient_id)
            return done
        entry = held.take(msg_id)
        if entry is None:
            return False  # the inner store holds nothing of a held queue
        del self._msgs[msg_id]
        entry.answer()  # the recipient has it: safe
        return True

    async def delete_message(self, recipient_id: bytes, msg_id: bytes) -> bool:
        """Delete exactly this message; a held one here, at once."""
        done = self.delete_message_now(recipient_id, msg_id)
        if isinstance(done, asyncio.Future):
            return await done
        if done is not None:
            return done
        deleted = await self._pass(recipient_id, lambda: self.inner.delete_message(recipient_id, msg_id))
        if deleted and recipient_id in self._written:
            self._uncount(recipient_id)
        return deleted

    async def head(self, recipient_id: bytes) -> StoredMessage | QueueMemory | None:
        """The oldest message or what the queue remembers; the read that makes a queue held."""
        self._check_open()
        held = self._held.get(recipient_id)
        if held is not None:
            return _head(held)
        await self._wait_release(recipient_id)
        self._reads += 1
        since = self._handed
        try:
            got = await self.inner.head(recipient_id)
            ids = (recipient_id, got.sender_id) if isinstance(got, QueueMemory) else (recipient_id,)
            touched = max(self._named_all, *(self._named.get(key, -1) for key in ids)) > since
        finally:
            self._reads -= 1
            if not self._reads:
                self._named.clear()
                self._named_all = -1
        if not isinstance(got, QueueMemory) or self._closed:
            return got
        held = self._held.get(recipient_id)
        if held is not None:  # another read took it meanwhile
            return _head(held)
        if not touched and not any(key in self._releasing for key in ids):
            held = _Held(recipient_id, got)
            self._held[recipient_id] = self._by_sender[got.sender_id] = held
            self._forget(recipient_id)
        return got

    async def first_message(self, recipient_id: bytes) -> StoredMessage | None:
        """The oldest message on the queue, if any (a held queue's from memory)."""
        first = await self.head(recipient_id)
        return first if isinstance(first, StoredMessage) else None

    # -- releases ---------------------------------------------------------------------------

    def _due(self, held: _Held) -> None:
        """The oldest held message's time may be up: release the queue, or wait for the next one."""
        held.timer = None
        oldest = next(iter(held.entries.values()), None)
        if oldest is None or self._held.get(held.recipient_id) is not held:
            return
        loop = asyncio.get_running_loop()
        if oldest.due <= loop.time():
            self._release(held)
        else:
            held.timer = loop.call_at(oldest.due, self._due, held)

    def _release(self, held: _Held) -> asyncio.Future[None]:
        """Stop holding ``held``: write its messages and retired send ids, then answer its puts."""
        del self._held[held.recipient_id], self._by_sender[held.sender_id]
        if held.timer is not None:
            held.timer.cancel()
        for msg_id in held.entries:
            del self._msgs[msg_id]
        done = asyncio.get_running_loop().create_future()
        self._releasing[held.recipient_id] = self._releasing[held.sender_id] = done
        task = asyncio.ensure_future(self._write(held, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return done

    async def _write(self, held: _Held, done: asyncio.Future[None]) -> None:
        entries = list(held.entries.values())
        try:
            # Called together, so the inner store gets them in order (one group commit for
            # SQLite). The decision was made here: the inner store only stores them, in a
            # queue that held nothing else, so no quota applies.
            self._name(held.sender_id)
            results = await asyncio.gather(
                *(
                    self.inner.put_message(held.sender_id, entry.send_id, entry.message, quota=sys.maxsize)
                    for entry in entries
                ),
                return_exceptions=True,
            )
            if held.fresh:
                self._name(held.recipient_id)
                try:
                    await self.inner.retire_send_ids(held.recipient_id, list(held.retired)[-held.fresh :])
                except StoreError as exc:
                    # Their messages were acknowledged (safe, answered); a resend of one may
                    # now be stored again: a second copy, never a loss (§14.8 Durability).
                    _log.warning("retired send ids of a released queue were not recorded: %s", exc)
            stored = sum(
                1 for result in results if result is PutResult.STORED or result is PutResult.STORED_MARKED
            )
            if not self._closed and held.recipient_id not in self._held:
                self._count(held.recipient_id, held.sender_id, stored)
            for entry, result in zip(entries, results, strict=True):
                if isinstance(result, BaseException):
                    entry.answer(result if isinstance(result, StoreError) else StoreError("write failed"))
                elif result is entry.result:
                    entry.answer()
                else:
                    entry.answer(StoreError("a held message was not stored"))
        finally:
            for key in (held.recipient_id, held.sender_id):
                if self._releasing.get(key) is done:
                    del self._releasing[key]
            done.set_result(None)

    async def _wait_release(self, key: bytes) -> None:
        while (release := self._releasing.get(key)) is not None:
            await asyncio.shield(release)

    async def _release_all(self) -> None:
        releases = [self._release(held) for held in list(self._held.values())]
        releases.extend(self._releasing.values())
        if releases:
            await asyncio.gather(*(asyncio.shield(r) for r in releases))

    # -- pass-through ----------------------------------------------------------------------

    def _name(self, key: bytes | None) -> None:
        """An operation naming ``key`` (None: every queue) goes to the inner store now."""
        self._handed += 1
        if self._reads:
            if key is None:
                self._named_all = self._handed
            else:
                self._named[key] = self._handed

    async def _pass(self, key: bytes | None, call: Callable[[], Awaitable[_T]]) -> _T:
        """Call the inner store, after any release of ``key``'s queue, naming it."""
        if key is not None and key in self._releasing:
            await self._wait_release(key)
            self._check_open()
        self._name(key)
        return await call()

    # -- holding a released queue again ------------------------------------------------------

    def _count(self, recipient_id: bytes, sender_id: bytes, stored: int) -> None:
        """``recipient_id``'s queue was released, and the inner store holds ``stored`` of its messages."""
        self._forget(recipient_id)
        self._written[recipient_id] = [stored, sender_id]
        self._written_by_sender[sender_id] = recipient_id
        if not stored:
            self._hold_again(recipient_id)

    def _deleted(self, recipient_id: bytes, done: asyncio.Future[bool]) -> None:
        if (
            not done.cancelled()
            and done.exception() is None
            and done.result()
            and recipient_id in self._written
        ):
            self._uncount(recipient_id)

    def _uncount(self, recipient_id: bytes) -> None:
        count = self._written[recipient_id]
        count[0] -= 1
        if count[0] <= 0:
            self._hold_again(recipient_id)

    def _hold_again(self, recipient_id: bytes) -> None:
        """Read the drained queue's head: it is held again if nothing touched it meanwhile."""
        if self._closed or recipient_id in self._held or recipient_id in self._releasing:
            return
        task = asyncio.ensure_future(self._read_head(recipient_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_head(self, recipient_id: bytes) -> None:
        with contextlib.suppress(StoreError):  # a failed read holds nothing: the queue stays written
            await self.head(recipient_id)

    def _forget(self, recipient_id: bytes) -> None:
        """Stop counting the queue: something the count cannot follow touched it."""
        count = self._written.pop(recipient_id, None)
        if count is not None:
            del self._written_by_sender[count[1]]

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError("store is closed")

    async def create_queue(self, queue: QueueRecord) -> None:
        """Store a new queue (in the inner store)."""
        self._check_open()
        await self.inner.create_queue(queue)

    async def queue_by_recipient(self, recipient_id: bytes) -> QueueRecord | None:
        """The queue with this recipient id, if any."""
        self._check_open()
        return await self.inner.queue_by_recipient(recipient_id)

    async def queue_by_sender(self, sender_id: bytes) -> QueueRecord | None:
        """The queue with this sender id, if any."""
        self._check_open()
        return await self.inner.queue_by_sender(sender_id)

    async def lock_sender_key(self, recipient_id: bytes, sender_key: bytes) -> bool:
        """Set the queue's sender key if none is set (in the inner store)."""
        self._check_open()
        return await self.inner.lock_sender_key(recipient_id, sender_key)

    async def put_notice(self, recipient_id: bytes, message: StoredMessage, *, quota: int) -> PutResult:
        """A refused-sender notice, after the queue's held messages (it is released first)."""
        self._check_open()
        if (held := self._held.get(recipient_id)) is not None:
            self._release(held)
        self._forget(recipient_id)
        return await self._pass(
            recipient_id, lambda: self.inner.put_notice(recipient_id, message, quota=quota)
        )

    async def retire_send_ids(self, recipient_id: bytes, send_ids: list[bytes]) -> None:
        """Remember ``send_ids`` as the queue's latest deletions (it is released first)."""
        self._check_open()
        if (held := self._held.get(recipient_id)) is not None:
            self._release(held)
        self._forget(recipient_id)
        await self._pass(recipient_id, lambda: self.inner.retire_send_ids(recipient_id, send_ids))

    async def delete_queue(self, recipient_id: bytes) -> bool:
        """Delete a queue; its held messages are dropped unwritten, their puts answered."""
        self._check_open()
        self._forget(recipient_id)
        held = self._held.pop(recipient_id, None)
        if held is not None:
            del self._by_sender[held.sender_id]
            if held.timer is not None:
                held.timer.cancel()
            for msg_id in held.entries:
                del self._msgs[msg_id]
        try:
            deleted = await self._pass(recipient_id, lambda: self.inner.delete_queue(recipient_id))
        except BaseException as exc:
            if held is not None:  # unwritten and the queue stands: not safe, the senders resend
                for entry in held.entries.values():
                    entry.answer(exc if isinstance(exc, StoreError) else StoreError("delete failed"))
            raise
        if held is not None:
            for entry in held.entries.values():
                entry.answer()  # as if deleted: never delivered again, never to be resent
        return deleted

    async def expire(self, older_than: int) -> int:
        """Delete old messages, held ones too: their queues are released first."""
        self._check_open()
        old = [
            held
            for held in self._held.values()
            if any(entry.message.received_at < older_than for entry in held.entries.values())
        ]
        releases = [self._release(held) for held in old]
        releases.extend(self._releasing.values())
        if releases:
            await asyncio.gather(*(asyncio.shield(r) for r in releases))
        self._written.clear()
        self._written_by_sender.clear()
        return await self._pass(None, lambda: self.inner.expire(older_than))

    async def close(self) -> None:
        """Write every held message, then close the inner store. Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(StoreError):
                await self._release_all()
        await self.inner.close()


def _head(held: _Held) -> StoredMessage | QueueMemory:
    for entry in held.entries.values():
        return entry.message
    return QueueMemory(held.sender_id, list(held.retired))
