"""The subscription and delivery machine (docs/protocol.md §14.8a) as plain synchronous tests.

Every row of ``TRANSITIONS`` is run once below (``ROWS``; the last test checks none is
missing), then a hypothesis test drives random event sequences, with a serial store
and a recipient around the machine, against its invariants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from burnerkit.relay.server.delivery import (
    INBOX_MESSAGES,
    TRANSITIONS,
    ZERO_CORR,
    Action,
    Actions,
    Answer,
    Delete,
    Deliver,
    DeliveryState,
    Event,
    InboxBudget,
    ReadStore,
    Reply,
    Subscription,
)
from burnerkit.relay.server.store.base import StoredMessage

S = DeliveryState
ACK = bytes([0xAC]) * 24
ACK2 = bytes([0xAD]) * 24


def msg(n: int) -> StoredMessage:
    return StoredMessage(n.to_bytes(24, "big"), 1_700_000_000, False, b"body %d" % n)


M1, M2, M3 = msg(1), msg(2), msg(3)


# -- reaching each state through events only ------------------------------------------------


def reading(budget: InboxBudget | None = None) -> Subscription:
    sub = Subscription(budget or InboxBudget())
    assert sub.subscribed() == (ReadStore(),)
    return sub


def reading_again() -> Subscription:
    sub = reading()
    assert sub.stored(M1) == ()
    return sub


def unknown() -> Subscription:
    sub = reading()
    assert sub.read_failed() == ()
    return sub


def idle() -> Subscription:
    sub = reading()
    assert sub.read_returned(None) == ()
    return sub


def outstanding() -> Subscription:
    """M1 outstanding, the queue known (nothing after it)."""
    sub = idle()
    assert sub.stored(M1) == (Deliver(M1, ZERO_CORR),)
    return sub


def outstanding_unknown() -> Subscription:
    """M1 outstanding as read from the store: what follows it is the store's to say."""
    sub = reading()
    assert sub.read_returned(M1) == (Deliver(M1, ZERO_CORR),)
    return sub


def outstanding_with_next() -> Subscription:
    sub = outstanding()
    assert sub.stored(M2) == ()
    return sub


def deleting() -> Subscription:
    sub = outstanding()
    assert sub.acked(M1.msg_id, ACK) == (Delete(M1.msg_id, ACK, answered=False),)
    return sub


def deleting_unknown() -> Subscription:
    sub = outstanding_unknown()
    assert sub.acked(M1.msg_id, ACK) == (Delete(M1.msg_id, ACK, answered=False),)
    return sub


def ended() -> Subscription:
    sub = outstanding()
    sub.ended()
    return sub


@dataclass(frozen=True)
class Row:
    """One row: from ``start`` (reached by ``setup``), ``fire`` gives ``actions`` and ``state``."""

    start: DeliveryState
    event: Event
    setup: Callable[[], Subscription]
    fire: Callable[[Subscription], Actions | None]
    state: DeliveryState
    actions: Actions = ()
    check: Callable[[Subscription], bool] = field(default=lambda _sub: True)


