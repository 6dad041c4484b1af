"""Subscription and delivery: which message goes to a queue's subscriber, and when.

docs/protocol.md §14.8a. A sans-IO state machine, one per subscribed queue: the server's
I/O shell (``commands.py``) tells it what happened (:meth:`Subscription.stored`,
:meth:`~Subscription.acked`, a store read or delete returned, ...) and performs the
actions it returns (:class:`Deliver`, :class:`ReadStore`, :class:`Delete`,
:class:`Answer`). Nothing here awaits, reads a store, or touches a socket, so every rule
is checked by plain synchronous tests (tests/unit/relay/test_delivery.py).

Theory of operation
-------------------
Rule 1: a subscription has at most one message delivered and not yet acknowledged, the
*outstanding* one; the next goes out only after the ACK that names it.

Rule 2: messages go out in the order the queue holds them. The machine learns that order
from the store (a read of the oldest message, in order with the store's writes) until a
read finds the queue empty; from then on it *knows* the queue (``known``): every message
stored after that read is handed to :meth:`Subscription.stored` in order, and waits in
the inbox, in memory, so delivery reads nothing back. It stops knowing (the inbox is
dropped, and it reads the store again) when the inbox is full (:data:`INBOX_MESSAGES` per
subscription, :data:`INBOX_TOTAL` for all of them), after a sweep, a refused-sender
notice or a failed delete: then the store alone knows the order.

Rule 3: a message leaves memory only when acknowledged: an ACK of the outstanding id
asks the shell to delete it; the next message, when the inbox has it, answers the ACK at
once (before the delete commits: at least once, never lost); else the ACK's answer waits
for the delete, then for what comes next (a MSG, or ``OK``).

Rule 4: a subscription that ends (moved by another SUB, its queue deleted, its connection
gone) does nothing more, except answer the one ACK still waiting on it.

The table below lists every transition; :meth:`Subscription._go` refuses any other.
"""

from __future__ import annotations

import dataclasses
import enum
from collections import deque
from typing import Final, assert_never

from .store.base import StoredMessage

__all__ = [
    "INBOX_MESSAGES",
    "INBOX_TOTAL",
    "TRANSITIONS",
    "ZERO_CORR",
    "Action",
    "Answer",
    "Deliver",
    "Delete",
    "DeliveryState",
    "Event",
    "InboxBudget",
    "ReadStore",
    "Reply",
    "Subscription",
]

#: The corr_id of a pushed frame (a MSG no command asked for).
ZERO_CORR: Final = bytes(24)
#: Messages one subscription keeps in memory (beyond, it reads the store) ...
INBOX_MESSAGES: Final = 16
#: ... and all subscriptions of one relay together.
INBOX_TOTAL: Final = 4096


@enum.unique
class DeliveryState(enum.Enum):
    """Where a subscription stands."""

    # Members are singletons: hashing by identity is C code, where Enum's own __hash__ is
    # a Python call, made twice per transition by Subscription._go (holds up relay_vs_ws_echo).
    __hash__ = object.__hash__

    #: nothing outstanding, and the queue's content unknown (a read failed): the next event reads
    UNKNOWN = enum.auto()
    #: a read of the store runs (nothing outstanding)
    READING = enum.auto()
    #: a read runs and a message was stored meanwhile: when it finds nothing, read again
    READING_AGAIN = enum.auto()
    #: nothing outstanding, the queue known empty
    IDLE = enum.auto()
    #: one message delivered, awaiting its ACK
    OUTSTANDING = enum.auto()
    #: the outstanding message was acknowledged, and its ACK waits for its delete
    DELETING = enum.auto()
    #: moved, deleted or disconnected: nothing more goes out
    ENDED = enum.auto()


@enum.unique
class Event(enum.Enum):
    """What the shell tells a subscription (one method each)."""

    __hash__ = object.__hash__  # as DeliveryState's

    SUBSCRIBED = enum.auto()
    STORED = enum.auto()
    READ_MESSAGE = enum.auto()
    READ_EMPTY = enum.auto()
    READ_FAILED = enum.auto()
    ACKED = enum.auto()
    ACK_REFUSED = enum.auto()  #: an ACK naming anything but the outstanding id
    DELETED = enum.auto()
    DELETE_FAILED = enum.auto()
    NOTICE_STORED = enum.auto()  #: a refused-sender notice: the store alone knows its place
    SWEPT = enum.auto()  #: expired messages were deleted: the inbox may hold some
    ENDED = enum.auto()


@enum.unique
class Reply(enum.Enum):
    """An ACK's answer, when it is not a MSG."""

    OK = enum.auto()
    NO_MSG = enum.auto()
    INTERNAL = enum.auto()


