"""The attacks of the design brief (§5), each reproduced and each defence asserted exactly.

A rejected message must raise its typed error, leave the receiver's serialised state
byte-identical, and leave the conversation working: the next genuine message goes
through. A rejected handshake must leave the pending invitation byte-identical and
still able to take the genuine acceptance.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from burnerkit.crypto.kdf import LABEL_SIG_ACCEPT, LABEL_SIG_INVITATION
from burnerkit.crypto.keys import KemPrivateKey, SigningKey, X25519PrivateKey
from burnerkit.crypto.rng import DeterministicRandom, SystemRandom
from burnerkit.errors import (
    DecryptionError,
    DuplicateMessageError,
    ForkDetectedError,
    HandshakeError,
    InvalidKeyError,
    InvitationConsumedError,
    RemoteProtocolError,
    SignatureError,
    TooManySkippedMessagesError,
)
from burnerkit.protocol import ratchet as ratchet_module
from burnerkit.protocol.envelope import ACCEPT_FIELDS_SIZE, ENVELOPE_SIZE, body_size
from burnerkit.protocol.events import (
    ForkDetected,
    ForkReason,
    GapDetected,
    MessageReceived,
    MessageReordered,
)
from burnerkit.protocol.handshake import (
    Invitation,
    InvitationState,
    PendingInvitation,
    accept_invitation,
    create_invitation,
)
from burnerkit.protocol.ratchet import HEADER_CIPHERTEXT_SIZE, MAX_SKIPPED_KEYS, DoubleRatchet
from burnerkit.protocol.session import Session
from tests.helpers import (
    ACC_SIGNATURE,
    ACC_SIGNING,
    ALICE,
    BOB,
    INV_KEM,
    T0,
    Party,
    SessionPair,
    build_invitation,
    flip,
    forge_acceptance,
    restore,
    snapshot,
)

OPAQUE = "message could not be decrypted"
SENT_AT = int(T0 * 1000)
MESSAGE_PREFIX = 2
ACCEPT_PREFIX = 2 + ACCEPT_FIELDS_SIZE

#: X25519 u-coordinates of small order (libsodium's blocklist), plus two that only
#: become 0 and 1 once the top bit is masked (RFC 7748 §5).
SMALL_ORDER_POINTS = {
    "zero": bytes(32),
    "one": (1).to_bytes(32, "little"),
    "order-8a": bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    "order-8b": bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    "p-1": (2**255 - 20).to_bytes(32, "little"),
    "p": (2**255 - 19).to_bytes(32, "little"),
    "p+1": (2**255 - 18).to_bytes(32, "little"),
    "zero-top-bit": (2**255).to_bytes(32, "little"),
    "one-top-bit": (2**255 + 1).to_bytes(32, "little"),
}


# --------------------------------------------------------------------------- helpers


def assert_refused(pair: SessionPair, envelope: bytes, *, to: Party, error: type[Exception]) -> Exception:
    """Delivery raises exactly ``error`` and leaves ``to``'s state byte-identical."""
    before = snapshot(pair.sessions[to])
    with pytest.raises(error) as info:
        pair.deliver(envelope, to=to)
    assert type(info.value) is error
    assert snapshot(pair.sessions[to]) == before
    return info.value


def assert_genuine_works(pair: SessionPair, sender: Party) -> None:
    """The next genuine message from ``sender`` is read, in order, with no anomaly."""
    seq = pair.sessions[sender].next_seq
    assert pair.exchange(sender, b"genuine") == [MessageReceived(seq, pair.sent_at, b"genuine")]


def assert_handshake_refused(
    pending: PendingInvitation, envelope: bytes, error: type[Exception], cause: type[Exception] | None
) -> None:
    """``complete`` raises exactly ``error`` (from ``cause``) and changes nothing."""
    before = snapshot(pending)
    state = pending.state
    with pytest.raises(error) as info:
        pending.complete(envelope, now=T0)
    assert type(info.value) is error
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)
    assert snapshot(pending) == before
    assert pending.state is state


def fresh_invitation(
    seed: bytes = b"attack tests", *, one_time: bool = True
) -> tuple[PendingInvitation, bytes, Session, bytes]:
    """A pending invitation, its bytes, and the acceptor's session and first envelope (not completed)."""
    rng = DeterministicRandom(seed)
    pending, raw = create_invitation(rng=rng, now=T0, lifetime=3600, reply_address=b"q", one_time=one_time)
    bob, first = accept_invitation(raw, content=b"hello", rng=rng, now=T0)
    return pending, raw, bob, first


def assert_completes(pending: PendingInvitation, envelope: bytes) -> Session:
    session, events = pending.complete(envelope, now=T0)
    assert events == [MessageReceived(1, SENT_AT, b"hello")]
    return session


class Counter:
    """Counts calls to the key-deriving functions of the ratchet module."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = {"chain_step": 0, "_root_kdf": 0, "decapsulate": 0}
        for name in ("chain_step", "_root_kdf"):
            monkeypatch.setattr(ratchet_module, name, self._wrap(name, getattr(ratchet_module, name)))
        decapsulate = self._wrap("decapsulate", KemPrivateKey.decapsulate)
        monkeypatch.setattr(KemPrivateKey, "decapsulate", decapsulate)

    def _wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counting(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return function(*args, **kwargs)

        return counting

    def reset(self) -> None:
        self.calls = dict.fromkeys(self.calls, 0)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


def burn_counters(session: Session, count: int) -> None:
    """Use up ``count`` message numbers of the session's sending chain (messages lost)."""
    for _ in range(count):
        session._ratchet.encrypt(b"", b"lost")


# ------------------------------------------------------------------------ counter bomb


def _bomb_same_chain(pair: SessionPair, jump: int) -> tuple[bytes, Party]:
    crafted = pair.clone(ALICE)
    crafted._ratchet._ns = pair.bob._ratchet._nr + jump
    return crafted.send(b"bomb", now=pair.now), BOB


def _bomb_new_chain(pair: SessionPair, jump: int) -> tuple[bytes, Party]:
    crafted = pair.clone(BOB)  # Bob's next message opens a new chain
    assert crafted._ratchet._ns == 0
    crafted._ratchet._ns = jump
    return crafted.send(b"bomb", now=pair.now), ALICE