ROWS: list[Row] = [
    Row(
        S.UNKNOWN,
        Event.SUBSCRIBED,
        lambda: Subscription(InboxBudget()),
        Subscription.subscribed,
        S.READING,
        (ReadStore(),),
    ),
    # STORED
    Row(S.UNKNOWN, Event.STORED, unknown, lambda s: s.stored(M1), S.READING, (ReadStore(),)),
    Row(S.IDLE, Event.STORED, idle, lambda s: s.stored(M1), S.OUTSTANDING, (Deliver(M1, ZERO_CORR),)),
    Row(
        S.IDLE,
        Event.STORED,
        lambda: _idle_without_budget(),
        lambda s: s.stored(M1),
        S.READING,
        (ReadStore(),),
    ),
    Row(S.READING, Event.STORED, reading, lambda s: s.stored(M1), S.READING_AGAIN),
    Row(S.READING_AGAIN, Event.STORED, reading_again, lambda s: s.stored(M2), S.READING_AGAIN),
    Row(
        S.OUTSTANDING,
        Event.STORED,
        outstanding,
        lambda s: s.stored(M2),
        S.OUTSTANDING,
        (),
        lambda s: list(s.inbox or ()) == [M2],
    ),
    Row(
        S.DELETING,
        Event.STORED,
        deleting,
        lambda s: s.stored(M2),
        S.DELETING,
        (),
        lambda s: list(s.inbox or ()) == [M2],
    ),
    Row(S.ENDED, Event.STORED, ended, lambda s: s.stored(M2), S.ENDED, (), lambda s: s.inbox is None),
    # NOTICE_STORED
    Row(S.UNKNOWN, Event.NOTICE_STORED, unknown, Subscription.notice_stored, S.READING, (ReadStore(),)),
    Row(S.IDLE, Event.NOTICE_STORED, idle, Subscription.notice_stored, S.READING, (ReadStore(),)),
    Row(S.READING, Event.NOTICE_STORED, reading, Subscription.notice_stored, S.READING_AGAIN),
    Row(S.READING_AGAIN, Event.NOTICE_STORED, reading_again, Subscription.notice_stored, S.READING_AGAIN),
    Row(
        S.OUTSTANDING,
        Event.NOTICE_STORED,
        outstanding_with_next,
        Subscription.notice_stored,
        S.OUTSTANDING,
        (),
        lambda s: s.inbox is None and not s.known,
    ),
    Row(
        S.DELETING,
        Event.NOTICE_STORED,
        deleting,
        Subscription.notice_stored,
        S.DELETING,
        (),
        lambda s: not s.known,
    ),
    Row(S.ENDED, Event.NOTICE_STORED, ended, Subscription.notice_stored, S.ENDED),
    # READ_*
    Row(
        S.READING,
        Event.READ_MESSAGE,
        reading,
        lambda s: s.read_returned(M1),
        S.OUTSTANDING,
        (Deliver(M1, ZERO_CORR),),
    ),
    Row(
        S.READING_AGAIN,
        Event.READ_MESSAGE,
        reading_again,
        lambda s: s.read_returned(M1),
        S.OUTSTANDING,
        (Deliver(M1, ZERO_CORR),),
    ),
    Row(S.READING, Event.READ_EMPTY, reading, lambda s: s.read_returned(None), S.IDLE, (), lambda s: s.known),
    Row(
        S.READING_AGAIN,
        Event.READ_EMPTY,
        reading_again,
        lambda s: s.read_returned(None),
        S.READING,
        (ReadStore(),),
    ),
    Row(S.READING, Event.READ_FAILED, reading, Subscription.read_failed, S.UNKNOWN),
    Row(S.READING_AGAIN, Event.READ_FAILED, reading_again, Subscription.read_failed, S.UNKNOWN),
    Row(S.ENDED, Event.READ_MESSAGE, lambda: _ended_while_reading(), lambda s: s.read_returned(M1), S.ENDED),
    Row(S.ENDED, Event.READ_EMPTY, lambda: _ended_while_reading(), lambda s: s.read_returned(None), S.ENDED),
    Row(S.ENDED, Event.READ_FAILED, lambda: _ended_while_reading(), Subscription.read_failed, S.ENDED),
    # ACKED: with the next in the inbox it answers the ACK before the delete; else wait for the delete
    Row(
        S.OUTSTANDING,
        Event.ACKED,
        outstanding_with_next,
        lambda s: s.acked(M1.msg_id, ACK),
        S.OUTSTANDING,
        (Deliver(M2, ACK), Delete(M1.msg_id, ACK, answered=True)),
        lambda s: s.outstanding == M2.msg_id,
    ),
    Row(
        S.OUTSTANDING,
        Event.ACKED,
        outstanding,
        lambda s: s.acked(M1.msg_id, ACK),
        S.DELETING,
        (Delete(M1.msg_id, ACK, answered=False),),
    ),
    # ACK_REFUSED: every state, NO_MSG, unchanged
    Row(
        S.UNKNOWN,
        Event.ACK_REFUSED,
        unknown,
        lambda s: s.acked(M1.msg_id, ACK),
        S.UNKNOWN,
        (Answer(ACK, Reply.NO_MSG),),
    ),
    Row(
        S.READING,
        Event.ACK_REFUSED,
        reading,
        lambda s: s.acked(M1.msg_id, ACK),
        S.READING,
        (Answer(ACK, Reply.NO_MSG),),
    ),
    Row(
        S.READING_AGAIN,
        Event.ACK_REFUSED,
        reading_again,
        lambda s: s.acked(M1.msg_id, ACK),
        S.READING_AGAIN,
        (Answer(ACK, Reply.NO_MSG),),
    ),
    Row(
        S.IDLE,
        Event.ACK_REFUSED,
        idle,
        lambda s: s.acked(M1.msg_id, ACK),
        S.IDLE,
        (Answer(ACK, Reply.NO_MSG),),
    ),
    Row(
        S.OUTSTANDING,
        Event.ACK_REFUSED,
        outstanding,
        lambda s: s.acked(M2.msg_id, ACK),
        S.OUTSTANDING,
        (Answer(ACK, Reply.NO_MSG),),
    ),
    Row(
        S.DELETING,
        Event.ACK_REFUSED,
        deleting,
        lambda s: s.acked(M1.msg_id, ACK2),
        S.DELETING,
        (Answer(ACK2, Reply.NO_MSG),),
    ),
    Row(
        S.ENDED,
        Event.ACK_REFUSED,
        ended,
        lambda s: s.acked(M1.msg_id, ACK),
        S.ENDED,
        (Answer(ACK, Reply.NO_MSG),),
    ),
    # DELETED
    Row(
        S.DELETING,
        Event.DELETED,
        lambda: _deleting_with_next(),
        lambda s: s.deleted(ACK, answered=False),
        S.OUTSTANDING,
        (Deliver(M2, ACK),),
    ),
    Row(
        S.DELETING,
        Event.DELETED,
        deleting,
        lambda s: s.deleted(ACK, answered=False),
        S.IDLE,
        (Answer(ACK, Reply.OK),),
    ),
    Row(
        S.DELETING,
        Event.DELETED,
        deleting_unknown,
        lambda s: s.deleted(ACK, answered=False),
        S.READING,
        (ReadStore(),),
    ),
    Row(S.UNKNOWN, Event.DELETED, unknown, lambda s: s.deleted(ACK, answered=True), S.UNKNOWN),
    Row(S.READING, Event.DELETED, reading, lambda s: s.deleted(ACK, answered=True), S.READING),
    Row(
        S.READING_AGAIN,
        Event.DELETED,
        reading_again,
        lambda s: s.deleted(ACK, answered=True),
        S.READING_AGAIN,
    ),
    Row(S.IDLE, Event.DELETED, idle, lambda s: s.deleted(ACK, answered=True), S.IDLE),
    Row(S.OUTSTANDING, Event.DELETED, outstanding, lambda s: s.deleted(ACK, answered=True), S.OUTSTANDING),
    Row(
        S.ENDED,
        Event.DELETED,
        lambda: _ended_while_deleting(),
        lambda s: s.deleted(ACK, answered=False),
        S.ENDED,
        (Answer(ACK, Reply.OK),),
    ),
    # DELETE_FAILED
    Row(
        S.DELETING,
        Event.DELETE_FAILED,
        lambda: _deleting_after_answered(),
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=True),
        S.DELETING,
        (),
        lambda s: not s.known,
    ),
    Row(
        S.DELETING,
        Event.DELETED,
        lambda: _deleting_after_answered(),
        lambda s: s.deleted(ACK, answered=True),
        S.DELETING,
    ),
    Row(
        S.DELETING,
        Event.DELETE_FAILED,
        lambda: _deleting_with_next(),
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=False),
        S.OUTSTANDING,
        (Answer(ACK, Reply.INTERNAL),),
        lambda s: s.outstanding == M1.msg_id and list(s.inbox or ()) == [M2],
    ),
    Row(
        S.UNKNOWN,
        Event.DELETE_FAILED,
        unknown,
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=True),
        S.UNKNOWN,
    ),
    Row(
        S.READING,
        Event.DELETE_FAILED,
        reading,
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=True),
        S.READING,
    ),
    Row(
        S.READING_AGAIN,
        Event.DELETE_FAILED,
        reading_again,
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=True),
        S.READING_AGAIN,
    ),
    Row(
        S.IDLE,
        Event.DELETE_FAILED,
        idle,
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=True),
        S.IDLE,
        (),
        lambda s: not s.known,
    ),
    Row(
        S.OUTSTANDING,
        Event.DELETE_FAILED,
        outstanding_with_next,
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=True),
        S.OUTSTANDING,
        (),
        lambda s: s.inbox is None and not s.known,
    ),
    Row(
        S.ENDED,
        Event.DELETE_FAILED,
        lambda: _ended_while_deleting(),
        lambda s: s.delete_failed(M1.msg_id, ACK, answered=False),
        S.ENDED,
        (Answer(ACK, Reply.INTERNAL),),
    ),
    # SWEPT: the inbox goes; an idle subscription reads at its next event
    Row(S.IDLE, Event.SWEPT, idle, Subscription.swept, S.UNKNOWN, (), lambda s: not s.known),
    Row(S.UNKNOWN, Event.SWEPT, unknown, Subscription.swept, S.UNKNOWN),
    Row(S.READING, Event.SWEPT, reading, Subscription.swept, S.READING),
    Row(S.READING_AGAIN, Event.SWEPT, reading_again, Subscription.swept, S.READING_AGAIN),
    Row(
        S.OUTSTANDING,
        Event.SWEPT,
        outstanding_with_next,
        Subscription.swept,
        S.OUTSTANDING,
        (),
        lambda s: s.inbox is None,
    ),
    Row(S.DELETING, Event.SWEPT, deleting, Subscription.swept, S.DELETING, (), lambda s: not s.known),
    Row(S.ENDED, Event.SWEPT, ended, Subscription.swept, S.ENDED),
    # ENDED from every state
    *(
        Row(start, Event.ENDED, setup, Subscription.ended, S.ENDED, (), lambda s: s.inbox is None)
        for start, setup in [
            (S.UNKNOWN, unknown),
            (S.READING, reading),
            (S.READING_AGAIN, reading_again),
            (S.IDLE, idle),
            (S.OUTSTANDING, outstanding_with_next),
            (S.DELETING, deleting),
            (S.ENDED, ended),
        ]
    ),
]


