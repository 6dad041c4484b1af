"""The relay client: queues, sends that survive reconnects, subscriptions and deliveries.

docs/protocol.md §14. :class:`RelayClient` is the public face; the loop it runs on (the
connection, retries, reconnects, resubscription) is :class:`~burnerkit.relay.client_loop.ClientLoop`,
whose module says how commands survive a lost connection and when they are retried.
What the calls hand back (credentials, delivery events, mailboxes) is :mod:`.events`.
"""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Self

from burnerkit.crypto.keys import SigningKey, X25519PrivateKey
from burnerkit.errors import (
    DecryptionError,
    RelayRejectedError,
    RelayUnavailableError,
    RemoteProtocolError,
)

from .client_loop import ClientLoop, MacKey, TransportFactory
from .events import (
    KEY_SIZE,
    Mailbox,
    MailboxEnded,
    QueueCredentials,
    ReceivedMessage,
    RelayEvent,
    SubscriptionEnded,
    UnreadableMessage,
    check_size,
)
from .protocol import (
    MAILBOX_BODY_SIZE,
    MAX_BODY_SIZE,
    MSG_ID_SIZE,
    QUEUE_ID_SIZE,
    SEND_ID_SIZE,
    Ack,
    Del,
    Err,
    ErrorCode,
    Ids,
    Key,
    MbAlloc,
    MbDel,
    MbJoin,
    MbOpen,
    MbPut,
    Msg,
    New,
    Ping,
    Pong,
    Send,
    Sub,
    derive_queue_key,
    open_ids,
)
from .transport import CONNECT_TIMEOUT

__all__ = [
    "Mailbox",
    "MailboxEnded",
    "QueueCredentials",
    "ReceivedMessage",
    "RelayClient",
    "RelayEvent",
    "SubscriptionEnded",
    "TransportFactory",
    "UnreadableMessage",
    "check_relay",
]


