"""A two-party conversation over a lossy, reordering, replaying link (hypothesis stateful).

The machine drives a real handshaken pair (Alice invited, Bob accepted) and keeps a
model of the link and of both ratchets, so that every delivery has one exact expected
outcome:

* a first delivery yields exactly one ``MessageReceived`` with the true ``seq``, the
  sender's ``sent_at`` and content, preceded by exactly the ``GapDetected`` or
  ``MessageReordered`` event that the sequence numbers call for, and nothing else;
* a re-delivery is refused, and the state is byte-identical afterwards. *Which* error
  follows from ratchet.py's semantics (see :meth:`RatchetDelivery._expected_replay_error`):
  ``DuplicateMessageError`` while the receiver still knows the message's header key (its
  chain is current, still has a skipped key, or is one of the last ``RETIRED_CHAINS``
  chains it closed), ``DecryptionError`` only once that receiving chain is gone;
* a tampered copy of an envelope in flight is refused with ``RemoteProtocolError`` (outer
  layout) or ``DecryptionError`` (everything else), state byte-identical, and the genuine
  envelope still works later;
* sorting what one side received by ``seq`` gives a subsequence of what the other side
  sent, in send order.

Model of the ratchet (ratchet.py, docs/protocol.md §6.6-§6.8, §7.8). Number each party's sending chains
1, 2, ...: Bob (the acceptor, who sends first) starts on chain 1; Alice has no sending chain
until ``complete`` takes Bob's chain 1 and she opens her chain 1. Whenever a party takes the
first message of the peer's chain ``k + 1`` it steps the DH ratchet and opens a new sending
chain (Alice: chain ``k + 1``, Bob: chain ``k + 2``), whose counter starts again at 0.
Chain ``c`` exists only once the peer has received something of our chain ``c - 1``, so a
first delivery is never more than one chain ahead of its receiver (the machine asserts it).

A receiver knows the header key of its *current* receiving chain, of each older chain for
as long as that chain still has a cached skipped message key, and of the last
``RETIRED_CHAINS`` (32) chains it closed, with their final length but no message keys. On
stepping away from a chain it derives the keys of every message the sender sent in it
(``pn``), so an older chain keeps message keys exactly while at least one of its envelopes
has not been delivered (in flight or dropped); every chain below the current one is closed,
so chain ``c`` is retired and remembered while ``current - c <= RETIRED_CHAINS``. A replay
is an exact copy (same header tag, counter below the chain's length), so under a known
header key it is always a duplicate, never a fork. Each rule steps a receiver at most once,
so with ``STEPS`` = 30 < 32 random runs never see a chain leave the retired window: their
replays are always duplicates, and a hand-driven test below covers the far side. We stay
far from the eviction limits (``MAX_SKIPPED_KEYS``, ``SKIPPED_KEY_MAX_AGE``, ``MAX_SKIP``)
so that these rules are exact.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import (
    BurnerError,
    DecryptionError,
    DuplicateMessageError,
    InvitationConsumedError,
    RemoteProtocolError,
)
from burnerkit.protocol.envelope import ACCEPT_FIELDS_SIZE
from burnerkit.protocol.events import Event, GapDetected, MessageReceived, MessageReordered
from burnerkit.protocol.handshake import accept_invitation, create_invitation
from burnerkit.protocol.ratchet import MAX_SKIP, RETIRED_CHAINS
from burnerkit.protocol.session import Session

T0 = 1_800_000_000.0
MAX_BURST = 12
STEPS = 30
# Every chain stays well inside MAX_SKIP, whatever the machine does.
assert (MAX_BURST + 3) * STEPS < MAX_SKIP


class Party(enum.Enum):
    ALICE = "alice"  # the inviter
    BOB = "bob"  # the acceptor

    @property
    def peer(self) -> Party:
        return Party.BOB if self is Party.ALICE else Party.ALICE


ALICE, BOB = Party.ALICE, Party.BOB
parties = st.sampled_from(Party)


@dataclass(frozen=True)
class Sent:
    """One envelope and what the model knows about it."""

    sender: Party
    chain: int  # the sender's sending-chain number (see the module docstring)
    seq: int
    sent_at: int
    content: bytes
    data: bytes


def _note(what: str) -> None:
    # The scenario tests below drive the machine by hand, outside hypothesis.
    if currently_in_test_context():
        event(what)


class RatchetDelivery(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        rng = DeterministicRandom(b"tests/property/ratchet-delivery")
        self.now = T0
        pending, invitation = create_invitation(
            rng=rng, now=self.now, lifetime=30 * 24 * 3600, reply_address=b"q", one_time=True
        )
        bob, first = accept_invitation(invitation, content=b"hello", rng=rng, now=self.now)
        alice, events = pending.complete(first, now=self.now)
        assert events == [MessageReceived(1, int(self.now * 1000), b"hello")]
        self.sessions: dict[Party, Session] = {ALICE: alice, BOB: bob}
        first_sent = Sent(BOB, 1, 1, int(self.now * 1000), b"hello", first)
        # Keyed by sender: what it sent (index seq - 1) and its current sending chain.
        self.sent: dict[Party, list[Sent]] = {ALICE: [], BOB: [first_sent]}
        self.send_chain = {ALICE: 1, BOB: 1}
        # Keyed by receiver.
        self.in_flight: dict[Party, list[Sent]] = {ALICE: [], BOB: []}
        self.dropped: dict[Party, list[Sent]] = {ALICE: [], BOB: []}
        self.delivered: dict[Party, list[Sent]] = {ALICE: [first_sent], BOB: []}
        self.received: dict[Party, dict[int, bytes]] = {ALICE: {1: b"hello"}, BOB: {}}
        self.recv_chain = {ALICE: 1, BOB: 0}  # the receiver's current receiving chain

    # -- helpers ---------------------------------------------------------------------------

    def _tick(self) -> None:
        self.now += 0.25

    def _send(self, sender: Party, content: bytes) -> None:
        data = self.sessions[sender].send(content, now=self.now)
        assert len(data) == 15_872
        sent = Sent(
            sender,
            self.send_chain[sender],
            len(self.sent[sender]) + 1,
            int(self.now * 1000),
            content,
            data,
        )
        self.sent[sender].append(sent)
        self.in_flight[sender.peer].append(sent)

    def _still_unread(self, receiver: Party, chain: int) -> bool:
        pending = self.in_flight[receiver] + self.dropped[receiver]
        return any(s.chain == chain for s in pending)

    def _retired_and_remembered(self, receiver: Party, chain: int) -> bool:
        # Every chain below the current one was closed by a DH step; the last
        # RETIRED_CHAINS of them keep their header key, ratchet key and final length.
        return 0 < self.recv_chain[receiver] - chain <= RETIRED_CHAINS

    def _expected_replay_error(self, receiver: Party, sent: Sent) -> type[BurnerError]:
        # ratchet.py: the header opens under the current receiving header key, under the
        # key of an older chain that still has skipped keys, or (`_reject_retired`) under
        # the key of one of the last RETIRED_CHAINS closed chains. A replay carries the
        # chain's own ratchet key, a counter below the chain's final length and the header
        # tag recorded in the seen window (or one that has left it), so each of these is
        # `_reject_processed` -> a duplicate, never a fork. When no known header key opens
        # it, it is indistinguishable from garbage: DecryptionError.
        if (
            sent.chain == self.recv_chain[receiver]
            or self._still_unread(receiver, sent.chain)
            or self._retired_and_remembered(receiver, sent.chain)
        ):
            return DuplicateMessageError
        return DecryptionError

    def _expected_events(self, receiver: Party, sent: Sent) -> list[Event]:
        highest = max(self.received[receiver], default=0)
        events: list[Event] = []
        if sent.seq > highest + 1:
            events.append(GapDetected(highest + 1, sent.seq - 1))
        elif sent.seq < highest:
            events.append(MessageReordered(sent.seq))
        events.append(MessageReceived(sent.seq, sent.sent_at, sent.content))
        return events

    def _deliver(self, receiver: Party, sent: Sent) -> None:
        self._tick()
        expected = self._expected_events(receiver, sent)
        # The model's claim that no chain is ever skipped whole (see the module docstring).
        assert sent.chain <= self.recv_chain[receiver] + 1
        events = self.sessions[receiver].receive(sent.data, now=self.now)
        assert events == expected
        assert sent.seq not in self.received[receiver]
        self.received[receiver][sent.seq] = sent.content
        self.delivered[receiver].append(sent)
        _note(f"first delivery: {type(expected[0]).__name__}")
        if sent.chain == self.recv_chain[receiver] + 1:  # a DH ratchet step: new sending chain
            _note("first delivery steps the DH ratchet")
            self.recv_chain[receiver] = sent.chain
            self.send_chain[receiver] = sent.chain + (1 if receiver is BOB else 0)

    def _refused(self, receiver: Party, data: bytes, error: type[BurnerError]) -> None:
        session = self.sessions[receiver]
        before = session.to_bytes()
        with pytest.raises(BurnerError) as info:
            session.receive(data, now=self.now)
        assert type(info.value) is error
        assert session.to_bytes() == before

    # -- rules -----------------------------------------------------------------------------

    @rule(sender=parties, contents=st.lists(st.binary(max_size=64), min_size=1, max_size=3))
    def send(self, sender: Party, contents: list[bytes]) -> None:
        self._tick()
        for content in contents:
            self._send(sender, content)

    @rule(sender=parties, count=st.integers(4, MAX_BURST))
    def send_burst(self, sender: Party, count: int) -> None:
        self._tick()
        for i in range(count):
            self._send(sender, b"burst %d" % i)

    @rule(receiver=parties, picks=st.lists(st.integers(0, 10_000), min_size=1, max_size=4))
    def deliver(self, receiver: Party, picks: list[int]) -> None:
        for index in picks:
            queue = self.in_flight[receiver]
            if queue:
                self._deliver(receiver, queue.pop(index % len(queue)))

    @rule(receiver=parties)
    def deliver_all_in_order(self, receiver: Party) -> None:
        queue, self.in_flight[receiver] = self.in_flight[receiver], []
        for sent in queue:
            self._deliver(receiver, sent)

    @rule(receiver=parties, index=st.integers(0, 10_000))
    def redeliver(self, receiver: Party, index: int) -> None:
        done = self.delivered[receiver]
        if not done:
            return
        sent = done[index % len(done)]
        self._tick()
        error = self._expected_replay_error(receiver, sent)
        if sent.chain == self.recv_chain[receiver]:
            where = "the current chain"
        elif self._still_unread(receiver, sent.chain):
            where = "an old chain with skipped keys"
        elif self._retired_and_remembered(receiver, sent.chain):
            where = "a retired chain"
        else:
            where = "a forgotten chain"
        _note(f"replay from {where} refused with {error.__name__}")
        self._refused(receiver, sent.data, error)

    @rule(receiver=parties, index=st.integers(0, 10_000))
    def drop(self, receiver: Party, index: int) -> None:
        queue = self.in_flight[receiver]
        if queue:
            self.dropped[receiver].append(queue.pop(index % len(queue)))

    @rule(
        receiver=parties,
        index=st.integers(0, 10_000),
        position=st.one_of(st.integers(0, 3), st.integers(0, 15_871)),
        mask=st.integers(1, 255),
    )
    def deliver_tampered(self, receiver: Party, index: int, position: int, mask: int) -> None:
        queue = self.in_flight[receiver]
        if not queue:
            return
        sent = queue[index % len(queue)]  # the genuine one stays in flight
        data = bytearray(sent.data)
        data[position] ^= mask
        outer_broken = position == 0 or (position == 1 and data[1] not in (0x11, 0x12))
        # The inviter names other accept fields under its own invitation id as another
        # acceptance of it (protocol §5.10); refused all the same, state unchanged.
        other_acceptance = (
            receiver is ALICE and data[1] == 0x11 and 2 + 16 <= position < 2 + ACCEPT_FIELDS_SIZE
        )
        expected: type[BurnerError] = DecryptionError
        if outer_broken:
            expected = RemoteProtocolError
        elif other_acceptance:
            expected = InvitationConsumedError
        self._refused(receiver, bytes(data), expected)

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def received_in_true_order(self) -> None:
        for receiver in Party:
            sender = receiver.peer
            got = sorted(self.received[receiver].items())
            sent = [(s.seq, s.content) for s in self.sent[sender]]
            # A subsequence of what was sent, in send order (seq is the send position).
            assert got == [pair for pair in sent if pair[0] in self.received[receiver]]
            assert all(sent[seq - 1][1] == content for seq, content in got)

    @invariant()
    def every_envelope_is_somewhere(self) -> None:
        for receiver in Party:
            places = self.in_flight[receiver] + self.dropped[receiver] + self.delivered[receiver]
            assert sorted(s.seq for s in places) == [s.seq for s in self.sent[receiver.peer]]


RatchetDelivery.TestCase.settings = settings(
    max_examples=50,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRatchetDelivery = RatchetDelivery.TestCase


# -- the replay outcomes, pinned with hand-driven runs of the same machine -----------------
# Random runs never close more than RETIRED_CHAINS chains (see the module docstring), and
# reach a replay from a retired chain only now and then; these make sure every branch of
# `_expected_replay_error` is exercised on every run.


def _check(machine: RatchetDelivery) -> None:
    machine.received_in_true_order()
    machine.every_envelope_is_somewhere()


def _ping_pong(machine: RatchetDelivery) -> None:
    """One round trip, Alice first: each side steps the DH ratchet once."""
    machine.send(ALICE, [b"ping"])
    machine.deliver_all_in_order(BOB)
    machine.send(BOB, [b"pong"])
    machine.deliver_all_in_order(ALICE)


def test_replay_is_a_duplicate_while_its_chain_is_current() -> None:
    m = RatchetDelivery()
    assert m._expected_replay_error(ALICE, m.delivered[ALICE][0]) is DuplicateMessageError
    m.redeliver(ALICE, 0)  # Bob's first (ACCEPT) envelope, consumed by `complete`
    m.send(ALICE, [b"a1", b"a2"])
    m.deliver(BOB, [1, 0])  # out of order: a skipped key, then used
    m.redeliver(BOB, 0)
    m.redeliver(BOB, 1)
    _check(m)


def test_replay_of_a_retired_chain_is_a_duplicate() -> None:
    m = RatchetDelivery()
    m.send(ALICE, [b"a1"])
    m.deliver_all_in_order(BOB)  # Bob steps
    m.send(BOB, [b"b2"])
    m.deliver_all_in_order(ALICE)  # Alice steps; Bob's chain 1 is fully read
    assert m.recv_chain == {ALICE: 2, BOB: 1}
    # Chain 1 is neither current nor holds a skipped key: only its retired record knows it.
    assert not m._still_unread(ALICE, 1)
    assert m._retired_and_remembered(ALICE, 1)
    assert m._expected_replay_error(ALICE, m.delivered[ALICE][0]) is DuplicateMessageError
    m.redeliver(ALICE, 0)
    _check(m)


def test_replay_in_an_old_chain_stays_a_duplicate_after_its_last_skipped_key_is_used() -> None:
    m = RatchetDelivery()
    m.send(BOB, [b"b2", b"b3"])  # still ACCEPT envelopes: Bob has not heard back
    m.deliver(ALICE, [1])  # b3 first; b2 stays in flight (a skipped key in chain 1)
    m.send(ALICE, [b"a1"])
    m.deliver_all_in_order(BOB)
    m.send(BOB, [b"b4"])
    m.deliver(ALICE, [1])  # b4: Alice steps to Bob's chain 2; chain 1 keeps b2's key
    assert m.recv_chain[ALICE] == 2
    b3 = m.delivered[ALICE][1]
    assert (b3.chain, b3.content) == (1, b"b3")
    assert m._still_unread(ALICE, 1)
    assert m._expected_replay_error(ALICE, b3) is DuplicateMessageError
    m.redeliver(ALICE, 1)
    m.deliver_all_in_order(ALICE)  # b2, late: the last skipped key of chain 1 is used up
    assert not m._still_unread(ALICE, 1)
    assert m._expected_replay_error(ALICE, b3) is DuplicateMessageError  # retired, remembered
    m.redeliver(ALICE, 1)
    b2 = m.delivered[ALICE][3]
    assert (b2.chain, b2.content) == (1, b"b2")
    assert m._expected_replay_error(ALICE, b2) is DuplicateMessageError
    m.redeliver(ALICE, 3)  # b2 itself, read from the chain's last skipped key
    _check(m)


def test_replay_of_a_dropped_chains_sibling_stays_a_duplicate() -> None:
    m = RatchetDelivery()
    m.send(BOB, [b"b2", b"b3"])
    m.drop(ALICE, 0)  # b2 is lost for good: its key stays cached, so chain 1 stays known
    m.deliver_all_in_order(ALICE)
    m.send(ALICE, [b"a1"])
    m.deliver_all_in_order(BOB)
    m.send(BOB, [b"b4"])
    m.deliver_all_in_order(ALICE)
    assert m.recv_chain[ALICE] == 2
    for index, sent in enumerate(m.delivered[ALICE]):
        if sent.chain == 1:
            assert m._expected_replay_error(ALICE, sent) is DuplicateMessageError
            m.redeliver(ALICE, index)
    _check(m)


def test_replay_of_a_chain_closed_more_than_32_chains_ago_is_a_decryption_error() -> None:
    m = RatchetDelivery()
    for _ in range(RETIRED_CHAINS):
        _ping_pong(m)
    # Alice has closed Bob's chains 1..32: chain 1 is the oldest record she still keeps.
    assert m.recv_chain == {ALICE: RETIRED_CHAINS + 1, BOB: RETIRED_CHAINS}
    first, second = m.delivered[ALICE][0], m.delivered[ALICE][1]
    assert (first.chain, second.chain) == (1, 2)
    assert not m._still_unread(ALICE, 1)
    assert m._expected_replay_error(ALICE, first) is DuplicateMessageError
    m.redeliver(ALICE, 0)

    _ping_pong(m)  # the 33rd closed chain pushes chain 1 out of the retired window
    assert m.recv_chain == {ALICE: RETIRED_CHAINS + 2, BOB: RETIRED_CHAINS + 1}
    assert not m._retired_and_remembered(ALICE, 1)
    assert m._expected_replay_error(ALICE, first) is DecryptionError
    m.redeliver(ALICE, 0)
    # Chain 2 is now the oldest record Alice keeps; Bob has closed Alice's chains 1..32.
    assert m._expected_replay_error(ALICE, second) is DuplicateMessageError
    m.redeliver(ALICE, 1)
    assert m.delivered[BOB][0].chain == 1
    assert m._expected_replay_error(BOB, m.delivered[BOB][0]) is DuplicateMessageError
    m.redeliver(BOB, 0)
    _check(m)