def _idle_without_budget() -> Subscription:
    """Known empty, but the relay's inboxes are full: a message stored now is read back."""
    sub = reading(InboxBudget(limit=0))
    assert sub.read_returned(None) == ()
    return sub


def _deleting_after_answered() -> Subscription:
    """M1's delete (answered by M2) still runs while M2's ACK waits for its own."""
    sub = outstanding_with_next()
    assert sub.acked(M1.msg_id, ACK) == (Deliver(M2, ACK), Delete(M1.msg_id, ACK, answered=True))
    assert sub.acked(M2.msg_id, ACK2) == (Delete(M2.msg_id, ACK2, answered=False),)
    return sub


def _ended_while_reading() -> Subscription:
    sub = reading()
    sub.ended()
    return sub


def _ended_while_deleting() -> Subscription:
    sub = deleting()
    sub.ended()
    return sub


def _deleting_with_next() -> Subscription:
    sub = deleting()
    assert sub.stored(M2) == ()
    return sub


@pytest.mark.parametrize("row", ROWS, ids=lambda row: f"{row.start.name}-{row.event.name}-{row.state.name}")
def test_each_row_of_the_table(row: Row) -> None:
    sub = row.setup()
    assert sub.state is row.start
    actions = row.fire(sub)
    assert (actions or ()) == row.actions
    assert sub.state is row.state
    assert row.state in TRANSITIONS[row.start, row.event]
    assert row.check(sub)


