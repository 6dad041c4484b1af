"""The relay's commands: NEW, SUB, KEY, SEND, ACK, DEL and the pairing mailboxes, over the store.

docs/protocol.md §14.4 (commands), §14.8 (server rules), §14.12 (mailboxes). The server
(``server.py``) hands each decoded, rate-checked command to :meth:`Commands.start`: what
needs no store (PING, the mailboxes, an ACK by the subscription's holder) runs there and
then, as does a SEND the store decides at once (``put_message_now``); the rest comes back
as a coroutine the server runs as a task. Delivery is the machine's (``delivery.py``,
performed by ``subscriptions.py``); nothing here can decrypt.

Authentication of recipient commands always costs one signature check: a missing queue
is checked against a fixed dummy key (``verify_signature``), so a missing queue and a
wrong key answer the same ``ERR AUTH`` after the same work. SEND to a queue that is
missing or locked to a sender key is checked the same way, and so is SEND to a
sender-secured queue not yet locked (against the key the SEND carries, or the dummy key):
the first that verifies locks the queue through the store's conditional
``lock_sender_key`` before its message is put. An ACK by the subscription's holder is
checked against the recipient key (or the ACK MAC key, §14.4) kept at SUB, which saves a
read of the store per delivered message; any other ACK derives its key from the stored
queue, or from a dummy one, at equal cost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable, Coroutine
from typing import Any, assert_never

from burnerkit.crypto.keys import VerifyKey, X25519PrivateKey
from burnerkit.crypto.rng import Random
from burnerkit.errors import InvalidKeyError, RemoteProtocolError, StoreError
from burnerkit.relay.protocol import (
    ACK_MAC_SIZE,
    MAX_BODY_SIZE,
    MSG_ID_SIZE,
    QUEUE_ID_SIZE,
    Ack,
    ClientTransmission,
    Del,
    End,
    Err,
    ErrorCode,
    Ids,
    Key,
    MbAlloc,
    MbDel,
    MbGet,
    MbJoin,
    MbPut,
    New,
    Ok,
    Ping,
    Pong,
    QueueIds,
    Send,
    ServerResponse,
    Sub,
    derive_queue_key,
    seal_ids,
    verify_ack_mac_of_queue,
    verify_signature,
)

from .config import RelayConfig
from .connection import Connection, Gate
from .link import LinkClosed
from .logs import LOGGER_NAME, log_event
from .mailbox import MailboxCommand, MailboxHub
from .metrics import Metrics
from .store.base import MessageStore, PutResult, QueueRecord, StoredMessage
from .subscriptions import Held, Subscriptions

__all__ = ["Commands"]

_log = logging.getLogger(LOGGER_NAME)


def _failed(conn: Connection, tx: ClientTransmission, exc: Exception) -> None:
    """``tx`` failed: answer INTERNAL.

    On a store failure, or on a bug of ours: logged by its kind, never by what it held.
    """
    event = "store_error" if isinstance(exc, StoreError) else "internal_error"
    log_event(_log, event, level=logging.ERROR, error=type(exc).__name__)
    conn.answer_quietly(tx.corr_id, tx.entity, Err(ErrorCode.INTERNAL))


class Commands:
    """The command handlers of one relay.

    Args:
        store: where queues and messages live.
        config: limits (quota).
        rng: ids, server keys, nonces.
        clock: seconds since the epoch, for ``received_at``.
        metrics: the relay's counters.
        mailboxes: the pairing mailboxes.
        subscriptions: the subscribed queues.
        spawn: runs a coroutine as a task the relay's stop waits for.
    """

    def __init__(
        self,
        *,
        store: MessageStore,
        config: RelayConfig,
        rng: Random,
        clock: Callable[[], float],
        metrics: Metrics,
        mailboxes: MailboxHub,
        subscriptions: Subscriptions,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
    ) -> None:
        self._store = store
        self._config = config
        self._rng = rng
        self._clock = clock
        self._metrics = metrics
        self._mailboxes = mailboxes
        self._subs = subscriptions
        self._spawn = spawn
        #: recipient ids whose refused-sender notice is being put (one at a time per queue)
        self._noticing: set[bytes] = set()

    def start(self, conn: Connection, tx: ClientTransmission) -> Coroutine[Any, Any, None] | None:
        """Run ``tx`` here if it needs no store; else the coroutine that runs it (as a task).

        Raises:
            LinkClosed: if the connection is gone (only from what runs here).
        """
        command = tx.command
        match command:
            case Ping():
                self._answer(conn, tx, Pong())
                return None
            case Ack():
                held = self._subs.get(tx.entity)
                if held is not None and held.conn is conn:
                    self._ack_held(conn, tx, command, held)
                    return None
                work = self._ack(conn, tx, command)
            case MbAlloc() | MbJoin() | MbPut() | MbGet() | MbDel():
                self._mailbox(conn, tx, command)
                return None
            case Send():
                if conn.gate is None and self._send_now(conn, tx, command):
                    return None
                # Taken here, in arrival order: each SEND waits for the one before to reach the store.
                prev, gate = conn.gate, Gate()
                conn.gate = gate
                return self._run(conn, tx, self._send(conn, tx, command, prev, gate), gate)
            case New():
                work = self._new(conn, tx, command)
            case Sub():
                work = self._sub(conn, tx)
            case Key():
                work = self._key(conn, tx, command)
            case Del():
                work = self._del(conn, tx)
            case _:  # pragma: no cover
                assert_never(command)
        return self._run(conn, tx, work)

    async def _run(
        self,
        conn: Connection,
        tx: ClientTransmission,
        work: Coroutine[Any, Any, None],
        gate: Gate | None = None,
    ) -> None:
        """Run ``work``; a failure answers INTERNAL, a closed connection ends it.

        ``gate``: a SEND's gate, opened whatever happens.
        """
        try:
            await work
        except LinkClosed:
            pass
        except Exception as exc:
            _failed(conn, tx, exc)
        finally:
            if gate is not None:
                gate.open()
                if conn.gate is gate:
                    conn.gate = None

    def _answer(self, conn: Connection, tx: ClientTransmission, response: ServerResponse) -> None:
        """Answer ``tx`` with its own corr_id and entity.

        Raises:
            LinkClosed: if the connection is gone.
        """
        conn.answer(tx.corr_id, tx.entity, response)

    # -- queues ---------------------------------------------------------------------------

    async def _new(self, conn: Connection, tx: ClientTransmission, command: New) -> None:
        # Proof of possession: NEW is signed by the key it registers.
        if not verify_signature(command.recipient_key, tx, conn.session_id):
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        server_key = X25519PrivateKey.generate(self._rng)
        try:
            queue_key = derive_queue_key(server_key, command.recipient_dh)
        except RemoteProtocolError:
            self._answer(conn, tx, Err(ErrorCode.CMD))
            return
        ids = QueueIds(self._rng.random_bytes(QUEUE_ID_SIZE), self._rng.random_bytes(QUEUE_ID_SIZE))
        await self._store.create_queue(
            QueueRecord(
                ids.recipient_id,
                ids.sender_id,
                command.recipient_key,
                queue_key,
                sender_secured=command.sender_secured,
            )
        )
        self._metrics.queues_created_total += 1
        self._answer(conn, tx, Ids(server_key.public_key.raw, seal_ids(queue_key, ids, self._rng)))

    async def _authorized(self, conn: Connection, tx: ClientTransmission) -> QueueRecord | None:
        """The queue named by a recipient command, if it exists and the signature is its key's.

        The signature is checked in every case (against a dummy key when the queue is
        missing), so that both failures cost the same.
        """
        queue = await self._store.queue_by_recipient(tx.entity)
        ok = verify_signature(None if queue is None else queue.recipient_key, tx, conn.session_id)
        return queue if ok else None

    async def _sub(self, conn: Connection, tx: ClientTransmission) -> None:
        queue = await self._authorized(conn, tx)
        if queue is None:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        # A new subscription even on a re-SUB of the same connection: the outstanding
        # message (whose ACK may have been lost) is delivered again.
        held, old = self._subs.subscribe(conn, queue)
        if old is not None and old.conn is not conn:
            self._subs.push_end(old)
        self._answer(conn, tx, Ok())
        self._subs.perform(held, held.machine.subscribed())

    async def _key(self, conn: Connection, tx: ClientTransmission, command: Key) -> None:
        queue = await self._authorized(conn, tx)
        if queue is None:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        try:
            # A small-order key would accept forged signatures; refuse it here.
            VerifyKey.from_bytes(command.sender_key)
        except (ValueError, InvalidKeyError):
            self._answer(conn, tx, Err(ErrorCode.CMD))
            return
        if queue.sender_key is not None and queue.sender_key != command.sender_key:
            # A queue is locked once (SimpleX's KEY); repeating the same key is a retry.
            self._answer(conn, tx, Err(ErrorCode.CMD))
            return
        # Conditional, like a sender-secured queue's first SEND: whichever of the two
        # the store runs first locks the queue, and the other is refused.
        if not await self._store.lock_sender_key(queue.recipient_id, command.sender_key):
            still = await self._store.queue_by_recipient(queue.recipient_id)
            self._answer(conn, tx, Err(ErrorCode.AUTH if still is None else ErrorCode.CMD))
            return
        self._subs.locked(queue.recipient_id, command.sender_key)
        self._answer(conn, tx, Ok())

    async def _del(self, conn: Connection, tx: ClientTransmission) -> None:
        queue = await self._authorized(conn, tx)
        if queue is None or not await self._store.delete_queue(queue.recipient_id):
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        held = self._subs.get(queue.recipient_id)
        if held is not None:
            self._subs.end(held)
            held.conn.release(queue.recipient_id)
            if held.conn is not conn:
                held.conn.push(queue.recipient_id, End())
        self._answer(conn, tx, Ok())

    # -- ACK ------------------------------------------------------------------------------

    def _ack_held(self, conn: Connection, tx: ClientTransmission, command: Ack, held: Held) -> None:
        """An ACK by the holder of the queue's subscription, checked with the keys kept at SUB.

        The queue is the one read at SUB (a DEL would have ended the subscription), so
        the check needs no read of the store, and costs what it costs on the other path.
        """
        if len(tx.signature) == ACK_MAC_SIZE:
            verified = held.verify_ack_mac(tx)
        else:
            verified = verify_signature(held.queue.recipient_key, tx, conn.session_id)
        if not verified:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        self._subs.perform(held, held.machine.acked(command.msg_id, tx.corr_id))

    async def _ack(self, conn: Connection, tx: ClientTransmission, command: Ack) -> None:
        """An ACK on a connection that did not hold the subscription when it arrived."""
        if len(tx.signature) == ACK_MAC_SIZE:
            # No key kept for this connection: derive it (from a dummy if the queue is missing).
            queue = await self._store.queue_by_recipient(tx.entity)
            ok = verify_ack_mac_of_queue(None if queue is None else queue.queue_key, tx, conn.session_id)
            queue = queue if ok else None
        else:
            queue = await self._authorized(conn, tx)
        if queue is None:
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            return
        held = self._subs.get(queue.recipient_id)
        if held is None or held.conn is not conn:
            self._answer(conn, tx, Err(ErrorCode.NO_MSG))
            return
        self._subs.perform(held, held.machine.acked(command.msg_id, tx.corr_id))

    # -- SEND -----------------------------------------------------------------------------

    async def _send(
        self,
        conn: Connection,
        tx: ClientTransmission,
        command: Send,
        prev: Gate | None,
        gate: Gate,
    ) -> None:
        if len(command.body) > MAX_BODY_SIZE:
            self._answer(conn, tx, Err(ErrorCode.LARGE))
            return
        held = self._subs.by_sender(tx.entity)
        queue = held.queue if held is not None else await self._store.queue_by_sender(tx.entity)
        if queue is None or queue.sender_key is not None:
            key = None if queue is None else queue.sender_key
        elif queue.sender_secured:
            # Not locked yet: the first SEND signed by the key it carries locks it (§14.8).
            # Unsigned, or carrying no key: checked against the dummy key, as a missing queue.
            key = command.sender_key
        else:
            key = None  # an open queue: anyone who knows the sender id may send
        if (queue is None or key is not None or queue.sender_secured) and not verify_signature(
            key, tx, conn.session_id
        ):
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            if queue is not None and queue.sender_secured:
                self._sender_refused(queue.recipient_id)
            return
        assert queue is not None  # verify_signature(None, ...) is always False
        if queue.sender_key is None and key is not None:
            # Locked before the message is stored, so the lock is durable no later than the
            # message: a crash between the two leaves the queue locked to this key, and
            # the sender's retry (same key, same send id) is stored then.
            if not await self._store.lock_sender_key(queue.recipient_id, key):
                self._answer(conn, tx, Err(ErrorCode.AUTH))  # another key locked it first
                self._sender_refused(queue.recipient_id)
                return
            self._subs.locked(queue.recipient_id, key)
        if prev is not None and not prev.is_open:
            await prev.opened()
        # The put's first step runs before any later SEND of this connection wakes up,
        # so the store sees this connection's SENDs in the order they arrived.
        gate.open()
        put = _Put(self, conn, tx, queue.recipient_id, self._message(command))
        put.answer(
            await self._store.put_message(
                tx.entity, command.send_id, put.message, quota=self._config.quota, on_accepted=put.early()
            )
        )

    def _send_now(self, conn: Connection, tx: ClientTransmission, command: Send) -> bool:
        """A SEND the store decides here and now, with no task; False: nothing done, run ``_send``.

        For a subscribed queue the store holds (write-behind) or keeps in memory: the SEND
        is answered when its put's future is done.

        Raises:
            LinkClosed: if the connection is gone (only from a refusal answered here).
        """
        held = self._subs.by_sender(tx.entity)
        if held is None or len(command.body) > MAX_BODY_SIZE:
            return False
        queue = held.queue
        if queue.sender_key is None:
            if queue.sender_secured:
                return False  # its first SEND locks it, in the store
        elif not verify_signature(queue.sender_key, tx, conn.session_id):
            self._answer(conn, tx, Err(ErrorCode.AUTH))
            if queue.sender_secured:
                self._sender_refused(queue.recipient_id)
            return True
        if not held.machine.known:
            return False  # delivery would wait for the store's order: no early accept
        put = _Put(self, conn, tx, queue.recipient_id, self._message(command))
        future = self._store.put_message_now(
            tx.entity, command.send_id, put.message, quota=self._config.quota, on_accepted=put.accepted
        )
        if future is None:
            return False
        if future.done():
            # Answered now: a done future's callback would cost a turn of the loop per
            # SEND (memory store, held queues): relay_memory_store_vs_ws_echo -8%.
            put.future_done(future)
        else:
            future.add_done_callback(put.future_done)
        return True

    def _message(self, command: Send) -> StoredMessage:
        return StoredMessage(self._rng.random_bytes(MSG_ID_SIZE), int(self._clock()), False, command.body)

    def _sender_refused(self, recipient_id: bytes) -> None:
        """A SEND to this sender-secured queue was refused: leave its recipient a notice.

        After the refusal is answered (the refused sender's answer is AUTH, when and as a
        missing queue's), in a task of its own; the store keeps at most one waiting per
        queue, and none if the queue is full. Nothing is logged: it would be per queue.
        """
        if recipient_id in self._noticing:
            return  # one is on its way to the store already
        self._noticing.add(recipient_id)
        self._spawn(self._put_notice(recipient_id))

    async def _put_notice(self, recipient_id: bytes) -> None:
        notice = StoredMessage(self._rng.random_bytes(MSG_ID_SIZE), int(self._clock()), False, b"", True)
        try:
            result = await self._store.put_notice(recipient_id, notice, quota=self._config.quota)
        except StoreError as exc:
            log_event(_log, "store_error", level=logging.ERROR, error=type(exc).__name__)
            return
        finally:
            self._noticing.discard(recipient_id)
        if result is PutResult.STORED or result is PutResult.STORED_MARKED:
            self._metrics.messages_stored_total += 1
            held = self._subs.get(recipient_id)
            if held is not None:
                self._subs.perform(held, held.machine.notice_stored())

    # -- pairing mailboxes ----------------------------------------------------------------

    def _mailbox(self, conn: Connection, tx: ClientTransmission, command: MailboxCommand) -> None:
        """A pairing mailbox command (§14.12): the hub decides, we send.

        Frames for other connections go out before the answer, so that what the asker
        does next (it waits for the answer) reaches them after; frames for the asker's
        own side (its backlog on JOIN and GET) go after the answer that names its token.
        """
        response, pushes = self._mailboxes.handle(conn, tx.entity, command, self._clock())
        for push in pushes:
            if not push.after_answer and isinstance(push.conn, Connection):
                push.conn.push(push.token, push.response)
        self._answer(conn, tx, response)
        for push in pushes:
            if push.after_answer and isinstance(push.conn, Connection):
                push.conn.push(push.token, push.response)


class _Put:
    """One SEND's message on its way into the store: delivered once accepted, answered once safe."""

    __slots__ = ("_accepted", "_commands", "_conn", "_recipient_id", "_tx", "message")

    def __init__(
        self,
        commands: Commands,
        conn: Connection,
        tx: ClientTransmission,
        recipient_id: bytes,
        message: StoredMessage,
    ) -> None:
        self._commands = commands
        self._conn = conn
        self._tx = tx
        self._recipient_id = recipient_id
        self.message = message
        self._accepted = False

    def early(self) -> Callable[[PutResult], None] | None:
        """``on_accepted`` for the store, when the recipient is online and its queue known.

        The store may then hold the body back and deliver before the commit; a message
        acknowledged before its write is never written (§14.8 Write-behind). The answer
        still waits until the message is safe.
        """
        held = self._commands._subs.get(self._recipient_id)
        return self.accepted if held is not None and held.machine.known else None

    def accepted(self, result: PutResult) -> None:
        """The message is on the queue (stored, or held by the store): hand it to delivery."""
        self._accepted = True
        subs = self._commands._subs
        held = subs.get(self._recipient_id)
        if held is not None:
            if result is PutResult.STORED_MARKED:
                self.message = dataclasses.replace(self.message, quota_marker=True)
            subs.perform(held, held.machine.stored(self.message))

    def answer(self, result: PutResult) -> None:
        """The put returned ``result``: deliver if not yet, and answer the SEND.

        Raises:
            LinkClosed: if the connection is gone.
        """
        conn, tx = self._conn, self._tx
        match result:
            case PutResult.STORED | PutResult.STORED_MARKED:
                self._commands._metrics.messages_stored_total += 1
                if not self._accepted:
                    self.accepted(result)
                conn.answer(tx.corr_id, tx.entity, Ok())
            case PutResult.DUPLICATE:
                conn.answer(tx.corr_id, tx.entity, Ok())
            case PutResult.QUOTA:
                conn.answer(tx.corr_id, tx.entity, Err(ErrorCode.QUOTA))
            case PutResult.NO_QUEUE:
                conn.answer(tx.corr_id, tx.entity, Err(ErrorCode.AUTH))
            case _:  # pragma: no cover
                assert_never(result)

    def future_done(self, future: asyncio.Future[PutResult]) -> None:
        """The put decided without a task (``put_message_now``) is done: answer, as ``_run`` would."""
        try:
            self.answer(future.result())
        except LinkClosed:
            pass
        except Exception as exc:
            _failed(self._conn, self._tx, exc)