def _bomb_previous_chain(pair: SessionPair, jump: int) -> tuple[bytes, Party]:
    crafted = pair.clone(BOB)
    crafted._ratchet._pn = pair.alice._ratchet._nr + jump
    return crafted.send(b"bomb", now=pair.now), ALICE


@pytest.mark.parametrize(
    ("craft", "jump"),
    [
        (_bomb_same_chain, 25_001),
        (_bomb_same_chain, 0xFFFFFFFE - 1),
        (_bomb_new_chain, 25_001),
        (_bomb_new_chain, 0xFFFFFFFE),
        (_bomb_previous_chain, 25_001),
        (_bomb_previous_chain, 0xFFFFFFFE - 2),
    ],
    ids=["same", "same-max", "new", "new-max", "previous", "previous-max"],
)
def test_counter_bomb_is_rejected_without_deriving_keys(monkeypatch, craft, jump):
    pair = SessionPair()
    pair.round_trip()
    bomb, victim = craft(pair, jump)
    counter = Counter(monkeypatch)
    assert_refused(pair, bomb, to=victim, error=TooManySkippedMessagesError)
    assert counter.calls == {"chain_step": 0, "_root_kdf": 0, "decapsulate": 0}
    assert_genuine_works(pair, victim.peer)
    assert counter.total > 0  # the wrappers are live: genuine messages do derive keys


def test_counter_bomb_before_the_acceptor_heard_back(monkeypatch):
    pair = SessionPair()
    crafted = pair.clone(BOB)
    crafted._ratchet._ns += 25_001
    bomb = crafted.send(b"bomb", now=pair.now)
    assert bomb[:2] == b"\x01\x11"
    counter = Counter(monkeypatch)
    assert_refused(pair, bomb, to=ALICE, error=TooManySkippedMessagesError)
    assert counter.total == 0
    assert_genuine_works(pair, BOB)


def test_counter_bomb_in_the_first_accept_envelope_is_refused(monkeypatch):
    pending, _, bob, genuine = fresh_invitation()
    bob._ratchet._ns = 25_001
    bomb = bob.send(b"bomb", now=T0)
    counter = Counter(monkeypatch)
    assert_handshake_refused(pending, bomb, HandshakeError, TooManySkippedMessagesError)
    # The handshake's own KEM step runs (a fixed cost); the ratchet derives nothing.
    assert counter.calls == {"chain_step": 0, "_root_kdf": 0, "decapsulate": 1}
    assert_completes(pending, genuine)


def test_skipped_key_cache_is_capped_with_eviction():
    pair = SessionPair()
    pair.round_trip()  # Alice's chain: n = 0 read; Bob expects n = 1
    first, second = pair.send(ALICE, b"first"), pair.send(ALICE, b"second")  # n = 1, 2 (seq 2, 3)
    burn_counters(pair.alice, 998)
    t = pair.sent_at
    assert pair.exchange(ALICE, b"j1") == [GapDetected(2, 3), MessageReceived(4, t, b"j1")]  # n = 1001
    assert pair.bob._ratchet.skipped_key_count == 1000
    burn_counters(pair.alice, 1000)
    assert pair.exchange(ALICE, b"j2") == [MessageReceived(5, t, b"j2")]  # n = 2002
    assert pair.bob._ratchet.skipped_key_count == MAX_SKIPPED_KEYS
    burn_counters(pair.alice, 1)
    assert pair.exchange(ALICE, b"j3") == [MessageReceived(6, t, b"j3")]  # n = 2004: one more key
    assert pair.bob._ratchet.skipped_key_count == MAX_SKIPPED_KEYS  # the oldest (n = 1) went
    assert pair.bob._ratchet.skipped_key_count == len(pair.bob._ratchet._skipped)
    # The evicted message can no longer be read; its neighbour still can.
    assert_refused(pair, first, to=BOB, error=DuplicateMessageError)
    assert pair.deliver(second, to=BOB) == [MessageReordered(3), MessageReceived(3, t, b"second")]
    assert pair.bob._ratchet.skipped_key_count == MAX_SKIPPED_KEYS - 1
    assert_genuine_works(pair, ALICE)


# ----------------------------------------------------------------------------- replays


def test_replayed_message_is_rejected():
    pair = SessionPair()
    pair.round_trip()
    envelope = pair.send(ALICE, b"once")
    assert pair.deliver(envelope, to=BOB) == [MessageReceived(2, pair.sent_at, b"once")]
    for _ in range(3):
        assert_refused(pair, envelope, to=BOB, error=DuplicateMessageError)
    assert_genuine_works(pair, ALICE)
    # Still refused after later traffic on the same chain ...
    assert_refused(pair, envelope, to=BOB, error=DuplicateMessageError)
    # ... and the handshake's first envelope replayed into the open session, too.
    assert_refused(pair, pair.first_envelope, to=ALICE, error=DuplicateMessageError)
    # Once both sides have stepped past the chain it is closed, with no skipped keys
    # left; the receiver still remembers it among its retired chains, so a replay
    # is still named a duplicate (not a fork: same ratchet key, counter below the
    # chain's length, the recorded header tag).
    pair.round_trip()
    pair.round_trip()
    assert_refused(pair, envelope, to=BOB, error=DuplicateMessageError)
    assert_refused(pair, pair.first_envelope, to=ALICE, error=DuplicateMessageError)
    assert_genuine_works(pair, ALICE)
    # Only once the chain has fallen out of the last RETIRED_CHAINS closed chains is
    # its header key gone: still refused, shown once, but as the opaque error. Bob has
    # closed Alice's chains 1 and 2 so far; 31 more round trips close 31 more.
    for _ in range(ratchet_module.RETIRED_CHAINS - 1):
        pair.round_trip()
    assert len(pair.bob._ratchet._retired) == ratchet_module.RETIRED_CHAINS
    assert str(assert_refused(pair, envelope, to=BOB, error=DecryptionError)) == OPAQUE
    assert str(assert_refused(pair, pair.first_envelope, to=ALICE, error=DecryptionError)) == OPAQUE
    assert_genuine_works(pair, ALICE)