def test_every_row_of_the_table_is_tested() -> None:
    tested = {(row.start, row.event) for row in ROWS}
    assert tested == set(TRANSITIONS)
    targets = {(row.start, row.event, row.state) for row in ROWS}
    for (start, event), states in TRANSITIONS.items():
        for state in states:
            assert (start, event, state) in targets, (start, event, state)


def test_a_transition_not_in_the_table_is_refused_and_changes_nothing() -> None:
    sub = ended()
    with pytest.raises(AssertionError):
        sub.subscribed()
    assert sub.state is S.ENDED


def test_a_second_ack_of_a_message_being_deleted_gets_no_msg_and_delivers_nothing() -> None:
    sub = deleting()
    assert sub.stored(M2) == ()
    assert sub.acked(M1.msg_id, ACK2) == (Answer(ACK2, Reply.NO_MSG),)
    assert sub.deleted(ACK, answered=False) == (Deliver(M2, ACK),)


def test_a_full_inbox_forgets_and_reads_the_store_after_the_ack() -> None:
    sub = outstanding()
    for n in range(2, 2 + INBOX_MESSAGES):
        assert sub.stored(msg(n)) == ()
    assert sub.known
    assert len(sub.inbox or ()) == INBOX_MESSAGES
    assert sub.stored(msg(99)) == ()
    assert not sub.known
    assert sub.inbox is None
    assert sub.acked(M1.msg_id, ACK) == (Delete(M1.msg_id, ACK, answered=False),)
    assert sub.deleted(ACK, answered=False) == (ReadStore(),)
    assert sub.read_returned(M2) == (Deliver(M2, ACK),)


