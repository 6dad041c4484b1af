"""The subscribed queues of one relay, and the I/O shell of their delivery machines.

docs/protocol.md §14.8 (Subscription) and §14.8a. At most one subscription per queue,
held by one connection. Each carries what its holder's commands need without a read of
the store (the queue as read at SUB, its ACK MAC key, its sealing key) and its
:class:`~.delivery.Subscription` machine, whose actions this module performs: seal and
send a MSG, read or delete through the store (a delete in a task only when the store gives
no future), answer
an ACK. The rules themselves are the machine's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Final, assert_never

from burnerkit.crypto.aead import AeadKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import StoreError
from burnerkit.relay.protocol import (
    AckMac,
    ClientTransmission,
    Delivery,
    End,
    Err,
    ErrorCode,
    Msg,
    Ok,
    ServerResponse,
    derive_ack_key,
    seal_delivery,
)

from . import delivery
from .connection import ZERO_CORR, Connection
from .logs import LOGGER_NAME, log_event
from .metrics import Metrics
from .store.base import MessageStore, QueueRecord, StoredMessage

__all__ = ["Held", "Subscriptions"]

_log = logging.getLogger(LOGGER_NAME)

_REPLIES: Final[dict[delivery.Reply, ServerResponse]] = {
    delivery.Reply.OK: Ok(),
    delivery.Reply.NO_MSG: Err(ErrorCode.NO_MSG),
    delivery.Reply.INTERNAL: Err(ErrorCode.INTERNAL),
}


class Held:
    """One subscribed queue: who holds it, what its commands need, and its delivery machine."""

    __slots__ = ("ack_mac", "conn", "machine", "queue", "recipient_id", "sealer")

    def __init__(self, conn: Connection, queue: QueueRecord, budget: delivery.InboxBudget) -> None:
        self.conn = conn
        self.recipient_id = queue.recipient_id
        #: the queue as read at SUB: its recipient key checks the holder's ACKs, its
        #: queue key seals deliveries (neither ever changes; DEL ends the subscription)
        self.queue = queue
        #: checks the MACs of the holder's ACKs (§14.4), keyed at the first (an idle one holds none)
        self.ack_mac: AckMac | None = None
        #: the queue key set up for sealing, at the first delivery (an idle one holds none);
        #: holds up relay_vs_ws_echo (setting up the cipher per delivery: 3% of the server's time)
        self.sealer: AeadKey | None = None
        self.machine = delivery.Subscription(budget)

    def verify_ack_mac(self, tx: ClientTransmission) -> bool:
        """Whether ``tx`` (an ACK of the holder) carries the MAC of this queue and session."""
        if self.ack_mac is None:
            # Holds up relay_vs_ws_echo: deriving the key at every ACK costs about 6% of a message.
            session_id = self.conn.session_id
            self.ack_mac = AckMac(derive_ack_key(self.queue.queue_key, session_id), session_id)
        return self.ack_mac.verify(tx)


class Subscriptions:
    """The relay's subscriptions by recipient id (and by sender id, for SENDs), and their I/O.

    Args:
        store: read and deleted from for the machines.
        metrics: delivered and acknowledged counts.
        rng: nonces of sealed deliveries.
        spawn: runs a coroutine as a task the relay's stop waits for.
    """

    def __init__(
        self,
        store: MessageStore,
        metrics: Metrics,
        rng: Random,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._rng = rng
        self._spawn = spawn
        self._by_recipient: dict[bytes, Held] = {}
        #: the same subscriptions by sender id: a SEND to a subscribed queue reads no store
        #: (holds up relay_vs_ws_echo: a read per SEND cost about a fifth of the throughput)
        self._by_sender: dict[bytes, Held] = {}
        self.budget = delivery.InboxBudget()

    def __len__(self) -> int:
        return len(self._by_recipient)

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self._by_recipient.values()))

    def get(self, recipient_id: bytes) -> Held | None:
        """The subscription of this queue, if any."""
        return self._by_recipient.get(recipient_id)

    def by_sender(self, sender_id: bytes) -> Held | None:
        """The subscription of the queue with this sender id, if any."""
        held = self._by_sender.get(sender_id)
        if held is not None and self._by_recipient.get(held.recipient_id) is held:
            return held
        return None

    def subscribe(self, conn: Connection, queue: QueueRecord) -> tuple[Held, Held | None]:
        """``conn`` subscribes to ``queue``: the new subscription, and the one it replaces."""
        held = Held(conn, queue, self.budget)
        old = self._by_recipient.get(queue.recipient_id)
        if old is not None:
            self.end(old)
        self._by_recipient[queue.recipient_id] = held
        self._by_sender[queue.sender_id] = held
        conn.hold(queue.recipient_id)
        if old is not None and old.conn is not conn:
            old.conn.release(queue.recipient_id)
        return held, old

    def end(self, held: Held) -> None:
        """``held`` is over (moved, deleted, or its connection gone)."""
        if self._by_recipient.get(held.recipient_id) is held:
            del self._by_recipient[held.recipient_id]
        if self._by_sender.get(held.queue.sender_id) is held:
            del self._by_sender[held.queue.sender_id]
        held.machine.ended()

    def push_end(self, held: Held) -> None:
        """Tell ``held``'s connection it lost the subscription (§14.8 Subscription)."""
        held.conn.push(held.recipient_id, End())

    def locked(self, recipient_id: bytes, sender_key: bytes) -> None:
        """The store locked the queue to ``sender_key``: so does the subscription's copy.

        SENDs to a subscribed queue check the key held here, not the store's. A copy
        read before the lock (a SUB racing it) may still say unlocked: a SEND then asks
        the store to lock, which answers for the key already set.
        """
        held = self._by_recipient.get(recipient_id)
        if held is not None and held.queue.sender_key is None:
            held.queue = dataclasses.replace(held.queue, sender_key=sender_key)

    # -- performing the machine's actions -------------------------------------------------

    def perform(self, held: Held, actions: delivery.Actions) -> None:
        """Do what ``held``'s machine asked, in order."""
        for action in actions:
            match action:
                case delivery.Deliver(message, corr_id):
                    self._deliver(held, message, corr_id)
                case delivery.Delete(msg_id, corr_id, answered):
                    self._delete(held, msg_id, corr_id, answered)
                case delivery.ReadStore():
                    self._spawn(self._read(held))
                case delivery.Answer(corr_id, reply):
                    held.conn.answer_quietly(corr_id, held.recipient_id, _REPLIES[reply])
                case _:  # pragma: no cover
                    assert_never(action)

    def _deliver(self, held: Held, message: StoredMessage, corr_id: bytes) -> None:
        if held.sealer is None:
            held.sealer = AeadKey(held.queue.queue_key)
        sealed = seal_delivery(
            held.sealer,
            message.msg_id,
            Delivery(message.received_at, message.quota_marker, message.body, message.sender_refused),
            self._rng,
        )
        self._metrics.messages_delivered_total += 1
        # A closed connection keeps the message outstanding (and stored); its end ends the machine.
        if corr_id == ZERO_CORR:
            held.conn.push(held.recipient_id, Msg(message.msg_id, sealed))
        else:
            held.conn.answer_quietly(corr_id, held.recipient_id, Msg(message.msg_id, sealed))

    async def _read(self, held: Held) -> None:
        try:
            message = await self._store.first_message(held.recipient_id)
        except Exception as exc:  # a store failure, or a bug of ours: the message stays stored
            _log_failure(exc)
            self.perform(held, held.machine.read_failed())
            return
        self.perform(held, held.machine.read_returned(message))

    def _delete(self, held: Held, msg_id: bytes, corr_id: bytes, answered: bool) -> None:
        # Here and now when the store needs no wait (a queue held in memory), from the store's
        # future when it waits for a commit, else in a task.
        try:
            deleted = self._store.delete_message_now(held.recipient_id, msg_id)
        except Exception as exc:
            self._delete_failed(held, exc, msg_id, corr_id, answered)
            return
        if deleted is None:
            self._spawn(self._delete_later(held, msg_id, corr_id, answered))
        elif isinstance(deleted, bool):
            self._deleted(held, deleted, corr_id, answered)
        else:
            deleted.add_done_callback(lambda done: self._delete_done(done, held, msg_id, corr_id, answered))

    def _delete_done(
        self, done: asyncio.Future[bool], held: Held, msg_id: bytes, corr_id: bytes, answered: bool
    ) -> None:
        if done.cancelled():
            self._delete_failed(held, asyncio.CancelledError(), msg_id, corr_id, answered)
        elif (exc := done.exception()) is not None:
            self._delete_failed(held, exc, msg_id, corr_id, answered)
        else:
            self._deleted(held, done.result(), corr_id, answered)

    async def _delete_later(self, held: Held, msg_id: bytes, corr_id: bytes, answered: bool) -> None:
        try:
            deleted = await self._store.delete_message(held.recipient_id, msg_id)
        except Exception as exc:
            self._delete_failed(held, exc, msg_id, corr_id, answered)
            return
        self._deleted(held, deleted, corr_id, answered)

    def _deleted(self, held: Held, deleted: bool, corr_id: bytes, answered: bool) -> None:
        # Not deleted: already gone (expired, or the queue deleted); the recipient has it either way.
        if deleted:
            self._metrics.messages_acked_total += 1
        self.perform(held, held.machine.deleted(corr_id, answered))

    def _delete_failed(
        self, held: Held, exc: BaseException, msg_id: bytes, corr_id: bytes, answered: bool
    ) -> None:
        _log_failure(exc)
        self.perform(held, held.machine.delete_failed(msg_id, corr_id, answered))


def _log_failure(exc: BaseException) -> None:
    """Logged by its kind, never by what it held."""
    event = "store_error" if isinstance(exc, StoreError) else "internal_error"
    log_event(_log, event, level=logging.ERROR, error=type(exc).__name__)
