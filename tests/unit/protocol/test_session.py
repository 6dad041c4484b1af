"""Sessions: bytes in, events out, bytes out (docs/protocol.md §6)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from burnerkit.crypto.kdf import chain_step
from burnerkit.crypto.rng import SystemRandom
from burnerkit.errors import DecryptionError, DuplicateMessageError
from burnerkit.protocol.envelope import ENVELOPE_SIZE
from burnerkit.protocol.events import Event, GapDetected, MessageReceived, MessageReordered
from burnerkit.protocol.ratchet import SKIPPED_KEY_MAX_AGE
from burnerkit.protocol.session import Role, Session
from tests.helpers import ALICE, BOB, T0, SessionPair, restore, snapshot


def test_first_events():
    pair = SessionPair()
    assert pair.first_events == [MessageReceived(1, int(T0 * 1000), b"hello")]
    assert pair.alice.role is Role.INVITER
    assert pair.bob.role is Role.ACCEPTOR
    assert pair.alice.next_seq == 1
    assert pair.bob.next_seq == 2


def test_sent_at_is_the_senders_clock_in_milliseconds():
    pair = SessionPair()
    envelope = pair.alice.send(b"x", now=T0 + 1.5)
    assert pair.bob.receive(envelope, now=T0 + 999) == [MessageReceived(1, int(T0 * 1000) + 1500, b"x")]


def test_message_received_hides_content_from_repr_but_not_from_eq():
    event = MessageReceived(1, 2, b"secret words")
    assert "secret" not in repr(event)
    assert event == MessageReceived(1, 2, b"secret words")
    assert event != MessageReceived(1, 2, b"other words")


def test_conversation_with_bursts_both_ways():
    pair = SessionPair()
    seq = {ALICE: 1, BOB: 2}
    for turn in range(12):
        sender = ALICE if turn % 2 == 0 else BOB
        for burst in range(turn % 4 + 1):
            content = f"{sender.value} {turn}.{burst}".encode()
            assert pair.exchange(sender, content) == [MessageReceived(seq[sender], pair.sent_at, content)]
            seq[sender] += 1
            pair.clock.advance(1)
    assert pair.alice.next_seq == seq[ALICE]
    assert pair.bob.next_seq == seq[BOB]


def test_envelopes_of_equal_content_differ():
    pair = SessionPair()
    a, b = pair.send(ALICE, b"same"), pair.send(ALICE, b"same")
    assert a != b
    assert len(a) == len(b) == ENVELOPE_SIZE


def test_gaps_and_reorders_over_the_link():
    pair = SessionPair()
    pair.round_trip()
    for i in range(5):
        pair.post(ALICE, bytes([i]))
    link = pair.link(ALICE)
    link.drop(1)  # seq 3 lost for now
    link.reorder([3, 0, 2, 1])  # seq 6, 2, 5, 4
    t = pair.sent_at
    assert pair.flush(ALICE) == [
        [GapDetected(2, 5), MessageReceived(6, t, b"\x04")],
        [MessageReordered(2), MessageReceived(2, t, b"\x00")],
        [MessageReordered(5), MessageReceived(5, t, b"\x03")],
        [MessageReordered(4), MessageReceived(4, t, b"\x02")],
    ]
    assert pair.bob.missing == [3]


def test_missing_lists_what_has_not_arrived():
    pair = SessionPair()
    assert pair.alice.missing == []
    envelopes = [pair.send(BOB, bytes([i])) for i in range(4)]  # seq 2..5
    pair.deliver(envelopes[3], to=ALICE)
    assert pair.alice.missing == [2, 3, 4]
    pair.deliver(envelopes[1], to=ALICE)
    assert pair.alice.missing == [2, 4]


def test_purge_expired_deletes_old_skipped_keys():
    pair = SessionPair()
    pair.round_trip()
    late = pair.send(ALICE, b"late")
    pair.exchange(ALICE, b"on time")
    stored_at = pair.now
    assert pair.bob.purge_expired(now=stored_at + SKIPPED_KEY_MAX_AGE + 0.9) == 0
    assert pair.bob.purge_expired(now=stored_at + SKIPPED_KEY_MAX_AGE + 1) == 1
    assert pair.bob.purge_expired(now=stored_at + SKIPPED_KEY_MAX_AGE + 2) == 0
    pair.clock.advance(SKIPPED_KEY_MAX_AGE + 1)
    with pytest.raises(DuplicateMessageError):
        pair.deliver(late, to=BOB)
    assert pair.exchange(ALICE, b"works") == [MessageReceived(4, pair.sent_at, b"works")]


def test_link_duplicate():
    pair = SessionPair()
    pair.post(ALICE, b"once")
    pair.link(ALICE).duplicate(0)
    envelopes = pair.link(ALICE).take_all()
    assert envelopes[0] == envelopes[1]
    assert pair.deliver(envelopes[0], to=BOB) == [MessageReceived(1, pair.sent_at, b"once")]
    with pytest.raises(DuplicateMessageError):
        pair.deliver(envelopes[1], to=BOB)


def test_link_reorder_needs_a_permutation():
    pair = SessionPair()
    pair.post(ALICE)
    with pytest.raises(ValueError, match="permutation"):
        pair.link(ALICE).reorder([0, 0])


# ----------------------------------------------------------------------- serialisation


def _session_states() -> Iterator[tuple[str, Session]]:
    """(name, session) at moments worth serialising; each yield is a fresh pair."""
    pair = SessionPair()
    yield "inviter after handshake", pair.alice
    yield "acceptor waiting to hear back", pair.bob
    pair.round_trip()
    yield "inviter after a round trip", pair.alice
    yield "acceptor after a round trip", pair.bob
    for i in range(4):
        pair.post(ALICE, bytes([i]))
    pair.link(ALICE).reorder([3, 1, 0, 2])
    pair.link(ALICE).drop(3)
    pair.flush(ALICE)
    yield "receiver with gaps and skipped keys", pair.bob


@pytest.mark.parametrize("index", range(5))
def test_to_bytes_from_bytes_is_byte_identical(index):
    name, session = list(_session_states())[index]
    data = snapshot(session)
    restored = Session.from_bytes(data, rng=SystemRandom())
    assert snapshot(restored) == data, name
    assert repr(restored) == repr(session)
    assert restored.role is session.role
    assert restored.transcript_hash == session.transcript_hash
    assert restored.safety_code == session.safety_code
    assert restored.next_seq == session.next_seq


def test_restored_sessions_carry_on():
    pair = SessionPair()
    pair.post(BOB, b"held back")  # an ACCEPT envelope still in flight
    pair.sessions[ALICE] = restore(snapshot(pair.alice), pair.rng)
    pair.sessions[BOB] = restore(snapshot(pair.bob), pair.rng)
    assert pair.send(BOB, b"still accept")[:2] == b"\x01\x11"
    assert pair.exchange(ALICE, b"a") == [MessageReceived(1, pair.sent_at, b"a")]
    assert pair.exchange(BOB, b"b") == [GapDetected(2, 3), MessageReceived(4, pair.sent_at, b"b")]
    assert pair.flush(BOB) == [[MessageReordered(2), MessageReceived(2, pair.sent_at, b"held back")]]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: b"",
        lambda d: d[:-1],
        lambda d: d + b"\x00",
        lambda d: b"\x02" + d[1:],
        lambda d: d[:1] + b"\x03" + d[2:],
    ],
    ids=["empty", "truncated", "trailing", "version", "role"],
)
def test_from_bytes_refuses_bad_state(mangle):
    pair = SessionPair()
    with pytest.raises(ValueError, match="not a valid session state"):
        Session.from_bytes(mangle(snapshot(pair.bob)), rng=pair.rng)


def test_from_bytes_refuses_an_inviter_waiting_to_hear_back():
    pair = SessionPair()
    data = bytearray(snapshot(pair.alice))
    # version, role, transcript (32), ours (64), theirs (64), accept fields (var16), pending
    pending_at = 2 + 32 + 64 + 64 + 2 + int.from_bytes(data[162:164], "big")
    assert data[pending_at] == 0
    data[pending_at] = 1
    with pytest.raises(ValueError, match="not a valid session state"):
        Session.from_bytes(bytes(data), rng=pair.rng)


def test_repr():
    pair = SessionPair()
    ratchet = "DoubleRatchet(ns=1, nr=0, pn=0, skipped=0)"
    assert repr(pair.bob) == f"Session(role=ACCEPTOR, next_seq=2, ratchet={ratchet})"


# -------------------------------------------------------------------------- FS and PCS


def test_forward_secrecy_keys_of_read_messages_are_gone():
    pair = SessionPair()
    pair.round_trip()
    sender = pair.alice._ratchet
    assert sender._cks is not None
    _, mk_first = chain_step(sender._cks)
    first = pair.send(ALICE, b"first")
    assert sender._cks is not None
    _, mk_second = chain_step(sender._cks)
    second = pair.send(ALICE, b"second")
    pair.deliver(second, to=BOB)
    assert mk_first in snapshot(pair.bob)  # skipped: kept until the message arrives
    pair.deliver(first, to=BOB)
    after = snapshot(pair.bob)
    assert mk_first not in after
    assert mk_second not in after
    # A copy of the state taken after reading cannot read the same messages again.
    seized = restore(after, pair.rng)
    for envelope in (first, second):
        with pytest.raises(DuplicateMessageError):
            seized.receive(envelope, now=pair.now)


def test_post_compromise_security_heals_after_a_round_trip():
    pair = SessionPair()
    pair.round_trip()
    # The adversary images Bob's device and then reads everything on the wire with
    # the copy, exactly as Bob does.
    spy = restore(snapshot(pair.bob), pair.rng)

    def both_read(envelope: bytes) -> tuple[list[Event], list[Event]]:
        real = pair.deliver(envelope, to=BOB)
        return real, spy.receive(envelope, now=pair.now)

    # Not healed yet: Alice's current chain, and her next one (which still uses Bob's
    # ratchet key from before the theft), are open to the copy. This is inherent.
    m1 = pair.send(ALICE, b"still readable")
    real, stolen = both_read(m1)
    assert stolen == real
    pair.exchange(BOB, b"bob steps")  # on the ratchet key the thief holds
    m2 = pair.send(ALICE, b"readable too")
    real, stolen = both_read(m2)
    assert stolen == real
    # Bob took a fresh ratchet key when he read m2; once Alice has used it, the copy is out.
    pair.exchange(BOB, b"fresh key")
    m3 = pair.send(ALICE, b"healed")
    before = snapshot(spy)
    with pytest.raises(DecryptionError):
        spy.receive(m3, now=pair.now)
    assert snapshot(spy) == before
    assert pair.deliver(m3, to=BOB) == [MessageReceived(4, pair.sent_at, b"healed")]


def test_stale_snapshot_cannot_read_after_a_round_trip():
    pair = SessionPair()
    pair.round_trip()
    leaked = snapshot(pair.bob)
    pair.exchange(ALICE, b"a")
    pair.exchange(BOB, b"b")
    pair.exchange(ALICE, b"c")
    pair.exchange(BOB, b"d")
    late = pair.send(ALICE, b"new")
    with pytest.raises(DecryptionError):
        restore(leaked, pair.rng).receive(late, now=pair.now)