def test_the_relay_wide_inbox_budget_is_shared_and_given_back() -> None:
    budget = InboxBudget(limit=2)
    a, b = reading(budget), reading(budget)
    for sub in (a, b):
        sub.read_returned(None)
        sub.stored(M1)
    a.stored(M2)
    b.stored(M2)
    assert budget.held == 2
    a.stored(M3)  # over the budget: a forgets, and gives back what it held
    assert not a.known
    assert budget.held == 1
    b.ended()
    assert budget.held == 0


def test_a_read_failure_answers_the_waiting_ack_ok_and_the_next_stored_reads_again() -> None:
    sub = deleting_unknown()
    assert sub.deleted(ACK, answered=False) == (ReadStore(),)
    assert sub.read_failed() == (Answer(ACK, Reply.OK),)
    assert sub.stored(M2) == (ReadStore(),)
    assert sub.read_returned(M2) == (Deliver(M2, ZERO_CORR),)


def test_repr_names_the_state_and_no_message() -> None:
    sub = outstanding_with_next()
    assert repr(sub) == "<Subscription OUTSTANDING inbox=1>"


# -- random event sequences against the invariants ------------------------------------------


@dataclass
class World:
    """A serial store (effects at issue, completions reported in order) and one recipient."""

    budget: InboxBudget = field(default_factory=InboxBudget)
    store: list[StoredMessage] = field(default_factory=list)
    #: (machine, what to tell it) in the order the store would finish them
    pending: list[tuple[Subscription, Callable[[Subscription], Actions]]] = field(default_factory=list)
    next_id: int = 1
    sub: Subscription | None = None
    #: per subscription: what it delivered, and whether the holder has acknowledged it
    delivered: list[bytes] = field(default_factory=list)
    unacked: bytes | None = None
    first_seen: list[int] = field(default_factory=list)
    failed_deletes: set[bytes] = field(default_factory=set)
    swept: set[bytes] = field(default_factory=set)

    def subscribe(self) -> None:
        if self.sub is not None:
            self.sub.ended()
        self.sub = Subscription(self.budget)
        self.delivered, self.unacked = [], None
        self.perform(self.sub, self.sub.subscribed(), fail=False)

    def perform(self, sub: Subscription, actions: Actions, fail: bool) -> None:
        for action in actions:
            self.act(sub, action, fail)

    def act(self, sub: Subscription, action: Action, fail: bool) -> None:
        match action:
            case Deliver(message, _corr):
                assert sub is self.sub, "an ended subscription delivered"
                # Invariant: at most one outstanding message.
                assert self.unacked is None, "a second message before the first was acknowledged"
                # Invariant: nothing delivered twice to one holder without a SUB, unless its delete failed.
                assert message.msg_id not in self.delivered or message.msg_id in self.failed_deletes
                assert any(m.msg_id == message.msg_id for m in self.store) or message.msg_id in self.swept
                self.delivered.append(message.msg_id)
                self.unacked = message.msg_id
                n = int.from_bytes(message.msg_id, "big")
                if n not in self.first_seen:
                    # Invariant: order kept (first deliveries in the order stored).
                    assert not self.first_seen or n > max(self.first_seen)
                    self.first_seen.append(n)
            case ReadStore():
                first = self.store[0] if self.store else None
                if fail:
                    self.pending.append((sub, lambda s: s.read_failed()))
                else:
                    self.pending.append((sub, lambda s: s.read_returned(first)))
            case Delete(msg_id, corr_id, answered):
                if fail:
                    self.failed_deletes.add(msg_id)
                    self.pending.append((sub, lambda s: s.delete_failed(msg_id, corr_id, answered)))
                else:
                    self.store = [m for m in self.store if m.msg_id != msg_id]
                    self.pending.append((sub, lambda s: s.deleted(corr_id, answered)))
            case Answer(_corr, reply):
                if reply is Reply.INTERNAL and sub is self.sub:
                    self.unacked = sub.outstanding  # the holder will ACK it again
            case _:
                raise AssertionError(action)

    def check(self) -> None:
        sub = self.sub
        assert sub is not None
        # Invariant: a message leaves memory only when acknowledged: while the machine
        # knows the queue, its inbox is every stored message after the outstanding one.
        if sub.known:
            rest = [
                m.msg_id
                for m in self.store
                if m.msg_id != sub.outstanding and m.msg_id not in self.failed_deletes
            ]
            assert [m.msg_id for m in sub.inbox or ()] == rest
        assert self.budget.held == len(sub.inbox or ())