@dataclasses.dataclass(frozen=True, slots=True)
class Deliver:
    """Send ``message`` as a MSG with ``corr_id`` (an ACK's, or :data:`ZERO_CORR` for a push)."""

    message: StoredMessage
    corr_id: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ReadStore:
    """Read the oldest message of the queue; then call ``read_returned`` or ``read_failed``."""


@dataclasses.dataclass(frozen=True, slots=True)
class Delete:
    """Delete ``msg_id``; then call ``deleted`` or ``delete_failed`` with ``corr_id`` and ``answered``.

    ``answered``: the ACK (``corr_id``) has its answer already (the next MSG).
    """

    msg_id: bytes
    corr_id: bytes
    answered: bool


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    """Answer the ACK ``corr_id`` with ``reply``."""

    corr_id: bytes
    reply: Reply


Action = Deliver | ReadStore | Delete | Answer
#: What one event asks of the shell, in order.
Actions = tuple[Action, ...]

_READ: Final = ReadStore()
_NOTHING: Final[Actions] = ()

_S = DeliveryState
_E = Event


def _rows(
    *rows: tuple[DeliveryState, Event, set[DeliveryState]],
) -> dict[tuple[DeliveryState, Event], frozenset[DeliveryState]]:
    table: dict[tuple[DeliveryState, Event], frozenset[DeliveryState]] = {}
    for state, event, targets in rows:
        table[state, event] = table.get((state, event), frozenset()) | targets
    return table


def _unchanged(event: Event, *states: DeliveryState) -> list[tuple[DeliveryState, Event, set[DeliveryState]]]:
    """Self-loops: ``event`` leaves each of ``states`` (default: every state) as it is."""
    return [(state, event, {state}) for state in states or tuple(DeliveryState)]


#: Every transition: (state, event) -> the states it may lead to, a guard picking one
#: (``known``, the inbox, ``answered``). docs/protocol.md §14.8a gives this table with the
#: actions of each row; :meth:`Subscription._go` refuses any transition not listed.
TRANSITIONS: Final = _rows(
    (_S.UNKNOWN, _E.SUBSCRIBED, {_S.READING}),
    # a message stored: from the inbox at once when the queue is known, else read the store
    (_S.UNKNOWN, _E.STORED, {_S.READING}),
    (_S.IDLE, _E.STORED, {_S.OUTSTANDING, _S.READING}),
    (_S.READING, _E.STORED, {_S.READING_AGAIN}),
    (_S.READING_AGAIN, _E.STORED, {_S.READING_AGAIN}),
    (_S.OUTSTANDING, _E.STORED, {_S.OUTSTANDING}),
    (_S.DELETING, _E.STORED, {_S.DELETING}),
    # a refused-sender notice stored: as a message, but its place is the store's to say
    (_S.UNKNOWN, _E.NOTICE_STORED, {_S.READING}),
    (_S.IDLE, _E.NOTICE_STORED, {_S.READING}),
    (_S.READING, _E.NOTICE_STORED, {_S.READING_AGAIN}),
    (_S.READING_AGAIN, _E.NOTICE_STORED, {_S.READING_AGAIN}),
    (_S.OUTSTANDING, _E.NOTICE_STORED, {_S.OUTSTANDING}),
    (_S.DELETING, _E.NOTICE_STORED, {_S.DELETING}),
    # a read returned
    (_S.READING, _E.READ_MESSAGE, {_S.OUTSTANDING}),
    (_S.READING_AGAIN, _E.READ_MESSAGE, {_S.OUTSTANDING}),
    (_S.READING, _E.READ_EMPTY, {_S.IDLE}),
    (_S.READING_AGAIN, _E.READ_EMPTY, {_S.READING}),
    (_S.READING, _E.READ_FAILED, {_S.UNKNOWN}),
    (_S.READING_AGAIN, _E.READ_FAILED, {_S.UNKNOWN}),
    # ACK of the outstanding id: the next from the inbox answers it, or it waits for the delete
    (_S.OUTSTANDING, _E.ACKED, {_S.OUTSTANDING, _S.DELETING}),
    # the delete an ACK waits for is done (answered=False): next from the inbox, or OK, or read
    (_S.DELETING, _E.DELETED, {_S.OUTSTANDING, _S.IDLE, _S.READING}),
    (_S.DELETING, _E.DELETE_FAILED, {_S.OUTSTANDING}),
    # a sweep deleted messages: what the inbox holds may be gone (nothing read until asked)
    (_S.IDLE, _E.SWEPT, {_S.UNKNOWN}),
    *_unchanged(_E.SWEPT, *(state for state in _S if state is not _S.IDLE)),
    # any other ACK: NO_MSG, nothing changes
    *_unchanged(_E.ACK_REFUSED),
    # a delete whose ACK was answered by the next MSG (answered=True) changes no state;
    # failed, it drops the inbox (the message sits ahead of it)
    *_unchanged(_E.DELETED),
    *_unchanged(_E.DELETE_FAILED),
    # once ended, nothing moves (a waiting ACK still gets its answer)
    *_unchanged(_E.STORED, _S.ENDED),
    *_unchanged(_E.NOTICE_STORED, _S.ENDED),
    *_unchanged(_E.READ_MESSAGE, _S.ENDED),
    *_unchanged(_E.READ_EMPTY, _S.ENDED),
    *_unchanged(_E.READ_FAILED, _S.ENDED),
    *((state, _E.ENDED, {_S.ENDED}) for state in _S),
)