def test_replayed_skipped_message_is_rejected():
    pair = SessionPair()
    pair.round_trip()
    a, b, c = (pair.send(ALICE, bytes([i])) for i in range(3))
    t = pair.sent_at
    assert pair.deliver(c, to=BOB) == [GapDetected(2, 3), MessageReceived(4, t, b"\x02")]
    assert pair.deliver(a, to=BOB) == [MessageReordered(2), MessageReceived(2, t, b"\x00")]
    assert_refused(pair, a, to=BOB, error=DuplicateMessageError)
    assert_genuine_works(pair, ALICE)
    # Skipped keys of a chain we have ratcheted past: b is still readable once.
    pair.round_trip()
    assert pair.deliver(b, to=BOB) == [MessageReordered(3), MessageReceived(3, t, b"\x01")]
    # That was the chain's last cached key; the chain is still among the retired ones,
    # so a replay of b (or of a) is a duplicate, not an opaque failure.
    assert_refused(pair, b, to=BOB, error=DuplicateMessageError)
    assert_refused(pair, a, to=BOB, error=DuplicateMessageError)
    assert_genuine_works(pair, ALICE)


def test_replayed_skipped_message_of_an_old_chain_with_keys_left_is_a_duplicate():
    pair = SessionPair()
    pair.round_trip()
    a, b, c = (pair.send(ALICE, bytes([i])) for i in range(3))
    pair.deliver(c, to=BOB)
    pair.round_trip()  # a and b are now skipped keys of an old chain
    pair.deliver(a, to=BOB)
    assert_refused(pair, a, to=BOB, error=DuplicateMessageError)
    assert pair.deliver(b, to=BOB) == [MessageReordered(3), MessageReceived(3, pair.sent_at, b"\x01")]


def test_replayed_handshake_is_rejected():
    # One-time: the same acceptance again, and any other acceptance, are refused.
    pair = SessionPair()
    assert pair.pending.state is InvitationState.CONSUMED
    assert_handshake_refused(pair.pending, pair.first_envelope, InvitationConsumedError, None)
    _, other = accept_invitation(pair.invitation, content=b"me too", rng=pair.rng, now=pair.now)
    assert_handshake_refused(pair.pending, other, InvitationConsumedError, None)
    assert_genuine_works(pair, BOB)

    # Reusable: a second acceptor gets its own session, never the same keys ...
    shared = SessionPair(one_time=False)
    assert shared.pending.state is InvitationState.OPEN
    bob2, first2 = accept_invitation(shared.invitation, content=b"second", rng=shared.rng, now=shared.now)
    alice2, events = shared.pending.complete(first2, now=shared.now)
    assert events == [MessageReceived(1, shared.sent_at, b"second")]
    assert alice2.transcript_hash == bob2.transcript_hash != shared.alice.transcript_hash
    assert alice2._ratchet._rk != shared.alice._ratchet._rk
    assert bob2._ratchet._rk != shared.bob._ratchet._rk
    assert alice2.safety_code != shared.alice.safety_code
    # ... but an exact replay of either acceptance is refused.
    for envelope in (shared.first_envelope, first2):
        assert_handshake_refused(shared.pending, envelope, InvitationConsumedError, None)
    assert_genuine_works(shared, ALICE)


# ----------------------------------------------------------------- tampering in transit


def _tamper_case(
    pair: SessionPair, sender: Party, mangle: Callable[[bytes], bytes], error: type[Exception]
) -> Exception:
    genuine = pair.send(sender, b"genuine")
    raised = assert_refused(pair, mangle(genuine), to=sender.peer, error=error)
    seq = pair.sessions[sender].next_seq - 1
    assert pair.deliver(genuine, to=sender.peer) == [MessageReceived(seq, pair.sent_at, b"genuine")]
    assert_genuine_works(pair, sender)
    return raised


def _pair_after_round_trip() -> SessionPair:
    pair = SessionPair()
    pair.round_trip()
    return pair


BODY_CT = MESSAGE_PREFIX + HEADER_CIPHERTEXT_SIZE + 12


@pytest.mark.parametrize("sender", [ALICE, BOB], ids=["to-bob", "to-alice"])
@pytest.mark.parametrize(
    "index",
    [BODY_CT, BODY_CT + 100, ENVELOPE_SIZE - 17, MESSAGE_PREFIX + 12 + 500],
    ids=["body-first", "body-padding", "body-last", "header-ciphertext"],
)
def test_tampered_ciphertext_is_rejected(sender, index):
    pair = _pair_after_round_trip()
    error = _tamper_case(pair, sender, lambda e: flip(e, index), DecryptionError)
    assert str(error) == OPAQUE


@pytest.mark.parametrize("sender", [ALICE, BOB], ids=["to-bob", "to-alice"])
@pytest.mark.parametrize(
    "tag_end", [ENVELOPE_SIZE, MESSAGE_PREFIX + HEADER_CIPHERTEXT_SIZE], ids=["body-tag", "header-tag"]
)
def test_wrong_tag_is_rejected(sender, tag_end):
    pair = _pair_after_round_trip()

    def wrong_tag(envelope: bytes) -> bytes:
        return envelope[: tag_end - 16] + bytes(16) + envelope[tag_end:]

    _tamper_case(pair, sender, wrong_tag, DecryptionError)
    _tamper_case(pair, sender, lambda e: flip(e, tag_end - 1, 0x80), DecryptionError)


@pytest.mark.parametrize(
    "mangle",
    [lambda e: b"", lambda e: e[:1], lambda e: e[:-1], lambda e: e[:-16], lambda e: e + b"\x00"],
    ids=["empty", "one-byte", "minus-one", "minus-tag", "plus-one"],
)
def test_truncated_envelope_is_rejected(mangle):
    pair = _pair_after_round_trip()
    _tamper_case(pair, ALICE, mangle, RemoteProtocolError)


@pytest.mark.parametrize("index", [2, 13, 14, 100, HEADER_CIPHERTEXT_SIZE - 16], ids=str)
def test_flipped_header_byte_is_rejected(index):
    # Header nonce, header ciphertext: no header key opens it, so nothing is even tried.
    pair = _pair_after_round_trip()
    _tamper_case(pair, ALICE, lambda e: flip(e, index), DecryptionError)


@pytest.mark.parametrize("offset", [0, 11, 12, 5000, 9000])
def test_flipped_body_byte_is_rejected(offset):
    # Body nonce (first 12 bytes) and body ciphertext.
    pair = _pair_after_round_trip()
    index = MESSAGE_PREFIX + HEADER_CIPHERTEXT_SIZE + offset
    _tamper_case(pair, BOB, lambda e: flip(e, index), DecryptionError)