OPS = st.sampled_from(["store", "ack", "ack_wrong", "complete", "complete", "sweep", "notice", "resub"])


@settings(max_examples=300, deadline=None)
@given(data=st.data(), ops=st.lists(OPS, max_size=60))
def test_random_event_sequences_keep_the_invariants(data: st.DataObject, ops: list[str]) -> None:
    world = World()
    world.subscribe()
    for op in ops:
        sub = world.sub
        assert sub is not None
        fail = data.draw(st.integers(0, 7)) == 0
        match op:
            case "store" | "notice":
                message = msg(world.next_id)
                world.next_id += 1
                world.store.append(message)
                actions = sub.stored(message) if op == "store" else sub.notice_stored()
                world.perform(sub, actions, fail)
            case "ack":
                if world.unacked is not None:
                    msg_id, world.unacked = world.unacked, None
                    world.perform(sub, sub.acked(msg_id, ACK), fail)
            case "ack_wrong":
                before = sub.state
                assert sub.acked(b"\xff" * 24, ACK2) == (Answer(ACK2, Reply.NO_MSG),)
                assert sub.state is before
            case "complete":
                if world.pending:
                    target, tell = world.pending.pop(0)
                    world.perform(target, tell(target), fail)
            case "sweep":
                if world.store:
                    world.swept.add(world.store[0].msg_id)
                    world.store.pop(0)
                sub.swept()
            case "resub":
                world.subscribe()
        world.check()
    # Nothing is lost: with every operation finished and every delivery acknowledged, each
    # message still stored is delivered.
    for _ in range(1_000):
        sub = world.sub
        assert sub is not None
        if world.pending:
            target, tell = world.pending.pop(0)
            world.perform(target, tell(target), fail=False)
        elif world.unacked is not None:
            msg_id, world.unacked = world.unacked, None
            world.perform(sub, sub.acked(msg_id, ACK), fail=False)
        elif sub.state is S.UNKNOWN:
            world.perform(sub, sub.notice_stored(), fail=False)  # what the next SEND would do
        else:
            break
        world.check()
    assert world.store == []
    assert world.sub is not None
    assert world.sub.state is S.IDLE