class InboxBudget:
    """The messages all of one relay's inboxes hold together (at most :data:`INBOX_TOTAL`)."""

    __slots__ = ("held", "limit")

    def __init__(self, limit: int = INBOX_TOTAL) -> None:
        self.held = 0
        self.limit = limit


class Subscription:
    """One subscribed queue's delivery (docs/protocol.md §14.8a); one instance per SUB.

    A SUB repeated on the same connection makes a new instance, so the outstanding
    message, whose ACK may have been lost, goes out again.

    Args:
        budget: the relay's shared inbox budget.
    """

    __slots__ = ("_answer_to", "_budget", "inbox", "known", "outstanding", "state")

    def __init__(self, budget: InboxBudget) -> None:
        self._budget = budget
        self.state = DeliveryState.UNKNOWN
        #: the msg id delivered and not yet acknowledged (kept while its delete runs)
        self.outstanding: bytes | None = None
        #: the inbox holds every message stored after the outstanding one (Rule 2)
        self.known = False
        #: None while empty: an idle subscription holds no deque
        self.inbox: deque[StoredMessage] | None = None
        #: the ACK a read or delete in progress answers (ZERO_CORR: none)
        self._answer_to = ZERO_CORR

    def __repr__(self) -> str:
        return f"<Subscription {self.state.name} inbox={len(self.inbox or ())}>"

    # -- events ---------------------------------------------------------------------------

    def subscribed(self) -> Actions:
        """The SUB was answered: find the first message."""
        self._go(Event.SUBSCRIBED, DeliveryState.READING)
        return (_READ,)

    def stored(self, message: StoredMessage) -> Actions:
        """``message`` was stored on the queue (or accepted by the store), after every earlier one."""
        state = self.state
        if state is DeliveryState.ENDED:
            self._go(Event.STORED, state)
            return _NOTHING
        if self.known:
            budget = self._budget
            if budget.held >= budget.limit or (self.inbox is not None and len(self.inbox) >= INBOX_MESSAGES):
                self._forget()
            else:
                if self.inbox is None:
                    self.inbox = deque()
                self.inbox.append(message)
                budget.held += 1
        match state:
            case DeliveryState.UNKNOWN | DeliveryState.IDLE:
                return self._next(Event.STORED, ZERO_CORR)
            case DeliveryState.READING | DeliveryState.READING_AGAIN:
                self._go(Event.STORED, DeliveryState.READING_AGAIN)
            case DeliveryState.OUTSTANDING | DeliveryState.DELETING:
                self._go(Event.STORED, state)
            case _:  # pragma: no cover
                raise AssertionError(state)
        return _NOTHING

    def read_returned(self, message: StoredMessage | None) -> Actions:
        """The :class:`ReadStore` found ``message`` first on the queue, or found it empty."""
        state = self.state
        event = Event.READ_EMPTY if message is None else Event.READ_MESSAGE
        if state is DeliveryState.ENDED:
            self._go(event, state)
            return self._answer_waiting(Reply.OK)
        assert state is DeliveryState.READING or state is DeliveryState.READING_AGAIN, state
        corr_id = self._answer_to
        if message is not None:
            self._answer_to = ZERO_CORR
            self._go(event, DeliveryState.OUTSTANDING)
            self.outstanding = message.msg_id
            return (Deliver(message, corr_id),)
        if state is DeliveryState.READING_AGAIN:
            self._go(event, DeliveryState.READING)
            return (_READ,)
        # Every message stored after this read began comes to stored() from now on.
        self._go(event, DeliveryState.IDLE)
        self.known = True
        return self._answer_waiting(Reply.OK)

    def read_failed(self) -> Actions:
        """The :class:`ReadStore` failed: the next event reads again; a waiting ACK gets OK."""
        state = self.state
        if state is not DeliveryState.ENDED:
            assert state is DeliveryState.READING or state is DeliveryState.READING_AGAIN, state
            state = DeliveryState.UNKNOWN
        self._go(Event.READ_FAILED, state)
        # The ACK's own message is deleted: OK is its true answer; the next comes on a later event.
        return self._answer_waiting(Reply.OK)

    def acked(self, msg_id: bytes, corr_id: bytes) -> Actions:
        """An authenticated ACK of ``msg_id`` (``corr_id``) by the holder of the subscription."""
        if self.state is not DeliveryState.OUTSTANDING or self.outstanding != msg_id:
            self._go(Event.ACK_REFUSED, self.state)
            return (Answer(corr_id, Reply.NO_MSG),)
        if self.inbox:
            # The recipient has this message: the next one answers the ACK at once, before
            # the delete commits (Rule 3); the delete starts before any later read can.
            nxt = self._take()
            self._go(Event.ACKED, DeliveryState.OUTSTANDING)
            self.outstanding = nxt.msg_id
            return (
                Deliver(nxt, corr_id),
                Delete(msg_id, corr_id, answered=True),
            )
        # While the delete runs a second ACK of it gets NO_MSG and nothing goes out: the
        # message is still on the queue and must not be read back.
        self._go(Event.ACKED, DeliveryState.DELETING)
        self._answer_to = corr_id
        return (Delete(msg_id, corr_id, answered=False),)

    def deleted(self, corr_id: bytes, answered: bool) -> Actions:
        """The :class:`Delete` is done (or found the message gone already: expired, queue deleted)."""
        state = self.state
        if answered:
            self._go(Event.DELETED, state)
            return _NOTHING
        if state is DeliveryState.ENDED:
            self._go(Event.DELETED, state)
            return self._answer_waiting(Reply.OK)
        assert state is DeliveryState.DELETING, state
        self.outstanding = None
        return self._next(Event.DELETED, corr_id)

    def delete_failed(self, msg_id: bytes, corr_id: bytes, answered: bool) -> Actions:
        """The :class:`Delete` failed: the message stays stored."""
        state = self.state
        if answered:
            # It sits on the queue ahead of the inbox: only the store knows the order now.
            self._forget()
            self._go(Event.DELETE_FAILED, state)
            return _NOTHING
        if state is DeliveryState.ENDED:
            self._go(Event.DELETE_FAILED, state)
            return self._answer_waiting(Reply.INTERNAL)
        assert state is DeliveryState.DELETING, state
        self._go(Event.DELETE_FAILED, DeliveryState.OUTSTANDING)
        self._answer_to = ZERO_CORR
        self.outstanding = msg_id  # the client may ACK it again
        return (Answer(corr_id, Reply.INTERNAL),)

    def notice_stored(self) -> Actions:
        """A refused-sender notice was stored: read the store, where it sits among the others."""
        self._forget()
        match self.state:
            case DeliveryState.UNKNOWN | DeliveryState.IDLE:
                return self._next(Event.NOTICE_STORED, ZERO_CORR)
            case DeliveryState.READING | DeliveryState.READING_AGAIN:
                self._go(Event.NOTICE_STORED, DeliveryState.READING_AGAIN)
            case DeliveryState.OUTSTANDING | DeliveryState.DELETING | DeliveryState.ENDED:
                self._go(Event.NOTICE_STORED, self.state)
            case _:  # pragma: no cover
                assert_never(self.state)
        return _NOTHING

    def swept(self) -> None:
        """The sweep deleted expired messages: drop the inbox; the next event reads the store."""
        self._forget()
        self._go(Event.SWEPT, DeliveryState.UNKNOWN if self.state is DeliveryState.IDLE else self.state)

    def ended(self) -> None:
        """Moved to another SUB, queue deleted, or connection gone (Rule 4)."""
        self._go(Event.ENDED, DeliveryState.ENDED)
        self._forget()

    # -- internals ------------------------------------------------------------------------

    def _next(self, event: Event, corr_id: bytes) -> Actions:
        """Nothing is outstanding: deliver the next from the inbox, or read, or rest."""
        if self.inbox:
            message = self._take()
            self._go(event, DeliveryState.OUTSTANDING)
            self.outstanding = message.msg_id
            return (Deliver(message, corr_id),)
        if self.known:
            self._go(event, DeliveryState.IDLE)
            return _NOTHING if corr_id == ZERO_CORR else (Answer(corr_id, Reply.OK),)
        self._go(event, DeliveryState.READING)
        self._answer_to = corr_id
        return (_READ,)

    def _answer_waiting(self, reply: Reply) -> Actions:
        corr_id, self._answer_to = self._answer_to, ZERO_CORR
        return _NOTHING if corr_id == ZERO_CORR else (Answer(corr_id, reply),)

    def _take(self) -> StoredMessage:
        inbox = self.inbox
        assert inbox
        self._budget.held -= 1
        message = inbox.popleft()
        if not inbox:
            self.inbox = None
        return message

    def _forget(self) -> None:
        if self.inbox is not None:
            self._budget.held -= len(self.inbox)
            self.inbox = None
        self.known = False

    def _go(self, event: Event, new: DeliveryState) -> None:
        assert new in TRANSITIONS.get((self.state, event), ()), (self.state, event, new)
        self.state = new