@pytest.mark.parametrize(
    ("index", "value", "error"),
    [
        (0, 0x00, RemoteProtocolError),
        (0, 0x02, RemoteProtocolError),
        (0, 0xFF, RemoteProtocolError),
        (1, 0x10, RemoteProtocolError),  # INVITATION
        (1, 0x11, DecryptionError),  # ACCEPT: the accept fields do not match this session's
        (1, 0x13, RemoteProtocolError),
        (1, 0x00, RemoteProtocolError),
    ],
    ids=["v0", "v2", "v255", "type-invitation", "type-accept", "type-0x13", "type-0"],
)
@pytest.mark.parametrize("sender", [ALICE, BOB], ids=["to-bob", "to-alice"])
def test_flipped_version_or_type_byte_is_rejected(sender, index, value, error):
    pair = _pair_after_round_trip()

    def set_byte(envelope: bytes) -> bytes:
        return envelope[:index] + bytes([value]) + envelope[index + 1 :]

    _tamper_case(pair, sender, set_byte, error)


@pytest.mark.parametrize(
    ("index", "error"),
    [(2, DecryptionError), (100, InvitationConsumedError), (ACC_SIGNATURE.stop - 1, InvitationConsumedError)],
    ids=["id", "kem-ct", "signature"],
)
def test_tampered_accept_fields_in_a_later_accept_envelope_are_rejected(index, error):
    # Other accept fields under the same invitation id read as another acceptance of the
    # invitation (protocol §5.10); under another id, as noise. Refused either way, state unchanged.
    pair = SessionPair()  # Bob has not heard back: his envelopes are ACCEPT
    _tamper_case(pair, BOB, lambda e: flip(e, index), error)


def test_relay_injected_envelope_is_rejected():
    pair = _pair_after_round_trip()
    noise = SystemRandom().random_bytes(ENVELOPE_SIZE - 2)
    for prefix in (b"\x01\x12", b"\x01\x11"):
        for to in (ALICE, BOB):
            assert str(assert_refused(pair, prefix + noise, to=to, error=DecryptionError)) == OPAQUE
    assert_genuine_works(pair, ALICE)
    assert_genuine_works(pair, BOB)


def test_authentic_but_malformed_body_is_rejected():
    # Only a key holder could write this: well sealed, but the padded body is wrong.
    pair = _pair_after_round_trip()
    size = body_size(MESSAGE_PREFIX)
    for body in (bytes(size), b"\x00" * 7 + b"\x01" + bytes(size - 9) + b"\x01"):
        sealed = pair.alice._ratchet.encrypt(body, pair.alice.transcript_hash + b"\x01\x12")
        assert str(assert_refused(pair, b"\x01\x12" + sealed, to=BOB, error=DecryptionError)) == OPAQUE
    # The two counters Alice burned are skipped; the conversation carries on.
    assert_genuine_works(pair, ALICE)


# -------------------------------------------------------------------- invalid key points


def _signed_invitation(signing: SigningKey, **overrides: bytes) -> bytes:
    rng = DeterministicRandom(b"points")
    parts = {
        "dh": X25519PrivateKey.generate(rng).public_key.raw,
        "prekey": X25519PrivateKey.generate(rng).public_key.raw,
        "kem": KemPrivateKey.generate(rng).public_key.raw,
    } | overrides
    return build_invitation(
        signing, dh=parts["dh"], prekey=parts["prekey"], kem=parts["kem"], expires_at=int(T0) + 3600
    )


@pytest.mark.parametrize("point", list(SMALL_ORDER_POINTS.values()), ids=list(SMALL_ORDER_POINTS))
@pytest.mark.parametrize("field", ["prekey", "dh"])
def test_small_order_prekey_in_invitation_is_rejected(field, point):
    signing = SigningKey.generate(DeterministicRandom(b"inviter"))
    raw = _signed_invitation(signing, **{field: point})
    assert _signed_invitation(signing) != raw
    Invitation.from_bytes(raw)  # well formed and correctly signed ...
    with pytest.raises(HandshakeError) as info:  # ... but no acceptor will use it
        accept_invitation(raw, content=b"", rng=SystemRandom(), now=T0)
    assert type(info.value) is HandshakeError
    assert isinstance(info.value.__cause__, InvalidKeyError)
    # The same invitation with valid points is accepted.
    accept_invitation(_signed_invitation(signing), content=b"", rng=SystemRandom(), now=T0)


@pytest.mark.parametrize("point", list(SMALL_ORDER_POINTS.values()), ids=list(SMALL_ORDER_POINTS))
@pytest.mark.parametrize("field", ["ephemeral", "dh"])
def test_small_order_ephemeral_in_acceptance_is_rejected(field, point):
    pending, raw, bob, genuine = fresh_invitation()
    forged = forge_acceptance(genuine, raw, bob._ours.signing, **{field: point})
    assert_handshake_refused(pending, forged, HandshakeError, InvalidKeyError)
    assert_completes(pending, genuine)


def _header_with(pair: SessionPair, *, dh: bytes | None = None, kem: bytes | None = None) -> bytes:
    """A message from Bob opening a new chain, whose header announces ``dh`` or ``kem``.

    Only a holder of Bob's header key could write this header; the test plays one.
    """
    crafted = pair.clone(BOB)
    assert crafted._ratchet._ns == 0  # a new chain: Alice will use the announced keys
    prefix = crafted._ratchet._header_prefix
    if dh is not None:
        prefix = dh + prefix[32:]
    if kem is not None:
        prefix = prefix[:32] + kem + prefix[32 + len(kem) :]
    crafted._ratchet._header_prefix = prefix
    return crafted.send(b"crafted", now=pair.now)


@pytest.mark.parametrize("point", list(SMALL_ORDER_POINTS.values()), ids=list(SMALL_ORDER_POINTS))
def test_invalid_x25519_point_in_a_ratchet_header_is_rejected(monkeypatch, point):
    pair = _pair_after_round_trip()
    forged = _header_with(pair, dh=point)
    counter = Counter(monkeypatch)
    error = assert_refused(pair, forged, to=ALICE, error=DecryptionError)
    assert str(error) == OPAQUE
    # Refused for its all-zero DH output (§3.5) before the root KDF, not by a body that fails later.
    assert isinstance(error.__cause__, InvalidKeyError)
    assert counter.calls["_root_kdf"] == 0
    assert_genuine_works(pair, BOB)


