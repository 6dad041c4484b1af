"""Decoders fuzzed with hypothesis: parse, or raise our typed error, nothing else (h11 fuzz/).

Every decoder that sees bytes from outside has one contract (docs/protocol.md §4, §7):

* ``Body.decode`` (authenticated plaintext): a ``Body`` or ``DecryptionError``;
* ``Invitation.from_bytes`` (peer bytes): an ``Invitation`` or ``RemoteProtocolError`` /
  ``HandshakeError``;
* ``Session.receive`` (peer bytes): events, or a ``BurnerError`` with the session
  byte-identical; never ``IndexError``, ``ValueError``, ``struct.error``;
* ``Session.from_bytes``, ``DoubleRatchet.from_bytes``, ``PendingInvitation.from_bytes``
  (local state): an object, or ``ValueError``;
* ``codec.Reader``: values, or ``CodecError``.

Envelopes are 15,872 bytes, more than hypothesis likes to draw, so the strategies draw a
short head and a seed and expand the rest deterministically.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from burnerkit.crypto.rng import DeterministicRandom
from burnerkit.errors import (
    BurnerError,
    DecryptionError,
    DuplicateMessageError,
    HandshakeError,
    InvitationConsumedError,
    RemoteProtocolError,
)
from burnerkit.protocol.envelope import BODY_HEADER_SIZE, ENVELOPE_SIZE, Body
from burnerkit.protocol.handshake import (
    Invitation,
    InvitationState,
    PendingInvitation,
    accept_invitation,
    create_invitation,
)
from burnerkit.protocol.ratchet import DoubleRatchet
from burnerkit.protocol.session import Session
from burnerkit.wire import CodecError, Reader, Writer

T0 = 1_800_000_000.0
ACCEPT_PREFIX_END = 2 + 1264  # version, type, accept fields

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- a fixed world to fuzz against ---------------------------------------------------------


class World:
    """One handshake, a few messages; raw bytes of every state and of fresh envelopes."""

    def __init__(self) -> None:
        self.rng = DeterministicRandom(b"tests/property/codec-roundtrip")
        pending, self.invitation = create_invitation(
            rng=self.rng, now=T0, lifetime=3600, reply_address=b"alice-queue", one_time=False
        )
        self.pending_state = pending.to_bytes()
        bob, first = accept_invitation(self.invitation, content=b"hello", rng=self.rng, now=T0)
        alice, _ = pending.complete(first, now=T0)
        self.first = first
        self.pending_after_state = pending.to_bytes()  # remembers one acceptance
        # Bob's second ACCEPT envelope: in Alice's current chain, not delivered yet.
        self.accept_fresh = bob.send(b"still accepting", now=T0)
        # A delivered message (Alice -> Bob, makes Bob step), then fresh ones each way.
        self.delivered = alice.send(b"a1", now=T0)
        bob.receive(self.delivered, now=T0)
        self.to_bob_fresh = alice.send(b"a2", now=T0)  # Bob's current chain
        self.to_alice_fresh = bob.send(b"b", now=T0)  # Alice's *next* chain: a DH step
        self.alice, self.bob = alice, bob
        self.alice_state, self.bob_state = alice.to_bytes(), bob.to_bytes()
        self.ratchet_state = bob._ratchet.to_bytes()


@cache
def world() -> World:
    return World()


def expand(seed: int, n: int) -> bytes:
    """``n`` pseudo-random bytes from ``seed`` (SHA-256 in counter mode)."""
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(seed.to_bytes(8, "big") + counter.to_bytes(8, "big")).digest()
        counter += 1
    return bytes(out[:n])


def _fill(kind: str, seed: int, n: int) -> bytes:
    if kind == "zeros":
        return bytes(n)
    if kind == "ones":
        return b"\xff" * n
    return expand(seed, n)


@dataclass(frozen=True)
class Mutation:
    """A small plan for damaging bytes; positions are taken modulo the input's length.

    Drawing the plan rather than the damaged bytes keeps hypothesis's reports short.
    """

    kind: str
    flips: tuple[tuple[int, int], ...]
    where: int
    patch: bytes

    def apply(self, data: bytes) -> bytes:
        out = bytearray(data)
        where = self.where % len(out)
        if self.kind == "flip":
            for position, mask in self.flips:
                out[position % len(out)] ^= mask
        elif self.kind == "truncate":
            del out[where:]
        elif self.kind == "insert":
            out[where:where] = self.patch
        else:  # overwrite
            out[where : where + len(self.patch)] = self.patch
        return bytes(out)


positions = st.one_of(st.integers(0, 64), st.integers(0, 2**16))
mutations = st.builds(
    Mutation,
    kind=st.sampled_from(["flip", "flip", "flip", "truncate", "insert", "overwrite"]),
    flips=st.lists(st.tuples(positions, st.integers(1, 255)), min_size=1, max_size=4).map(tuple),
    where=positions,
    patch=st.binary(min_size=1, max_size=64),
)


def damaged(data: bytes, mutation: Mutation) -> bytes:
    out = mutation.apply(data)
    assume(out != data)  # two flips of one byte can cancel out, a patch can match
    return out


# -- Body ---------------------------------------------------------------------------------

seqs = st.integers(1, 2**64 - 1)
hashes = st.binary(min_size=32, max_size=32)
times = st.integers(0, 2**64 - 1)


@FUZZ
@given(seq=seqs, prev=hashes, sent_at=times, content=st.binary(max_size=300), slack=st.integers(0, 200))
def test_body_roundtrip(seq: int, prev: bytes, sent_at: int, content: bytes, slack: int) -> None:
    size = BODY_HEADER_SIZE + len(content) + slack
    padded, digest = Body.encode(seq, prev, sent_at, content, size)
    assert len(padded) == size
    body = Body.decode(padded)
    assert body == Body(seq, prev, sent_at, content, digest)


@FUZZ
@given(data=st.binary(max_size=400))
def test_body_decode_any_bytes(data: bytes) -> None:
    try:
        body = Body.decode(data)
    except DecryptionError:
        return
    # Whatever parses is canonical: encoding it again gives the same bytes.
    assert Body.encode(body.seq, body.prev_hash, body.sent_at, body.content, len(data))[0] == data


@FUZZ
@given(seq=seqs, prev=hashes, content=st.binary(max_size=64), extra=st.binary(min_size=1, max_size=8))
def test_body_decode_refuses_nonzero_padding(seq: int, prev: bytes, content: bytes, extra: bytes) -> None:
    assume(any(extra))
    padded, _ = Body.encode(seq, prev, 0, content, BODY_HEADER_SIZE + len(content) + 16)
    tampered = padded[: -len(extra)] + extra
    with pytest.raises(DecryptionError):
        Body.decode(tampered)


def test_body_decode_refuses_seq_zero_and_overlong_length() -> None:
    head = struct.pack(">Q32sQH", 0, bytes(32), 0, 0)
    with pytest.raises(DecryptionError):
        Body.decode(head + bytes(10))
    head = struct.pack(">Q32sQH", 1, bytes(32), 0, 11)
    with pytest.raises(DecryptionError):
        Body.decode(head + bytes(10))


def test_body_decode_checks_all_padding_of_an_oversized_body() -> None:
    head = struct.pack(">Q32sQH", 1, bytes(32), 0, 0)
    with pytest.raises(DecryptionError):
        Body.decode(head + b"\x01" + bytes(ENVELOPE_SIZE))


@pytest.mark.parametrize(
    ("seq", "prev", "sent_at"),
    [(1, bytes(31), 0), (1, bytes(33), 0), (0, bytes(32), 0), (2**64, bytes(32), 0), (1, bytes(32), -1)],
    ids=["prev_hash 31 bytes", "prev_hash 33 bytes", "seq 0", "seq 2**64", "sent_at -1"],
)
def test_body_encode_refuses_misuse_with_value_error(seq: int, prev: bytes, sent_at: int) -> None:
    with pytest.raises(ValueError):
        Body.encode(seq, prev, sent_at, b"", 100)


# -- Invitation ---------------------------------------------------------------------------


def _parse_invitation(data: bytes) -> Invitation | None:
    try:
        return Invitation.from_bytes(data)
    except (RemoteProtocolError, HandshakeError):
        return None


@FUZZ
@given(
    data=st.one_of(
        st.binary(max_size=200),
        st.builds(lambda h, s: h + expand(s, 1400), st.binary(max_size=8), st.integers(0, 2**32)),
    )
)
def test_invitation_from_arbitrary_bytes(data: bytes) -> None:
    assert _parse_invitation(data) is None


@FUZZ
@given(mutation=mutations)
def test_invitation_from_mutated_genuine(mutation: Mutation) -> None:
    genuine = world().invitation
    assert Invitation.from_bytes(genuine).raw == genuine
    mutated = damaged(genuine, mutation)
    assert _parse_invitation(mutated) is None


@FUZZ
@given(mutation=mutations)
def test_complete_with_mutated_accept_envelope(mutation: Mutation) -> None:
    w = world()
    pending = PendingInvitation.from_bytes(w.pending_state, rng=w.rng)  # OPEN, nothing accepted
    mutated = damaged(w.first, mutation)
    with pytest.raises(BurnerError) as info:
        pending.complete(mutated, now=T0)
    assert isinstance(info.value, (RemoteProtocolError, HandshakeError)), repr(info.value)
    assert pending.to_bytes() == w.pending_state
    assert pending.state is InvitationState.OPEN


# -- Session.receive ----------------------------------------------------------------------

heads = st.one_of(
    st.binary(max_size=4),
    st.sampled_from([b"\x01\x12", b"\x01\x11", b"\x01\x10", b"\x00\x12", b"\x02\x12"]),
    st.just(b"accept-prefix"),  # replaced by the genuine ACCEPT prefix of Bob's handshake
)


@st.composite
def arbitrary_envelopes(draw: st.DrawFn) -> bytes:
    head = draw(heads)
    if head == b"accept-prefix":
        head = world().first[:ACCEPT_PREFIX_END]
    middle = draw(st.binary(max_size=256))
    tail = _fill(
        draw(st.sampled_from(["zeros", "ones", "random"])), draw(st.integers(0, 2**32)), ENVELOPE_SIZE
    )
    return (head + middle + tail)[:ENVELOPE_SIZE]


def _receive_refused(session: Session, data: bytes, allowed: tuple[type[BurnerError], ...]) -> None:
    before = session.to_bytes()
    with pytest.raises(BurnerError) as info:
        session.receive(data, now=T0 + 1)
    assert isinstance(info.value, allowed), repr(info.value)
    assert session.to_bytes() == before


@FUZZ
@given(data=arbitrary_envelopes(), who=st.sampled_from(["alice", "bob"]))
def test_receive_arbitrary_envelopes(data: bytes, who: str) -> None:
    assert len(data) == ENVELOPE_SIZE
    session = world().alice if who == "alice" else world().bob
    _receive_refused(session, data, (RemoteProtocolError, DecryptionError))


@FUZZ
@given(
    size=st.one_of(st.integers(0, 64), st.integers(ENVELOPE_SIZE - 64, ENVELOPE_SIZE + 64)),
    seed=st.integers(0, 2**32),
)
def test_receive_wrong_size_is_a_remote_protocol_error(size: int, seed: int) -> None:
    assume(size != ENVELOPE_SIZE)
    data = (b"\x01\x12" + expand(seed, size))[:size]
    _receive_refused(world().bob, data, (RemoteProtocolError,))


# (envelope, receiver, errors a mutation may raise). A delivered envelope with a
# mutated body still has a genuine header, which names a processed message: a duplicate.
GENUINE: dict[
    str, tuple[Callable[[World], bytes], Callable[[World], Session], tuple[type[BurnerError], ...]]
] = {
    # Other accept fields under the same invitation id read as another acceptance (§5.10).
    "accept, Alice's current chain": (
        lambda w: w.accept_fresh,
        lambda w: w.alice,
        (InvitationConsumedError,),
    ),
    "message, Bob's current chain": (lambda w: w.to_bob_fresh, lambda w: w.bob, ()),
    "message, Alice's next chain": (lambda w: w.to_alice_fresh, lambda w: w.alice, ()),
    "message, delivered already": (lambda w: w.delivered, lambda w: w.bob, (DuplicateMessageError,)),
    "handshake envelope, delivered": (
        lambda w: w.first,
        lambda w: w.alice,
        (DuplicateMessageError, InvitationConsumedError),
    ),
}


@FUZZ
@given(case=st.sampled_from(sorted(GENUINE)), mutation=mutations)
def test_receive_mutated_genuine_envelopes(case: str, mutation: Mutation) -> None:
    envelope_of, receiver_of, extra = GENUINE[case]
    w = world()
    mutated = damaged(envelope_of(w), mutation)
    _receive_refused(receiver_of(w), mutated, (RemoteProtocolError, DecryptionError, *extra))


def test_genuine_envelopes_still_work_after_the_fuzzing() -> None:
    # Every refusal above left the sessions byte-identical; check that on the bytes too.
    w = world()
    alice = Session.from_bytes(w.alice.to_bytes(), rng=w.rng)
    bob = Session.from_bytes(w.bob.to_bytes(), rng=w.rng)
    assert (alice.to_bytes(), bob.to_bytes()) == (w.alice_state, w.bob_state)
    assert [e.content for e in alice.receive(w.accept_fresh, now=T0) if hasattr(e, "content")] == [
        b"still accepting"
    ]
    assert [e.content for e in alice.receive(w.to_alice_fresh, now=T0) if hasattr(e, "content")] == [b"b"]
    assert [e.content for e in bob.receive(w.to_bob_fresh, now=T0) if hasattr(e, "content")] == [b"a2"]


# -- local state --------------------------------------------------------------------------

STATES: dict[str, tuple[Callable[[World], bytes], Callable[[bytes], Any]]] = {
    "session alice": (lambda w: w.alice_state, lambda b: Session.from_bytes(b, rng=world().rng)),
    "session bob": (lambda w: w.bob_state, lambda b: Session.from_bytes(b, rng=world().rng)),
    "ratchet": (lambda w: w.ratchet_state, lambda b: DoubleRatchet.from_bytes(b, rng=world().rng)),
    "pending": (lambda w: w.pending_state, lambda b: PendingInvitation.from_bytes(b, rng=world().rng)),
    "pending, one acceptance": (
        lambda w: w.pending_after_state,
        lambda b: PendingInvitation.from_bytes(b, rng=world().rng),
    ),
}


@pytest.mark.parametrize("name", sorted(STATES))
def test_state_roundtrip(name: str) -> None:
    state_of, load = STATES[name]
    state = state_of(world())
    assert load(state).to_bytes() == state


@FEW
@given(name=st.sampled_from(sorted(STATES)), mutation=mutations)
def test_state_from_mutated_bytes(name: str, mutation: Mutation) -> None:
    state_of, load = STATES[name]
    mutated = damaged(state_of(world()), mutation)
    try:
        restored = load(mutated)
    except ValueError:
        return
    restored.to_bytes()  # whatever loads can be written again


@FEW
@given(name=st.sampled_from(sorted(STATES)), data=st.binary(max_size=300))
def test_state_from_arbitrary_bytes(name: str, data: bytes) -> None:
    _, load = STATES[name]
    with pytest.raises(ValueError):
        load(data)


# -- codec.Reader / Writer ----------------------------------------------------------------

fields = st.one_of(
    st.tuples(st.just("u8"), st.integers(0, 2**8 - 1)),
    st.tuples(st.just("u16"), st.integers(0, 2**16 - 1)),
    st.tuples(st.just("u32"), st.integers(0, 2**32 - 1)),
    st.tuples(st.just("u64"), st.integers(0, 2**64 - 1)),
    st.tuples(st.just("var16"), st.binary(max_size=40)),
    st.tuples(st.just("var32"), st.binary(max_size=40)),
    st.tuples(st.just("raw"), st.binary(max_size=40)),
    st.tuples(st.just("optional"), st.one_of(st.none(), st.binary(min_size=7, max_size=7))),
)


@FUZZ
@given(values=st.lists(fields, max_size=12))
def test_writer_reader_roundtrip(values: list[tuple[str, Any]]) -> None:
    w = Writer()
    for op, value in values:
        getattr(w, op)(value)
    r = Reader(w.getvalue())
    for op, value in values:
        if op == "raw":
            assert r.take(len(value)) == value
        elif op == "optional":
            assert r.optional(7) == value
        else:
            assert getattr(r, op)() == value
    r.end()
    assert r.rest() == b""


reader_ops = st.lists(
    st.one_of(
        st.sampled_from(["u8", "u16", "u32", "u64", "var16", "var32", "rest", "end"]).map(
            lambda op: (op, None)
        ),
        st.tuples(st.sampled_from(["take", "optional"]), st.integers(-3, 40)),
    ),
    max_size=10,
)


@FUZZ
@given(data=st.binary(max_size=64), ops=reader_ops)
def test_reader_on_arbitrary_bytes(data: bytes, ops: list[tuple[str, int | None]]) -> None:
    r = Reader(data)
    consumed = 0
    for op, arg in ops:
        try:
            out = getattr(r, op)() if arg is None else getattr(r, op)(arg)
        except CodecError:
            continue
        if isinstance(out, bytes):
            consumed += len(out)
        # Never reads past the end; bytes handed out are bytes of the input.
        assert consumed <= len(data)
    r.rest()
    r.end()