class RelayClient(ClientLoop):
    """An async client for one relay.

    Use it as an async context manager (or call :meth:`aclose`)::

        async with RelayClient("wss://relay.example") as client:
            creds = await client.create_queue()
            await client.subscribe(creds)
            async for event in client.deliveries():
                ...

    Every failure it raises is a :class:`~burnerkit.errors.RelayError`; wrong
    arguments raise ``ValueError``. The constructor is :class:`ClientLoop`'s.
    """

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    @property
    def connected(self) -> bool:
        """Whether a connection to the relay is up right now."""
        return self._conn is not None

    async def aclose(self) -> None:
        """Close the connection and end the deliveries stream; closing twice is harmless.

        Calls still waiting raise :class:`~burnerkit.errors.RelayUnavailableError`.
        """
        if self._closed:
            return
        self._closed = True
        tasks = [task for task in (self._supervisor, *self._tasks) if task is not None]
        for task in tasks:
            task.cancel()
        # The supervisor closes its connection on the way out.
        await asyncio.gather(*tasks, return_exceptions=True)
        self._fail_pending(lambda: RelayUnavailableError("relay client closed"))
        self._subs.clear()
        self._events.put_nowait(None)
        self._wake_mailboxes()

    # -- queues ----------------------------------------------------------------------------

    async def create_queue(
        self, *, sender_secured: bool = False, timeout: float | None = None
    ) -> QueueCredentials:
        """Create a queue owned by a fresh Ed25519 key (``NEW``).

        The relay's answer is sealed to a fresh X25519 key of ours; the same exchange
        keys the queue layer of every later delivery.

        Args:
            sender_secured: the first ``send`` signed with a ``sender_key`` locks the queue
                to that key; unsigned sends, and sends signed by any other key, are refused
                (``AUTH``) and leave a delivery with ``sender_refused`` (docs/protocol.md §14.8).
            timeout: overall time limit, the client's default when None.

        Returns:
            The new queue's credentials; store them before handing out the sender id.

        Raises:
            RelayRejectedError: the relay refused (for example ``AUTH``).
            RelayUnavailableError: the relay is unreachable, the connection broke after
                the command went out (the queue may exist; it is lost either way), or
                the answer did not authenticate.
            RelayTimeoutError: no answer within ``timeout``.
        """
        signing_key = SigningKey.generate(self._rng)
        dh_key = X25519PrivateKey.generate(self._rng)
        creds, _ = await self.create_queue_with_keys(
            signing_key, dh_key, sender_secured=sender_secured, timeout=timeout
        )
        return creds

    async def create_queue_with_keys(
        self,
        signing_key: SigningKey,
        dh_key: X25519PrivateKey,
        *,
        sender_secured: bool = False,
        timeout: float | None = None,
    ) -> tuple[QueueCredentials, bytes]:
        """:meth:`create_queue` owned by keys the caller chose (derived from a secret, say).

        A short invitation link (docs/protocol.md §17.2) names a queue whose keys its
        holder derives; the relay's X25519 key, the other half of the queue key, is
        returned too, since whoever derives the keys needs it to open deliveries.

        Returns:
            The queue's credentials, and the relay's X25519 public key (``server_dh``).

        Raises:
            The errors of :meth:`create_queue`.
        """
        command = New(signing_key.verify_key.raw, dh_key.public_key.raw, sender_secured)
        response = await self._request(b"", command, signing_key, timeout)
        if not isinstance(response, Ids):
            raise self._unexpected(response)
        try:
            queue_key = derive_queue_key(dh_key, response.server_dh)
            ids = open_ids(queue_key, response.sealed)
        except (RemoteProtocolError, DecryptionError) as exc:
            raise RelayUnavailableError("relay sent an invalid queue answer") from exc
        return QueueCredentials(ids.recipient_id, ids.sender_id, signing_key, queue_key), response.server_dh

    async def lock(
        self, creds: QueueCredentials, sender_verify_key: bytes, *, timeout: float | None = None
    ) -> None:
        """Accept only sends signed by ``sender_verify_key`` on this queue from now on (``KEY``).

        Raises:
            ValueError: unless ``sender_verify_key`` (raw Ed25519, learned end to end) is 32 bytes.
            RelayRejectedError: the relay refused (``AUTH``: no such queue; ``CMD``: locked
                to another key already, by KEY or, on a sender-secured queue, by a SEND).
            RelayUnavailableError: unreachable, or the connection broke after the
                command went out (whether the lock took effect is unknown).
            RelayTimeoutError: no answer within ``timeout`` (the client's default when None).
        """
        check_size("sender_verify_key", sender_verify_key, KEY_SIZE)
        command = Key(bytes(sender_verify_key))
        self._expect_ok(await self._request(creds.recipient_id, command, creds.recipient_key, timeout))

    async def delete_queue(self, creds: QueueCredentials, *, timeout: float | None = None) -> None:
        """Delete the queue and every message on it (``DEL``); its subscription ends.

        Raises:
            RelayRejectedError: the relay refused (``AUTH``: no such queue).
            RelayUnavailableError: unreachable, or the connection broke after the
                command went out (whether the queue is gone is unknown; a second try
                answers ``AUTH`` if it is).
            RelayTimeoutError: no answer within ``timeout`` (the client's default when None).
        """
        self._expect_ok(await self._request(creds.recipient_id, Del(), creds.recipient_key, timeout))
        if self._subs.get(creds.recipient_id) is creds:
            del self._subs[creds.recipient_id]

    # -- sending ---------------------------------------------------------------------------

    async def send(
        self,
        sender_id: bytes,
        body: bytes,
        *,
        sender_key: SigningKey | None = None,
        send_id: bytes | None = None,
        timeout: float | None = None,
    ) -> None:
        """Leave ``body`` on the queue ``sender_id`` and return once the relay stored it.

        One random ``send_id`` is picked per call (or ``send_id`` is used) and every
        retry carries it, so the relay stores the message once however often it goes
        out. An outbox that outlives the process keeps its own ``send_id`` and passes
        it to every later call for the same message. Connection losses, ``RATE`` and
        ``INTERNAL`` are retried until ``timeout``.

        Args:
            sender_id: the queue's sender id, from its recipient.
            body: at most :data:`~burnerkit.relay.protocol.MAX_BODY_SIZE` bytes.
            sender_key: signs the command and carries its verify key: for a queue locked
                to that key, or a sender-secured queue, which the first signed send locks.
            send_id: the idempotency key, 16 bytes; random when None.
            timeout: overall time limit for every attempt, the client's default when None.

        Raises:
            ValueError: if ``sender_id`` is not 24 bytes, ``send_id`` not 16, or ``body`` is too long.
            RelayRejectedError: the relay refused for good (``QUOTA``: the queue is
                full; ``LARGE``; ``AUTH``: no such queue, locked to another key, or
                sender-secured and the send unsigned).
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no final answer within ``timeout``. The
                message may be stored; calling ``send`` again may store it twice, so
                rely on end-to-end deduplication.
        """
        check_size("sender_id", sender_id, QUEUE_ID_SIZE)
        if len(body) > MAX_BODY_SIZE:
            raise ValueError(f"body must be at most {MAX_BODY_SIZE} bytes")
        if send_id is None:
            send_id = self._rng.random_bytes(SEND_ID_SIZE)
        check_size("send_id", send_id, SEND_ID_SIZE)
        command = Send(bytes(send_id), bytes(body), None if sender_key is None else sender_key.verify_key.raw)
        self._expect_ok(await self._request(bytes(sender_id), command, sender_key, timeout))

    # -- receiving -------------------------------------------------------------------------

    async def subscribe(self, creds: QueueCredentials, *, timeout: float | None = None) -> None:
        """Receive this queue's messages as events of :meth:`deliveries` (``SUB``).

        The subscription outlives connections: after a reconnect the client renews it
        by itself, until the relay ends it (a :class:`SubscriptionEnded` event) or the
        queue is deleted. A failed call leaves no subscription behind.

        Raises:
            RelayRejectedError: the relay refused (``AUTH``: no such queue).
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no answer within ``timeout`` (the client's
                default when None).
        """
        rid = creds.recipient_id
        previous = self._subs.get(rid)
        self._subs[rid] = creds
        try:
            self._expect_ok(await self._request(rid, Sub(), creds.recipient_key, timeout))
        except BaseException:
            if previous is None and self._subs.get(rid) is creds:
                del self._subs[rid]
            raise

    async def ack(self, creds: QueueCredentials, msg_id: bytes, *, timeout: float | None = None) -> None:
        """Tell the relay the message ``msg_id`` is stored: delete it, deliver the next (``ACK``).

        A ``NO_MSG`` answer is not an error. It means the relay has no delivered
        message of that id on this subscription: either an earlier ``ACK`` of it got
        through and only the ``OK`` was lost with the connection, or the subscription
        was renewed since the delivery and the message will be delivered again (at
        least once). We accept it on any connection, not only after a reconnect: a
        repeated ``ACK`` and the renewed subscription's redelivery can cross.

        Raises:
            ValueError: unless ``msg_id`` is 24 bytes.
            RelayRejectedError: the relay refused (``AUTH``).
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no answer within ``timeout`` (the client's
                default when None).
        """
        check_size("msg_id", msg_id, MSG_ID_SIZE)
        response = await self._request(
            creds.recipient_id, Ack(bytes(msg_id)), MacKey(creds.queue_key), timeout
        )
        # The next message may answer instead of OK; _dispatch has delivered it already.
        if response == Err(ErrorCode.NO_MSG) or isinstance(response, Msg):
            return
        self._expect_ok(response)

    async def ping(self, *, timeout: float | None = None) -> None:
        """One ``PING``/``PONG`` round trip: the relay is there and speaks the protocol.

        Raises:
            RelayUnavailableError: the relay could not be reached (``url`` and ``cause``
                say which and why).
            RelayTimeoutError: connected, but no answer within ``timeout``.
        """
        response = await self._request(b"", Ping(), None, timeout)
        if not isinstance(response, Pong):
            raise self._unexpected(response)

    async def deliveries(self) -> AsyncIterator[RelayEvent]:
        """Every event of every subscription, in arrival order, until the client closes.

        Yields:
            :class:`ReceivedMessage`, :class:`SubscriptionEnded` or :class:`UnreadableMessage`.
        """
        while True:
            item = await self._events.get()
            if item is None:
                self._events.put_nowait(None)  # for any other reader
                return
            yield item

    async def next_delivery(self, timeout: float | None = None) -> RelayEvent:
        """The next event of :meth:`deliveries`, waiting at most ``timeout`` seconds (None: no limit).

        Raises:
            RelayTimeoutError: nothing arrived within ``timeout``.
            RelayUnavailableError: the client is closed.
        """
        item = await self._next(self._events, timeout, "no delivery in time")
        if item is None:
            self._events.put_nowait(None)
            raise RelayUnavailableError("relay client closed")
        return item

    # -- pairing mailboxes (§14.12) --------------------------------------------------------

    async def mailbox_allocate(self, *, timeout: float | None = None) -> Mailbox:
        """Open a pairing mailbox under a fresh nameplate, as its side A (``MB_ALLOC``).

        Returns:
            The nameplate and our token. Read the other side's messages with
            :meth:`mailbox_receive`; :meth:`mailbox_delete` it when done.

        Raises:
            RelayRejectedError: the relay refused (``QUOTA``: too many mailboxes).
            RelayUnavailableError: unreachable, or the connection broke after the command
                went out (a mailbox may exist; it expires unused).
            RelayTimeoutError: no answer within ``timeout`` (the client's default when None).
        """
        return await self._open_mailbox(MbAlloc(), timeout)

    async def mailbox_join(self, nameplate: int, *, timeout: float | None = None) -> Mailbox:
        """Join the mailbox of ``nameplate`` (the number the short code starts with) as side B.

        Raises:
            ValueError: unless ``nameplate`` is 1..65,535.
            RelayRejectedError: ``MAILBOX``: no open mailbox has that nameplate, or it
                already has two sides (and is now closed); ``QUOTA``.
            RelayUnavailableError: unreachable, or the connection broke after the command
                went out.
            RelayTimeoutError: no answer within ``timeout`` (the client's default when None).
        """
        if not 1 <= nameplate <= 0xFFFF:
            raise ValueError("nameplate must be between 1 and 65535")
        return await self._open_mailbox(MbJoin(nameplate), timeout)

    async def _open_mailbox(self, command: MbAlloc | MbJoin, timeout: float | None) -> Mailbox:
        response = await self._request(b"", command, None, timeout)
        if not isinstance(response, MbOpen):
            raise self._unexpected(response)
        state = self._mailboxes.get(response.token)
        if state is None:  # pragma: no cover - _dispatch registers it with the answer
            raise RelayUnavailableError("relay sent an unexpected answer")
        return state.mailbox

    async def mailbox_put(self, mailbox: Mailbox, body: bytes, *, timeout: float | None = None) -> None:
        """Leave our next message in the mailbox (``MB_PUT``); it is pushed to the other side.

        Retried across reconnects with the same index, so it is stored once.

        Raises:
            ValueError: if ``body`` is over :data:`~burnerkit.relay.protocol.MAILBOX_BODY_SIZE`.
            RelayRejectedError: ``MAILBOX``: the mailbox is closed or unknown; ``QUOTA``:
                we put the most messages a side may.
            RelayUnavailableError: the relay was unreachable until ``timeout``.
            RelayTimeoutError: connected, but no answer within ``timeout``.
        """
        if len(body) > MAILBOX_BODY_SIZE:
            raise ValueError(f"mailbox body must be at most {MAILBOX_BODY_SIZE} bytes")
        state = self._mailbox_state(mailbox)
        async with state.lock:
            if state.ended is not None:
                raise RelayRejectedError(ErrorCode.MAILBOX, "mailbox is closed")
            command = MbPut(state.next_index, bytes(body))
            self._expect_ok(await self._request(mailbox.token, command, None, timeout))
            state.next_index += 1

    async def mailbox_receive(
        self, mailbox: Mailbox, *, timeout: float | None = None
    ) -> bytes | MailboxEnded:
        """The other side's next message, in order, each once; or how the mailbox ended.

        Once the mailbox has ended, every later call returns the same
        :class:`MailboxEnded` at once. ``timeout``: seconds to wait, None for no limit.

        Raises:
            RelayTimeoutError: nothing arrived within ``timeout``.
            RelayUnavailableError: the client is closed, or the mailbox was deleted.
        """
        state = self._mailbox_state(mailbox)
        item = await self._next(state.inbox, timeout, "nothing arrived in the mailbox in time")
        if item is None:
            state.inbox.put_nowait(None)
            raise RelayUnavailableError("mailbox closed on this side")
        if isinstance(item, MailboxEnded):
            state.inbox.put_nowait(item)  # for every later call
        return item

    async def mailbox_delete(self, mailbox: Mailbox, *, timeout: float | None = None) -> None:
        """Give up our side of the mailbox (``MB_DEL``); it closes for the other side too.

        A mailbox the relay no longer knows (expired, or an earlier delete whose answer
        was lost) counts as deleted. Our side is forgotten locally whatever happens.

        Raises:
            RelayUnavailableError: the relay was unreachable until ``timeout`` (the
                mailbox expires by itself).
            RelayTimeoutError: connected, but no answer within ``timeout``.
        """
        try:
            response = await self._request(mailbox.token, MbDel(), None, timeout)
            if response != Err(ErrorCode.MAILBOX):
                self._expect_ok(response)
        finally:
            state = self._mailboxes.pop(mailbox.token, None)
            if state is not None:
                state.inbox.put_nowait(None)


async def check_relay(
    url: str,
    *,
    ssl: ssl_module.SSLContext | None = None,
    timeout: float = 10.0,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> None:
    """Connect to the relay at ``url`` and make one ``PING`` round trip, then close.

    Args:
        url: the relay's address (checked for syntax and pin only: the insecure rule is
            the caller's, :func:`~burnerkit.relay.url.check_relay_url`).
        ssl: TLS settings for an unpinned ``wss://``.
        timeout: the whole check's time limit.
        connect_timeout: the connect's limit.

    Raises:
        ValueError: an unusable url.
        RelayUnavailableError: the relay could not be reached; its ``cause`` says why.
        RelayTimeoutError: it connected but did not answer in time.
    """
    async with RelayClient(url, ssl=ssl, timeout=timeout, connect_timeout=connect_timeout) as client:
        await client.ping()