def test_invalid_kem_key_in_a_ratchet_header_is_rejected():
    pair = _pair_after_round_trip()
    # The KEM key in a header is for Alice's next step, not this message's keys: a valid
    # stranger's key there is read without complaint, so only the key check refuses this one.
    valid = KemPrivateKey.generate(DeterministicRandom(b"another kem")).public_key.raw
    forged = _header_with(pair, kem=b"\xff" * len(valid))  # fails the FIPS 203 modulus check
    error = assert_refused(pair, forged, to=ALICE, error=DecryptionError)
    assert str(error) == OPAQUE
    assert isinstance(error.__cause__, InvalidKeyError)
    assert pair.deliver(_header_with(pair, kem=valid), to=ALICE) != []


def test_small_order_signing_key_in_acceptance_is_rejected():
    pending, _, _, genuine = fresh_invitation()
    identity_point = (1).to_bytes(32, "little")  # verifies a forged signature for every message
    forged = genuine[: ACC_SIGNING.start] + identity_point + genuine[ACC_SIGNING.stop :]
    assert_handshake_refused(pending, forged, HandshakeError, InvalidKeyError)
    assert_completes(pending, genuine)


# ----------------------------------------------------------------------- forged signatures


def test_forged_invitation_signature_is_rejected():
    _, raw, _, _ = fresh_invitation()
    attacker = SigningKey.generate(DeterministicRandom(b"attacker"))
    forgeries = {
        "flipped signature": flip(raw, len(raw) - 1),
        "zero signature": raw[:-64] + bytes(64),
        "flipped expiry": flip(raw, 26),
        "flipped prekey": flip(raw, 100),
        "flipped reply address": flip(raw, len(raw) - 65),
        "signed by another key": raw[:-64] + attacker.sign(LABEL_SIG_INVITATION + raw[:-64]),
    }
    for forged in forgeries.values():
        _refuse_invitation(forged, HandshakeError, SignatureError)


def test_forged_acceptance_signature_is_rejected():
    pending, raw, _, genuine = fresh_invitation()
    attacker = SigningKey.generate(DeterministicRandom(b"attacker"))
    sig = ACC_SIGNATURE
    forgeries = [
        flip(genuine, sig.stop - 1),
        genuine[: sig.start] + bytes(64) + genuine[sig.stop :],
        forge_acceptance(genuine, raw, attacker),  # a valid signature, by the wrong key
    ]
    for forged in forgeries:
        assert_handshake_refused(pending, forged, HandshakeError, SignatureError)
    # The relay swaps in its own signing key and signs with it: the signature checks out,
    # but the transcript (and so every key) changed, so the first message cannot be read.
    substituted = forge_acceptance(genuine, raw, attacker, signing_key=attacker.verify_key.raw)
    assert_handshake_refused(pending, substituted, HandshakeError, DecryptionError)
    assert_completes(pending, genuine)


# ------------------------------------------------------------------------- PQ downgrade


def _resigned(pending: PendingInvitation, raw: bytes, kem: bytes) -> bytes:
    """The invitation with its KEM key field replaced and signed again by the real inviter."""
    unsigned = raw[: INV_KEM.start] + kem + raw[INV_KEM.stop : -64]
    return unsigned + pending._identity.signing.sign(LABEL_SIG_INVITATION + unsigned)


def _refuse_invitation(raw: bytes, error: type[Exception], cause: type[Exception]) -> None:
    """Both parsing and accepting ``raw`` raise exactly ``error``, caused by ``cause``."""
    with pytest.raises(error) as info:
        Invitation.from_bytes(raw)
    assert type(info.value) is error
    assert isinstance(info.value.__cause__, cause)
    with pytest.raises(error) as info:
        accept_invitation(raw, content=b"", rng=SystemRandom(), now=T0)
    assert type(info.value) is error


def test_invitation_with_stripped_kem_key_is_refused():
    # Even with the inviter's own valid signature there is no X25519-only layout.
    from burnerkit.wire import CodecError

    pending, raw, _, _ = fresh_invitation()
    _refuse_invitation(_resigned(pending, raw, b""), RemoteProtocolError, CodecError)


def test_invitation_with_swapped_kem_key_is_refused():
    _, raw, _, _ = fresh_invitation()
    theirs = KemPrivateKey.generate(DeterministicRandom(b"attacker kem")).public_key.raw
    swapped = raw[: INV_KEM.start] + theirs + raw[INV_KEM.stop :]
    _refuse_invitation(swapped, HandshakeError, SignatureError)


@pytest.mark.parametrize("length", [1, 800, 1183, 1185, 1568, 2 * 1184])
def test_invitation_with_wrong_length_kem_key_is_refused(length):
    from burnerkit.wire import CodecError

    pending, raw, _, _ = fresh_invitation()
    kem = (raw[INV_KEM] * 2)[:length]
    _refuse_invitation(_resigned(pending, raw, kem), RemoteProtocolError, CodecError)


def test_invitation_with_invalid_kem_key_is_refused():
    # Right length, signed, but not an ML-KEM-768 key (fails the FIPS 203 modulus check).
    pending, raw, _, _ = fresh_invitation()
    _refuse_invitation(_resigned(pending, raw, b"\xff" * 1184), HandshakeError, InvalidKeyError)


def test_acceptance_with_swapped_kem_ciphertext_fails():
    pending, raw, bob, genuine = fresh_invitation()
    _, other_ct = pending.invitation.kem_prekey.encapsulate()  # valid, to the right key, another secret
    # Signature left as it was: the transcript covers the ciphertext.
    swapped = bytearray(genuine)
    swapped[114 : 114 + 1088] = other_ct
    assert_handshake_refused(pending, bytes(swapped), HandshakeError, SignatureError)
    # Signed again (as a party holding the key could): the keys differ, nothing decrypts.
    resigned = forge_acceptance(genuine, raw, bob._ours.signing, kem_ct=other_ct)
    assert_handshake_refused(pending, resigned, HandshakeError, DecryptionError)
    assert_completes(pending, genuine)


# ------------------------------------------------------------- identity key substitution


def test_identity_key_substitution_makes_the_safety_codes_differ():
    # Mallory carries Alice's invitation to Bob: she accepts it herself and hands Bob an
    # invitation of her own, then relays between two sessions that each work perfectly.
    rng = DeterministicRandom(b"substitution")
    alice_pending, alice_raw = create_invitation(rng=rng, now=T0, lifetime=3600, reply_address=b"q")
    mallory_to_alice, first = accept_invitation(alice_raw, content=b"hi", rng=rng, now=T0)
    alice, _ = alice_pending.complete(first, now=T0)
    mallory_pending, mallory_raw = create_invitation(rng=rng, now=T0, lifetime=3600, reply_address=b"q")
    bob, first = accept_invitation(mallory_raw, content=b"hi", rng=rng, now=T0)
    mallory_to_bob, _ = mallory_pending.complete(first, now=T0)
    assert alice.safety_code == mallory_to_alice.safety_code
    assert bob.safety_code == mallory_to_bob.safety_code
    # Read out to each other, the codes Alice and Bob see do not match: the defence.
    assert alice.safety_code != bob.safety_code
    assert alice.their_identity != bob.our_identity
    assert bob.their_identity != alice.our_identity


# ----------------------------------------------------------------------------- expiry


def test_expired_invitation_is_refused():
    rng = DeterministicRandom(b"expiry")
    pending, raw = create_invitation(rng=rng, now=T0, lifetime=60, reply_address=b"q")
    expires_at = int(T0) + 60
    with pytest.raises(HandshakeError, match="expired") as info:
        accept_invitation(raw, content=b"hello", rng=rng, now=expires_at)
    assert type(info.value) is HandshakeError
    _, first = accept_invitation(raw, content=b"hello", rng=rng, now=expires_at - 1)
    for late in (expires_at, expires_at + 3600):
        before = snapshot(pending)
        with pytest.raises(HandshakeError, match="expired") as info:
            pending.complete(first, now=late)
        assert type(info.value) is HandshakeError
        assert snapshot(pending) == before
    assert pending.state is InvitationState.OPEN
    _, events = pending.complete(first, now=expires_at - 1)
    assert events == [MessageReceived(1, (expires_at - 1) * 1000, b"hello")]


# ---------------------------------------------------------------------- relay misbehaviour


def test_relay_reorder_is_reported_in_true_order():
    pair = _pair_after_round_trip()
    for i in range(4):
        pair.post(BOB, f"m{i}".encode())  # seq 3..6
    pair.link(BOB).reorder([3, 1, 0, 2])
    t = pair.sent_at
    assert pair.flush(BOB) == [
        [GapDetected(3, 5), MessageReceived(6, t, b"m3")],
        [MessageReordered(4), MessageReceived(4, t, b"m1")],
        [MessageReordered(3), MessageReceived(3, t, b"m0")],
        [MessageReordered(5), MessageReceived(5, t, b"m2")],
    ]
    assert_genuine_works(pair, BOB)


def test_relay_drop_is_reported_as_gap():
    pair = _pair_after_round_trip()
    for i in range(4):
        pair.post(ALICE, f"m{i}".encode())  # seq 2..5
    dropped = pair.link(ALICE).drop(1)  # seq 3
    pair.link(ALICE).drop(1)  # seq 4
    t = pair.sent_at
    assert pair.flush(ALICE) == [
        [MessageReceived(2, t, b"m0")],
        [GapDetected(3, 4), MessageReceived(5, t, b"m3")],
    ]
    assert pair.bob.missing == [3, 4]
    assert_genuine_works(pair, ALICE)
    # A dropped envelope the relay releases later fills its place in the gap.
    assert pair.deliver(dropped, to=BOB) == [MessageReordered(3), MessageReceived(3, t, b"m1")]


def test_relay_duplicate_is_shown_once():
    pair = _pair_after_round_trip()
    pair.post(ALICE, b"once")
    pair.link(ALICE).duplicate(0)
    first, copy = pair.link(ALICE).take_all()
    assert pair.deliver(first, to=BOB) == [MessageReceived(2, pair.sent_at, b"once")]
    assert_refused(pair, copy, to=BOB, error=DuplicateMessageError)


# ------------------------------------------------------------------------------ clones


@pytest.mark.parametrize("heard_back", [True, False], ids=["message", "accept"])
@pytest.mark.parametrize("cloned", [ALICE, BOB])
def test_cloned_state_sending_is_detected_as_fork(cloned, heard_back):
    pair = SessionPair()
    if heard_back:
        pair.round_trip()
    clone = pair.clone(cloned)
    real = pair.send(cloned, b"real")
    fake = clone.send(b"fake", now=pair.now)
    assert real[:2] == fake[:2] == (b"\x01\x12" if heard_back or cloned is ALICE else b"\x01\x11")
    seq = pair.sessions[cloned].next_seq - 1
    assert pair.deliver(real, to=cloned.peer) == [MessageReceived(seq, pair.sent_at, b"real")]
    error = assert_refused(pair, fake, to=cloned.peer, error=ForkDetectedError)
    assert str(error) == "a second, different message arrived for the same ratchet key"
    assert_genuine_works(pair, cloned)


def test_cloned_state_sending_after_the_original_advanced_is_detected_as_fork():
    # The original's messages arrive first: the clone's is refused.
    pair = _pair_after_round_trip()
    clone = pair.clone(ALICE)
    t = pair.sent_at
    assert pair.exchange(ALICE, b"real 2") == [MessageReceived(2, t, b"real 2")]
    assert pair.exchange(ALICE, b"real 3") == [MessageReceived(3, t, b"real 3")]
    fake = clone.send(b"fake 2", now=pair.now)
    assert_refused(pair, fake, to=BOB, error=ForkDetectedError)
    assert_genuine_works(pair, ALICE)

    # The clone's message arrives first: it is read (it is authentic), then the
    # original's message with the same number is refused, and the original's next
    # message shows the broken hash chain.
    pair = _pair_after_round_trip()
    clone = pair.clone(ALICE)
    real2, real3 = pair.send(ALICE, b"real 2"), pair.send(ALICE, b"real 3")
    fake2 = clone.send(b"fake 2", now=pair.now)
    assert pair.deliver(fake2, to=BOB) == [MessageReceived(2, t, b"fake 2")]
    assert_refused(pair, real2, to=BOB, error=ForkDetectedError)
    assert pair.deliver(real3, to=BOB) == [
        ForkDetected(3, ForkReason.PREVIOUS_HASH_MISMATCH),
        MessageReceived(3, t, b"real 3"),
    ]


def test_cloned_state_filling_a_gap_is_detected_as_fork():
    # A dropped message's number is reused by the clone: read, but flagged.
    pair = _pair_after_round_trip()
    clone = pair.clone(ALICE)
    pair.send(ALICE, b"real 2")  # dropped by the relay
    real3 = pair.send(ALICE, b"real 3")
    t = pair.sent_at
    assert pair.deliver(real3, to=BOB) == [GapDetected(2, 2), MessageReceived(3, t, b"real 3")]
    fake2 = clone.send(b"fake 2", now=pair.now)
    assert pair.deliver(fake2, to=BOB) == [
        MessageReordered(2),
        ForkDetected(2, ForkReason.NEXT_HASH_MISMATCH),
        MessageReceived(2, t, b"fake 2"),
    ]


def test_cloned_state_replying_with_its_own_ratchet_key_is_detected_as_fork():
    pair = _pair_after_round_trip()
    clone = pair.clone(ALICE)
    opener = pair.send(BOB, b"new chain")
    t = pair.sent_at
    assert pair.deliver(opener, to=ALICE) == [MessageReceived(3, t, b"new chain")]
    assert clone.receive(opener, now=pair.now) == [MessageReceived(3, t, b"new chain")]
    real, fake = pair.send(ALICE, b"real"), clone.send(b"fake", now=pair.now)
    assert pair.deliver(real, to=BOB) == [MessageReceived(2, t, b"real")]
    error = assert_refused(pair, fake, to=BOB, error=ForkDetectedError)
    assert str(error) == "a message under a known header key carries another ratchet key"
    assert_genuine_works(pair, ALICE)


@pytest.mark.parametrize(
    ("cloned", "message"),
    [
        # Alice's clone already sent on its chain (pong, n = 0): it writes n = 1, at the
        # chain's final length (rule F3).
        (ALICE, "a message arrived beyond the end of a closed chain"),
        # Bob's clone has not sent on its chain: it writes n = 0, which the original
        # also sent, with another header tag (rule F2, through the retired chain).
        (BOB, "a second, different message arrived for the same ratchet key"),
    ],
    ids=["beyond-the-end", "same-counter"],
)
def test_clone_sending_on_a_superseded_chain_is_detected_as_fork(cloned, message):
    # The realistic clone: imaged at the border, used days later, after the original
    # and the peer have moved on by several round trips. The peer has closed the chain
    # the clone writes on, but remembers its header key, ratchet key and final length
    # (docs/protocol.md §6.7 F3, §10.6): a fork, not an undecryptable message.
    pair = _pair_after_round_trip()
    clone = pair.clone(cloned)
    for _ in range(3):
        pair.round_trip()
    pair.exchange(cloned, b"later")
    fake = clone.send(b"fake", now=pair.now)
    error = assert_refused(pair, fake, to=cloned.peer, error=ForkDetectedError)
    assert str(error) == message
    assert_genuine_works(pair, cloned)
    assert_genuine_works(pair, cloned.peer)


def test_clone_beyond_retired_window_is_undecryptable():
    # The limit (docs/protocol.md §10.6): the peer keeps only the last RETIRED_CHAINS
    # closed chains. A clone that wakes after more ratchet steps than that is refused
    # as a plain DecryptionError, not named a fork; callers are to count such failures
    # as anomalies.
    pair = _pair_after_round_trip()
    clone = pair.clone(ALICE)
    fake = clone.send(b"fake", now=pair.now)  # n = 1 on Alice's chain 1, which Bob reads now
    # Each round trip makes Bob close one of Alice's chains: 1, 2, ..., 32.
    for _ in range(ratchet_module.RETIRED_CHAINS):
        pair.round_trip()
    assert len(pair.bob._ratchet._retired) == ratchet_module.RETIRED_CHAINS
    error = assert_refused(pair, fake, to=BOB, error=ForkDetectedError)  # the oldest record
    assert str(error) == "a message arrived beyond the end of a closed chain"
    pair.round_trip()  # the 33rd closed chain: Alice's chain 1 is forgotten
    assert len(pair.bob._ratchet._retired) == ratchet_module.RETIRED_CHAINS
    assert str(assert_refused(pair, fake, to=BOB, error=DecryptionError)) == OPAQUE
    assert_genuine_works(pair, ALICE)


@pytest.mark.parametrize("heard_back", [True, False], ids=["message", "accept"])
def test_rolled_back_state_never_reuses_key_and_nonce(heard_back):
    pair = SessionPair()
    if heard_back:
        pair.round_trip()
    prefix = MESSAGE_PREFIX if heard_back else ACCEPT_PREFIX
    saved = snapshot(pair.bob)
    keys = (pair.bob._ratchet._cks, pair.bob._ratchet._hks)
    envelopes = [pair.send(BOB, b"original")]
    # Restore the backup again and again: every copy holds the same chain key and
    # header key, so it re-derives the same message key; only the nonce keeps the
    # AEAD safe.
    for i in range(20):
        rolled_back = restore(saved, SystemRandom())
        assert (rolled_back._ratchet._cks, rolled_back._ratchet._hks) == keys
        envelopes.append(rolled_back.send(f"again {i}".encode(), now=pair.now))
    header_nonces = {e[prefix : prefix + 12] for e in envelopes}
    body_at = prefix + HEADER_CIPHERTEXT_SIZE
    body_nonces = {e[body_at : body_at + 12] for e in envelopes}
    assert len(header_nonces) == len(body_nonces) == len(envelopes)
    # And the peer flags the replays of the counter as a clone.
    seq = pair.bob.next_seq - 1
    assert pair.deliver(envelopes[0], to=ALICE) == [MessageReceived(seq, pair.sent_at, b"original")]
    assert_refused(pair, envelopes[1], to=ALICE, error=ForkDetectedError)


# ------------------------------------------------------------------- cross-protocol reuse


def test_cross_protocol_invitation_signature_not_accepted_as_acceptance():
    assert not LABEL_SIG_INVITATION.startswith(LABEL_SIG_ACCEPT)
    assert not LABEL_SIG_ACCEPT.startswith(LABEL_SIG_INVITATION)
    pending, raw, bob, genuine = fresh_invitation()
    sig = ACC_SIGNATURE
    # The acceptor's key signs the right transcript under the invitation label: what an
    # invitation signer holding that key would output for these bytes.
    wrong_label = forge_acceptance(genuine, raw, bob._ours.signing, label=LABEL_SIG_INVITATION)
    assert_handshake_refused(pending, wrong_label, HandshakeError, SignatureError)
    # The label is the whole difference: the same key over the same transcript under the
    # acceptance label is, byte for byte, the genuine envelope (Ed25519 is deterministic),
    # and only the signature differs from the forgery. Were the two labels one, the
    # forgery would be the genuine envelope and the refusal above would fail.
    assert forge_acceptance(genuine, raw, bob._ours.signing, label=LABEL_SIG_ACCEPT) == genuine
    assert wrong_label[: sig.start] + wrong_label[sig.stop :] == genuine[: sig.start] + genuine[sig.stop :]
    assert_completes(pending, genuine)
    # And the other way: an invitation signed under the acceptance label.
    inv = pending.invitation
    mislabelled = build_invitation(
        pending._identity.signing,
        dh=inv.identity.dh.raw,
        prekey=inv.prekey.raw,
        kem=inv.kem_prekey.raw,
        expires_at=inv.expires_at,
        label=LABEL_SIG_ACCEPT,
    )
    _refuse_invitation(mislabelled, HandshakeError, SignatureError)


def test_message_from_other_session_is_rejected():
    ours = SessionPair(DeterministicRandom(b"ours"))
    theirs = SessionPair(DeterministicRandom(b"theirs"))
    for sender in (ALICE, BOB):
        stranger = theirs.send(sender, b"not for you")
        assert str(assert_refused(ours, stranger, to=sender.peer, error=DecryptionError)) == OPAQUE
    assert_refused(ours, theirs.first_envelope, to=ALICE, error=DecryptionError)
    assert_handshake_refused(ours.pending, theirs.first_envelope, InvitationConsumedError, None)
    assert_genuine_works(ours, ALICE)
    assert_genuine_works(ours, BOB)


def test_reflected_message_is_rejected():
    pair = _pair_after_round_trip()
    for sender in (ALICE, BOB):
        own = pair.send(sender, b"mine")
        assert_refused(pair, own, to=sender, error=DecryptionError)
        assert pair.deliver(own, to=sender.peer)[-1] == MessageReceived(
            pair.sessions[sender].next_seq - 1, pair.sent_at, b"mine"
        )


# ------------------------------------------------------------------------ leaks via errors


def test_decryption_errors_are_opaque():
    pair = _pair_after_round_trip()
    stale = snapshot(pair.bob)
    other = SessionPair(DeterministicRandom(b"other"))
    genuine = pair.send(ALICE, b"x")
    attempts = {
        "header": flip(genuine, 20),
        "header tag": flip(genuine, MESSAGE_PREFIX + HEADER_CIPHERTEXT_SIZE - 1),
        "body": flip(genuine, 9000),
        "body tag": flip(genuine, ENVELOPE_SIZE - 1),
        "body nonce": flip(genuine, MESSAGE_PREFIX + HEADER_CIPHERTEXT_SIZE),
        "as accept": genuine[:1] + b"\x11" + genuine[2:],
        "other session": other.send(ALICE, b"x"),
        "noise": b"\x01\x12" + bytes(ENVELOPE_SIZE - 2),
    }
    errors: list[DecryptionError] = []
    for name, envelope in attempts.items():
        with pytest.raises(DecryptionError) as info:
            pair.deliver(envelope, to=BOB)
        assert type(info.value) is DecryptionError, name
        errors.append(info.value)
    pair.deliver(genuine, to=BOB)
    pair.round_trip()
    pair.round_trip()
    with pytest.raises(DecryptionError) as info:
        restore(stale, pair.rng).receive(pair.send(ALICE, b"y"), now=pair.now)
    errors.append(info.value)
    with pytest.raises(DecryptionError) as info:
        pair.bob._ratchet.decrypt(b"short", b"", now=0, parse=bytes)
    errors.append(info.value)
    for error in errors:
        assert str(error) == OPAQUE
        assert error.args == (OPAQUE,)


def _hex_windows(secret: bytes) -> set[str]:
    """The secret's hex, and every 4-byte window of it (reprs show 4-byte prefixes)."""
    return {secret.hex()} | {secret[i : i + 4].hex() for i in range(len(secret) - 3)}


def _ratchet_secrets(r: DoubleRatchet) -> list[bytes]:
    assert r._dh_self is not None
    assert r._kem_self is not None
    keys = [r._rk, r._dh_self.private_bytes(), r._kem_self.seed()]
    keys += [k for k in (r._cks, r._ckr, r._hks, r._hkr, r._nhks, r._nhkr) if k is not None]
    keys += [mk for mk, _ in r._skipped.values()]
    return keys


def test_no_secret_in_repr():
    pair = _pair_after_round_trip()
    a, _, c = (pair.send(ALICE, bytes([i])) for i in range(3))
    pair.deliver(c, to=BOB)  # two skipped keys in Bob's state
    pending, _, _, _ = fresh_invitation(one_time=False)
    assert pending._prekey is not None
    assert pending._kem_prekey is not None
    objects_and_secrets = [
        (pair.alice, [*_ratchet_secrets(pair.alice._ratchet), pair.alice._ours.to_bytes()]),
        (pair.bob, [*_ratchet_secrets(pair.bob._ratchet), pair.bob._ours.to_bytes()]),
        (pair.bob._ratchet, _ratchet_secrets(pair.bob._ratchet)),
        (pair.alice._ratchet, _ratchet_secrets(pair.alice._ratchet)),
        (pair.alice._ours, [pair.alice._ours.to_bytes()]),
        (
            pending,
            [pending._identity.to_bytes(), pending._prekey.private_bytes(), pending._kem_prekey.seed()],
        ),
    ]
    for obj, secrets in objects_and_secrets:
        assert secrets
        for text in (repr(obj), str(obj), f"{obj!r:>10}"):
            for secret in secrets:
                for window in _hex_windows(secret):
                    assert window not in text, f"{type(obj).__name__} shows a secret"
            assert "\\x" not in text  # no raw bytes either
    events = pair.deliver(a, to=BOB)
    assert "\\x" not in repr(events)
    assert repr(events[-1]) == f"MessageReceived(seq=2, sent_at={pair.sent_at})"
